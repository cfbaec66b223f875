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


def test_watch_failed_names_the_kinds_and_goes_when_they_are_watched() -> None:
    """WatchFailed lists the kinds and reasons; the same failures write nothing new; none removes it."""
    failures = {"Widget.example.com": "widgets.example.com in all namespaces is no longer served: 404"}
    st = status.watch_failed({"release": 1}, failures, 2, "t1")
    failed = status.condition(st, status.WATCH_FAILED)
    assert failed is not None and failed["status"] == "True" and failed["lastTransitionTime"] == "t1"
    assert failed["message"].startswith("Widget.example.com read with a GET each")
    assert "no longer served: 404" in failed["message"]
    assert status.watch_failed(st, failures, 2, "t2") == st
    assert status.condition(status.watch_failed(st, {}, 2, "t3"), status.WATCH_FAILED) is None
    assert status.watch_failed({"release": 1}, {}, 2, "t3") == {"release": 1}
