"""Child processes of the harness: start with a log file, stop without leftovers.

Every component runs in its own session (process group), so stopping it also stops anything
it spawned (rabbitmq-server forks an Erlang VM and epmd). When ``tie_to_parent`` is set the
kernel kills the child if the harness dies without cleaning up (PR_SET_PDEATHSIG), so a
killed pytest does not leave a control plane running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_OWNER_FILE = ".gitopsd-owner"
_TEMP_PREFIX = "gitopsd-"


def private_dir(kind: str) -> Path:
    """A new temporary directory owned by this process, for one cluster or service.

    The owner's pid is recorded so that :func:`reap_stale_dirs` can remove directories left
    behind by a harness that was killed outright (SIGKILL skips every cleanup).
    """
    directory = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{kind}-"))
    (directory / _OWNER_FILE).write_text(str(os.getpid()))
    return directory


def reap_stale_dirs() -> list[Path]:
    """Remove temporary directories whose owning process is gone; return them."""
    removed = []
    for directory in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        try:
            owner = int((directory / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not pid_alive(owner):
            _kill_processes_mentioning(str(directory))
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _kill_processes_mentioning(path: str) -> None:
    """SIGKILL the process groups of processes whose command line names ``path``.

    PR_SET_PDEATHSIG only reaches direct children; grandchildren such as RabbitMQ's Erlang VM
    outlive a killed harness. Every such process names its directory on its command line.
    """
    needle = path.encode()
    own_group = os.getpgid(0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes():
                continue
            pid = int(entry.name)
            pgid = os.getpgid(pid)
            if pgid == own_group:
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(pgid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _running_pgid(pid: int) -> int | None:
    """The process group of ``pid``, or None if it is gone or a zombie (from /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[2])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (zombies count as gone)."""
    return _running_pgid(pid) is not None


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (outgoing connections take their ports there)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago, below the ephemeral range.

    A port the kernel hands out for ``bind(host, 0)`` comes from the ephemeral range, where any
    process's next outgoing connection may take it before the component we start binds it (seen
    on a busy machine: etcd failed with "address already in use"). A random port below that
    range is only ever taken by a listener that binds it by number.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = ephemeral_low()
    if low > 10_000:
        for _ in range(200):
            port = random.randrange(10_000, low)  # noqa: S311 (not a secret)
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_exact(host: str, port: int) -> None:
    """Raise OSError unless ``port`` can be bound on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, port))


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host else host


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class Process:
    """One running component and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise StartupError(
                f"{self.name} exited with code {self.popen.returncode}; last lines of {self.log}:\n{log_tail(self.log)}"
            )


def start(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    tie_to_parent: bool = True,
    user: int | None = None,
    group: int | None = None,
) -> Process:
    """Start ``argv`` in a new session with stdout+stderr appended to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if tie_to_parent else None,
            user=user,
            group=group,
            extra_groups=[] if group is not None else None,
        )
    return Process(name=name, popen=popen, log=log)


def kill_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL whatever is still there after ``timeout``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        _reap(pid)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while _group_alive(pid) and time.monotonic() < end:
        _reap(pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _group_alive(pgid: int) -> bool:
    # killpg(pgid, 0) also succeeds for zombies, so look for a running member instead.
    return any(entry.name.isdigit() and _running_pgid(int(entry.name)) == pgid for entry in Path("/proc").iterdir())


def http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    """Whether a health URL answers 200 (errors propagate, so :func:`wait_until` reports them)."""
    with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:  # noqa: S310 - loopback health URL
        return bool(resp.status == 200)


def wait_until(
    what: str,
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.25,
    watch: Sequence[Process] = (),
) -> T:
    """Poll ``check`` until it returns something truthy, and return that.

    Exceptions from ``check`` count as "not yet" and are reported on timeout; a watched
    process that exits fails the wait at once, with its log.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        for proc in watch:
            proc.check_alive()
        try:
            result = check()
            if result:
                return result
            last_error = None
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    logs = "".join(f"\n--- {p.name} ({p.log}) ---\n{log_tail(p.log)}" for p in watch)
    raise StartupError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{logs}")


@dataclass(slots=True)
class ProcessSet:
    """Processes stopped together, newest first."""

    procs: list[Process] = field(default_factory=list)

    def add(self, proc: Process) -> Process:
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=1)
        self.procs.clear()
