"""Unit tests for conditions and status transitions (gitopsd/status.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gitopsd import status


def test_success_after_progress_clears_reconciling_and_keeps_transition_time() -> None:
    """Progressing → succeeded leaves only Ready=True; a second success keeps lastTransitionTime."""
    st = status.progressing({}, 1, "main@sha1:a", "Applying", "t1")
    assert status.is_true(st, status.RECONCILING)
    st = status.succeeded(st, 1, "main@sha1:a", {"entries": []}, "Applied revision: main@sha1:a", "t2")
    assert [c["type"] for c in st["conditions"]] == ["Ready"]
    assert status.condition(st, "Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "ReconciliationSucceeded",
        "message": "Applied revision: main@sha1:a",
        "observedGeneration": 1,
        "lastTransitionTime": "t2",
    }
    again = status.succeeded(st, 1, "main@sha1:a", {"entries": []}, "Applied revision: main@sha1:a", "t3")
    assert again == st  # identical: nothing to write


def test_stalled_failure_sets_stalled_not_reconciling() -> None:
    """A failure a person must fix sets Ready=False and Stalled=True."""
    st = status.failed({}, 2, "GitAuthenticationFailed", "bad password", "t", stalled=True)
    assert status.condition(st, "Ready")["status"] == "False"  # type: ignore[index]
    assert status.is_true(st, status.STALLED) and not status.is_true(st, status.RECONCILING)
    assert st["observedGeneration"] == 2


def test_transient_failure_retries_and_clears_stalled() -> None:
    """A transient failure after a stalled one is Reconciling (retrying), not Stalled."""
    st = status.failed({}, 1, "InvalidSpec", "x", "t", stalled=True)
    st = status.failed(st, 2, "GitUnreachable", "connection refused", "t2", stalled=False)
    assert status.is_true(st, status.RECONCILING) and status.condition(st, status.STALLED) is None
    ready = status.condition(st, "Ready")
    assert ready is not None and ready["lastTransitionTime"] == "t"  # still False since t


def test_handled_records_the_request_token() -> None:
    """lastHandledReconcileAt carries the sync request that was handled."""
    assert status.handled({}, "2026-01-01T00:00:00.1Z")["lastHandledReconcileAt"] == "2026-01-01T00:00:00.1Z"
    assert "lastHandledReconcileAt" not in status.handled({}, None)


def test_environment_status_declares_exactly_the_crds_status_properties() -> None:
    """One list of status keys: the CRD's schema and EnvironmentStatus agree, and others are refused."""
    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifests/gitopsd/crd.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(schema) == status.KEYS
    assert status.checked({"release": 3}) == {"release": 3}
    with pytest.raises(ValueError, match="lastHandledRolback"):
        status.checked({"lastHandledRolback": {}})
