"""The daemon's running account of each Environment's records, and the order it writes them in.

Loaded once per Environment per process (one metadata-only list), then kept in step with
what the daemon writes, so a steady-state reconcile costs no request for records at all.

Write order (what makes a kill -9 at any instant safe)
------------------------------------------------------
For a new release N (a Git revision, or a rollback restoring release K)::

    1. a Pending record left over from a crash, or a current one still Pending, is marked
       Superseded (or RolledBack when a rollback replaces it) -- unless it is the very release
       being attempted again, which is reused as it is;
    2. record N is written, Pending (parts, then the head: created, never overwritten);
    3. status: release=N, Reconciling, inventory = the old one + every object of N (so whatever
       the apply manages to create is tracked and can be pruned later), and for a rollback the
       hold of the revision rolled away from;
    4. the apply (all-or-nothing dry-run, writes, prune);
    5. the health gate;
    6. record N gets its verdict (Healthy / Failed);
    7. status: Ready, the applied inventory, history;
    8. records beyond historyLimit are deleted.

With ``spec.verification`` the gate's steps G1-G5 follow (``gitopsd.gates.runner``): its
progress in status, its verdict in status then on record N, then ``onFailure``.

On restart nothing is taken on trust beyond these facts: a Pending record numbered above
``status.release`` (a crash between 2 and 3: nothing of it was applied) is reused if it is
what is wanted now (the same revision and digest, or the same rollback) and Superseded
otherwise; a current record still Pending (a crash between 3 and 6) is re-applied and gated
again if it is still wanted, else Superseded. Numbers come from the highest ever seen, so they
stay contiguous, and a head is created with a fixed name, so none is recorded twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from gitopsd.errors import GitopsdError
from gitopsd.model import Manifest
from gitopsd.releases import history
from gitopsd.releases.record import NAME_PATTERN, Owner, ReleaseError, ReleaseInfo, Result
from gitopsd.releases.store import RecordExists, ReleaseStore, Written

log = structlog.get_logger("gitopsd.releases")


def current_number(status: Mapping[str, Any]) -> int | None:
    value = status.get("release")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(slots=True)
class Ledger:
    owner: Owner
    store: ReleaseStore
    records: dict[int, ReleaseInfo] = field(default_factory=dict)
    invalid: dict[int, str] = field(default_factory=dict)  # number → why its record cannot be used
    bundles: dict[int, tuple[Manifest, ...]] = field(default_factory=dict)
    last_write: Written | None = None

    async def reload(self) -> None:
        listing = await self.store.scan(self.owner)
        self.records = dict(listing.records)
        self.invalid = {}
        for name, exc in listing.invalid.items():
            match = NAME_PATTERN.match(name)
            if match is not None:
                self.invalid[int(match["n"])] = exc.message

    # -- reading ---------------------------------------------------------------------------

    def current(self, status: Mapping[str, Any]) -> ReleaseInfo | None:
        number = current_number(status)
        return self.records.get(number) if number is not None else None

    def leftover(self, status: Mapping[str, Any]) -> ReleaseInfo | None:
        """The newest Pending record above ``status.release``: written, then a crash before status."""
        floor = current_number(status) or 0
        pending = [r for n, r in self.records.items() if n > floor and r.result is Result.PENDING]
        return max(pending, key=lambda r: r.number, default=None)

    def next_number(self, status: Mapping[str, Any]) -> int:
        return history.next_number(self.records, current_number(status), self.invalid)

    def history(self) -> list[dict[str, Any]]:
        return history.status_history(self.records)

    async def bundle(self, number: int) -> tuple[Manifest, ...]:
        """The objects of release ``number`` (from memory, else its record, verified)."""
        cached = self.bundles.get(number)
        if cached is not None:
            return cached
        if number in self.invalid:
            why = self.invalid[number]
            if not why.startswith(f"release {number} of "):
                why = f"release {number} of {self.owner.key} cannot be restored: {why}"
            raise ReleaseError(why, reason="ReleaseInvalid")
        release = await self.store.read(self.owner, number)
        self.records[number] = release.info
        self.bundles[number] = release.manifests
        return release.manifests

    # -- writing ---------------------------------------------------------------------------

    async def begin(
        self, status: Mapping[str, Any], wanted: ReleaseInfo, manifests: Sequence[Manifest], *, replaces: Result
    ) -> ReleaseInfo:
        """Steps 1-2: settle what ``wanted`` replaces, then record it (or reuse its leftover record).

        ``wanted.number`` is ignored: the next number is taken. ``replaces`` is the verdict given
        to a current release still Pending (Superseded by a sync, RolledBack by a rollback). When
        the number turns out taken (another writer, or our own write cut short by a preemption),
        the records are read again and the decision made once more, so a record cut short is
        reused rather than recorded twice.
        """
        try:
            return await self._begin(status, wanted, manifests, replaces)
        except RecordExists:
            await self.reload()
        try:
            return await self._begin(status, wanted, manifests, replaces)
        except RecordExists as exc:
            await self.reload()
            raise GitopsdError(str(exc), reason="Conflict", transient=True) from None

    async def _begin(
        self, status: Mapping[str, Any], wanted: ReleaseInfo, manifests: Sequence[Manifest], replaces: Result
    ) -> ReleaseInfo:
        now = wanted.applied_at
        leftover = self.leftover(status)
        if leftover is not None and _same_intent(leftover, wanted):
            self.bundles[leftover.number] = tuple(manifests)
            return leftover
        for number, info in sorted(self.records.items()):
            # Every stray Pending record above the current one: nothing of it was applied.
            if number > (current_number(status) or 0) and info.result is Result.PENDING:
                await self.settle(info, Result.SUPERSEDED, now, "replaced before it was applied")
        current = self.current(status)
        if current is not None and current.result is Result.PENDING:
            await self.settle(current, replaces, now, f"replaced by {wanted.note or wanted.revision}")
        info = replace(wanted, number=self.next_number(status), result=Result.PENDING)
        written = await self.store.write(self.owner, info, manifests)
        self.last_write = written
        self.records[written.info.number] = written.info
        self.bundles = {written.info.number: tuple(manifests)}
        return written.info

    async def settle(self, info: ReleaseInfo, result: Result, now: str, reason: str | None = None) -> ReleaseInfo:
        """Step 6 (and 1): record a verdict on ``info``'s head."""
        if info.result is result and info.reason == reason:
            return info
        new = info.with_result(result, now, reason)
        await self.store.mark(self.owner, new)
        self.records[new.number] = new
        return new

    async def verified(self, info: ReleaseInfo, verdict: str, message: str, enforced: bool) -> ReleaseInfo:
        """Record the verification gate's verdict on ``info`` (see ``gitopsd.gates``)."""
        info = self.records.get(info.number, info)
        new = replace(info, verification=verdict, verification_message=message, verification_enforced=enforced)
        if new == info:
            return info
        await self.store.mark_verification(self.owner, new)
        self.records[new.number] = new
        return new

    async def prune(self, limit: int, status: Mapping[str, Any]) -> list[int]:
        """Step 8: delete records beyond ``limit`` (never the current or the last healthy one)."""
        doomed = history.to_prune(self.records, limit, current_number(status))
        for info in doomed:
            await self.store.delete(self.owner, info)
            self.records.pop(info.number, None)
            self.bundles.pop(info.number, None)
        return [i.number for i in doomed]

    def keep_bundle_of(self, number: int) -> None:
        """Forget cached bundles other than ``number``'s (the current release's)."""
        self.bundles = {n: b for n, b in self.bundles.items() if n == number}


def _same_intent(leftover: ReleaseInfo, wanted: ReleaseInfo) -> bool:
    if leftover.is_rollback or wanted.is_rollback:
        return leftover.restored_from == wanted.restored_from and leftover.request == wanted.request
    return leftover.revision == wanted.revision and leftover.digest == wanted.digest


class Ledgers:
    """One ``Ledger`` per Environment (by uid), loaded on first use."""

    def __init__(self, store: ReleaseStore) -> None:
        self.store = store
        self._by_uid: dict[str, Ledger] = {}

    async def of(self, owner: Owner) -> Ledger:
        ledger = self._by_uid.get(owner.uid)
        if ledger is None:
            ledger = Ledger(owner, self.store)
            await ledger.reload()
            self._by_uid[owner.uid] = ledger
            if ledger.invalid:
                log.warning("release records that fail their checks", environment=owner.key, invalid=ledger.invalid)
        return ledger

    def forget(self, uid: str) -> None:
        self._by_uid.pop(uid, None)
