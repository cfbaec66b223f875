"""Unit tests for a gate's progress in status.verification (gitopsd/gates/progress.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from gitopsd.gates.evaluate import GatePhase, MetricPhase, MetricProgress, Sample, SampleOutcome
from gitopsd.gates.progress import from_status, parse_time, stamp, start

NOW = datetime(2026, 11, 22, 20, 0, 0, 250000, tzinfo=UTC)


def test_a_gate_survives_the_round_trip_through_status() -> None:
    """Everything a restarted daemon needs comes back: counts, samples (NaN included), times, flags."""
    metric = MetricProgress(
        "error-ratio", 'x{ns="shop"}', MetricPhase.ERRORED, passed=2, failed=1, no_data=1, errors=3,
        samples=(Sample(stamp(NOW), SampleOutcome.NO_DATA, math.nan, "NaN"), Sample(stamp(NOW), SampleOutcome.ERROR)),
        message="3 errors in a row",
    )  # fmt: skip
    gate = start(4, "main@sha1:abc", (metric,), now=NOW, start_delay=60, deadline=600, enforce=False,
                 on_failure="Hold", spec_key="k", request="t-1", requested_by="alice")  # fmt: skip
    back = from_status(gate.to_status())
    assert back is not None
    assert back.to_status() == gate.to_status()
    assert back.metrics[0].samples[0].value is not None and math.isnan(back.metrics[0].samples[0].value)
    assert (back.release, back.enforce, back.on_failure, back.request) == (4, False, "Hold", "t-1")


def test_times_decide_when_the_next_step_is_due() -> None:
    """The first sample is due startDelay after the start; the deadline is counted from the start too."""
    gate = start(1, "r", (), now=NOW, start_delay=5, deadline=30, enforce=True, on_failure="Rollback", spec_key="k")
    assert not gate.due(NOW + timedelta(seconds=4)) and gate.due(NOW + timedelta(seconds=5))
    assert gate.wait(NOW) == 5.0
    assert not gate.deadline_reached(NOW + timedelta(seconds=29)) and gate.deadline_reached(NOW + timedelta(seconds=30))
    assert gate.phase is GatePhase.RUNNING and gate.running
    assert parse_time(gate.started_at) == NOW.replace(microsecond=250000)


def test_status_that_is_not_a_gate_reads_as_none() -> None:
    """Absent, foreign or unknown-phase status is not taken for a gate."""
    assert from_status(None) is None
    assert from_status({"release": "7"}) is None
    assert from_status({"release": 7, "phase": "Dancing"}) is None
