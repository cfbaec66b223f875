"""gitopsd's daemon as a child process, for tests, benchmarks and the demo.

It is started exactly as a user would (``gitopsd run ...``), with its log in a file, its
probes on a free loopback port, and stops with SIGTERM (checking the exit code) or SIGKILL.
Tests, benchmarks and the demo read repositories over ``file://``, so it runs with
``--allow-file-sources`` unless told not to (``allow_file_sources=False``: the in-cluster default).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from e2e import procs


class DaemonProcess:
    def __init__(
        self,
        kubeconfig: Path,
        directory: Path,
        *extra: str,
        name: str = "gitopsd",
        tie_to_parent: bool = True,
        allow_file_sources: bool = True,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.allow_file_sources = allow_file_sources
        self.directory = directory
        self.extra = extra
        self.name = name
        self.tie_to_parent = tie_to_parent  # False: outlives this process (the demo's --keep)
        self.port = procs.free_port("127.0.0.1")
        self.proc: procs.Process | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.directory / "logs" / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> DaemonProcess:
        argv = [
            sys.executable,
            "-m",
            "gitopsd",
            "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--probes-bind-address=127.0.0.1:{self.port}",
            f"--cache-dir={self.directory / 'cache'}",
            "--log-level=debug",
            "--shutdown-grace=10",
            *(["--allow-file-sources"] if self.allow_file_sources else []),
            *self.extra,
        ]
        self.proc = procs.start(self.name, argv, self.directory / "logs", tie_to_parent=self.tie_to_parent)
        self.starts += 1
        procs.wait_until(
            f"{self.name} /readyz", lambda: procs.http_ok(self.url("/readyz")), timeout=timeout, watch=[self.proc]
        )
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:  # noqa: S310 (loopback)
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            head = series.split("{", 1)
            if head[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None:
            return 0
        self.proc.popen.send_signal(signal.SIGTERM)
        try:
            code = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs.kill_group(self.proc.pid)
            code = -9
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL (``kill -9``): no cleanup of any kind, as when a node dies."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.popen.wait(timeout=5)
            self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
