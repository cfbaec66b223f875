"""Faults of the real node: a missing or failing component fails the start naming it and leaves
nothing running or mounted; a harness killed with SIGKILL leaves a node that the next start
reaps; an image archive that is not an OCI archive is refused with a clear error."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e import procs
from e2e.binaries import Binaries, NodeBinaries, ensure_node_binaries
from e2e.cluster import MARKER_FILE, LocalCluster, stop_directory
from e2e.realnode import config, images, system
from e2e.realnode.layout import NodeLayout
from e2e.realnode.node import RealNode, pod_manifest
from tests.realnode.conftest import RealCluster

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def _mentioning(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return [p for p in found if procs.pid_alive(p)]


# What a real node's routes and iptables rules would name: its links, kube-proxy's chains, the
# CNI bridge, and the link, pod and Service ranges of every slot (e2e.realnode.layout).
_NODE_MARKS = ("grn", "KUBE-", "cni0", "gitopsd", "10.249.", "10.248.", "10.97.", "fd00:10:24", "fd00:10:97:")


def _host_lines(*argv: str) -> set[str]:
    """Lines of a host command's output that name something of a real node (counters dropped)."""
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout
    lines = {re.sub(r"\[\d+:\d+\]", "", line).strip() for line in out.splitlines() if not line.startswith("#")}
    return {f"{argv[0]}: {line}" for line in lines if any(mark in line for mark in _NODE_MARKS)}


def _host_state() -> set[str]:
    """Network namespaces, host links, routes, iptables rules and chains, cgroups and shim sockets
    that real nodes own right now."""
    found = {p.name for p in Path("/run/netns").glob("gitopsd-rn*")} if Path("/run/netns").is_dir() else set()
    found |= {f"link {p.name}" for p in Path("/sys/class/net").glob("grn*")}
    found |= {str(p) for p in Path("/sys/fs/cgroup").glob("*/gitopsd-rn*")}
    found |= {str(p) for p in Path("/run/containerd/s").glob("*")}  # containerd shims' sockets
    found |= _host_lines("ip", "-4", "route", "show", "table", "all")
    found |= _host_lines("ip", "-6", "route", "show", "table", "all")
    found |= _host_lines("iptables-save")
    found |= _host_lines("ip6tables-save")
    found |= _host_lines("iptables-legacy-save")  # kube-proxy may pick either backend
    found |= _host_lines("ip6tables-legacy-save")
    return found


def _of_node(lay: NodeLayout) -> Callable[[str], bool]:
    """Whether a host-state item belongs to the node of ``lay`` (its names, addresses, shims)."""
    v6 = lay.ip_family == "ipv6"
    nets = {a.rsplit(":" if v6 else ".", 1)[0] + (":" if v6 else ".") for a in (lay.host_ip, lay.pod_gateway)}
    nets.add(lay.service_ip.rsplit(":" if v6 else ".", 1)[0] + (":" if v6 else "."))
    tasks = lay.root / "containerd" / "state" / "io.containerd.runtime.v2.task"
    sockets = {a.read_text().strip().removeprefix("unix://") for a in tasks.glob("*/*/address")}
    own = re.compile(rf"gitopsd-rn{lay.slot}\b|\b{lay.host_veth}\b|\b{lay.node_veth}\b")

    def belongs(item: str) -> bool:
        return item in sockets or bool(own.search(item)) or any(net in item for net in nets)

    return belongs


def _assert_nothing_left(directory: Path, before: set[str]) -> None:
    assert _mentioning(str(directory)) == [], "processes of the node still run"
    assert system.mounts_under(directory) == []
    assert system.record_for(directory) is None
    # Other helpers' real nodes may come and go meanwhile: what belongs to them is not ours.
    left = _host_state() - before
    others = [_of_node(lay) for lay in _recorded_nodes() if lay.directory != directory]
    left = {item for item in left if not any(belongs(item) for belongs in others)}
    assert not left, f"left on the host: {sorted(left)}"


def _recorded_nodes() -> list[NodeLayout]:
    return [
        NodeLayout(Path(rec["directory"]), slot, rec.get("ip_family", "ipv4"))
        for slot, rec in system.read_records().items()
    ]


@pytest.mark.parametrize("fault", ["kubelet missing", "containerd missing", "kubelet fails"])
def test_a_component_that_cannot_start_is_named_and_nothing_is_left(
    fault: str, binaries: Binaries, tmp_path: Path
) -> None:
    """Missing kubelet or containerd, or a kubelet that exits: StartupError naming it; nothing running or mounted."""
    node_bins = ensure_node_binaries()
    directory = tmp_path / "c"
    cluster = LocalCluster(directory, "ipv4", binaries=binaries, nodes=1, real_node=True)
    expected: tuple[str, ...]
    if fault == "kubelet missing":
        node = RealNode(directory, "ipv4", binaries=NodeBinaries(tmp_path / "no" / "kubelet", node_bins.kube_proxy))
        expected = ("kubelet cannot start", str(tmp_path / "no" / "kubelet"))
    elif fault == "containerd missing":
        node = RealNode(directory, "ipv4", containerd=str(tmp_path / "no" / "containerd"))
        expected = ("containerd cannot start", str(tmp_path / "no" / "containerd"))
    else:
        fake = tmp_path / "kubelet"
        fake.write_text("#!/bin/sh\necho 'E0000 fake kubelet: unknown flag --nope' >&2\nexit 3\n")
        fake.chmod(0o755)
        node = RealNode(directory, "ipv4", binaries=NodeBinaries(fake, node_bins.kube_proxy))
        expected = ("kubelet exited with code 3", "fake kubelet: unknown flag")
    cluster.real_node = node
    before = _host_state()
    with pytest.raises(procs.StartupError) as err:
        cluster.start(timeout=240)
    for text in expected:
        assert text in str(err.value), str(err.value)
    _assert_nothing_left(directory, before)
    cluster.stop(remove=True)


def test_missing_cni_plugins_are_named_and_nothing_is_left(
    binaries: Binaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bridge plugin in the CNI plugin directory: StartupError naming CNI and the directory; nothing left."""
    empty = tmp_path / "cni-bin"
    empty.mkdir()
    monkeypatch.setattr(config, "CNI_BIN_DIRS", (str(empty),))
    directory = tmp_path / "c"
    cluster = LocalCluster(directory, "ipv4", binaries=binaries, nodes=1, real_node=True)
    before = _host_state()
    with pytest.raises(procs.StartupError) as err:
        cluster.start(timeout=240)
    assert "CNI cannot start" in str(err.value) and f"no bridge plugin in {empty}" in str(err.value), str(err.value)
    _assert_nothing_left(directory, before)
    cluster.stop(remove=True)


def test_a_failing_cni_plugin_is_named_with_its_error_and_nothing_is_left(
    binaries: Binaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CNI plugins that exit 1: the probe pod's sandbox fails; StartupError naming CNI, the plugin's
    error and containerd's log tail, well before the probe's timeout; nothing left."""
    plugins = tmp_path / "cni-failing"
    plugins.mkdir()
    error = '{"cniVersion": "0.4.0", "code": 100, "msg": "fake plugin: refused by test"}'
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        (plugins / plugin).write_text(f"#!/bin/sh\necho '{error}'\nexit 1\n")
        (plugins / plugin).chmod(0o755)
    monkeypatch.setattr(config, "CNI_BIN_DIRS", (str(plugins),))
    directory = tmp_path / "c"
    cluster = LocalCluster(directory, "ipv4", binaries=binaries, nodes=1, real_node=True)
    before = _host_state()
    with pytest.raises(procs.StartupError) as err:
        cluster.start(timeout=300)
    text = str(err.value)
    assert "CNI cannot start" in text and "fake plugin: refused by test" in text, text
    assert f"last lines of {directory / 'logs' / 'containerd.log'}" in text, text
    _assert_nothing_left(directory, before)
    cluster.stop(remove=True)


def test_down_after_a_successful_start_leaves_nothing_on_the_host(tmp_path: Path) -> None:
    """`up --real-node`, a pod running, `down`: no process, mount, netns, link, route, iptables rule,
    cgroup or shim socket of the node is left, and the slot record is gone."""
    directory = tmp_path / "up-down"
    before = _host_state()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "e2e.cluster", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )

    try:
        up = cli("up", "--real-node", "--nodes", "1", "--dir", str(directory))
        assert up.returncode == 0, up.stderr[-3000:]
        lay = system.record_for(directory)
        assert lay is not None
        loaded = cli("load-image", "--dir", str(directory), str(images.httpd_archive()))
        assert loaded.returncode == 0, loaded.stderr
        kc = "--kubeconfig=" + up.stdout.split("export KUBECONFIG=")[1].split()[0]
        pod = json.dumps(pod_manifest("up-down", images.HTTPD_IMAGE, readiness_path="/ready"))
        subprocess.run(["kubectl", kc, "create", "-f", "-"], input=pod, text=True, check=True, capture_output=True)
        ready = subprocess.run(
            ["kubectl", kc, "wait", "--for=condition=Ready", "pod/up-down", "--timeout=120s"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ready.returncode == 0, ready.stderr
        mine = _of_node(lay)
        made = {item for item in _host_state() - before if mine(item)}
        # The start made what `down` must undo: the namespace, the link, its routes, a shim's socket.
        assert lay.netns in made and f"link {lay.host_veth}" in made, sorted(made)
        assert any(item.startswith("ip: ") and f"via {lay.node_ip}" in item for item in made), sorted(made)
        assert any(item.startswith("/run/containerd/s/") for item in made), sorted(made)

        down = cli("down", "--dir", str(directory))
        assert down.returncode == 0 and "left behind" not in down.stdout, down
        _assert_nothing_left(directory, before)
        assert not directory.exists()
    finally:
        leftover = system.record_for(directory)
        if leftover is not None:
            system.teardown(leftover)
        if (directory / MARKER_FILE).exists():
            stop_directory(directory)


def test_a_node_left_by_a_sigkilled_harness_is_reaped_by_the_next_start(tmp_path: Path, binaries: Binaries) -> None:
    """SIGKILL the harness while a pod runs: its shim, mounts and netns outlive it; reap_stale removes them all."""
    directory = tmp_path / "killed"
    before = _host_state()
    script = textwrap.dedent(
        f"""
        import sys, time, json, subprocess
        from pathlib import Path
        from e2e.cluster import MARKER_FILE, LocalCluster, stop_directory
        from e2e.realnode import images
        from e2e.realnode.images import HTTPD_IMAGE
        from e2e.realnode.node import pod_manifest
        cluster = LocalCluster(Path({str(directory)!r}), "ipv4", nodes=1, real_node=True)
        info = cluster.start()
        cluster.real_node.load_image(images.httpd_archive())
        pod = json.dumps(pod_manifest("left", HTTPD_IMAGE, readiness_path="/ready"))
        kc = f"--kubeconfig={{info.kubeconfig}}"
        subprocess.run(["kubectl", kc, "create", "-f", "-"], input=pod, text=True, check=True)
        subprocess.run(["kubectl", kc, "wait", "--for=condition=Ready", "pod/left", "--timeout=90s"], check=True)
        print("READY", flush=True)
        time.sleep(3600)
        """
    )
    harness = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert harness.stdout is not None
        lines = []
        for line in harness.stdout:
            lines.append(line)
            if line.strip() == "READY":
                break
        assert lines and lines[-1].strip() == "READY", "".join(lines[-40:])
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=10)
        left = system.record_for(directory)
        assert left is not None
        # What outlives a SIGKILL: the container's shim, the node's mounts and network namespace.
        kubelet = f"--root-dir={left.kubelet_dir}"
        procs.wait_until("the kubelet to die with its parent", lambda: not _mentioning(kubelet), timeout=15)
        assert _mentioning(str(left.containerd_socket)), "expected the shim of pod 'left' to outlive the harness"
        assert system.mounts_under(directory) and left.netns_path.exists()
        # Stale once the harness and every node process it started are gone (PR_SET_PDEATHSIG).
        procs.wait_until("the node to look stale", lambda: left in system.stale_layouts(), timeout=15)

        reaped = system.reap_stale()
        assert directory in reaped
        _assert_nothing_left(directory, before)
    finally:
        if harness.poll() is None:
            harness.kill()
        leftover = system.record_for(directory)
        if leftover is not None:
            system.teardown(leftover)


def test_load_image_refuses_an_archive_that_is_not_oci(tmp_path: Path) -> None:
    """A docker-save style tarball and a text file: exit 1 and a message naming the file and what is missing."""
    docker_style = tmp_path / "docker.tar"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}]))
    with tarfile.open(docker_style, "w") as tar:
        tar.add(manifest, arcname="manifest.json")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cluster_dir = tmp_path / "c"
    cluster_dir.mkdir()
    for bad, why in ((docker_style, "is not an OCI archive: it has no oci-layout"), (text, "is not an OCI archive")):
        out = subprocess.run(
            [sys.executable, "-m", "e2e.cluster", "load-image", "--dir", str(cluster_dir), str(bad)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 1, out
        assert str(bad) in out.stderr and why in out.stderr, out.stderr


def test_load_image_imports_an_oci_archive_into_the_running_node(real_cluster_ipv4: RealCluster) -> None:
    """`e2e.cluster load-image` names the image it loaded, and containerd lists it."""
    directory = real_cluster_ipv4.info.directory
    out = subprocess.run(
        [sys.executable, "-m", "e2e.cluster", "load-image", "--dir", str(directory), str(images.pause_archive())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert images.PAUSE_IMAGE in out.stdout
    listed = real_cluster_ipv4.node.images()
    assert images.PAUSE_IMAGE in listed and images.HTTPD_IMAGE in listed
