"""What a real node changes on the host, and how it is undone.

Creation (network namespace, veth pair, routes, cgroups, slot records) and removal live side by
side here so that every thing made has its undo next to it. Removal never raises for something
already gone: ``down``, a failed start and the reaper after a SIGKILL all call the same code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2e import procs
from e2e.realnode.layout import RUN_ROOT, IPFamily, NodeLayout

RECORDS = RUN_ROOT
CGROUP_V1 = Path("/sys/fs/cgroup")


class HostSetupError(procs.StartupError):
    """A host command the real node needs failed (message names the command and its output)."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise HostSetupError(f"`{' '.join(argv)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


def in_netns(lay: NodeLayout, *argv: str) -> list[str]:
    """``argv`` run inside the node's network namespace only (not a new mount namespace, as
    ``ip netns exec`` would make: kubelet's and containerd's mounts must be seen by both)."""
    return ["nsenter", f"--net={lay.netns_path}", "--", *argv]


# -- slot records ---------------------------------------------------------------------------


@contextlib.contextmanager
def _records_locked() -> Iterator[None]:
    RECORDS.mkdir(parents=True, exist_ok=True)
    with open(RECORDS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_records() -> dict[int, dict[str, Any]]:
    out = {}
    for path in RECORDS.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            out[int(path.stem)] = json.loads(path.read_text())
    return out


# The kubelet sets these host-wide (its "kernel tunables"); they are put back when the last real
# node on the machine goes.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
_SAVED_SYSCTLS = RECORDS / "sysctls.saved"


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def _save_sysctls() -> None:
    if _SAVED_SYSCTLS.exists():
        return
    saved = {}
    for key in KUBELET_SYSCTLS:
        with contextlib.suppress(OSError):
            saved[key] = _sysctl_path(key).read_text().strip()
    _SAVED_SYSCTLS.write_text(json.dumps(saved))


def _restore_sysctls() -> None:
    try:
        saved = json.loads(_SAVED_SYSCTLS.read_text())
    except (OSError, ValueError):
        return
    for key, value in saved.items():
        with contextlib.suppress(OSError):
            _sysctl_path(key).write_text(value)
    _SAVED_SYSCTLS.unlink()


def claim_slot(directory: Path, ip_family: IPFamily) -> NodeLayout:
    """Take the lowest free slot for a node in ``directory`` and record it."""
    with _records_locked():
        _save_sysctls()
        taken = set(read_records())
        taken |= {int(p.name.removeprefix("gitopsd-rn")) for p in Path("/run/netns").glob("gitopsd-rn*")}
        slot = next((n for n in range(256) if n not in taken), None)
        if slot is None:
            raise HostSetupError("no free real-node slot (256 in use); run `python -m e2e.cluster down` on old ones")
        lay = NodeLayout(directory=directory, slot=slot, ip_family=ip_family)
        write_record(lay, pids=[])
        return lay


def write_record(lay: NodeLayout, pids: list[int]) -> None:
    record = {"directory": str(lay.directory), "ip_family": lay.ip_family, "owner": os.getpid(), "pids": pids}
    (RECORDS / f"{lay.slot}.json").write_text(json.dumps(record))


def record_for(directory: Path) -> NodeLayout | None:
    for slot, rec in read_records().items():
        if rec.get("directory") == str(directory):
            return NodeLayout(directory=directory, slot=slot, ip_family=rec.get("ip_family", "ipv4"))
    return None


def stale_layouts() -> list[NodeLayout]:
    """Nodes whose harness and processes are all gone (a SIGKILLed test, a crashed `up`)."""
    stale = []
    for slot, rec in read_records().items():
        alive = [p for p in [rec.get("owner", 0), *rec.get("pids", [])] if p and procs.pid_alive(int(p))]
        if not alive:
            stale.append(NodeLayout(Path(rec["directory"]), slot, rec.get("ip_family", "ipv4")))
    return stale


# -- network --------------------------------------------------------------------------------


def _sysctl(lay: NodeLayout, key: str, value: str, *, check: bool = True) -> None:
    run(*in_netns(lay, "sysctl", "-q", "-w", f"{key}={value}"), check=check)


def create_network(lay: NodeLayout) -> None:
    """The node's namespace, linked to the host by a veth pair; a host route to the pods."""
    v6 = lay.ip_family == "ipv6"
    run("ip", "netns", "add", lay.netns)
    run("ip", "link", "add", lay.host_veth, "type", "veth", "peer", "name", lay.node_veth, "netns", lay.netns)
    nodad = ["nodad"] if v6 else []
    run("ip", "addr", "add", f"{lay.host_ip}/{lay.prefix_len}", "dev", lay.host_veth, *nodad)
    run("ip", "link", "set", lay.host_veth, "up")
    ns = ["ip", "-n", lay.netns]
    run(*ns, "link", "set", "lo", "up")
    run(*ns, "addr", "add", f"{lay.node_ip}/{lay.prefix_len}", "dev", lay.node_veth, *nodad)
    run(*ns, "link", "set", lay.node_veth, "up")
    # The host reaches pods and Services through the node; the node has no default route (no way out).
    for dest in (lay.pod_subnet, lay.service_cidr):
        run("ip", *(["-6"] if v6 else []), "route", "add", dest, "via", lay.node_ip, "dev", lay.host_veth)
    _sysctl(lay, "net.ipv4.ip_forward", "1")
    if v6:
        _sysctl(lay, "net.ipv6.conf.all.forwarding", "1")
    # Bridged pod-to-pod replies go through the node's iptables (kube-proxy's conntrack).
    _sysctl(lay, "net.bridge.bridge-nf-call-iptables", "1", check=False)
    _sysctl(lay, "net.bridge.bridge-nf-call-ip6tables", "1", check=False)


def delete_network(lay: NodeLayout) -> None:
    """Delete the namespace (with the bridge, veths and iptables rules inside it) and the host's
    end of the link (with its route)."""
    run("ip", "link", "del", lay.host_veth, check=False)
    run("ip", "netns", "del", lay.netns, check=False)


# -- cgroups --------------------------------------------------------------------------------


def _hierarchies() -> list[Path]:
    return [p for p in CGROUP_V1.iterdir() if p.is_dir() and not p.is_symlink()] if CGROUP_V1.is_dir() else []


def create_cgroups(lay: NodeLayout) -> None:
    """The kubelet's cgroup root in every hierarchy (kubelet requires it to exist)."""
    for h in _hierarchies():
        path = h / lay.cgroup_root.lstrip("/")
        path.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset is empty until given its parent's
            if (h / name).exists():
                (path / name).write_text((h / name).read_text())


def remove_cgroups(lay: NodeLayout) -> None:
    """SIGKILL every process left in the node's cgroups (containers whose shim died), then
    remove the cgroups, deepest first."""
    for h in _hierarchies():
        top = h / lay.cgroup_root.lstrip("/")
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*dirs, top]:
            for _ in range(50):
                pids = _cgroup_pids(d)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _cgroup_pids(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


# -- mounts ---------------------------------------------------------------------------------


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(directory).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_all(directory: Path) -> list[str]:
    """Unmount everything under ``directory``; return what stays mounted (should be nothing)."""
    for _ in range(3):
        points = mounts_under(directory)
        if not points:
            return []
        for point in points:
            if run("umount", point, check=False).returncode != 0:
                run("umount", "-l", point, check=False)
    return mounts_under(directory)


# -- processes ------------------------------------------------------------------------------


def kill_mentioning(needle: str) -> None:
    """SIGKILL every process whose command line names ``needle`` (containerd shims name the
    node's containerd socket), other than this one."""
    data = needle.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if data in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)


def _shim_sockets(lay: NodeLayout) -> list[Path]:
    """The sockets of the node's containerd shims: outside the node's directories (containerd
    1.6 puts them in /run/containerd/s), named in each task's ``address`` file."""
    tasks = lay.root / "containerd" / "state" / "io.containerd.runtime.v2.task"
    found = []
    for address in tasks.glob("*/*/address"):
        with contextlib.suppress(OSError):
            found.append(Path(address.read_text().strip().removeprefix("unix://")))
    return found


def teardown(lay: NodeLayout) -> list[str]:
    """Remove everything the node made; return what could not be removed."""
    sockets = _shim_sockets(lay)
    for _ in range(2):  # again after the cgroups: a shim may have started a process meanwhile
        kill_mentioning(str(lay.root) + "/")
        kill_mentioning(str(lay.run_dir) + "/")  # containerd shims name the socket
        remove_cgroups(lay)
    for sock in sockets:  # a SIGKILLed shim leaves its socket behind
        with contextlib.suppress(OSError):
            sock.unlink()
    left = unmount_all(lay.root)
    delete_network(lay)
    shutil.rmtree(lay.run_dir, ignore_errors=True)
    with _records_locked():
        with contextlib.suppress(FileNotFoundError):
            (RECORDS / f"{lay.slot}.json").unlink()
        if not read_records():
            _restore_sysctls()
    problems = [f"still mounted: {p}" for p in left]
    if lay.netns_path.exists():
        problems.append(f"network namespace {lay.netns} still there")
    return problems


def reap_stale() -> list[Path]:
    """Tear down the nodes a killed harness left behind; return their directories."""
    reaped = []
    for lay in stale_layouts():
        teardown(lay)
        reaped.append(lay.directory)
    return reaped
