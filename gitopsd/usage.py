"""Command-line usage errors as kubectl prints them, for both programs' parsers.

argparse's own answer to a bad flag is the whole usage text and then the error; kubectl's (and
ours) is one ``error: ...`` line naming where to look, and exit 2. This module imports nothing of
either program, so metrics-adapter can use it without loading gitopsd's CLI.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

EXIT_USAGE = 2


def one_line(text: str) -> str:
    """A message on one line: the kubernetes loader and YAML parsers like multi-line messages."""
    return " ".join(text.split())


class Parser(argparse.ArgumentParser):
    """argparse with kubectl-style usage errors: one ``error: ...`` line and exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {one_line(message)} (see '{self.prog} --help')\n")
