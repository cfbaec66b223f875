"""The demo's command line: ``python -m e2e.demo [--keep] [--until N] [--dir DIR] | --stop [--dir DIR]``.

``scripts/demo.sh`` runs it after set-up. It owns the run's life cycle: refuse a
second run, clean up after a killed one, start the stack, play the acts, and on every way out
(success, a failed step, Ctrl-C, SIGTERM) stop everything and remove the directory, unless
``--keep`` was given and the demo finished, in which case it says how to use and stop it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from e2e.demo import guard, shop
from e2e.demo.narrate import DemoError, Narrator
from e2e.demo.stack import Stack, StartFailed, missing_programs
from e2e.demo.story import Story

ACTS = 6


def default_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gitopsd" / "demo"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _error(text: str) -> None:
    sys.stdout.flush()
    print(f"error: {text}", file=sys.stderr, flush=True)


def _stop_command(directory: Path) -> str:
    extra = "" if directory == default_dir() else f" --dir {directory}"
    return f"./scripts/demo.sh --stop{extra}"


def stop(directory: Path) -> int:
    """``--stop``: end a demo kept with ``--keep`` (or the leftovers of a killed one)."""
    try:
        lock = guard.Lock.acquire(directory, "stopped")
    except guard.Refused as exc:
        _error(str(exc))
        return 1
    try:
        if not directory.exists():
            print(f"no demo in {directory}: nothing to stop")
            return 0
        if guard.read_state(directory) is None:
            _error(f"{directory} is not a demo directory (no {guard.STATE}); nothing was stopped or removed")
            return 1
        stopped = guard.stop_everything(directory)
        print(f"stopped {', '.join(stopped) if stopped else 'nothing (no process was running)'}; removed {directory}")
        return 0
    finally:
        lock.release()


def run(directory: Path, *, keep: bool, until: int) -> int:
    missing = missing_programs()
    if missing:
        _error(f"missing programs: {', '.join(missing)}; run scripts/setup.sh (./scripts/demo.sh does)")
        return 1
    try:
        lock = guard.Lock.acquire(directory, "started")
    except guard.Refused as exc:
        _error(str(exc))
        return 1
    try:
        return _run_locked(directory, keep=keep, until=until)
    finally:
        lock.release()


def _run_locked(directory: Path, *, keep: bool, until: int) -> int:
    if guard.kept_demo_running(directory):
        _error(
            f"a demo started with --keep is still running in {directory}; nothing was started. "
            f"Use it (export KUBECONFIG={directory}/cluster/kubeconfig) or stop it: {_stop_command(directory)}"
        )
        return 1
    if directory.exists():
        if guard.read_state(directory) is None and any(directory.iterdir()):
            _error(f"{directory} exists and is not a demo directory; give another --dir (nothing was touched)")
            return 1
        stopped = guard.stop_everything(directory)
        print(f"(removed what an earlier, interrupted demo left in {directory}" +
              (f": stopped {', '.join(stopped)})" if stopped else ")"), flush=True)  # fmt: skip
    directory.mkdir(parents=True)
    state = guard.State(directory, keep=keep)
    state.save()
    stack = Stack(directory, state, keep=keep)
    say = Narrator(cwd=directory, env=dict(os.environ))
    started = time.monotonic()
    finished = False
    story: Story | None = None
    failure: str | None = None
    logs: Path | None = None
    code = 1
    try:
        say.out("gitopsd demo: Git branches and tags as environments, a bad release rolled back automatically,")
        say.out("an HPA scaling on a request rate and a queue length. Everything runs on this machine, on loopback.")
        say.out(f"Ctrl-C stops it and removes everything. Working directory: {directory}")
        say.heading("Set-up")
        stack.start(say.ok)
        setup_seconds = time.monotonic() - started
        assert stack.repo is not None
        say = Narrator(cwd=stack.repo.work, env=stack.shell_env())
        say.out()
        say.say(
            f"The commands below run in the developer's clone {stack.repo.work} (origin: {stack.repo.bare}), "
            f"with `gitopsd` from {Path(sys.executable).parent} on PATH and this kubeconfig:"
        )
        say.out(f"$ export KUBECONFIG={stack.kubeconfig}")
        story = Story(stack, say)
        acts = [story.environments, story.staging, story.prod, story.bad_release, story.fixed_release,
                story.autoscaling_act][:until]  # fmt: skip
        for act in acts:
            act()
        finished = True
        _summary(say, setup_seconds, time.monotonic() - started, until)
        code = 0
    except StartFailed as exc:
        failure = f"{exc}\nNothing of the demo is left running."
    except DemoError as exc:
        logs = directory.with_name(directory.name + "-logs")
        failure = f"the demo failed: {exc}\nNothing of it is left running; the components' logs are in {logs}"
    except KeyboardInterrupt as exc:
        sys.stdout.flush()
        signame = str(exc) or "SIGINT"
        print(f"\ninterrupted ({signame}): stopping everything the demo started", file=sys.stderr, flush=True)
        code = 130
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if story is not None and story.load is not None:
            story.load.stop()
        if finished and keep:
            _kept(stack)
        else:
            t0 = time.monotonic()
            guard.stop_everything(directory, dict(state.processes), save_logs=logs)
            print(f"stopped everything the demo started and removed {directory} ({time.monotonic() - t0:.1f} s)",
                  flush=True)  # fmt: skip
        if failure:
            _error(failure)
    return code


def _summary(say: Narrator, setup: float, total: float, until: int) -> None:
    say.heading("Summary")
    say.out(f"  {setup:6.1f} s  set-up: cluster, Prometheus, Redis, demo app, metrics-adapter, gitopsd, Git")
    for act in say.acts:
        say.out(f"  {act.seconds:6.1f} s  {act.title.split('.')[0]}. {act.result}")
    minutes, seconds = divmod(round(total), 60)
    part = "" if until == ACTS else " (set-up only)" if until == 0 else f" (acts 1-{until})"
    say.out(f"The demo took {minutes} min {seconds:02d} s{part}.")


def _kept(stack: Stack) -> None:
    say = Narrator(cwd=stack.directory, env={})
    say.heading("Still running (--keep)")
    assert stack.redis is not None and stack.prometheus is not None and stack.repo is not None
    say.out(f"export KUBECONFIG={stack.kubeconfig}")
    say.out(f"export PATH={Path(sys.executable).parent}:$PATH   # gitopsd")
    say.out(f"gitopsd get; gitopsd history prod; kubectl get hpa -n {shop.TARGETS['prod']}")
    say.out(f"Git clone (push to deploy): {stack.repo.work}   Prometheus: {stack.prometheus.url}   "
            f"Redis: redis-cli -p {stack.redis.port}")  # fmt: skip
    say.out(f"Logs: {stack.directory}/*/logs")
    say.out("Stop it (every process, and remove the directory):")
    say.out(f"  {_stop_command(stack.directory)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="gitopsd and metrics-adapter doing their main job on a local cluster, narrated.",
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster and everything on it running at the end")
    parser.add_argument("--until", type=int, choices=range(ACTS + 1), default=ACTS, metavar="N",
                        help=f"stop after act N (0-{ACTS}, 0: set-up only; default {ACTS})")  # fmt: skip
    parser.add_argument("--dir", type=Path, default=None, help=f"working directory (default {default_dir()})")
    parser.add_argument("--stop", action="store_true", help="stop a demo left running with --keep, and remove it")
    args = parser.parse_args(argv)
    directory = (args.dir or default_dir()).expanduser().absolute()
    signal.signal(signal.SIGTERM, _interrupt)
    if args.stop:
        return stop(directory)
    try:
        return run(directory, keep=args.keep, until=args.until)
    except KeyboardInterrupt:
        # Before anything was started (waiting on the lock, checking programs): nothing to stop.
        print("\ninterrupted before anything was started", file=sys.stderr)
        return 130
