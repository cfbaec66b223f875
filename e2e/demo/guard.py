"""One demo per directory, and nothing left behind: the lock, the state file, stopping.

A run holds an exclusive ``flock`` on ``<dir>.lock`` from start to exit, so a second run (or
``--stop``) in the same directory is refused at once, before it touches anything. Every
process the demo starts is recorded in ``<dir>/demo.json`` as soon as it exists; that is how
``--stop`` ends a ``--keep`` demo, and how a run cleans up after an earlier one that was killed
outright (SIGKILL skips every cleanup).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import procs

STATE = "demo.json"


class Refused(RuntimeError):
    """The demo cannot run (or stop) now; the message says why and what to do."""


def lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@dataclass(slots=True)
class Lock:
    """An exclusive lock on the demo directory, held by this process until released."""

    path: Path
    fd: int

    @classmethod
    def acquire(cls, directory: Path, doing: str) -> Lock:
        path = lock_path(directory)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise Refused(
                f"another demo is running in {directory} ({holder}); nothing was {doing}. "
                "Wait for it to finish, or press Ctrl-C in its terminal."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            os.close(self.fd)


@dataclass(slots=True)
class State:
    """What is running in the demo directory (written at every change)."""

    directory: Path
    keep: bool = False
    processes: dict[str, int] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, pid: int) -> None:
        self.processes[name] = pid
        self.save()

    def save(self) -> None:
        doc = {"driver": os.getpid(), "keep": self.keep, "processes": self.processes, "info": self.info}
        tmp = self.directory / (STATE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.rename(self.directory / STATE)


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return None
    return doc


def kept_demo_running(directory: Path) -> bool:
    """Whether ``directory`` holds a demo left running with ``--keep``."""
    doc = read_state(directory)
    return bool(doc and doc.get("keep") and any(procs.pid_alive(int(p)) for p in doc["processes"].values()))


def stop_everything(
    directory: Path, processes: dict[str, int] | None = None, *, save_logs: Path | None = None
) -> list[str]:
    """Stop the recorded processes (newest first, SIGTERM then SIGKILL), then anything else naming
    ``directory``, then remove it (first copying every ``*.log`` to ``save_logs``, when given).
    Returns the names of the recorded processes that were running."""
    if processes is None:
        processes = {k: int(v) for k, v in ((read_state(directory) or {}).get("processes") or {}).items()}
    stopped = []
    for name, pid in reversed(list(processes.items())):
        if procs.pid_alive(pid):
            stopped.append(name)
        procs.kill_group(pid)
    kill_processes_naming(directory)
    if save_logs is not None:
        shutil.rmtree(save_logs, ignore_errors=True)
        for log in directory.rglob("*.log"):
            target = save_logs / log.relative_to(directory)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)
    shutil.rmtree(directory, ignore_errors=True)
    return stopped


def kill_processes_naming(directory: Path) -> None:
    """SIGKILL the process group of every session leader whose command line names ``directory``.

    A safety net for a component the state file missed (one started in the instant before a
    SIGKILL). Every component runs in a session of its own, so only session leaders are
    candidates: a user's ``tail -f`` of a demo log, or this process, is never one.
    """
    needle = str(directory).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if pid == os.getpid() or os.getsid(pid) != pid or needle not in (entry / "cmdline").read_bytes():
                continue
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            continue
