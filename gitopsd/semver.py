"""SCAFFOLD — replaced by the sources work: version ranges over release tags.

Interface: ``parse_constraint(text) -> Constraint`` (ValueError with a reason on bad input),
``Constraint.allows(version_text) -> bool``, ``newest(tags, constraint) -> str | None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Constraint:
    text: str

    def allows(self, version: str) -> bool:
        raise NotImplementedError


def parse_constraint(text: str) -> Constraint:
    if not text.strip():
        raise ValueError("empty range")
    return Constraint(text)


def newest(tags: Iterable[str], constraint: Constraint) -> str | None:
    raise NotImplementedError
