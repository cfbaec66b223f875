"""Did a watch event show someone else changing an object we manage? Then its Environment is due.

The watch cache reports every change of a labelled object, most of them harmless: status
written by controllers, a controller's own annotation, our own apply coming back. Only these
make the owning Environment (the ``gitopsd.dev/environment`` label value) reconcile at once:

- the object was **deleted**, or lost or changed its owner label;
- a **field we applied** (our Apply entry's ``fieldsV1``, as it was before the change) has a
  new value, and the write was not ours: a manager other than ``manager`` added or renewed its
  ``managedFields`` entry (``kubectl scale``, ``kubectl edit``, a script's PUT). When no entry
  moved at all (two writes in one second), it counts as an edit: a reconcile too many is
  free of writes, a missed edit is not reverted.

Changes only in ``status``, ``resourceVersion``, ``generation`` or ``managedFields`` never count.
The reconcile that follows finds the object moved (its generation or resourceVersion differs
from the memo) and dry-runs it, so the edit is taken back (``conflicts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.apply.compare import agree_within, apply_fields, comparable
from gitopsd.kube.reflector import Change
from gitopsd.model import ENVIRONMENT_LABEL, FIELD_MANAGER


def edited_owner(change: Change, manager: str = FIELD_MANAGER) -> str | None:
    """The owner (label value) whose object ``change`` shows edited or deleted by someone else, or None."""
    old, new = change.old, change.new
    if old is None:
        return None  # created: by our apply, or labelled by hand (not ours to revert)
    owner = _owner(old)
    if new is None or owner is None:
        return owner
    if _owner(new) != owner:
        return owner
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return None  # being deleted: the DELETED event follows
    if _content(old) == _content(new):
        return None
    fields = apply_fields(old, manager) or apply_fields(new, manager)
    if fields is None or agree_within(fields, old, new):
        return None
    writers = _moved_entries(old, new)
    if writers and all(m == manager for m in writers):
        return None  # our own apply coming back
    return owner


def owner_key(owner: str) -> str:
    """The daemon's key (``namespace/name``) for an owner label value (``namespace.name``)."""
    namespace, _, name = owner.partition(".")
    return f"{namespace}/{name}"


def _owner(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(ENVIRONMENT_LABEL)
    return value if isinstance(value, str) and value else None


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = comparable(obj, managed_fields=False)
    out["metadata"].pop("generation", None)
    return out


def _moved_entries(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Managers whose ``managedFields`` entry is new or has a new time in ``new``."""
    before = {_entry_key(e): e.get("time") for e in _entries(old)}
    return [str(e.get("manager")) for e in _entries(new) if before.get(_entry_key(e), object()) != e.get("time")]


def _entries(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = (obj.get("metadata") or {}).get("managedFields") or []
    return [e for e in found if isinstance(e, Mapping)]


def _entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(entry.get("manager")), str(entry.get("operation")), str(entry.get("subresource") or ""))
