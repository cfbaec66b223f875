"""The ``gitopsd`` command.

Only the program's frame exists so far: the daemon and its subcommands (see
../shared/design.md) are built in later issues, and the README lists what works today.
"""

from __future__ import annotations

import argparse
import sys

from gitopsd import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitopsd", description="GitOps daemon: Git branches and tags as environments, with release history."
    )
    parser.add_argument("--version", action="version", version=f"gitopsd {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("gitopsd: no subcommands are implemented yet; see the README for what works", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
