"""Unit tests for ``gitopsd history``'s table and JSON/YAML document (gitopsd/cli/history.py)."""

from __future__ import annotations

import yaml

from gitopsd.cli import history as cli
from gitopsd.model import Manifest
from gitopsd.releases.record import Release, ReleaseError, ReleaseInfo, Result

BUNDLE = (Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "c.yaml"),)


def _release(n: int, result: Result, **extra: object) -> Release:
    info = ReleaseInfo(n, f"v{n}@sha1:{n:040x}", "sha256:" + "ab" * 32, "2026-11-22T20:00:00Z", result, **extra)  # type: ignore[arg-type]
    return Release(info, BUNDLE)


def test_table_marks_the_current_release_and_lists_invalid_records() -> None:
    """Columns RELEASE … VERIFIED SIGNED BY NOTE; short digest; current and invalid named; SIGNED no when forged."""
    releases = [
        _release(1, Result.HEALTHY, verification="Passed"),
        _release(2, Result.HEALTHY, note="rollback to 1", applied_by="alice", verification="Failed",
                 verification_enforced=False),
    ]  # fmt: skip
    invalid = {
        "gitopsd.release.v1.prod.v3": ReleaseError("Secret x is corrupted: digest", reason="ReleaseCorrupted"),
        "gitopsd.release.v1.prod.v4": ReleaseError("release 4 of ops/prod is not signed", reason="ReleaseNotSigned"),
    }
    rows = cli.rows(2, releases, invalid)
    assert rows[0] == ["RELEASE", "REVISION", "DIGEST", "APPLIED AT", "RESULT", "VERIFIED", "SIGNED", "BY", "NOTE"]
    assert rows[1][:3] == ["1", f"v1@sha1:{1:040x}", "abababababab"] and rows[1][5:7] == ["Passed", "yes"]
    assert rows[2][4:] == ["Healthy", "Failed (dry run)", "yes", "alice", "current, rollback to 1"]
    assert rows[3][4:7] == ["Invalid", "", ""] and "gitopsd.release.v1.prod.v3: Secret x is corrupted" in rows[3][8]
    assert rows[4][4:7] == ["Invalid", "", "no"] and "v4: release 4 of ops/prod is not signed" in rows[4][8]
    unchecked = cli.rows(2, releases, {}, "you may not read the release signing key")
    assert [r[6] for r in unchecked[1:]] == ["?", "?"]


def test_document_has_every_fact_and_is_yaml_safe() -> None:
    """-o json|yaml: release, revision, digest, appliedAt, result, who, note, current, sizes, invalid."""
    releases = [_release(1, Result.ROLLED_BACK, reason="rolled back to 0"), _release(2, Result.PENDING)]
    doc = cli.document("ops/prod", 2, releases, {})
    assert doc["environment"] == "ops/prod" and doc["current"] == 2
    first, second = doc["releases"]
    assert first["result"] == "RolledBack" and first["reason"] == "rolled back to 0" and first["current"] is False
    assert second["current"] is True and set(second) >= {"release", "revision", "digest", "appliedAt", "appliedBy"}
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc


def test_document_carries_the_verification_verdict() -> None:
    """A verified release says so in -o json|yaml: result, whether enforced, and the gate's message."""
    doc = cli.document("ops/prod", 1, [_release(1, Result.HEALTHY, verification="Failed",
                                                  verification_message="error-ratio failed")], {})  # fmt: skip
    assert doc["releases"][0]["verification"] == {"result": "Failed", "enforced": True, "message": "error-ratio failed"}
    assert "verification" not in cli.document("ops/prod", 1, [_release(1, Result.HEALTHY)], {})["releases"][0]
