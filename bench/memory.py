"""Where a synced gitopsd's memory goes: RSS per Environment, and what holds it.

For each fleet size N (``--environments 20,200``): N Environments of 4 objects each
(``bench.fleet``: one https repository of apps, one operations namespace, one target namespace)
synced by a real ``gitopsd run`` on one fresh local cluster, then its VmRSS once the control
plane is quiet, and the growth per Environment between the smallest and the largest fleet.

With ``--trace FRAMES`` the daemon runs under ``tracemalloc`` (which costs memory of its own:
compare RSS only between runs of the same mode) and, on SIGUSR1, writes what it holds: the
traced heap by module and by line, and live objects by type. The daemon is still ``gitopsd
run``, started through this module's ``probe`` entry, which installs that handler first.

    .venv/bin/python -m bench.memory [--environments 20,200] [--trace 25] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import BuiltinFunctionType, CoroutineType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any

from bench.apply_throughput import settle
from bench.cluster import emit, on_cluster
from bench.fleet import Fleet, bench_kube, create_fleet, daemon_pid, https_repo, rss_mib, wait_all_ready
from bench.idle_requests import install_crd
from e2e import procs
from e2e.daemon import DaemonProcess
from e2e.gitserver import GitHttpsServer, start_git_https

ROOT = Path(__file__).resolve().parents[1]
DUMP_ENV = "GITOPSD_BENCH_MEMORY_DUMP"
TOP_ENV = "GITOPSD_BENCH_MEMORY_TOP"


# -- inside the daemon ------------------------------------------------------------------------


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return str(Path(filename).relative_to(ROOT)) if filename.startswith(str(ROOT)) else filename


def heap_report(top: int) -> dict[str, Any]:
    """The traced heap (if tracing) by module and line, and live GC-tracked objects by type."""
    gc.collect()
    report: dict[str, Any] = {}
    if tracemalloc.is_tracing():
        hidden = (tracemalloc.__file__, "<frozen importlib._bootstrap>")
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, f) for f in hidden])
        report["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 2)
        for key in ("filename", "lineno"):
            report[f"by_{key}"] = [
                {
                    "where": f"{_short(s.traceback[0].filename)}"
                    + (f":{s.traceback[0].lineno}" if key == "lineno" else ""),
                    "kib": round(s.size / 1024, 1),
                    "blocks": s.count,
                }
                for s in snapshot.statistics(key)[:top]
            ]
        # The deepest gitopsd frame of each trace: which of our lines caused the allocation,
        # even when a library (json, yaml, aiohttp) made it.
        ours: Counter[str] = Counter()
        for trace in snapshot.traces:
            frames = [f for f in trace.traceback if "/gitopsd/" in f.filename and "/site-packages/" not in f.filename]
            # A Traceback lists the oldest frame first: the last gitopsd frame is the nearest.
            where = f"{_short(frames[-1].filename)}:{frames[-1].lineno}" if frames else "(no gitopsd frame)"
            ours[where] += trace.size
        report["by_gitopsd_line"] = [
            {"where": where, "kib": round(size / 1024, 1)} for where, size in ours.most_common(top)
        ]
    objects = gc.get_objects()
    types = Counter(type(o).__qualname__ for o in objects)
    report["objects_by_type"] = dict(types.most_common(top))
    report["held_by_attribute"] = held_by_attribute(objects, top)
    return report


_OPAQUE = (type, ModuleType, FunctionType, MethodType, BuiltinFunctionType, CoroutineType)


def deep_size(root: object, seen: set[int], holders: frozenset[type] = frozenset()) -> int:
    """Bytes of ``root`` and everything it reaches through containers and object attributes,
    not counting objects in ``seen`` (which it extends: shared objects count once, for the first
    holder), nor instances of ``holders`` (each reported on its own)."""
    total, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE) or type(obj) in holders:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif not isinstance(obj, (str, bytes, int, float)):
            stack.extend(_attributes(obj).values())
    return total


def _attributes(obj: object) -> dict[str, object]:
    found: dict[str, object] = dict(getattr(obj, "__dict__", None) or {})
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in found and hasattr(obj, name):
                found[name] = getattr(obj, name)
    return found


def held_by_attribute(objects: list[object], top: int) -> list[dict[str, Any]]:
    """What the daemon's long-lived gitopsd objects (classes with at most 3 instances: the
    daemon, informer, reconciler, caches, memos) hold, per attribute: ``Class.attribute`` and the
    bytes it reaches, without what another such object holds (each object counted once)."""
    by_class: dict[type, list[object]] = {}
    for obj in objects:
        cls = type(obj)
        if str(getattr(cls, "__module__", "")).startswith("gitopsd.") and not isinstance(obj, _OPAQUE):
            by_class.setdefault(cls, []).append(obj)
    holders = frozenset(cls for cls, instances in by_class.items() if len(instances) <= 3)
    seen: set[int] = {id(objects)}
    sizes: Counter[str] = Counter()
    for cls in holders:
        for instance in by_class[cls]:
            for name, value in _attributes(instance).items():
                sizes[f"{cls.__module__}.{cls.__qualname__}.{name}"] += deep_size(value, seen, holders)
    return [{"where": where, "kib": round(size / 1024, 1)} for where, size in sizes.most_common(top)]


def _dump(_signum: int, _frame: FrameType | None) -> None:
    target = Path(os.environ[DUMP_ENV])
    report = heap_report(int(os.environ.get(TOP_ENV, "25")))
    target.write_text(json.dumps(report, indent=1))


def probe(argv: list[str]) -> int:
    """``gitopsd`` with ``argv``, answering SIGUSR1 with ``heap_report`` written to $GITOPSD_BENCH_MEMORY_DUMP."""
    from gitopsd.cli import main as gitopsd_main

    signal.signal(signal.SIGUSR1, _dump)
    return gitopsd_main(argv)


# -- the bench --------------------------------------------------------------------------------


class ProbedDaemon(DaemonProcess):
    """``gitopsd run`` started through ``probe`` (optionally under tracemalloc)."""

    def __init__(self, *args: Any, trace: int, dump: Path, top: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace, self.dump, self.top = trace, dump, top

    def start(self, timeout: float = 60.0) -> ProbedDaemon:
        argv = [
            sys.executable,
            *(["-X", f"tracemalloc={self.trace}"] if self.trace else []),
            "-m",
            "bench.memory",
            "probe",
            "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--probes-bind-address=127.0.0.1:{self.port}",
            f"--cache-dir={self.directory / 'cache'}",
            "--log-level=info",
            "--shutdown-grace=10",
            *(["--allow-file-sources"] if self.allow_file_sources else []),
            *self.extra,
        ]
        env = {**os.environ, DUMP_ENV: str(self.dump), TOP_ENV: str(self.top)}
        self.proc = procs.start(self.name, argv, self.directory / "logs", env=env, cwd=ROOT)
        self.starts += 1
        procs.wait_until(
            f"{self.name} /readyz", lambda: procs.http_ok(self.url("/readyz")), timeout=timeout, watch=[self.proc]
        )
        return self

    def heap(self, timeout: float = 600.0) -> dict[str, Any]:
        self.dump.unlink(missing_ok=True)
        os.kill(daemon_pid(self), signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dump.exists():
                time.sleep(0.5)  # written in one call; let it finish
                return dict(json.loads(self.dump.read_text()))
            time.sleep(1.0)
        raise RuntimeError(f"no heap report from the daemon after {timeout:.0f} s; see {self.log}")


async def one_fleet(
    kubeconfig: Path, pids: dict[str, int], server: GitHttpsServer, size: int, args: Any, workdir: Path
) -> dict[str, Any]:
    _, url = https_repo(server, size)
    run_id = url.rsplit("/", 1)[1].removesuffix(".git")
    fleet = Fleet(f"{run_id}-ops", f"{run_id}-target", url, args.interval, git_auth="git")
    result: dict[str, Any] = {"environments": size, "objects": size * 4}
    async with bench_kube(kubeconfig) as kube:
        await create_fleet(kube, fleet, size, server.secret_data())
        daemon = ProbedDaemon(
            kubeconfig,
            workdir / f"daemon-{size}",
            f"--namespace={fleet.ops}",
            f"--workers={args.workers}",
            trace=args.trace,
            dump=workdir / f"heap-{size}.json",
            top=args.top,
        )
        daemon.start(timeout=120)
        try:
            result["all_ready_seconds"] = await wait_all_ready(kube, fleet, daemon, args.ready_timeout)
            pid = daemon_pid(daemon)
            result["after_sync"] = rss_mib(pid)
            result["settle_seconds"] = settle(pids)
            await asyncio.sleep(args.quiet_seconds)
            result["after_settle"] = rss_mib(pid)
            result["heap"] = daemon.heap()
            result["after_heap_report"] = rss_mib(pid)
        finally:
            code = daemon.stop()
        if code != 0:
            raise RuntimeError(f"the daemon did not exit 0 at SIGTERM (exit {code}); see {daemon.log}")
    return result


def run(kubeconfig: Path, pids: dict[str, int], args: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "memory",
        "tracemalloc_frames": args.trace,
        "workers": args.workers,
        "interval": args.interval,
        "load_average_at_start": os.getloadavg()[0],
    }
    server = start_git_https()
    fleets: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            install_crd(kubeconfig)
            for size in args.environments:
                fleets.append(asyncio.run(one_fleet(kubeconfig, pids, server, size, args, Path(tmp))))
    finally:
        server.stop()
    report["fleets"] = fleets
    if len(fleets) > 1:
        small, large = fleets[0], fleets[-1]
        extra = large["environments"] - small["environments"]
        grown = large["after_settle"]["rss_mib"] - small["after_settle"]["rss_mib"]
        report["rss_kib_per_environment"] = round(grown * 1024 / extra, 1)
        if "traced_mib" in large["heap"]:
            traced = large["heap"]["traced_mib"] - small["heap"]["traced_mib"]
            report["traced_kib_per_environment"] = round(traced * 1024 / extra, 1)
    report["load_average_at_end"] = os.getloadavg()[0]
    return report


def sizes(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 20,200 (got {text!r})") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1 (got {text!r})")
    return values


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["probe"]:
        return probe(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", type=sizes, default=[20, 200], help="fleet sizes, comma-separated")
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames in the daemon (0: not traced)")
    parser.add_argument("--top", type=int, default=25, help="rows of each heap table")
    parser.add_argument("--interval", default="1h", help="spec.interval of every Environment")
    parser.add_argument("--quiet-seconds", type=float, default=10.0, help="wait after the control plane settles")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--ready-timeout", type=float, default=1200.0, help="seconds for the first sync")
    args = parser.parse_args(argv)
    if args.trace < 0:
        parser.error("--trace must be 0 or more frames")
    return emit(on_cluster("bench-memory", None, lambda kubeconfig, pids: run(kubeconfig, pids, args)))


if __name__ == "__main__":
    sys.exit(main())
