"""Unit tests for the verification verdict on release records and the rollback targets it changes."""

from __future__ import annotations

from dataclasses import replace

from gitopsd.model import Manifest
from gitopsd.releases import history, record
from gitopsd.releases.record import Owner, ReleaseInfo, Result

OWNER = Owner("ops", "prod", "uid-1")
BUNDLE = [Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "c.yaml")]


def _info(n: int, result: Result = Result.HEALTHY, verification: str | None = None, **extra: object) -> ReleaseInfo:
    return ReleaseInfo(n, f"main@sha1:{n:040x}", record.digest_of(BUNDLE), "2026-11-22T20:00:00Z", result,
                       verification=verification, **extra)  # type: ignore[arg-type]  # fmt: skip


def test_the_verdict_round_trips_through_the_head_secret() -> None:
    """verification, its message and a dry run's enforced=false are read back from the annotations."""
    info = _info(3, verification="Failed", verification_message="error-ratio failed", verification_enforced=False)
    _, secrets = record.encode(OWNER, info, BUNDLE)
    back = record.info_of(OWNER, secrets[-1])
    assert (back.verification, back.verification_message, back.verification_enforced) == (
        "Failed", "error-ratio failed", False,
    )  # fmt: skip
    assert not back.verified and not back.failed_verification  # a dry run's verdict does not count
    assert record.info_of(OWNER, record.encode(OWNER, _info(4), BUNDLE)[1][-1]).verification is None


def test_the_verdict_is_a_small_merge_patch_of_annotations() -> None:
    """Marking a verdict touches annotations only (never the bundle)."""
    patch = record.verification_patch(_info(3, verification="Passed", verification_message="ok"))
    assert patch == {"metadata": {"annotations": {
        "release.gitopsd.dev/verification": "Passed",
        "release.gitopsd.dev/verification-message": "ok",
        "release.gitopsd.dev/verification-enforced": "true",
    }}}  # fmt: skip


def test_a_verification_failure_restores_the_last_verified_release() -> None:
    """last_verified: the newest verified below; else the newest recorded before verification existed."""
    records = {
        1: _info(1),  # before spec.verification was set
        2: _info(2, verification="Passed"),
        3: _info(3, verification="Inconclusive"),
        4: _info(4, verification="Failed"),
    }
    assert history.last_verified(records, before=4).number == 2  # type: ignore[union-attr]
    assert history.last_verified({1: records[1], 4: records[4]}, before=4).number == 1  # type: ignore[union-attr]
    assert history.last_verified({3: records[3], 4: records[4]}, before=4) is None
    dry_run_pass = replace(records[2], verification_enforced=False)
    assert history.last_verified({2: dry_run_pass, 4: records[4]}, before=4) is None


def test_a_release_that_failed_verification_is_not_a_default_rollback_target() -> None:
    """last_healthy skips an enforced verification failure; a dry-run failure still counts."""
    records = {1: _info(1, verification="Passed"), 2: _info(2, verification="Failed"), 3: _info(3)}
    assert history.last_healthy(records, before=3).number == 1  # type: ignore[union-attr]
    records[2] = replace(records[2], verification_enforced=False)
    assert history.last_healthy(records, before=3).number == 2  # type: ignore[union-attr]


def test_history_limit_keeps_the_last_verified_release() -> None:
    """Pruning never removes the release a verification failure would restore."""
    records = {1: _info(1, verification="Passed")} | {n: _info(n, verification="Inconclusive") for n in range(2, 6)}
    doomed = {r.number for r in history.to_prune(records, limit=2, current=5)}
    assert 1 not in doomed and doomed == {2, 3, 4}
