"""Summing object verdicts into one report that names the first object not ready."""

from __future__ import annotations

from gitopsd.health import Health, ObjectHealth, Overall, Status, summarize, worst
from gitopsd.model import ObjectRef

WEB = ObjectRef("apps", "Deployment", "dev", "web")
JOB = ObjectRef("batch", "Job", "dev", "migrate")
CM = ObjectRef("", "ConfigMap", "dev", "cfg")


def test_all_current_is_healthy() -> None:
    """Every object Current: Healthy, and the message counts them."""
    report = summarize(
        [ObjectHealth(CM, Health.current("ok")), ObjectHealth(WEB, Health.current("ok"))], deadline_passed=False
    )
    assert report.healthy and report.overall is Overall.HEALTHY and report.message == "2 objects healthy"
    assert report.first_not_ready is None


def test_failed_wins_and_is_named_first() -> None:
    """A Failed object makes the report Failed and is named before merely progressing ones."""
    report = summarize(
        [
            ObjectHealth(WEB, Health.progressing("LessAvailable", "1 of 3 replicas available")),
            ObjectHealth(JOB, Health.failed("JobFailed", "job failed (DeadlineExceeded)")),
        ],
        deadline_passed=False,
    )
    assert report.overall is Overall.FAILED
    assert report.message == "Job.batch/dev/migrate: job failed (DeadlineExceeded) (and 1 more not ready)"


def test_deadline_passed_is_timed_out_with_the_object_named() -> None:
    """Past the deadline with objects in progress: TimedOut, naming the object and what is missing."""
    report = summarize(
        [ObjectHealth(WEB, Health.progressing("LessAvailable", "0 of 3 replicas available"))],
        deadline_passed=True,
        elapsed=75,
    )
    assert report.overall is Overall.TIMED_OUT and not report.healthy
    assert report.message == "timed out after 1m15s: Deployment.apps/dev/web: 0 of 3 replicas available"
    one_look = summarize(
        [ObjectHealth(WEB, Health.progressing("LessReady", "0 of 3 replicas ready"))], deadline_passed=True
    )
    assert one_look.message == "not ready: Deployment.apps/dev/web: 0 of 3 replicas ready"


def test_within_deadline_is_progressing() -> None:
    """Not all ready yet and time left: Progressing (what progress callbacks see)."""
    report = summarize([ObjectHealth(WEB, Health(Status.NOT_FOUND, "not found"))], deadline_passed=False)
    assert report.overall is Overall.PROGRESSING and report.message == "Deployment.apps/dev/web: not found"


def test_status_rank() -> None:
    """Failed ranks worst, Current best."""
    assert worst([Status.CURRENT, Status.IN_PROGRESS, Status.FAILED, Status.NOT_FOUND]) is Status.FAILED
    assert worst([]) is Status.CURRENT
