"""How fast a rollback restores a 50-object Environment with Git gone, against a sync from Git.

On one fresh local cluster, an in-process ``Reconciler`` (the daemon's engine, without the
scheduler) deploys an Environment of 50 objects (10 Deployments of 1 replica, 10 Services, 10
ServiceAccounts, 20 ConfigMaps) from a Git repository, in rounds that each move the cluster
from content B back to content A:

- **sync from Git** (the baseline): a new commit whose manifests are A again: resolve, fetch,
  render, record, dry-run, apply, prune, health;
- **rollback** with the repository moved away (unreachable): a rollback request to the release
  holding A: read the record, verify it, record the restore, dry-run, apply, prune, health.

For each: seconds until every object is applied (the health gate then starts) and until
healthy, reported separately; medians over ``--rounds``; and the ratio rollback / sync. Then
the cost the records add to each sync: bytes stored per record, the extra requests a new
release makes (by kind), time spent writing the record, and the requests of a no-op reconcile.

    .venv/bin/python -m bench.rollback [--rounds 3] [--cluster-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import emit, on_cluster
from e2e.gitrepo import WorkRepo
from gitopsd import environments
from gitopsd import log as logging_setup
from gitopsd.events import EventRecorder
from gitopsd.kube import Kube
from gitopsd.metrics import Metrics
from gitopsd.outcome import Outcome
from gitopsd.reconcile import Reconciler
from gitopsd.releases import Owner, ReleaseStore, record
from gitopsd.releases import requests as asks
from gitopsd.sources import GitSources
from gitopsd.spec import parse_environment
from gitopsd.tenancy import Tenancy

#: The repositories here are read over file://.
FILE_SOURCES = Tenancy(allow_file_sources=True)

ROOT = Path(__file__).resolve().parents[1]


def manifests(version: str) -> str:
    """50 objects; every one differs between versions."""
    docs: list[dict[str, Any]] = []
    for i in range(10):
        name = f"app-{i}"
        labels = {"app": name}
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels, "annotations": {"version": version}},
                        "spec": {"containers": [{"name": "app", "image": f"registry.invalid/{name}:{version}"}]},
                    },
                },
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "annotations": {"v": version}},
                "spec": {"selector": labels, "ports": [{"port": 80}]},
            }
        )
        docs.append(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "annotations": {"v": version}}}
        )
    for i in range(20):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"config-{i}"},
                "data": {"version": version, "payload": f"{version}-{i}" * 20},
            }
        )
    return yaml.safe_dump_all(docs)


class Clock:
    """Seconds from a reconcile's start to 'all applied' (the health wait's start) and to its end."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.applied: float | None = None

    def progress(self, message: str) -> None:
        if message.startswith("waiting up to") and self.applied is None:
            self.applied = time.monotonic() - self.started


async def reconcile(rec: Reconciler, kube: Kube, ns: str, **kwargs: Any) -> tuple[Outcome, dict[str, float]]:
    env = parse_environment(await environments.get(kube, ns, "bench"))
    clock = Clock()
    outcome = await rec.reconcile(env, on_progress=clock.progress, **kwargs)
    total = time.monotonic() - clock.started
    if outcome.result == "failed":
        raise RuntimeError(f"reconcile failed: {outcome.error or outcome.message}")
    return outcome, {"applied_s": round(clock.applied or total, 3), "healthy_s": round(total, 3)}


def _secrets(kube: Kube, before: Counter[tuple[str, str]]) -> dict[str, int]:
    calls = Counter(kube.stats.calls)
    calls.subtract(before)
    return {f"{verb} {res}": n for (verb, res), n in sorted(calls.items()) if n > 0}


async def run(kubeconfig: Path, rounds: int) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "rollback", "objects": 50, "rounds": rounds}
    crd = subprocess.run(
        [
            "kubectl",
            f"--kubeconfig={kubeconfig}",
            "apply",
            "--server-side",
            "-f",
            str(ROOT / "manifests/gitopsd/crd.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    if crd.returncode:
        raise RuntimeError(crd.stderr)
    subprocess.run(
        [
            "kubectl",
            f"--kubeconfig={kubeconfig}",
            "wait",
            "--for=condition=Established",
            "crd/environments.gitopsd.dev",
        ],
        check=True,
        capture_output=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        repo = WorkRepo.create(Path(tmp) / "remote" / "shop.git", Path(tmp) / "work")
        async with Kube.from_kubeconfig(kubeconfig) as kube:
            ns = f"bench-rb-{int(time.time()) % 100000}"
            for name in (ns, f"{ns}-app"):
                await kube.create(
                    "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                )
            repo.commit({"deploy/all.yaml": manifests("a")})
            await kube.create(
                environments.RESOURCE.path(ns),
                {
                    "apiVersion": "gitopsd.dev/v1alpha1",
                    "kind": "Environment",
                    "metadata": {"name": "bench", "namespace": ns},
                    "spec": {
                        "source": {"url": repo.file_url, "branch": "main", "path": "deploy"},
                        "targetNamespace": f"{ns}-app",
                        "interval": "1h",
                        "wait": {"timeout": "120s"},
                        "historyLimit": 50,
                    },
                },
            )
            sources = GitSources(Path(tmp) / "cache")
            rec = Reconciler(kube, sources, EventRecorder(kube), Metrics(), ls_remote_max_age=0.0, tenancy=FILE_SOURCES)
            try:
                first, _ = await reconcile(rec, kube, ns)
                release_a = first.release
                syncs: list[dict[str, float]] = []
                rollbacks: list[dict[str, float]] = []
                overhead: list[dict[str, Any]] = []
                for _ in range(rounds):
                    repo.commit({"deploy/all.yaml": manifests("b")})
                    await reconcile(rec, kube, ns, fresh=True)
                    # Baseline: back to A through Git (a revert commit).
                    before = Counter(kube.stats.calls)
                    repo.commit({"deploy/all.yaml": manifests("a")})
                    outcome, times = await reconcile(rec, kube, ns, fresh=True)
                    ledger = await rec.ledgers.of(_owner(await environments.get(kube, ns, "bench")))
                    written = ledger.last_write
                    assert written is not None and written.info.number == outcome.release
                    overhead.append({"requests": _secrets(kube, before), "bytes": written.bytes})
                    syncs.append(times)
                    # Forward to B again, then take Git away and roll back to A's release.
                    repo.commit({"deploy/all.yaml": manifests("b")})
                    await reconcile(rec, kube, ns, fresh=True)
                    away = repo.bare.with_name("gone.git")
                    repo.bare.rename(away)
                    try:
                        request = asks.Request(asks.new_token(), "bench", release_a, asks.now())
                        await environments.annotate(kube, ns, "bench", {asks.ROLLBACK: request.to_annotation()})
                        outcome, times = await reconcile(rec, kube, ns)
                        if outcome.verdict != "Healthy":
                            raise RuntimeError(f"rollback not healthy: {outcome.message}")
                        rollbacks.append(times)
                    finally:
                        away.rename(repo.bare)
                    # Resume: the held revision (B) is tried again next round.
                    await environments.annotate(
                        kube, ns, "bench", {asks.RESUME: asks.Request(asks.new_token()).to_annotation()}
                    )
                report["sync_from_git"] = _summary(syncs)
                report["rollback_git_unreachable"] = _summary(rollbacks)
                back, forth = report["rollback_git_unreachable"], report["sync_from_git"]
                report["ratio_rollback_to_sync"] = {
                    "applied": round(back["applied_s"] / forth["applied_s"], 3),
                    "healthy": round(back["healthy_s"] / forth["healthy_s"], 3),
                }
                report["goal_rollback_applied_under_2s"] = report["rollback_git_unreachable"]["applied_s"] < 2.0
                report["record_overhead_per_sync"] = await _overhead(kube, rec, ns, overhead)
            finally:
                await sources.close()
                await kube.delete(f"/api/v1/namespaces/{ns}")
                await kube.delete(f"/api/v1/namespaces/{ns}-app")
    return report


def _owner(raw: dict[str, Any]) -> Owner:
    meta = raw["metadata"]
    return Owner(meta["namespace"], meta["name"], meta["uid"])


def _summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    keys = samples[0].keys()
    return {**{k: round(statistics.median(s[k] for s in samples), 3) for k in keys}, "samples": samples}


async def _overhead(kube: Kube, rec: Reconciler, ns: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Bytes, requests and time the release records add."""
    raw = await environments.get(kube, ns, "bench")
    owner = _owner(raw)
    ledger = await rec.ledgers.of(owner)
    current = ledger.records[max(ledger.records)]
    bundle = await ledger.bundle(current.number)
    canonical = len(record.canonical(bundle))
    # Time to encode and write one record, measured on its own (a throwaway owner, then deleted).
    store = ReleaseStore(kube)
    scratch = Owner(ns, "bench", owner.uid)
    timings = []
    for n in range(5):
        info = record.ReleaseInfo(9000 + n, current.revision, current.digest, asks.now(), record.Result.PENDING)
        mark = time.monotonic()
        written = await store.write(scratch, info, bundle)
        timings.append(time.monotonic() - mark)
        await store.delete(scratch, written.info)
    encode = []
    for _ in range(5):
        mark = time.process_time()
        record.encode(scratch, info, bundle)
        encode.append(time.process_time() - mark)
    # A no-op reconcile: what it costs with records in place (after the resumed revision is deployed).
    await reconcile(rec, kube, ns)
    env = parse_environment(await environments.get(kube, ns, "bench"))
    before = Counter(kube.stats.calls)
    await rec.reconcile(env)
    noop = _secrets(kube, before)
    secret_requests = [{k: v for k, v in s["requests"].items() if k.endswith("secrets")} for s in samples]
    return {
        "bundle_bytes_canonical_json": canonical,
        "bytes_stored_per_record": current.size,
        "compression_ratio": round(canonical / max(current.size, 1), 1),
        "secrets_per_record": current.parts,
        "extra_requests_per_new_release": secret_requests[-1],
        "all_requests_of_that_sync": samples[-1]["requests"],
        "record_write_seconds_median": round(statistics.median(timings), 4),
        "record_encode_cpu_seconds_median": round(statistics.median(encode), 4),
        "noop_reconcile_requests": noop,
        "noop_reconcile_secret_requests": sum(v for k, v in noop.items() if k.endswith("secrets")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cluster-dir", type=Path, help="use this running harness cluster instead of a fresh one")
    args = parser.parse_args()
    logging_setup.configure("warning")  # stdout is for the JSON report
    if shutil.which("kubectl") is None:
        raise SystemExit("kubectl is needed on PATH")
    return emit(
        on_cluster(
            "bench-rollback", args.cluster_dir, lambda kubeconfig, _pids: asyncio.run(run(kubeconfig, args.rounds))
        )
    )


if __name__ == "__main__":
    sys.exit(main())
