"""Unit tests for the rules over records (gitopsd/releases/history.py) and request annotations."""

from __future__ import annotations

import json

import pytest

from gitopsd.releases import history, requests
from gitopsd.releases.record import ReleaseError, ReleaseInfo, Result

H, F, R, S, P = Result.HEALTHY, Result.FAILED, Result.ROLLED_BACK, Result.SUPERSEDED, Result.PENDING


def _records(*results: Result, first: int = 1) -> dict[int, ReleaseInfo]:
    return {
        n: ReleaseInfo(n, f"v{n}@sha1:{n:040x}", f"sha256:{n:064x}", "2026-11-22T20:00:00Z", r)
        for n, r in enumerate(results, first)
    }


def test_numbers_continue_from_the_highest_ever_seen() -> None:
    """Next number: above every record, status.release and invalid records alike."""
    assert history.next_number({}, None) == 1
    assert history.next_number(_records(H, F), 2) == 3
    assert history.next_number(_records(H, F), 5) == 6  # records removed by hand: never reuse a number
    assert history.next_number(_records(H), 1, invalid=[9]) == 10


def test_default_target_is_the_last_healthy_release_before_the_current() -> None:
    """Skips Failed, RolledBack and Superseded releases, and the current one."""
    records = _records(H, H, F, R, S, H)
    assert history.target(records, 6, None, environment="ops/prod", limit=10).number == 2
    assert history.target(records, 5, None, environment="ops/prod", limit=10).number == 2
    with pytest.raises(ReleaseError, match="no Healthy release before release 1") as err:
        history.target(_records(H), 1, None, environment="ops/prod", limit=10)
    assert err.value.reason == "NoHealthyRelease"
    with pytest.raises(ReleaseError, match="ops/prod has no releases recorded yet"):
        history.target({}, None, 3, environment="ops/prod", limit=10)


@pytest.mark.parametrize(
    ("to", "reason", "words"),
    [
        (9, "ReleaseNotFound", "release 9 of ops/prod does not exist (the newest is 6)"),
        (1, "ReleasePruned", "release 1 of ops/prod was removed by historyLimit (3): the oldest kept is 4"),
        (6, "ReleaseIsCurrent", "release 6 is the current release of ops/prod"),
        (0, "ReleaseNotFound", "release numbers start at 1"),
        (7, "ReleaseInvalid", "release 7 of ops/prod cannot be restored: forged"),
    ],
)
def test_bad_targets_are_refused_with_one_line(to: int, reason: str, words: str) -> None:
    """A release that does not exist, was pruned, is current, or whose record is invalid."""
    records = _records(H, F, H, first=4)
    with pytest.raises(ReleaseError) as err:
        history.target(records, 6, to, environment="ops/prod", limit=3, invalid={7: "forged"} if to == 7 else None)
    assert err.value.reason == reason and words in str(err.value), str(err.value)


def test_explicit_target_may_be_any_kept_release() -> None:
    """--to names a Failed or RolledBack release too (a person's choice)."""
    records = _records(H, F, R)
    assert history.target(records, 3, 2, environment="ops/prod", limit=10).number == 2


def test_history_limit_spares_the_current_and_the_last_healthy_release() -> None:
    """Oldest removed first; never the current one, never the last Healthy one, never a Pending one."""
    records = _records(H, F, F, F, F)  # 1 is the only Healthy release
    assert [r.number for r in history.to_prune(records, 2, 5)] == [2, 3, 4]
    assert [r.number for r in history.to_prune(_records(H, H, H, H), 2, 4)] == [1, 2]
    assert history.to_prune(_records(H, H), 10, 2) == []
    assert [r.number for r in history.to_prune(_records(P, H, H), 1, 3)] == [2]


def test_status_history_is_the_newest_five_newest_first() -> None:
    """status.history holds {release, revision, digest, appliedAt, result} of the newest five."""
    entries = history.status_history(_records(H, F, R, S, H, P))
    assert [e["release"] for e in entries] == [6, 5, 4, 3, 2]
    assert set(entries[0]) == {"release", "revision", "digest", "appliedAt", "result"}
    assert entries[0]["result"] == "Pending"


def test_requests_round_trip_and_pending_is_by_token() -> None:
    """A request is pending until status names its token as handled; garbage is a refusal, not ignored."""
    req = requests.Request("t-1", "alice", 3, "2026-11-22T20:00:00Z")
    annotations = {requests.ROLLBACK: req.to_annotation()}
    assert requests.pending_rollback(annotations, {}) == req
    assert requests.pending_rollback(annotations, {"lastHandledRollback": {"token": "t-1"}}) is None
    bad = requests.parse({requests.ROLLBACK: "roll it back please"}, requests.ROLLBACK)
    assert bad is not None and bad.error and "not a request written by gitopsd" in bad.error
    wrong_to = requests.parse({requests.ROLLBACK: json.dumps({"token": "x", "to": "3"})}, requests.ROLLBACK)
    assert wrong_to is not None and wrong_to.error and "'to' must be a release number" in wrong_to.error


def test_a_freeze_override_counts_only_for_its_own_sync_request() -> None:
    """--force-freeze rides with one requestedAt token; an older or a different request is not forced."""
    annotations = {requests.FORCE_FREEZE: requests.Request("t-9", "bob").to_annotation()}
    forced = requests.forced_freeze(annotations, "t-9")
    assert forced is not None and forced.by == "bob"
    assert requests.forced_freeze(annotations, "t-10") is None
    assert requests.forced_freeze(annotations, None) is None
