"""Read a child's stdout and stderr with a byte limit and a deadline (``communicate`` has neither cap).

``Popen.communicate`` keeps reading until the child exits, so a kustomization that prints
gigabytes (a generator repeating a large file, a patch multiplying objects) would grow the
daemon by as much before a render limit could look at it. Here reading stops at ``limit`` + 1
bytes of stdout; the caller then kills the child's process group. stderr keeps only its first
``stderr_limit`` bytes (an error message, not a stream), the rest is read and dropped so the
child never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_CHUNK = 64 * 1024


class OutputTooLarge(Exception):
    """The child printed more than ``limit`` bytes on stdout (it is still running)."""


def communicate(
    proc: subprocess.Popen[bytes], timeout: float, limit: int, stderr_limit: int = 256 * 1024
) -> tuple[bytearray, bytearray]:
    """``(stdout, stderr)`` once the child has exited; raises ``subprocess.TimeoutExpired`` at the
    deadline or ``OutputTooLarge``, leaving the child for the caller to kill."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                if buffer is out:
                    out += chunk
                    if len(out) > limit:
                        raise OutputTooLarge(limit)
                elif len(err) < stderr_limit:
                    err += chunk[: stderr_limit - len(err)]
    left = max(deadline - time.monotonic(), 0.0)
    proc.wait(timeout=left)
    proc.stdout.close()
    proc.stderr.close()
    return out, err  # not copied to bytes: at the limit that would be 64 MiB more


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole process group (it was started with ``start_new_session``) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)  # reap it and close the pipes


def run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float, limit: int
) -> tuple[int, bytearray, bytearray]:
    """Run a renderer in its own process group and return ``(returncode, stdout, stderr)``.

    Raises ``OSError`` when it cannot start, ``OutputTooLarge`` or ``subprocess.TimeoutExpired``
    as ``communicate`` does; on any of these (and on cancellation) the process group is killed.
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so a kill reaches its children (git) too
    )
    try:
        out, err = communicate(proc, timeout, limit)
    except BaseException:
        kill(proc)
        raise
    return proc.returncode, out, err
