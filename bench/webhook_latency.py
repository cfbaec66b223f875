"""Push to deploy: webhook → all objects applied, against the poll path, in one run.

On one local cluster, one ``gitopsd run`` (a real subprocess) reconciles two Environments of 20
ConfigMaps each from one repository: ``hooked`` (branch ``hook``, interval 1h, deployed by a
signed generic webhook per push) and ``polled`` (branch ``poll``, interval 5s, no webhook).
Every ConfigMap carries the commit (``${GITOPSD_REVISION}``), so the moment the last of the 20
holds the new commit is seen on a watch of the API server: that is "all objects applied".

- webhook latency: from sending the hook (the commit is already pushed) to all 20 applied;
  ``--pushes`` times (default 50), one push at a time (the next once the Environment's status
  has recorded the previous one, so reconciles do not queue behind each other);
- poll latency: from ``git push`` returning to all 20 applied, ``--poll-pushes`` times
  (default 12), each pushed at a random point of the 5s cycle.

Prints JSON: p50 / p99 / mean / max of each, the ratio of the poll p50 to the webhook p50, and
the issue's goals (webhook p50 < 1 s, p99 < 3 s).

    .venv/bin/python -m bench.webhook_latency [--pushes 50] [--poll-pushes 20] [--cluster-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.cluster import emit, on_cluster
from e2e import procs
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.kube import Kube, Resource
from gitopsd.webhooks.signatures import sign

ROOT = Path(__file__).resolve().parents[1]
OBJECTS = 20
SECRET = b"bench-webhook-secret"
CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)
ENVIRONMENTS = Resource("gitopsd.dev", "v1alpha1", "Environment", "environments", namespaced=True)


def manifests(round_: int) -> dict[str, str]:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:02d}}}\ndata:\n  revision: ${{GITOPSD_REVISION}}\n"
    files = {f"deploy/cm-{i:02d}.yaml": doc.format(i=i) for i in range(OBJECTS)}
    files["deploy/round.txt"] = str(round_)  # not a manifest; makes every commit differ
    return files


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


class Applied:
    """Watches a namespace's ConfigMaps; tells when all of them hold a given commit."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.revisions: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.kube.list(CONFIGMAPS.path(self.namespace), label_selector="gitopsd.dev/environment")
        for item in listed.items:
            self._note(item)
        self.task = asyncio.create_task(self._watch(listed.resource_version))

    async def _watch(self, rv: str) -> None:
        while True:
            async for event in self.kube.watch(
                CONFIGMAPS.path(self.namespace), resource_version=rv, label_selector="gitopsd.dev/environment"
            ):
                rv = str(event.object.get("metadata", {}).get("resourceVersion") or rv)
                if event.type in ("ADDED", "MODIFIED"):
                    self._note(event.object)

    def _note(self, obj: dict[str, Any]) -> None:
        self.revisions[obj["metadata"]["name"]] = (obj.get("data") or {}).get("revision", "")
        self.changed.set()

    async def wait_all(self, commit: str, timeout: float = 60.0) -> float:
        """Monotonic time at which all OBJECTS ConfigMaps held ``commit``."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.revisions) == OBJECTS and all(v.endswith(commit) for v in self.revisions.values()):
                return time.monotonic()
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.namespace}: not all applied at {commit[:8]} within {timeout:.0f}s")
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=left)
            except TimeoutError:
                continue


async def applied_revision(kube: Kube, namespace: str, name: str) -> str:
    env = await kube.get(ENVIRONMENTS.path(namespace, name))
    return str((env.get("status") or {}).get("lastAppliedRevision") or "")


async def settle(kube: Kube, namespace: str, name: str, commit: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (await applied_revision(kube, namespace, name)).endswith(commit):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not record {commit[:8]}")
        await asyncio.sleep(0.05)


def summary(samples: list[float]) -> dict[str, Any]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "samples": len(samples),
        "p50_s": round(statistics.median(samples), 3),
        "p99_s": round(cuts[98], 3),
        "mean_s": round(statistics.fmean(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
    }


async def measure(kubeconfig: Path, work: Path, pushes: int, poll_pushes: int) -> dict[str, Any]:
    ops, hooked_ns, polled_ns = "bench-hooks", "bench-hooked", "bench-polled"
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "manifests/gitopsd/crd.yaml"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=60s")
    for ns in (ops, hooked_ns, polled_ns):
        kubectl(kubeconfig, "create", "namespace", ns)
    kubectl(kubeconfig, "-n", ops, "create", "secret", "generic", "hooks", f"--from-literal=generic={SECRET.decode()}")
    repo = WorkRepo.create(work / "shop.git", work / "work")
    repo.commit(manifests(0))
    repo.branch("hook")
    repo.switch("main")
    repo.branch("poll")
    config = work / "config.yaml"
    hooks = {"generic": {"secretRef": {"name": "hooks", "key": "generic"}}}
    daemon_config = {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig", "secretNamespace": ops}
    config.write_text(json.dumps({**daemon_config, "webhooks": hooks}))
    port = procs.free_port("127.0.0.1")
    daemon = DaemonProcess(kubeconfig, work / "daemon", f"--namespace={ops}", f"--config={config}",
                           f"--webhook-bind-address=127.0.0.1:{port}", name="gitopsd-bench")  # fmt: skip
    daemon.start()
    try:
        envs = [
            {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment",
             "metadata": {"name": name, "namespace": ops},
             "spec": {"source": {"url": repo.file_url, "branch": branch, "path": "deploy"}, "targetNamespace": ns,
                      "interval": interval, "wait": {"timeout": "30s"}, "substitute": {}}}
            for name, branch, ns, interval in (("hooked", "hook", hooked_ns, "1h"), ("polled", "poll", polled_ns, "5s"))
        ]  # fmt: skip
        kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                                  "items": envs}))  # fmt: skip
        async with Kube.from_kubeconfig(kubeconfig) as kube, aiohttp.ClientSession() as session:
            hooked, polled = Applied(kube, hooked_ns), Applied(kube, polled_ns)
            await hooked.start()
            await polled.start()
            repo.switch("hook")
            await settle(kube, ops, "hooked", repo.head())
            repo.switch("poll")
            await settle(kube, ops, "polled", repo.head())

            webhook: list[float] = []
            answers: list[float] = []
            repo.switch("hook")
            for round_ in range(1, pushes + 1):
                commit = repo.commit(manifests(round_))
                body = json.dumps({"repository": repo.file_url, "ref": "refs/heads/hook", "after": commit}).encode()
                started = time.monotonic()
                async with session.post(f"http://127.0.0.1:{port}/hooks/generic", data=body,
                                        headers={"X-Signature": sign(SECRET, body)}) as resp:  # fmt: skip
                    assert resp.status == 202, await resp.text()
                answers.append(time.monotonic() - started)
                webhook.append(await hooked.wait_all(commit) - started)
                await settle(kube, ops, "hooked", commit)

            poll: list[float] = []
            repo.switch("poll")
            for round_ in range(1, poll_pushes + 1):
                # Push at a random point of the 5s cycle, as people do (right after a reconcile is the worst case).
                await asyncio.sleep(random.uniform(0, 5))  # noqa: S311
                commit = repo.commit(manifests(round_))
                pushed = time.monotonic()
                poll.append(await polled.wait_all(commit, timeout=30) - pushed)
                await settle(kube, ops, "polled", commit)
            for watcher in (hooked, polled):
                assert watcher.task is not None
                watcher.task.cancel()
        reconcile_sum = daemon.metric("gitopsd_reconcile_duration_seconds_sum", environment=f"{ops}.hooked")
        reconcile_count = daemon.metric("gitopsd_reconcile_duration_seconds_count", environment=f"{ops}.hooked")
    finally:
        code = daemon.stop()
    hook_figures = summary(webhook)
    poll_figures = summary(poll)
    return {
        "objects_per_environment": OBJECTS,
        "webhook": {**hook_figures, "hook_response_ms_p50": round(statistics.median(answers) * 1000, 1),
                    "reconcile_mean_s": round(reconcile_sum / max(reconcile_count, 1), 3)},
        "poll": {**poll_figures, "interval_s": 5},
        "ratio_poll_p50_to_webhook_p50": round(poll_figures["p50_s"] / hook_figures["p50_s"], 1),
        "goal": {"webhook_p50_under_1s": hook_figures["p50_s"] < 1.0,
                 "webhook_p99_under_3s": hook_figures["p99_s"] < 3.0},
        "daemon_exit_code": code,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--poll-pushes", type=int, default=12)
    parser.add_argument("--cluster-dir", type=Path, help="use this running harness cluster instead of a fresh one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitopsd-bench-hooks-") as tmp:
        report = on_cluster(
            "bench-hooks",
            args.cluster_dir,
            lambda kubeconfig, _pids: asyncio.run(measure(kubeconfig, Path(tmp), args.pushes, args.poll_pushes)),
        )
    return emit(report)


if __name__ == "__main__":
    sys.exit(main())
