"""The ``metrics-adapter`` command.

Only the program's frame exists so far: the API server (see ../shared/design.md) is built
in a later issue, and the README lists what works today.
"""

from __future__ import annotations

import argparse
import sys

from metrics_adapter import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metrics-adapter",
        description="Aggregated API server for custom.metrics.k8s.io and external.metrics.k8s.io.",
    )
    parser.add_argument("--version", action="version", version=f"metrics-adapter {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("metrics-adapter: the server is not implemented yet; see the README for what works", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
