"""What a synced, idle gitopsd costs: API requests and ``git ls-remote`` per minute, and its memory.

On one fresh local cluster whose kube-apiserver writes an audit log (``bench.audit``), with a
repository of N apps (4 objects each) served over https (``bench.fleet``): N Environments are
synced by a real ``gitopsd run`` (its requests counted per Environment: ``first_sync``), then
left alone for M minutes. Reported per minute:

- API requests whose user agent is gitopsd's, by verb and resource (from the audit log: the
  server's own record; watches opened are counted apart from other requests);
- answered ref advertisements per repository (nginx's access log): one per ``git ls-remote``,
  and one per ``git fetch`` (fetches are counted from the daemon's metric; an idle repository
  has none);
- the daemon's VmRSS (after the sync, then each minute).

With ``--soak-minutes S``: S more minutes with churn (``bench.soak``) and RSS per minute, with
its slope. The load average is recorded: compare figures from quiet runs.

    .venv/bin/python -m bench.idle_requests [--environments 1000] [--idle-minutes 5] [--interval 1m]
        [--soak-minutes 30] [--workers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import audit
from bench.apply_throughput import settle
from bench.cluster import emit, on_cluster
from bench.fleet import (
    Fleet,
    bench_kube,
    create_fleet,
    daemon_pid,
    https_repo,
    info_refs_per_minute,
    rss_mib,
    start_daemon,
    wait_all_ready,
)
from bench.soak import soak
from e2e.gitserver import GitHttpsServer, start_git_https

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"
GITOPSD_AGENT = "gitopsd/"
RESULTS = ("applied", "unchanged", "failed", "suspended", "preempted")


def install_crd(kubeconfig: Path) -> None:
    argv = ["kubectl", f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", str(CRD)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl apply of {CRD}: {out.stderr}")


def summary(
    minutes: list[dict[str, Any]], refs: list[dict[str, int]], environments: int, interval_s: float
) -> dict[str, Any]:
    count = max(1, len(minutes))
    totals: dict[str, int] = {}
    for minute in minutes:
        for key, n in minute["by_verb_and_resource"].items():
            totals[key] = totals.get(key, 0) + n
    requests = sum(m["requests"] for m in minutes) / count
    return {
        "requests_per_minute": round(requests, 1),
        "requests_per_minute_by_verb_and_resource": {k: round(n / count, 1) for k, n in sorted(totals.items())},
        "requests_per_environment_per_interval": round(requests * interval_s / 60 / max(1, environments), 2),
        "watches_opened_per_minute": round(sum(m["watches_opened"] for m in minutes) / count, 1),
        "ref_advertisements_per_repository_per_minute": round(
            sum(sum(r.values()) for r in refs) / count / max(1, len({k for r in refs for k in r})), 1
        ),
    }


def first_sync(by_verb: dict[str, int], environments: int) -> dict[str, Any]:
    """The requests of the first sync (daemon start to every Environment Ready), per Environment."""
    total = sum(by_verb.values())
    return {
        "requests": total,
        "requests_per_environment": round(total / max(1, environments), 2),
        "per_environment_by_verb_and_resource": {k: round(n / max(1, environments), 2) for k, n in by_verb.items()},
    }


def reconciles(daemon_metric: Any) -> dict[str, float]:
    return {result: daemon_metric("gitopsd_reconcile_total", result=result) for result in RESULTS}


async def measure(
    kubeconfig: Path, pids: dict[str, int], audit_dir: Path, server: GitHttpsServer, args: Any
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        workdir = Path(tmp)
        install_crd(kubeconfig)
        _, url = https_repo(server, args.environments + args.churn_environments)
        run_id = url.rsplit("/", 1)[1].removesuffix(".git")
        fleet = Fleet(f"{run_id}-ops", f"{run_id}-target", url, args.interval, git_auth="git")
        async with bench_kube(kubeconfig) as kube:
            await create_fleet(kube, fleet, args.environments, server.secret_data())
            sync_started = time.time()
            daemon = start_daemon(kubeconfig, workdir, fleet, args.workers)
            try:
                report["all_ready_seconds"] = await wait_all_ready(kube, fleet, daemon, args.ready_timeout)
                sync_ended = time.time()
                pid = daemon_pid(daemon)
                report["after_sync"] = rss_mib(pid)
                report["settle_seconds"] = settle(pids)
                report["after_settle"] = rss_mib(pid)
                before = reconciles(daemon.metric)
                fetches = daemon.metric("gitopsd_git_fetch_duration_seconds_count")
                report["load_average_idle_start"] = os.getloadavg()[0]
                start = time.time()
                rss: list[dict[str, Any]] = []
                for minute in range(1, args.idle_minutes + 1):
                    await asyncio.sleep(max(0.0, start + 60 * minute - time.time()))
                    rss.append({"minute": minute, **rss_mib(pid)})
                after = reconciles(daemon.metric)
                report["reconciles_during_idle"] = {k: after[k] - before[k] for k in RESULTS}
                report["git_fetches_during_idle"] = daemon.metric("gitopsd_git_fetch_duration_seconds_count") - fetches
                report["load_average_idle_end"] = os.getloadavg()[0]
                await asyncio.sleep(2)  # the audit backend writes as requests complete; leave it a moment
                requests = list(audit.read(audit.log_path(audit_dir)))
                minutes = audit.per_minute(requests, GITOPSD_AGENT, start, args.idle_minutes)
                report["first_sync"] = first_sync(
                    audit.between(requests, GITOPSD_AGENT, sync_started, sync_ended), args.environments
                )
                report["watches_open_at_idle_end"] = audit.open_watches(
                    requests, GITOPSD_AGENT, start + 60 * args.idle_minutes
                )
                refs = info_refs_per_minute(server.access_log, start, args.idle_minutes)
                for entry, advertised, memory in zip(minutes, refs, rss, strict=True):
                    entry["ref_advertisements_by_repository"] = advertised
                    entry.update(memory)
                report["idle"] = {
                    "per_minute": minutes,
                    **summary(minutes, refs, args.environments, fleet_interval(args)),
                }
                if args.soak_minutes > 0:
                    report["soak"] = await soak(
                        kube,
                        fleet,
                        daemon,
                        minutes=args.soak_minutes,
                        first_app=args.environments,
                        per_minute=args.churn_environments,
                        edits=args.churn_edits,
                    )
            finally:
                code = daemon.stop()
            if code != 0:
                raise RuntimeError(f"the daemon did not exit 0 at SIGTERM (exit {code}); see {daemon.log}")
    return report


def fleet_interval(args: Any) -> float:
    """``--interval`` in seconds: a whole number of s, m or h (the forms a bench needs)."""
    match = re.fullmatch(r"(\d+)([smh])", args.interval)
    if match is None or int(match[1]) < 1:
        raise SystemExit(f"--interval: expected a duration such as 30s, 10m or 1h, not {args.interval!r}")
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


def run(kubeconfig: Path, pids: dict[str, int], audit_dir: Path, args: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "idle_requests",
        "environments": args.environments,
        "objects": args.environments * 4,
        "interval": args.interval,
        "idle_minutes": args.idle_minutes,
        "workers": args.workers,
        "requests_counted": f"kube-apiserver audit log, user agent {GITOPSD_AGENT}*",
        "load_average_at_start": os.getloadavg()[0],
    }
    server = start_git_https()
    try:
        report.update(asyncio.run(measure(kubeconfig, pids, audit_dir, server, args)))
    finally:
        server.stop()
    report["load_average_at_end"] = os.getloadavg()[0]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", type=int, default=1000, help="Environments of 4 objects each")
    parser.add_argument("--idle-minutes", type=int, default=5)
    parser.add_argument("--interval", default="1m", help="spec.interval of every Environment")
    parser.add_argument(
        "--soak-minutes", type=int, default=0, help="minutes of churn after the idle window (30 for the goal)"
    )
    parser.add_argument(
        "--churn-environments", type=int, default=10, help="Environments added and deleted per soak minute"
    )
    parser.add_argument("--churn-edits", type=int, default=20, help="managed ConfigMaps edited by hand per soak minute")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--ready-timeout", type=float, default=1200.0, help="seconds for the first sync")
    args = parser.parse_args()
    for name in ("environments", "idle_minutes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    fleet_interval(args)  # a bad --interval fails here, not after the sync
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as audit_tmp:
        audit_dir = Path(audit_tmp)
        return emit(
            on_cluster(
                "bench-idle",
                None,
                lambda kubeconfig, pids: run(kubeconfig, pids, audit_dir, args),
                apiserver_args=audit.apiserver_args(audit_dir),
            )
        )


if __name__ == "__main__":
    sys.exit(main())
