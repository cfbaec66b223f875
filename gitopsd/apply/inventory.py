"""What an Environment applied last: the only objects it may ever prune.

Kept in the Environment's ``status.inventory.entries`` as ``[{id, v}]``: ``id`` is
``<namespace>_<name>_<group>_<kind>`` (the form Flux and cli-utils use) and ``v`` the API
version the object was applied at, so the type can still be addressed after its group's
preferred version changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd.model import ObjectRef


@dataclass(frozen=True, slots=True, order=True)
class InventoryEntry:
    ref: ObjectRef
    version: str

    @property
    def api_version(self) -> str:
        return f"{self.ref.group}/{self.version}" if self.ref.group else self.version

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> InventoryEntry:
        return cls(ObjectRef.of(obj), str(obj.get("apiVersion", "")).rpartition("/")[2])


@dataclass(frozen=True, slots=True)
class Inventory:
    """A set of applied objects, at most one entry per ``ObjectRef``."""

    entries: frozenset[InventoryEntry] = frozenset()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[InventoryEntry]:
        return iter(sorted(self.entries))

    def refs(self) -> frozenset[ObjectRef]:
        return frozenset(e.ref for e in self.entries)

    def get(self, ref: ObjectRef) -> InventoryEntry | None:
        for entry in self.entries:
            if entry.ref == ref:
                return entry
        return None

    def with_entries(self, extra: Iterable[InventoryEntry]) -> Inventory:
        """This inventory plus ``extra`` (an entry of ``extra`` replaces one with the same ref)."""
        by_ref = {e.ref: e for e in self.entries}
        by_ref.update((e.ref, e) for e in extra)
        return Inventory(frozenset(by_ref.values()))

    def to_status(self) -> dict[str, Any]:
        return {"entries": [{"id": e.ref.id, "v": e.version} for e in sorted(self.entries)]}

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> Inventory:
        """Read ``status.inventory``; entries that cannot be parsed are dropped (never pruned)."""
        entries: dict[ObjectRef, InventoryEntry] = {}
        for item in (raw or {}).get("entries") or []:
            if not isinstance(item, Mapping):
                continue
            try:
                ref = ObjectRef.from_id(str(item.get("id", "")))
            except ValueError:
                continue
            entries[ref] = InventoryEntry(ref, str(item.get("v") or ""))
        return cls(frozenset(entries.values()))

    @classmethod
    def of(cls, entries: Iterable[InventoryEntry]) -> Inventory:
        return cls().with_entries(entries)
