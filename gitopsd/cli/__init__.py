"""The ``gitopsd`` command: the daemon (``run``) and the subcommands people use day to day.

Every subcommand is an ``async`` handler; ``main`` runs it and turns every failure into one
``error: ...`` line on stderr and an exit code, decided here and in ``common.exit_code`` from
the error's class (never its text). The codes follow kubectl's, for every subcommand:

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success (``diff``: no differences)
1     the operation failed: a sync or rollback that failed or timed out waiting, a verification
      that failed or did not pass, an Environment not found, a render that fails on the
      manifests, a request the API server refused (including 401 and 403, as kubectl counts
      them); ``diff``: differences found
2     usage error (a bad flag or argument value, a missing argument), or no usable cluster: no
      kubeconfig, a bad kubeconfig, the API server unreachable, a TLS failure; ``diff``: any error
130   interrupted (Ctrl-C)
====  ==========================================================================================

``gitopsd run`` exits 0 after SIGTERM (a clean stop, as a Pod is stopped) and 130 after SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from gitopsd import __version__
from gitopsd import log as logging_setup
from gitopsd.cli import diff, get, history, notify, render, rollback, run, sync, verify
from gitopsd.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, CliError, exit_code, message
from gitopsd.errors import GitopsdError
from gitopsd.usage import EXIT_USAGE, Parser, one_line

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

EPILOG = """\
exit codes (as kubectl):
  0    success (diff: no differences)
  1    the operation failed (sync/rollback failed or timed out, verification did not pass,
       Environment not found, render failed, the API server refused: 401/403 too);
       diff: differences found
  2    usage error (bad flag, argument or value), or no usable cluster (no or bad kubeconfig,
       API server unreachable, TLS failure); diff: any error
  130  interrupted (Ctrl-C)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gitopsd",
        description="GitOps daemon: Git branches and tags as environments, with release history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # told here, not by the top parser, so the hint names the subcommand's help
            command = f"gitopsd {args.command}" if getattr(args, "command", None) else "gitopsd"
            print(f"error: unrecognized arguments: {' '.join(extra)} (see '{command} --help')", file=sys.stderr)
            return EXIT_USAGE
    except SystemExit as exc:  # --help, --version, or a usage error already printed by Parser.error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except CliError as exc:  # a flag value refused by its converter (common.duration, ...)
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.code
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # `diff` sets 2: any error must be told apart from "differences found" (exit 1).
    floor: int = getattr(args, "error_exit_floor", EXIT_FAILED)
    # structlog would print to stdout by default, mixing log lines into output such as
    # `render`'s YAML: logs go to stderr, quiet unless something is wrong (`run` sets its own).
    logging_setup.configure("warning")
    try:
        return asyncio.run(_quiet_connect_race(handler(args)))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except GitopsdError as exc:
        print(f"error: {message(exc)}", file=sys.stderr)
        return exit_code(exc, floor)
    except OSError as exc:  # a local file or directory (the CLI's cache, a kubeconfig's key file...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or one_line(str(exc))}", file=sys.stderr)
        return exit_code(exc, floor)
    except Exception as exc:  # a bug or an error nobody classified: still one line, unless asked
        if os.environ.get("GITOPSD_DEBUG"):
            traceback.print_exc()
        detail = one_line(str(exc)) or "no details"
        print(f"error: {type(exc).__name__}: {detail} (GITOPSD_DEBUG=1 prints the traceback)", file=sys.stderr)
        return exit_code(exc, floor)


async def _quiet_connect_race(work: Coroutine[Any, Any, int]) -> int:
    asyncio.get_running_loop().set_exception_handler(_drop_connect_race)
    return await work


def _drop_connect_race(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Python 3.11: a connect cancelled by Ctrl-C may still run its completion callback, which fails
    on the cancelled future (InvalidStateError) and prints a traceback after the interruption
    (fixed in 3.12). Nothing was lost: drop that one report, pass every other on."""
    if isinstance(context.get("exception"), asyncio.InvalidStateError) and "_sock_connect_cb" in repr(
        context.get("handle")
    ):
        return
    loop.default_exception_handler(context)


if __name__ == "__main__":
    sys.exit(main())
