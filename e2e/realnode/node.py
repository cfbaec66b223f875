"""One real node: containerd, kubelet and kube-proxy in a network namespace of their own.

:class:`RealNode` is driven by :class:`e2e.cluster.LocalCluster` in two steps: ``prepare``
(before the control plane: the network, so the API server can advertise the host's end of the
link) and ``start`` (after it: certificates, containerd, the pause image, kubelet, kube-proxy,
and a pod that really runs). Any failure tears down everything the node made and raises
:class:`e2e.procs.StartupError` naming the component, with its log tail.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from e2e import bootstrap, oci, pki, procs
from e2e.binaries import NodeBinaries, ensure_node_binaries
from e2e.realnode import config, images, system
from e2e.realnode.layout import NODE_LABEL, NODE_NAME, IPFamily, NodeLayout

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
KUBELET_PORT = 10250


_DEBIAN = "install the Debian packages of scripts/setup.sh (containerd, runc, containernetworking-plugins, iptables)"
_BUILT = "python -m e2e.binaries builds it (or set KUBEBUILDER_ASSETS to a directory holding it)"


def _require(component: str, path: str | Path, hint: str = _DEBIAN) -> str:
    """The executable ``path``, or a StartupError naming the component that cannot start."""
    found = shutil.which(str(path))
    if not found:
        raise procs.StartupError(f"{component} cannot start: {path} is not an executable file ({hint})")
    return found


def overlay_works(scratch: Path) -> bool:
    """Whether an overlay filesystem mounts on ``scratch``'s filesystem (not on every one)."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        parts = [Path(tmp) / p for p in ("lower", "upper", "work", "merged")]
        for p in parts:
            p.mkdir()
        lower, upper, work, merged = parts
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
        ok = system.run("mount", "-t", "overlay", "overlay", "-o", opts, str(merged), check=False).returncode == 0
        if ok:
            system.run("umount", str(merged), check=False)
        return ok


class RealNode:
    """A kubelet-run node of one local cluster (files in ``directory / "node"``)."""

    def __init__(
        self,
        directory: Path,
        ip_family: IPFamily,
        *,
        tie_to_parent: bool = True,
        binaries: NodeBinaries | None = None,
        containerd: str = CONTAINERD,
        runc: str = config.RUNC,
    ) -> None:
        self.directory = directory
        self.ip_family: IPFamily = ip_family
        self._tie = tie_to_parent
        self._binaries = binaries
        self._containerd = containerd
        self._runc = runc
        self._procs = procs.ProcessSet()
        self.layout: NodeLayout | None = None
        self.snapshotter = "overlayfs"

    # -- the two start steps ------------------------------------------------------------------

    def prepare(self) -> list[str]:
        """Make the node's network; return the kube-apiserver flags that let the node reach it."""
        system.reap_stale()
        lay = system.claim_slot(self.directory, self.ip_family)
        self.layout = lay
        try:
            system.create_network(lay)
        except BaseException:
            self.stop()
            raise
        return [
            f"--bind-address={lay.wildcard}",
            f"--advertise-address={lay.host_ip}",
            # Pods reach the API server through the "kubernetes" Service: give it endpoints.
            "--endpoint-reconciler-type=lease",
            # Logs and exec reach the kubelet at the node's address, not its (unresolvable) name.
            "--kubelet-preferred-address-types=InternalIP",
        ]

    @property
    def service_range(self) -> tuple[str, str]:
        """The Service CIDR and first Service IP the cluster must use (after ``prepare``)."""
        return self._lay.service_cidr, self._lay.service_ip

    def start(self, api_port: int, tls: pki.ClusterPKI, api: bootstrap.Api, timeout: float = 180.0) -> None:
        """Start containerd, kubelet and kube-proxy; return once a pod runs on the node."""
        lay = self._lay
        try:
            self._start(lay, api_port, tls, api, timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def _lay(self) -> NodeLayout:
        if self.layout is None:
            raise RuntimeError("RealNode.prepare() was not called")
        return self.layout

    def _start(self, lay: NodeLayout, api_port: int, tls: pki.ClusterPKI, api: bootstrap.Api, timeout: float) -> None:
        end = time.monotonic() + timeout

        def left(cap: float) -> float:
            return max(1.0, min(cap, end - time.monotonic()))

        bins = self._binaries or ensure_node_binaries()
        lay.root.mkdir(parents=True, exist_ok=True)
        server = f"https://{procs.url_host(lay.host_ip)}:{api_port}"
        kubelet_kc, proxy_kc = self._credentials(lay, tls, server, api)

        # containerd: CNI config first, so the runtime reports its network ready at once.
        cni_bin = next((d for d in config.CNI_BIN_DIRS if Path(d, "bridge").is_file()), None)
        if cni_bin is None:
            raise procs.StartupError(
                f"CNI cannot start: no bridge plugin in {' or '.join(config.CNI_BIN_DIRS)} "
                "(install containernetworking-plugins)"
            )
        config.write_json(lay.cni_conf_dir / "10-gitopsd.conflist", config.cni_conflist(lay))
        (lay.root / "resolv.conf").write_text("")
        containerd = _require("containerd", self._containerd)
        runc = _require("runc", self._runc)
        self.snapshotter = "overlayfs" if overlay_works(lay.root / "tmp") else "native"
        (lay.root / "snapshotter").write_text(self.snapshotter)
        toml = lay.root / "containerd" / "config.toml"
        toml.parent.mkdir(parents=True, exist_ok=True)
        lay.run_dir.mkdir(parents=True, exist_ok=True)
        toml.write_text(config.containerd_toml(lay, self.snapshotter, cni_bin, runc))
        ctrd = self._launch(lay, "containerd", [containerd, f"--config={toml}", "--log-level=warn"])
        procs.wait_until(
            "containerd's socket", lambda: self._ctr("version").returncode == 0, timeout=left(30), watch=[ctrd]
        )
        try:
            self.load_image(images.pause_archive())
        except ImageLoadError as exc:
            raise procs.StartupError(f"containerd: {exc}\n{procs.log_tail(ctrd.log)}") from exc

        kubelet = _require("kubelet", bins.kubelet, _BUILT)
        kcfg = config.write_yaml(lay.root / "kubelet.yaml", config.kubelet_config(lay, KUBELET_PORT))
        system.create_cgroups(lay)
        klet = self._launch(lay, "kubelet", config.kubelet_argv(Path(kubelet), lay, kcfg, kubelet_kc))
        procs.wait_until(
            f"node {NODE_NAME} Ready (kubelet)",
            lambda: bootstrap.nodes_ready(api, (NODE_NAME,)),
            timeout=left(90),
            watch=[ctrd, klet],
        )

        proxy_bin = _require("kube-proxy", bins.kube_proxy, _BUILT)
        pcfg = config.write_yaml(lay.root / "kube-proxy.yaml", config.kube_proxy_config(lay, proxy_kc))
        proxy = self._launch(lay, "kube-proxy", [proxy_bin, f"--config={pcfg}", "--v=1"])
        procs.wait_until(
            "kube-proxy's Service rules (KUBE-SERVICES)",
            lambda: "KUBE-SVC-" in self.iptables_nat(),
            timeout=left(60),
            watch=[ctrd, klet, proxy],
        )
        self._probe_pod(api, [ctrd, klet, proxy], left(90))

    def _credentials(self, lay: NodeLayout, tls: pki.ClusterPKI, server: str, api: bootstrap.Api) -> tuple[Path, Path]:
        """Client certificates and kubeconfigs of kubelet and kube-proxy; RBAC for the kubelet."""
        ca_cert, ca_key = pki.load_ca(tls.ca_cert, tls.ca_key)
        out = lay.root / "pki"
        out.mkdir(parents=True, exist_ok=True)
        kc = []
        for stem, cn, org in (
            ("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
            ("kube-proxy", "system:kube-proxy", None),
        ):
            cert, key = pki.issue(ca_cert, ca_key, cn, org=org, client=True)
            crt_path, key_path = pki.write_pair(out, stem, cert, key)
            kc.append(
                config.write_yaml(
                    lay.root / f"{stem}.kubeconfig", config.node_kubeconfig(server, tls.ca_cert, crt_path, key_path)
                )
            )
        # The API server runs RBAC only (no Node authorizer): grant the nodes group the node role.
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "e2e-gitopsd:nodes"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
        }
        if api.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/e2e-gitopsd:nodes") is None:
            api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
        return kc[0], kc[1]

    def _probe_pod(self, api: bootstrap.Api, watch: list[procs.Process], timeout: float) -> None:
        """A pause pod on the real node must reach Running: sandbox, CNI and runc work."""
        path = "/api/v1/namespaces/kube-system/pods"
        name = "e2e-real-node-probe"
        api.post(path, pod_manifest(name, images.PAUSE_IMAGE, command=["/pause"]))

        def outcome() -> str | None:
            pod = api.get(f"{path}/{name}") or {}
            if pod.get("status", {}).get("phase") == "Running":
                return "Running"
            # A sandbox whose network setup failed is not retried cleanly (its teardown runs the
            # same plugins): the first such failure ends the wait.
            failures = _cni_failures(api, name)
            return failures[-1] if failures else None

        try:
            result = procs.wait_until(f"a pod running on {NODE_NAME}", outcome, timeout=timeout, watch=watch)
        except procs.StartupError as exc:
            pod = api.get(f"{path}/{name}") or {}
            raise procs.StartupError(f"{exc}\n--- pod status ---\n{pod.get('status')}") from exc
        if result != "Running":
            raise procs.StartupError(
                f"CNI cannot start: the network of pod {name} could not be set up: {result}\n"
                f"last lines of {watch[0].log}:\n{procs.log_tail(watch[0].log, 20)}"
            )
        api.delete(f"{path}/{name}?gracePeriodSeconds=0")

    # -- helpers --------------------------------------------------------------------------

    def _launch(self, lay: NodeLayout, name: str, argv: list[str]) -> procs.Process:
        proc = self._procs.add(
            procs.start(name, system.in_netns(lay, *argv), lay.logs, tie_to_parent=self._tie, cwd=lay.root)
        )
        system.write_record(lay, [p.pid for p in self._procs.procs])
        return proc

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _ctr(self._lay, *args)

    def iptables_nat(self) -> str:
        """kube-proxy's NAT rules in the node's namespace (iptables-save output)."""
        cmd = system.in_netns(self._lay, "iptables-save", "-t", "nat")
        if self.ip_family == "ipv6":
            cmd = system.in_netns(self._lay, "ip6tables-save", "-t", "nat")
        return system.run(*cmd, check=False).stdout

    def load_image(self, archive: Path) -> list[str]:
        """Import an OCI archive into the node's containerd; return the image names it carried."""
        return load_image(self._lay, archive)

    def images(self) -> list[str]:
        """Names of the images in the node's containerd (namespace k8s.io)."""
        return self._ctr("images", "list", "--quiet").stdout.split()

    def stop(self) -> list[str]:
        """Stop every process and remove what the node made; return what could not be removed."""
        self._procs.stop()
        if self.layout is None:
            return []
        problems = system.teardown(self.layout)
        self.layout = None
        return problems


def pod_manifest(
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    readiness_path: str | None = None,
    port: int = 8080,
) -> dict[str, Any]:
    """A restricted-Pod-Security pod pinned to the real node, never pulling its image."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if command:
        container["command"] = command
    if readiness_path:
        container["ports"] = [{"containerPort": port, "name": "http"}]
        container["readinessProbe"] = {
            "httpGet": {"path": readiness_path, "port": port},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "nodeSelector": {NODE_LABEL: "true"},
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [container],
        },
    }


def _cni_failures(api: bootstrap.Api, pod: str) -> list[str]:
    """Messages of the kubelet's failed sandbox creations for ``pod`` that a CNI plugin caused."""
    events = api.get(f"/api/v1/namespaces/kube-system/events?fieldSelector=involvedObject.name%3D{pod}") or {}
    found = []
    for ev in events.get("items", []):
        msg = str(ev.get("message", ""))
        if ev.get("reason") == "FailedCreatePodSandBox" and "failed to setup network for sandbox" in msg:
            found.append(msg)
    return found


def _ctr(lay: NodeLayout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTR, "--address", str(lay.containerd_socket), "--namespace", "k8s.io", *args],
        capture_output=True,
        text=True,
        check=False,
    )


class ImageLoadError(RuntimeError):
    """An image archive could not be imported into the real node."""


def load_image(lay: NodeLayout, archive: Path) -> list[str]:
    """Import an OCI archive into the node's containerd (namespace k8s.io, where the kubelet
    looks); return the image names it carried. Raises :class:`e2e.oci.OCIArchiveError` for
    any other file, before containerd sees it."""
    names = [img.name for img in oci.read_archive(archive)]
    try:
        snapshotter = (lay.root / "snapshotter").read_text().strip()
    except FileNotFoundError:
        raise ImageLoadError(f"{lay.directory} has no running real node (start it with `up --real-node`)") from None
    proc = _ctr(lay, "images", "import", f"--snapshotter={snapshotter}", "--all-platforms", str(archive))
    if proc.returncode != 0:
        raise ImageLoadError(f"ctr images import {archive} failed: {(proc.stderr or proc.stdout).strip()}")
    return names


def load_image_into(directory: Path, archive: Path) -> list[str]:
    """:func:`load_image` for the real node of the cluster in ``directory`` (another process's)."""
    oci.read_archive(archive)  # a wrong file is named as such, running node or not
    lay = system.record_for(directory.resolve())
    if lay is None:
        raise ImageLoadError(f"{directory} has no running real node (start it with `up --real-node`)")
    return load_image(lay, archive)


def stop_directory(directory: Path) -> list[str] | None:
    """Tear down the real node of a cluster started by another process (``down``); None when
    the cluster has none, else what could not be removed."""
    lay = system.record_for(directory)
    if lay is None:
        return None
    return system.teardown(lay)
