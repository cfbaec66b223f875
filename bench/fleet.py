"""Many synced Environments under a real ``gitopsd run``: the starting point of the steady-state benches.

One Git repository of N apps (4 objects each, the shape of ``bench.sync_environments``), one
Environment per app in one operations namespace, applied into one target namespace, and the
daemon started as a user would, until every Environment is Ready. The repository is served
over https by git's own http-backend behind nginx (``e2e.gitserver``) when the bench counts
``git ls-remote`` calls (nginx's access log is the record), else read from a file URL.

The benches' own Kubernetes client uses the user agent ``audit.BENCH_USER_AGENT``, so the
audit log never counts its requests as gitopsd's.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.audit import BENCH_USER_AGENT
from bench.sync_environments import app_files, count_ready, create, environment
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.gitserver import GitHttpsServer
from gitopsd.kube import Kube

MIB = 1024 * 1024


def bench_kube(kubeconfig: Path) -> Kube:
    return Kube.from_kubeconfig(kubeconfig, max_connections=32, user_agent=BENCH_USER_AGENT)


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def secret(name: str, ns: str, data: dict[str, bytes]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": encoded}


@dataclass(slots=True)
class Fleet:
    """The Environments of one bench run and where their objects go."""

    ops: str
    target: str
    url: str
    interval: str
    git_auth: str | None = None
    names: list[str] = field(default_factory=list)

    def manifest(self, name: str, app_index: int, target: str | None = None) -> dict[str, Any]:
        env = environment(name, self.ops, self.url, f"apps/app-{app_index:04d}", target or self.target)
        env["spec"]["interval"] = self.interval
        if self.git_auth:
            env["spec"]["source"]["secretRef"] = {"name": self.git_auth}
        return env


def https_repo(server: GitHttpsServer, apps: int) -> tuple[WorkRepo, str]:
    """A repository of ``apps`` apps served by ``server``; (work tree, its https URL)."""
    name = f"apps-{uuid.uuid4().hex[:6]}"
    repo = server.new_repo(name)
    repo.commit(app_files(apps), "apps")
    return repo, server.url(name)


async def create_fleet(kube: Kube, fleet: Fleet, apps: int, git_secret: dict[str, bytes] | None) -> None:
    """Namespaces, the Git credentials (if any) and one Environment per app, app i named app-NNNN."""
    await kube.discovery.refresh()
    await create(kube, [namespace(fleet.ops), namespace(fleet.target)])
    if git_secret is not None and fleet.git_auth:
        await create(kube, [secret(fleet.git_auth, fleet.ops, git_secret)])
    fleet.names = [f"app-{i:04d}" for i in range(apps)]
    await create(kube, [fleet.manifest(name, i) for i, name in enumerate(fleet.names)])


async def wait_all_ready(kube: Kube, fleet: Fleet, daemon: DaemonProcess, timeout: float) -> float:
    """Seconds until every Environment of ``fleet`` is Ready (raises naming the daemon's log after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await count_ready(kube, fleet.ops) >= len(fleet.names):
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(1.0)
    raise RuntimeError(f"not all {len(fleet.names)} Environments Ready after {timeout:.0f} s; see {daemon.log}")


def start_daemon(kubeconfig: Path, workdir: Path, fleet: Fleet, workers: int) -> DaemonProcess:
    daemon = DaemonProcess(kubeconfig, workdir / "daemon", f"--namespace={fleet.ops}", f"--workers={workers}")
    return daemon.start(timeout=120)


def rss_mib(pid: int) -> dict[str, float]:
    """The process' resident set now (VmRSS) and at its peak (VmHWM), in MiB."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = round(int(value.split()[0]) * 1024 / MIB, 1)
    return {"rss_mib": figures.get("VmRSS", 0.0), "peak_rss_mib": figures.get("VmHWM", 0.0)}


def daemon_pid(daemon: DaemonProcess) -> int:
    if daemon.proc is None:
        raise RuntimeError("the daemon is not running")
    return daemon.proc.pid


# nginx's "combined" format: ... [10/Oct/2000:13:55:36 +0000] "GET /x.git/info/refs?service=... HTTP/1.1" 200 ...
_ACCESS = re.compile(
    r'\[(?P<at>[^\]]+)\] "GET (?P<path>/[^ ?]+)/info/refs\?service=git-upload-pack [^"]*" (?P<code>\d+)'
)


def info_refs_per_minute(access_log: Path, start: float, minutes: int) -> list[dict[str, int]]:
    """Per whole minute from ``start``: answered ref advertisements (``GET .../info/refs``, 200) per
    repository. Every ``git ls-remote`` and every ``git fetch`` over https begins with one."""
    buckets: list[Counter[str]] = [Counter() for _ in range(minutes)]
    if access_log.exists():
        for line in access_log.read_text(errors="replace").splitlines():
            match = _ACCESS.search(line)
            if match is None or match["code"] != "200":
                continue  # 401s are git's first, anonymous try before it sends the credentials
            at = datetime.strptime(match["at"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            minute = int((at - start) // 60)
            if 0 <= minute < minutes:
                buckets[minute][match["path"].lstrip("/")] += 1
    return [dict(sorted(bucket.items())) for bucket in buckets]


__all__ = [
    "Fleet",
    "bench_kube",
    "create_fleet",
    "daemon_pid",
    "https_repo",
    "info_refs_per_minute",
    "rss_mib",
    "start_daemon",
    "wait_all_ready",
]
