"""The ``gitopsd`` command: the daemon (``run``) and the subcommands people use day to day.

Every subcommand is an ``async`` handler; ``main`` runs it and turns failures into one
``error: ...`` line on stderr: exit 1 for a failed operation, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from gitopsd import __version__
from gitopsd import log as logging_setup
from gitopsd.cli import diff, get, history, notify, render, rollback, run, sync, verify
from gitopsd.cli.common import CliError
from gitopsd.errors import GitopsdError

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitopsd", description="GitOps daemon: Git branches and tags as environments, with release history."
    )
    parser.add_argument("--version", action="version", version=f"gitopsd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(sub)
    get.add_parser(sub)
    sync.add_parsers(sub)
    diff.add_parser(sub)
    render.add_parser(sub)
    notify.add_parser(sub)
    history.add_parser(sub)
    rollback.add_parser(sub)
    verify.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    # structlog would print to stdout by default, mixing log lines into output such as
    # `render`'s YAML: logs go to stderr, quiet unless something is wrong (`run` sets its own).
    logging_setup.configure("warning")
    try:
        return asyncio.run(handler(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except GitopsdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
