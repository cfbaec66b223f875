"""What every subcommand shares: cluster options, namespace defaulting, errors, exit codes, progress.

kubectl's conventions: ``--kubeconfig`` / ``--context``, ``-n`` falling back to the context's
namespace (in a Pod: its own), then ``default``; one ``error: ...`` line on stderr and an exit
code that says what kind of failure it was (the table in ``gitopsd.cli``'s docstring).

Flag values are checked while the command line is parsed (the converters below raise
``UsageError``), so a bad value is refused before anything is read or written.
"""

from __future__ import annotations

import argparse
import calendar
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitopsd import environments
from gitopsd.errors import GitopsdError
from gitopsd.fields import (
    SUBDOMAIN_RULES,
    Invalid,
    check_dns_label,
    check_dns_subdomain,
    check_limits,
    duration_seconds,
)
from gitopsd.kube import Kube, NotFound
from gitopsd.kube import config as kconfig
from gitopsd.kube.errors import ConfigError, Unauthorized, Unreachable
from gitopsd.spec import Environment, parse_environment
from gitopsd.usage import EXIT_USAGE, one_line

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed (diff: differences found)
EXIT_INTERRUPTED = 130  # Ctrl-C


class CliError(GitopsdError):
    """A user-facing failure of a subcommand: printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """A bad flag or argument value (the message names the flag and the value): exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def exit_code(exc: BaseException, floor: int = EXIT_FAILED) -> int:
    """The exit code for a failure: usage and cluster-connection errors 2, others 1; at least ``floor``.

    A 401 or 403 is an answer from the API server, so it counts as a failed operation (1), as
    kubectl treats it (``error: You must be logged in to the server``, ``Error from server
    (Forbidden)``: the same exit status as a NotFound). ``diff`` passes ``floor=2``: any error
    must be told apart from "differences found" (kubectl diff's convention).
    """
    if isinstance(exc, CliError):
        code = exc.code
    elif isinstance(exc, ConfigError | Unreachable):
        code = EXIT_USAGE
    else:
        code = EXIT_FAILED
    return max(code, floor)


def message(exc: BaseException) -> str:
    """The one line printed after ``error:``."""
    text = one_line(str(exc))
    if isinstance(exc, Unauthorized):  # the server's own message is only "Unauthorized"
        return f"you must be logged in to the server: it refused the kubeconfig's credentials ({text})"
    return text


def shown(value: str) -> str:
    """A flag value for a message: as typed, quoted when empty or holding spaces or quotes."""
    return value if value and not any(c.isspace() or c in "'\"" for c in value) else repr(value)


def env_name(text: str) -> str:
    """``ENV``: an Environment's name, a DNS subdomain as Kubernetes requires of it."""
    try:
        check_dns_subdomain(text)
    except Invalid:
        raise UsageError(
            f"ENV {shown(text)}: not an Environment name ({SUBDOMAIN_RULES}; give the namespace with -n, not NS/NAME)"
        ) from None
    return text


def namespace_name(text: str, flag: str = "--namespace") -> str:
    """``-n``: a namespace name (a DNS label); an empty one is refused rather than silently replaced."""
    try:
        check_dns_label(text)
    except Invalid as exc:
        raise UsageError(f"{flag} {shown(text)}: not a namespace name ({exc})") from None
    return text


def duration(flag: str) -> Callable[[str], float]:
    """A converter for a duration flag (``90s``, ``5m``, ``1h30m``), more than zero, in seconds."""

    def convert(text: str) -> float:
        try:
            seconds = duration_seconds(text)
            check_limits(seconds, more_than=0)
        except Invalid as exc:
            raise UsageError(f"{flag} {shown(text)}: {exc}") from None
        return seconds

    return convert


def seconds(
    flag: str, *, minimum: float = 0.0, maximum: float | None = None, allow_zero: bool = False
) -> Callable[[str], float]:
    """A converter for a number of seconds: finite, above ``minimum`` (or equal with ``allow_zero``)."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{flag} {shown(text)}: must be a number of seconds") from None
        if not math.isfinite(value):
            raise UsageError(f"{flag} {shown(text)}: must be a finite number of seconds")
        try:
            if allow_zero:
                check_limits(value, at_least=minimum, at_most=maximum, show="{:g}".format)
            else:
                check_limits(value, more_than=minimum, at_most=maximum, show="{:g}".format)
        except Invalid as exc:
            raise UsageError(f"{flag} {shown(text)}: {exc} seconds") from None
        return value

    return convert


def count(flag: str, *, minimum: int = 1) -> Callable[[str], int]:
    """A converter for a whole number of at least ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{flag} {shown(text)}: must be a whole number") from None
        try:
            check_limits(value, at_least=minimum, show=str)
        except Invalid as exc:
            raise UsageError(f"{flag} {shown(text)}: {exc}") from None
        return value

    return convert


def release_number(text: str) -> int:
    """``rollback --to N``: a release number as ``gitopsd history`` lists them (1, 2, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--to {shown(text)}: must be a release number (see 'gitopsd history ENV')") from None
    if value < 1:
        raise UsageError(f"--to {shown(text)}: release numbers start at 1 (see 'gitopsd history ENV')")
    return value


def add_kube_args(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)"
    )
    group.add_argument("--context", help="the kubeconfig context to use")
    scope = group.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        type=namespace_name,
        help="namespace of the Environment (default: the context's; in a Pod its own; else default)",
    )
    if all_namespaces:
        scope.add_argument("-A", "--all-namespaces", action="store_true", help="Environments of every namespace")


def kube_from(args: argparse.Namespace) -> Kube:
    return Kube.from_kubeconfig(args.kubeconfig, args.context)


def namespace_of(args: argparse.Namespace) -> str:
    """``-n``, else the default namespace (see ``default_namespace``)."""
    if getattr(args, "namespace", None):
        return str(args.namespace)
    return default_namespace(args.kubeconfig, args.context)[0]


def default_namespace(kubeconfig: str | None, context: str | None) -> tuple[str, str]:
    """The namespace kubectl would use without ``-n``, and where it came from (``kube.config``'s choice)."""
    return kconfig.default_namespace(kubeconfig, context)


async def fetch_environment(kube: Kube, namespace: str, name: str) -> tuple[dict[str, Any], Environment]:
    """The raw object and the parsed Environment, or a CliError naming what is missing or invalid."""
    env_name(name)
    try:
        raw = await environments.get(kube, namespace, name)
    except NotFound:
        raise await not_found(kube, namespace, name) from None
    return raw, parse_environment(raw)


CRD_MISSING = (
    "the Environment CRD (environments.gitopsd.dev) is not installed in this cluster:"
    " install manifests/gitopsd first (docs/install.md)"
)


async def not_found(kube: Kube, namespace: str, name: str | None = None) -> CliError:
    """The error for a 404 on Environments: the CRD is missing (a first-time user's usual case), or the object."""
    try:
        await kube.get(f"/apis/{environments.RESOURCE.group}/{environments.RESOURCE.version}")
    except NotFound:
        return CliError(CRD_MISSING)
    if name is None:
        return CliError(f'Environments in namespace "{namespace}" cannot be listed: the server has no such resource')
    return CliError(f'Environment "{name}" not found in namespace "{namespace}"')


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
