"""Decisions over an Environment's records: the next number, a rollback's target, what to prune.

Pure functions of the records (``number → ReleaseInfo``), so the rules are tested with plain
data and the daemon and the CLI answer alike:

- numbers go up by one from the highest ever seen (a record, or ``status.release``), so they stay
  contiguous whatever crashes in between;
- the default rollback target is the newest ``Healthy`` release before the current one that did
  not fail an enforced verification gate; a verification failure restores the newest release
  that passed one (``last_verified``);
- a record that fails its checks (its signature, its bounds: ``invalid``) is never a target:
  named with ``--to``, it is refused by name; the default target skips it;
- ``historyLimit`` keeps that many records, removing the oldest first, but never the current
  release nor the last healthy one (they may be needed to roll back to).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gitopsd.releases.record import ReleaseError, ReleaseInfo, Result

Records = Mapping[int, ReleaseInfo]
HISTORY_IN_STATUS = 5


def next_number(records: Records, current: int | None, invalid: Iterable[int] = ()) -> int:
    return max([0, current or 0, *records, *invalid]) + 1


def last_healthy(records: Records, before: int | None = None) -> ReleaseInfo | None:
    """The newest Healthy release numbered below ``before`` (any, when None), never one that failed verification."""
    healthy = [
        r
        for n, r in records.items()
        if r.result is Result.HEALTHY and not r.failed_verification and (before is None or n < before)
    ]
    return max(healthy, key=lambda r: r.number, default=None)


def last_verified(records: Records, before: int | None = None) -> ReleaseInfo | None:
    """The newest Healthy release below ``before`` that passed verification.

    Failing that, the newest Healthy one recorded before verification was turned on (no verdict
    at all): the release an Environment ran before it was given a gate is as good as it gets.
    """
    eligible = [r for n, r in records.items() if r.result is Result.HEALTHY and (before is None or n < before)]
    verified = [r for r in eligible if r.verified]
    if verified:
        return max(verified, key=lambda r: r.number)
    return max((r for r in eligible if r.verification is None), key=lambda r: r.number, default=None)


def target(
    records: Records,
    current: int | None,
    to: int | None,
    *,
    environment: str,
    limit: int,
    invalid: Mapping[int, str] | None = None,
) -> ReleaseInfo:
    """The release a rollback restores: ``to``, or the last Healthy one before ``current``.

    Raises ``ReleaseError`` with one line saying why there is none.
    """
    invalid = invalid or {}
    if not records and not invalid:
        raise ReleaseError(
            f"{environment} has no releases recorded yet: nothing to roll back to", reason="ReleaseNotFound"
        )
    if to is None:
        found = last_healthy(records, before=current)
        if found is None:
            raise ReleaseError(
                f"{environment} has no Healthy release before release {current or 0} to roll back to "
                f"(see 'gitopsd history {environment.rpartition('/')[2]}'; name one with --to)",
                reason="NoHealthyRelease",
            )
        return found
    if to < 1:
        raise ReleaseError(f"release numbers start at 1 (got {to})", reason="ReleaseNotFound")
    if to in invalid:
        why = invalid[to]  # a message that names the release already is not prefixed again
        if not why.startswith(f"release {to} of "):
            why = f"release {to} of {environment} cannot be restored: {why}"
        raise ReleaseError(why, reason="ReleaseInvalid")
    if to == current:
        raise ReleaseError(
            f"release {to} is the current release of {environment}: nothing to roll back "
            "('gitopsd sync' re-applies it)",
            reason="ReleaseIsCurrent",
        )
    if to in records:
        return records[to]
    newest = max([*records, current or 0, *invalid], default=0)
    oldest = min(records, default=None)
    if to > newest:
        raise ReleaseError(
            f"release {to} of {environment} does not exist (the newest is {newest})"
            if newest
            else f"{environment} has no releases yet",
            reason="ReleaseNotFound",
        )
    if oldest is not None and to < oldest:
        raise ReleaseError(
            f"release {to} of {environment} was removed by historyLimit ({limit}): the oldest kept is {oldest}",
            reason="ReleasePruned",
        )
    message = f"release {to} of {environment} does not exist (its record was deleted)"
    raise ReleaseError(message, reason="ReleaseNotFound")


def to_prune(records: Records, limit: int, current: int | None) -> list[ReleaseInfo]:
    """Records beyond ``limit``, oldest first, sparing the current and the last healthy release."""
    keep = {current, getattr(last_healthy(records), "number", None), getattr(last_verified(records), "number", None)}
    surplus = len(records) - limit
    out: list[ReleaseInfo] = []
    for number in sorted(records):
        if surplus <= 0:
            break
        if number in keep or records[number].result is Result.PENDING:
            continue
        out.append(records[number])
        surplus -= 1
    return out


def status_history(records: Records, count: int = HISTORY_IN_STATUS) -> list[dict[str, object]]:
    """``status.history``: the newest ``count`` records, newest first."""
    return [records[n].summary() for n in sorted(records, reverse=True)[:count]]
