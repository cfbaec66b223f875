"""Memory of an Environment's last apply, so a reconcile where nothing moved sends nothing.

For each object the memo keeps the digest of what was sent and the live object's uid and
``generation`` (``resourceVersion`` for kinds without one) right after. On the next sync an
object is skipped, without even a dry-run, when all of these still hold: same digest (Git and
spec unchanged), same uid (not recreated), same generation/resourceVersion (nobody changed its
spec), and our labels and annotations still on it (metadata edits do not move generation).

It lives in memory only: after a restart every object is dry-run once and compared with the
live object instead, which is still free of writes when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitopsd.model import ObjectRef


@dataclass(frozen=True, slots=True)
class MemoEntry:
    digest: str
    uid: str
    generation: int | None
    resource_version: str

    @classmethod
    def of(cls, digest: str, live: Mapping[str, Any]) -> MemoEntry:
        meta = live.get("metadata") or {}
        generation = meta.get("generation")
        return cls(
            digest,
            str(meta.get("uid", "")),
            int(generation) if isinstance(generation, int) else None,
            str(meta.get("resourceVersion", "")),
        )

    def matches(self, digest: str, live: Mapping[str, Any]) -> bool:
        meta = live.get("metadata") or {}
        if digest != self.digest or not self.uid or str(meta.get("uid", "")) != self.uid:
            return False
        if self.generation is not None:
            return meta.get("generation") == self.generation
        return str(meta.get("resourceVersion", "")) == self.resource_version


@dataclass(slots=True)
class ApplyMemo:
    """One Environment's memo; the reconciler keeps one per Environment (by uid). ``identity`` is
    who applied (an impersonated account, or None for gitopsd): what one identity wrote proves
    nothing about what another may write, so a memo serves only the identity that filled it."""

    _entries: dict[ObjectRef, MemoEntry] = field(default_factory=dict)
    identity: str | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def unchanged(self, ref: ObjectRef, digest: str, live: Mapping[str, Any] | None) -> bool:
        """True when ``ref`` was applied with ``digest`` and ``live`` shows nobody touched it since."""
        entry = self._entries.get(ref)
        return entry is not None and live is not None and entry.matches(digest, live)

    def applied(self, ref: ObjectRef) -> str | None:
        """The digest last applied for ``ref``, if any."""
        entry = self._entries.get(ref)
        return entry.digest if entry is not None else None

    def remember(self, ref: ObjectRef, digest: str, live: Mapping[str, Any]) -> None:
        self._entries[ref] = MemoEntry.of(digest, live)

    def forget(self, ref: ObjectRef) -> None:
        self._entries.pop(ref, None)

    def keep_only(self, refs: Iterable[ObjectRef]) -> None:
        wanted = set(refs)
        for ref in [r for r in self._entries if r not in wanted]:
            del self._entries[ref]

    def clear(self) -> None:
        self._entries.clear()

    def partial(self) -> ApplyMemo:
        """The same entries for a sync of part of the bundle (one wave of several, see
        ``gitopsd.phases``): what it applies is remembered, what it leaves out is not forgotten."""
        return _PartialMemo(self._entries, self.identity)


@dataclass(slots=True)
class _PartialMemo(ApplyMemo):
    def keep_only(self, refs: Iterable[ObjectRef]) -> None:
        pass  # the other waves' objects are still in the bundle
