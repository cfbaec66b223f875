"""What every subcommand shares: cluster options, namespace defaulting, errors, progress.

kubectl's conventions: ``--kubeconfig`` / ``--context``, ``-n`` falling back to the context's
namespace and then ``default``, one ``error: ...`` line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import calendar
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from gitopsd import environments
from gitopsd.errors import GitopsdError
from gitopsd.kube import Kube, NotFound
from gitopsd.spec import Environment, parse_environment


class CliError(GitopsdError):
    """A user-facing failure of a subcommand: printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_kube_args(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument("--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    group.add_argument("--context", help="the kubeconfig context to use")
    group.add_argument("-n", "--namespace", help="namespace of the Environment (default: the context's, else default)")
    if all_namespaces:
        group.add_argument("-A", "--all-namespaces", action="store_true", help="Environments of every namespace")


def kube_from(args: argparse.Namespace) -> Kube:
    return Kube.from_kubeconfig(args.kubeconfig, args.context)


def namespace_of(args: argparse.Namespace) -> str:
    """``-n``, else the kubeconfig context's namespace, else ``default`` (as kubectl does)."""
    if getattr(args, "namespace", None):
        return str(args.namespace)
    path = args.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube/config")
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "default"
    wanted = args.context or config.get("current-context")
    for ctx in config.get("contexts") or []:
        if ctx.get("name") == wanted:
            return str((ctx.get("context") or {}).get("namespace") or "default")
    return "default"


async def fetch_environment(kube: Kube, namespace: str, name: str) -> tuple[dict[str, Any], Environment]:
    """The raw object and the parsed Environment, or a CliError naming what is missing or invalid."""
    try:
        raw = await environments.get(kube, namespace, name)
    except NotFound:
        raise CliError(f'Environment "{name}" not found in namespace "{namespace}"') from None
    return raw, parse_environment(raw)


def cache_dir() -> Path:
    base = os.environ.get("GITOPSD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "gitopsd"
    )
    return Path(base) / "cli"


class Progress:
    """Progress of a long wait: a live spinner line on a terminal, plain timestamped lines otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last = ""
        self._status: Any = None
        self._started = time.monotonic()

    @contextmanager
    def running(self, first: str) -> Iterator[Progress]:
        if self._tty:
            from rich.console import Console

            console = Console(file=self._stream)
            with console.status(first) as status:
                self._status = status
                yield self
                self._status = None
        else:
            self.update(first)
            yield self

    def update(self, message: str) -> None:
        if message == self._last:
            return
        self._last = message
        elapsed = time.monotonic() - self._started
        if self._status is not None:
            self._status.update(f"{message} [{elapsed:.0f}s]")
        else:
            print(f"[{elapsed:5.1f}s] {message}", file=self._stream, flush=True)


def age(timestamp: str | None, now: float | None = None) -> str:
    """kubectl's short age: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    seconds = max(int((now or time.time()) - then), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(rows: list[list[str]]) -> str:
    """Columns aligned with three spaces between them, like kubectl."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
