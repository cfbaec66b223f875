"""A real Kubernetes control plane on loopback, without Docker.

etcd, kube-apiserver (aggregation layer on), kube-controller-manager (all controllers, a
short HPA sync period), kube-scheduler and kwok (fake nodes whose pods turn Running/Ready)
run as local processes on free ports, over IPv4 (127.0.0.1) or IPv6 (::1). Several clusters
can run side by side; each keeps its PKI, data and logs in its own directory.

Command line::

    python -m e2e.cluster up --ip-family ipv4 --dir /tmp/c1   # returns when ready
    python -m e2e.cluster down --dir /tmp/c1

``--real-node`` adds a node run by kubelet, containerd and kube-proxy (see e2e/realnode/);
``load-image --dir D ARCHIVE`` imports an OCI image archive into that node's containerd.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from e2e import bootstrap, components, oci, pki, procs
from e2e.binaries import Binaries, BinariesUnavailable, ensure_binaries
from e2e.realnode import node as realnode
from e2e.realnode.layout import NODE_NAME

IPFamily = Literal["ipv4", "ipv6"]

NEVER_READY_LABEL = "e2e.gitopsd.dev/never-ready"
STATE_FILE = "cluster.json"
# Marks a directory as a harness cluster's, so `down` never deletes anything else.
MARKER_FILE = ".gitopsd-cluster"

_FAMILY = {
    # host, service CIDR, first service IP (the "kubernetes" Service), kwok pod CIDR
    "ipv4": ("127.0.0.1", "10.96.0.0/16", "10.96.0.1", "10.244.0.1/16"),
    "ipv6": ("::1", "fd00:10:96::/112", "fd00:10:96::1", "fd00:10:244::1/112"),
}


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What a test needs to talk to a running cluster."""

    directory: Path
    ip_family: IPFamily
    host: str
    api_url: str
    kubeconfig: Path
    ca_cert: Path
    ca_key: Path
    admin_cert: Path
    admin_key: Path
    node_names: tuple[str, ...]


class LocalCluster:
    """Start and stop one local control plane in ``directory``."""

    def __init__(
        self,
        directory: Path,
        ip_family: IPFamily = "ipv4",
        *,
        nodes: int = 3,
        hpa_sync_period: str = "5s",
        hpa_downscale_stabilization: str = "30s",
        binaries: Binaries | None = None,
        tie_to_parent: bool = True,
        apiserver_args: Sequence[str] = (),
        real_node: bool = False,
    ) -> None:
        """``apiserver_args`` are extra kube-apiserver flags (feature gates, runtime config),
        appended after the harness's own. ``real_node`` adds a kubelet-run node (e2e.realnode)."""
        if ip_family not in _FAMILY:
            raise ValueError(f"ip_family must be 'ipv4' or 'ipv6', not {ip_family!r}")
        self.directory = directory
        self.ip_family: IPFamily = ip_family
        self.nodes = nodes
        self.hpa_sync_period = hpa_sync_period
        self.hpa_downscale_stabilization = hpa_downscale_stabilization
        self._binaries = binaries
        self._tie = tie_to_parent
        self.apiserver_args = tuple(apiserver_args)
        self._procs = procs.ProcessSet()
        self.real_node = realnode.RealNode(directory, ip_family, tie_to_parent=tie_to_parent) if real_node else None
        # What the API server was started with, so ``restart_apiserver`` can start it again.
        self._apiserver: tuple[list[str], str, ssl.SSLContext] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> ClusterInfo:
        """Bring every component up and return once a pod can become Ready on a kwok node.

        ``timeout`` bounds the whole start; on any failure every started process is stopped
        and the error carries the log tail of the component at fault.
        """
        started = time.monotonic()
        deadline = started + (timeout or (360.0 if self.real_node else 180.0))

        def left(cap: float) -> float:
            return max(1.0, min(cap, deadline - time.monotonic()))

        bins = self._binaries or ensure_binaries()
        host, service_cidr, service_ip, pod_cidr = _FAMILY[self.ip_family]
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / MARKER_FILE).touch()
        try:
            node_args = self.real_node.prepare() if self.real_node else []
            if self.real_node:
                service_cidr, service_ip = self.real_node.service_range
            tls = pki.generate(self.directory / "pki", service_ip)
            etcd_port, peer_port, api_port = (procs.free_port(host) for _ in range(3))
            lay = components.Layout(
                directory=self.directory,
                host=host,
                etcd_port=etcd_port,
                etcd_peer_port=peer_port,
                api_port=api_port,
                service_cidr=service_cidr,
                pod_cidr=pod_cidr,
                hpa_sync_period=self.hpa_sync_period,
                hpa_downscale_stabilization=self.hpa_downscale_stabilization,
            )
            bootstrap.write_kubeconfig(lay.kubeconfig, lay.api_url, tls)

            etcd = self._launch("etcd", components.etcd(bins, lay))
            procs.wait_until(
                "etcd health", lambda: procs.http_ok(f"{lay.etcd_url}/health"), timeout=left(30), watch=[etcd]
            )
            apiserver_argv = components.kube_apiserver(bins, lay, tls, [*node_args, *self.apiserver_args])
            apiserver = self._launch("kube-apiserver", apiserver_argv)
            ctx = bootstrap.admin_ssl(tls)
            self._apiserver = (apiserver_argv, lay.api_url, ctx)
            procs.wait_until(
                "kube-apiserver /readyz",
                lambda: procs.http_ok(f"{lay.api_url}/readyz", ctx),
                timeout=left(90),
                watch=[etcd, apiserver],
            )
            self._launch("kube-controller-manager", components.kube_controller_manager(bins, lay, tls))
            self._launch("kube-scheduler", components.kube_scheduler(bins, lay))
            self._launch("kwok", components.kwok(bins, lay))
            everything = list(self._procs.procs)

            api = bootstrap.Api(lay.api_url, ctx)
            node_names = tuple(f"kwok-node-{i}" for i in range(self.nodes))
            for name in node_names:
                api.post("/api/v1/nodes", bootstrap.node(name, host))
            procs.wait_until(
                "kwok nodes Ready", lambda: bootstrap.nodes_ready(api, node_names), timeout=left(60), watch=everything
            )
            procs.wait_until(
                "kube-controller-manager (default ServiceAccount)",
                lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
                timeout=left(60),
                watch=everything,
            )
            bootstrap.probe_pod(api, everything, timeout=left(60))
            if self.real_node:
                self.real_node.start(api_port, tls, api, timeout=left(240))
                node_names += (NODE_NAME,)

            info = ClusterInfo(
                directory=self.directory,
                ip_family=self.ip_family,
                host=host,
                api_url=lay.api_url,
                kubeconfig=lay.kubeconfig,
                ca_cert=tls.ca_cert,
                ca_key=tls.ca_key,
                admin_cert=tls.admin_cert,
                admin_key=tls.admin_key,
                node_names=node_names,
            )
            self._write_state(ready_after=time.monotonic() - started)
            return info
        except BaseException:
            self.stop(remove=False)
            raise

    def _launch(self, name: str, argv: list[str]) -> procs.Process:
        proc = self._procs.add(procs.start(name, argv, self.directory / "logs", tie_to_parent=self._tie))
        self._write_state()  # so `down` can find it even if this start never finishes
        return proc

    def restart_apiserver(self, *, down: float = 0.0, kill: bool = False, timeout: float = 90.0) -> None:
        """Stop kube-apiserver (SIGTERM, or SIGKILL when ``kill``), leave it down ``down`` seconds,
        and start it again with the same flags: same port, same etcd, so every object and
        resourceVersion survives, as when a control-plane node reboots. Returns once ``/readyz``
        answers 200. Only for a cluster this object started."""
        if self._apiserver is None:
            raise RuntimeError("restart_apiserver: this cluster was not started by this LocalCluster")
        argv, api_url, ctx = self._apiserver
        [index] = [i for i, p in enumerate(self._procs.procs) if p.name == "kube-apiserver"]
        old = self._procs.procs[index]
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old.pid, signal.SIGKILL)
        procs.kill_group(old.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            old.popen.wait(timeout=5)
        time.sleep(down)
        new = procs.start("kube-apiserver", argv, self.directory / "logs", tie_to_parent=self._tie)
        self._procs.procs[index] = new
        self._write_state()
        procs.wait_until(
            "kube-apiserver /readyz after a restart",
            lambda: procs.http_ok(f"{api_url}/readyz", ctx),
            timeout=timeout,
            watch=[new],
        )

    def stop(self, *, remove: bool = False) -> None:
        """Stop every component (newest first); optionally delete the cluster directory."""
        if self.real_node:
            self.real_node.stop()
        self._procs.stop()
        state = self.directory / STATE_FILE
        if state.exists():
            state.unlink()
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ClusterInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(remove=True)

    @property
    def processes(self) -> dict[str, int]:
        """Name → pid of every running component, in start order."""
        return {p.name: p.pid for p in self._procs.procs}

    def _write_state(self, ready_after: float | None = None) -> None:
        state: dict[str, Any] = {
            "ip_family": self.ip_family,
            "processes": self.processes,
            "real_node": self.real_node is not None,
        }
        if ready_after is not None:
            state["ready_after_seconds"] = round(ready_after, 1)
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))


def stop_directory(directory: Path, *, remove: bool = True) -> list[str]:
    """Stop a cluster started by another process (``up``), from its state file.

    Raises ``ValueError`` for a directory that no cluster was ever started in.
    """
    if not (directory / MARKER_FILE).exists():
        raise ValueError(f"{directory} is not a cluster directory (no {MARKER_FILE}); nothing was stopped or removed")
    state_path = directory / STATE_FILE
    stopped: list[str] = []
    if state_path.exists():
        state = json.loads(state_path.read_text())
        for name, pid in reversed(list(state.get("processes", {}).items())):
            procs.kill_group(int(pid))
            stopped.append(name)
        state_path.unlink()
    node_left = realnode.stop_directory(directory)
    if node_left is not None:
        stopped.append(NODE_NAME + (f" (left behind: {'; '.join(node_left)})" if node_left else ""))
    if remove:
        shutil.rmtree(directory, ignore_errors=True)
    return stopped


def new_cluster_dir(name: str = "e2e") -> Path:
    """A fresh private directory for a cluster (removed again by ``stop(remove=True)``)."""
    return procs.private_dir(name)


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a cluster and leave it running")
    up.add_argument("--ip-family", choices=("ipv4", "ipv6"), default="ipv4")
    up.add_argument("--dir", required=True, type=Path, help="directory for PKI, data, logs and the kubeconfig")
    up.add_argument("--nodes", type=int, default=3, help="number of kwok nodes (default 3)")
    up.add_argument("--real-node", action="store_true", help="add a node run by kubelet and containerd")
    load = sub.add_parser("load-image", help="import an OCI image archive into the real node's containerd")
    load.add_argument("--dir", required=True, type=Path)
    load.add_argument("archive", type=Path, help="an OCI archive (oci-layout + index.json)")
    down = sub.add_parser("down", help="stop a cluster started with 'up' and delete its directory")
    down.add_argument("--dir", required=True, type=Path)
    down.add_argument("--keep", action="store_true", help="keep the directory (logs, data)")
    args = parser.parse_args(argv)

    directory: Path = args.dir.resolve()
    if args.cmd == "up":
        if (directory / STATE_FILE).exists():
            print(
                f"error: a cluster is already running in {directory} "
                f"(run: python -m e2e.cluster down --dir {directory})",
                file=sys.stderr,
            )
            return 1
        if directory.exists() and any(directory.iterdir()):
            print(f"error: {directory} is not empty; give a new or empty directory", file=sys.stderr)
            return 1
        cluster = LocalCluster(
            directory, args.ip_family, nodes=args.nodes, tie_to_parent=False, real_node=args.real_node
        )
        try:
            info = cluster.start()
        except BinariesUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except procs.StartupError as exc:
            print(f"error: the cluster did not start: {exc}", file=sys.stderr)
            print(f"component logs are in {directory / 'logs'}", file=sys.stderr)
            return 1
        print(f"cluster ready ({info.ip_family}) at {info.api_url}, logs in {directory / 'logs'}")
        print(f"export KUBECONFIG={info.kubeconfig}")
        return 0

    if not directory.exists():
        print(f"error: {directory} does not exist", file=sys.stderr)
        return 1
    if args.cmd == "load-image":
        try:
            names = realnode.load_image_into(directory, args.archive)
        except (oci.OCIArchiveError, realnode.ImageLoadError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"loaded {', '.join(names) or '(unnamed image)'} into the real node of {directory}")
        return 0
    try:
        stopped = stop_directory(directory, remove=not args.keep)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"stopped {', '.join(stopped) if stopped else 'nothing (no running cluster found)'}"
        + ("" if args.keep else f"; removed {directory}")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
