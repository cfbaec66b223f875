"""Who else owns the fields a server-side apply conflicted on, and may we take them back.

The rule gitopsd follows (a promise of the product: hand edits are reverted):

* A field last set by an **Update** manager (``kubectl scale``, ``kubectl edit``/``patch``,
  client-side ``kubectl apply``, a script's PUT) is drift: the apply is repeated with
  ``force`` and the fields come back to Git's values. The result reports them.
* A field owned by another **Apply** manager (another tool applying server-side, e.g. Helm 4,
  Argo CD, another ``kubectl apply --server-side``) is a real disagreement between two sources
  of truth: refused, naming the manager and the field, unless the Environment sets ``force``.

The API server reports conflicts as Status causes of reason ``FieldManagerConflict`` with a
message such as ``conflict with "kubectl" with subresource "scale" using apps/v1 at ...`` (an
Update manager: ``using <apiVersion>``) or ``conflict with "helm"`` (an Apply manager).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_MANAGER = re.compile(
    r'conflicts? with "(?P<manager>(?:[^"\\]|\\.)*)"'
    r'(?: with subresource "(?P<subresource>(?:[^"\\]|\\.)*)")?'
    r"(?P<update> using (?P<api_version>\S+?))?(?: at \S+)?:?$"
)


@dataclass(frozen=True, slots=True)
class FieldOwner:
    """One conflicting field and the manager that holds it."""

    field: str
    manager: str
    update: bool  # True: an Update manager (drift we take back); False: another Apply manager
    subresource: str = ""

    def __str__(self) -> str:
        how = "Update" if self.update else "Apply"
        via = f" through /{self.subresource}" if self.subresource else ""
        return f"{self.field} (field manager {self.manager!r}, {how}{via})"


def parse(causes: Iterable[Mapping[str, Any]], message: str = "") -> list[FieldOwner]:
    """The conflicts of a 409 apply response, from its causes (or, lacking them, its message)."""
    owners: list[FieldOwner] = []
    for cause in causes:
        if cause.get("reason") not in (None, "FieldManagerConflict"):
            continue
        owner = _owner(str(cause.get("message", "")), str(cause.get("field", "")))
        if owner:
            owners.append(owner)
    if owners:
        return owners
    # "Apply failed with 2 conflicts: conflicts with "a" using v1:\n- .spec.x\n- .spec.y"
    current: FieldOwner | None = None
    body = message.split(": ", 1)[1] if ": " in message else message
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("- ") and current is not None:
            owners.append(FieldOwner(line[2:], current.manager, current.update, current.subresource))
            continue
        head, sep, field = line.rpartition(": ")
        owner = _owner(head if sep and field.startswith(".") else line, field if sep and field.startswith(".") else "")
        if owner is None:
            continue
        if owner.field:
            owners.append(owner)
        current = owner
    return owners


def all_updates(owners: Iterable[FieldOwner]) -> bool:
    owners = list(owners)
    return bool(owners) and all(o.update for o in owners)


def _owner(text: str, field: str) -> FieldOwner | None:
    match = _MANAGER.search(text.strip())
    if not match:
        return None
    return FieldOwner(
        field=field,
        manager=_unquote(match.group("manager")),
        update=bool(match.group("update")),
        subresource=_unquote(match.group("subresource") or ""),
    )


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
