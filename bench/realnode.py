"""What a real node costs: cluster start with it, and how fast its Pods become Ready.

Per IP family, starts a plain (kwok-only) cluster as the baseline and then one with a real node
(kubelet, containerd, kube-proxy; binaries and images already built), in the same run on the
same machine. On the real-node cluster it creates Pods one at a time, each pinned to the real
node and running the tests' HTTP server with a readiness probe (period 1 s), and measures from
the create request to the Ready condition seen by polling every 50 ms. Prints JSON.

    .venv/bin/python -m bench.realnode [--pods N] [--families ipv4,ipv6]
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import sys
import time
from typing import Any

from e2e import bootstrap
from e2e.binaries import ensure_binaries, ensure_node_binaries
from e2e.cluster import ClusterInfo, IPFamily, LocalCluster, new_cluster_dir
from e2e.realnode import images
from e2e.realnode.node import pod_manifest


def _start(family: IPFamily, real_node: bool) -> tuple[LocalCluster, ClusterInfo, float]:
    cluster = LocalCluster(new_cluster_dir(f"bench-rn-{family}"), family, real_node=real_node)
    started = time.monotonic()
    try:
        info = cluster.start()
    except BaseException:
        cluster.stop(remove=True)
        raise
    return cluster, info, time.monotonic() - started


def _ready(api: bootstrap.Api, path: str) -> bool:
    pod = api.get(path) or {}
    conds = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _pod_ready_seconds(info: ClusterInfo, pods: int) -> list[float]:
    ctx = ssl.create_default_context(cafile=str(info.ca_cert))
    ctx.load_cert_chain(str(info.admin_cert), str(info.admin_key))
    api = bootstrap.Api(info.api_url, ctx)
    base = "/api/v1/namespaces/default/pods"
    times = []
    for i in range(pods):
        name = f"bench-{i}"
        manifest = pod_manifest(name, images.HTTPD_IMAGE, readiness_path="/ready")
        started = time.monotonic()
        api.post(base, manifest)
        deadline = started + 120
        while not _ready(api, f"{base}/{name}"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {name} not Ready after 120 s")
            time.sleep(0.05)
        times.append(time.monotonic() - started)
        api.delete(f"{base}/{name}?gracePeriodSeconds=0")
    return times


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _family(family: IPFamily, pods: int) -> dict[str, Any]:
    plain, _, plain_s = _start(family, real_node=False)
    plain.stop(remove=True)
    cluster, info, real_s = _start(family, real_node=True)
    assert cluster.real_node is not None
    snapshotter = cluster.real_node.snapshotter
    try:
        cluster.real_node.load_image(images.httpd_archive())
        times = _pod_ready_seconds(info, pods)
    finally:
        cluster.stop(remove=True)
    return {
        "start_seconds_kwok_only": round(plain_s, 2),
        "start_seconds_with_real_node": round(real_s, 2),
        "ratio_real_node_to_kwok_only_start": round(real_s / plain_s, 2),
        "snapshotter": snapshotter,
        "pods": pods,
        "pod_ready_seconds_p50": round(statistics.median(times), 2),
        "pod_ready_seconds_p90": round(_quantile(times, 0.9), 2),
        "pod_ready_seconds_max": round(max(times), 2),
        "pod_ready_seconds": [round(t, 2) for t in times],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--families", default="ipv4,ipv6")
    args = parser.parse_args()
    ensure_binaries()
    ensure_node_binaries()
    images.httpd_archive()
    images.pause_archive()
    families: list[IPFamily] = [f for f in ("ipv4", "ipv6") if f in args.families.split(",")]
    report = {"benchmark": "realnode", "results": {f: _family(f, args.pods) for f in families}}
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
