"""What a sync would change, shown like ``kubectl diff``: a unified diff per object.

The "after" side is the API server's own answer to a server-side dry-run, so defaults,
admission and the merge with other managers' fields are exactly what a sync would produce;
the "before" side is the live object. Volatile metadata (``resourceVersion``,
``managedFields``, ``generation``) and ``status`` are left out of both.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gitopsd.apply.compare import comparable
from gitopsd.model import ObjectRef


class Change(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    PRUNE = "prune"


@dataclass(frozen=True, slots=True)
class ObjectDiff:
    ref: ObjectRef
    change: Change
    origin: str
    diff: str  # unified diff text; for a prune, the object's removal
    drift: bool = False  # the live object was changed by hand; the sync would restore it
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DiffResult:
    """Every object a sync would create, update or prune (unchanged objects are not listed)."""

    objects: tuple[ObjectDiff, ...] = ()
    unchanged: int = 0
    #: Objects that left Git but would be kept, with why (``ref``, reason).
    kept: tuple[tuple[ObjectRef, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.objects)

    def render(self) -> str:
        """The whole diff as text, one ``# <object> (<file>): <change>`` header each; "" when in sync."""
        parts = []
        for o in self.objects:
            what = str(o.change) + (" (drift: the live object was changed by hand)" if o.drift else "")
            where = f" ({o.origin})" if o.origin else ""
            detail = f"; {o.detail}" if o.detail else ""
            parts.append(f"# {o.ref}{where}: {what}{detail}\n{o.diff}")
        return "".join(parts)


def as_yaml(obj: Mapping[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    shown = comparable(obj, managed_fields=False)
    shown["metadata"].pop("generation", None)
    shown["metadata"].pop("uid", None)
    return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False).splitlines(keepends=True)


def unified(ref: ObjectRef, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    name = str(ref)
    lines = difflib.unified_diff(
        as_yaml(before),
        as_yaml(after),
        fromfile=f"live/{name}" if before is not None else "/dev/null",
        tofile=f"desired/{name}" if after is not None else "/dev/null",
    )
    return "".join(lines)
