"""What forwarding costs per request: a metric asked through a front adapter vs of its server directly.

Starts a harness cluster, Redis, a *provider* metrics-adapter serving
the Redis queue ``fed_jobs``, and a *front* metrics-adapter that serves its own queue
``own_jobs`` and forwards ``fed_jobs`` to the provider (``externalProviders``, bearer token).
Then, in the same run and interleaved round by round so both see the same machine load, it
times sequential GETs the way the aggregator sends them (front-proxy client certificate,
``X-Remote-User``), over one kept-alive connection per target:

- ``direct``: ``fed_jobs`` asked of the provider itself;
- ``forwarded``: ``fed_jobs`` asked of the front adapter, which forwards it;
- ``front_own``: ``own_jobs`` served by the front adapter itself (its cost without forwarding).

Prints JSON: p50 / p99 / mean in milliseconds, ``forwarded / direct`` ratios and the added
milliseconds per request.

    .venv/bin/python -m bench.federation [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import redis

from e2e import services
from e2e.adapter import RunningAdapter, start_adapter
from e2e.binaries import ensure_binaries
from e2e.cluster import ClusterInfo, LocalCluster, new_cluster_dir
from e2e.federation import forwarder_token, provider_entry

EXT = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default"
ARGS = ["--refresh-interval=1s", "--max-staleness=10s"]


def log(msg: str) -> None:
    print(f"[bench.federation] {msg}", file=sys.stderr, flush=True)


def _stats(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


async def _measure(targets: dict[str, tuple[RunningAdapter, str]], requests: int) -> dict[str, list[float]]:
    any_adapter = next(iter(targets.values()))[0]
    ctx = ssl.create_default_context(cafile=str(any_adapter.cluster.ca_cert))
    cert, key = any_adapter.front_proxy_cert()
    ctx.load_cert_chain(str(cert), str(key))
    headers = {"X-Remote-User": "kubernetes-admin", "X-Remote-Group": "system:masters"}
    sessions = {
        name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1), headers=headers)
        for name in targets
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    try:

        async def once(name: str) -> float:
            adapter, path = targets[name]
            started = time.perf_counter()
            async with sessions[name].get(f"https://localhost:{adapter.port}{path}") as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{name}: HTTP {resp.status}: {body[:300]!r}")
            return (time.perf_counter() - started) * 1000

        for _ in range(50):  # warm-up: connections, authorization caches, the forwarder's pool
            for name in targets:
                await once(name)
        for _ in range(requests):
            for name in targets:
                samples[name].append(await once(name))
    finally:
        for s in sessions.values():
            await s.close()
    return samples


def measure(info: ClusterInfo, requests: int) -> dict[str, Any]:
    with ExitStack() as stack:
        rds = services.start_redis()
        stack.callback(rds.stop)
        lists = {m: f"{m}-{uuid.uuid4().hex[:6]}" for m in ("fed_jobs", "own_jobs")}
        r = redis.Redis.from_url(rds.url)
        r.rpush(lists["fed_jobs"], *["x"] * 12)
        r.rpush(lists["own_jobs"], *["x"] * 5)
        tmp = Path(tempfile.mkdtemp(prefix="bench-federation-"))
        provider_cfg = f"queues:\n- {{name: fed_jobs, redis: {{url: '{rds.url}', list: '{lists['fed_jobs']}'}}}}\n"
        provider = start_adapter(info, tmp / "provider", provider_cfg, prometheus_url=None, extra_args=ARGS)
        stack.callback(provider.stop)
        token = forwarder_token(info, tmp)
        front_cfg = (
            f"queues:\n- {{name: own_jobs, redis: {{url: '{rds.url}', list: '{lists['own_jobs']}'}}}}\n"
            "externalProviders:\n" + provider_entry("provider", provider.port, info, token, ["fed_jobs"]) + "\n"
        )
        front = start_adapter(info, tmp / "front", front_cfg, prometheus_url=None, extra_args=ARGS)
        stack.callback(front.stop)
        targets = {
            "direct": (provider, f"{EXT}/fed_jobs"),
            "forwarded": (front, f"{EXT}/fed_jobs"),
            "front_own": (front, f"{EXT}/own_jobs"),
        }
        log(f"{requests} requests per target, interleaved")
        samples = asyncio.run(_measure(targets, requests))
    figures = {name: _stats(s) for name, s in samples.items()}
    direct, fwd = figures["direct"], figures["forwarded"]
    return {
        "requests_per_target": requests,
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "latency": figures,
        "forwarded_over_direct": {k: round(fwd[f"{k}_ms"] / direct[f"{k}_ms"], 2) for k in ("p50", "p99", "mean")},
        "added_ms": {k: round(fwd[f"{k}_ms"] - direct[f"{k}_ms"], 3) for k in ("p50", "p99", "mean")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per target (default 2000)")
    args = parser.parse_args()
    ensure_binaries()
    cluster = LocalCluster(new_cluster_dir("bench-federation"), "ipv4")
    try:
        report = measure(cluster.start(), args.requests)
    finally:
        cluster.stop(remove=True)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
