"""How long the local control plane takes to become ready, and how much memory it holds.

Starts an IPv4 and an IPv6 cluster one after the other (binaries already built), takes
time-to-ready and the resident memory of each component once ready, and prints JSON. The
IPv4 start is the baseline: the IPv6 figure is also given as a ratio against it, measured
in the same run on the same machine.

    .venv/bin/python -m bench.cluster_start [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from e2e.binaries import ensure_binaries
from e2e.cluster import LocalCluster, new_cluster_dir


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants, in KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return total


def _one(family: str) -> dict[str, object]:
    cluster = LocalCluster(new_cluster_dir(f"bench-{family}"), family)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        cluster.start()
        ready = time.monotonic() - started
        rss = {name: _rss_kib(pid) // 1024 for name, pid in cluster.processes.items()}
    finally:
        cluster.stop(remove=True)
    return {"ready_seconds": round(ready, 2), "rss_mib": rss, "rss_mib_total": sum(rss.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ensure_binaries()
    runs: dict[str, list[dict[str, object]]] = {"ipv4": [], "ipv6": []}
    for _ in range(args.rounds):
        for family in runs:
            runs[family].append(_one(family))
    median = {f: statistics.median(float(r["ready_seconds"]) for r in rs) for f, rs in runs.items()}  # type: ignore[arg-type]
    report = {
        "benchmark": "cluster_start",
        "rounds": args.rounds,
        "runs": runs,
        "median_ready_seconds": median,
        "ratio_ipv6_to_ipv4_ready": round(median["ipv6"] / median["ipv4"], 2),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
