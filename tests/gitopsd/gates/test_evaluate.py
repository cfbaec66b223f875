"""Unit tests for the verification rules (gitopsd/gates/evaluate.py), on plain data."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gitopsd.gates.evaluate import (
    ERRORS_IN_A_ROW,
    KEPT_SAMPLES,
    GatePhase,
    MetricPhase,
    MetricProgress,
    Reading,
    SampleOutcome,
    classify,
    record,
    staleness,
    verdict,
)
from gitopsd.gates.spec import MetricSpec, NoData, Range

AT = "2026-11-22T20:00:00.000Z"


def spec(
    *, threshold: int = 1, no_data: NoData = "Skip", low: float | None = None, high: float | None = 0.01
) -> MetricSpec:
    return MetricSpec("error-ratio", "q", Range(low, high), None, threshold, no_data)


def fold(readings: list[Reading], metric: MetricSpec, samples: int = 3) -> MetricProgress:
    progress = MetricProgress("error-ratio", "q")
    for reading in readings:
        progress = record(progress, reading, AT, metric, samples)
    return progress


@pytest.mark.parametrize(
    ("reading", "outcome"),
    [
        (Reading.of(0.0), SampleOutcome.PASS),
        (Reading.of(0.01), SampleOutcome.PASS),  # max is inclusive
        (Reading.of(0.0100001), SampleOutcome.FAIL),
        (Reading.of(math.inf), SampleOutcome.FAIL),
        (Reading.empty(), SampleOutcome.NO_DATA),
        (Reading.of(math.nan), SampleOutcome.NO_DATA),
        (Reading.failed("HTTP 422"), SampleOutcome.ERROR),
        (Reading.many(['x{pod="a"}', 'x{pod="b"}']), SampleOutcome.ERROR),
    ],
)
def test_classify_a_reading(reading: Reading, outcome: SampleOutcome) -> None:
    """In range → Pass (bounds inclusive), out → Fail, empty or NaN → NoData, errors and many series → Error."""
    assert classify(reading, Range(None, 0.01))[0] is outcome


def test_min_bound_is_inclusive_and_both_bounds_apply() -> None:
    """range {min: 0.9, max: 1}: 0.9 and 1 pass, 0.89 and 1.01 fail."""
    bounds = Range(0.9, 1.0)
    assert [classify(Reading.of(v), bounds)[0] for v in (0.9, 1.0, 0.89, 1.01)] == [
        SampleOutcome.PASS, SampleOutcome.PASS, SampleOutcome.FAIL, SampleOutcome.FAIL,
    ]  # fmt: skip


def test_a_metric_passes_after_samples_conclusive_samples() -> None:
    """samples: 3 → Running after two passes, Passed at the third."""
    two = fold([Reading.of(0.001)] * 2, spec())
    assert (two.phase, two.passed) == (MetricPhase.RUNNING, 2)
    assert fold([Reading.of(0.001)] * 3, spec()).phase is MetricPhase.PASSED


def test_failure_threshold_is_reached_on_the_nth_failing_sample() -> None:
    """failureThreshold 2: one failure is tolerated, the second fails the metric (>=, no off-by-one)."""
    one = fold([Reading.of(0.5)], spec(threshold=2))
    assert (one.phase, one.failed) == (MetricPhase.RUNNING, 1)
    two = fold([Reading.of(0.5), Reading.of(0.001), Reading.of(0.5)], spec(threshold=2), samples=5)
    assert (two.phase, two.failed, two.passed) == (MetricPhase.FAILED, 2, 1)
    assert fold([Reading.of(0.5)], spec(threshold=1)).phase is MetricPhase.FAILED


def test_failures_below_the_threshold_still_count_as_conclusive() -> None:
    """failureThreshold 2, samples 3: pass, fail, pass → Passed (3 conclusive samples, 1 failure)."""
    progress = fold([Reading.of(0.001), Reading.of(0.5), Reading.of(0.001)], spec(threshold=2))
    assert (progress.phase, progress.passed, progress.failed) == (MetricPhase.PASSED, 2, 1)


@pytest.mark.parametrize(
    ("no_data", "phase", "passed", "failed"),
    [("Skip", MetricPhase.RUNNING, 0, 0), ("Pass", MetricPhase.PASSED, 3, 0), ("Fail", MetricPhase.FAILED, 0, 1)],
)
def test_no_data_is_handled_as_the_metric_says(no_data: NoData, phase: MetricPhase, passed: int, failed: int) -> None:
    """Skip: not counted (never passes on no data); Pass: counted as passing; Fail: counted as failing."""
    progress = fold([Reading.empty(), Reading.of(math.nan), Reading.empty()], spec(no_data=no_data))
    assert (progress.phase, progress.passed, progress.failed, progress.no_data) == (phase, passed, failed, 1 if
                                                                                     phase is MetricPhase.FAILED
                                                                                     else 3)  # fmt: skip


def test_errors_are_not_counted_and_three_in_a_row_make_the_metric_errored() -> None:
    """Two errors then a pass: counts untouched by errors; three in a row → Errored; a good sample resumes it."""
    progress = fold([Reading.failed("timeout"), Reading.failed("timeout"), Reading.of(0.001)], spec())
    assert (progress.phase, progress.passed, progress.errors) == (MetricPhase.RUNNING, 1, 0)
    errored = fold([Reading.of(0.001)] + [Reading.failed("connection refused")] * ERRORS_IN_A_ROW, spec())
    assert (errored.phase, errored.passed, errored.errors) == (MetricPhase.ERRORED, 1, ERRORS_IN_A_ROW)
    assert "connection refused" in errored.message
    back = record(errored, Reading.of(0.001), AT, spec(), 3)
    assert (back.phase, back.passed, back.errors) == (MetricPhase.RUNNING, 2, 0)


def test_more_than_one_series_is_a_configuration_error_at_once() -> None:
    """Two series: Invalid after the first sample, with the series named; never sampled again."""
    progress = fold([Reading.many(['x{pod="a"}', 'x{pod="b"}'])], spec())
    assert progress.phase is MetricPhase.INVALID
    assert 'x{pod="a"}' in progress.message and "2 series" in progress.message
    assert record(progress, Reading.of(0.001), AT, spec(), 3) == progress


def test_only_the_newest_samples_are_kept() -> None:
    """The progress keeps the newest KEPT_SAMPLES samples with value, outcome and why."""
    progress = fold([Reading.of(0.001 * i) for i in range(1, 9)], spec(high=1.0), samples=20)
    assert len(progress.samples) == KEPT_SAMPLES
    assert progress.samples[-1].value == pytest.approx(0.008)
    assert progress.samples[-1].outcome is SampleOutcome.PASS and "<= 1" in progress.samples[-1].message


def _metric(phase: MetricPhase, name: str = "m") -> MetricProgress:
    return MetricProgress(name, "q", phase=phase)


@pytest.mark.parametrize(
    ("phases", "deadline", "expected", "reason"),
    [
        ([MetricPhase.PASSED, MetricPhase.PASSED], False, GatePhase.PASSED, "VerificationPassed"),
        ([MetricPhase.PASSED, MetricPhase.RUNNING], False, GatePhase.RUNNING, "Verifying"),
        ([MetricPhase.FAILED, MetricPhase.RUNNING], False, GatePhase.FAILED, "VerificationFailed"),
        ([MetricPhase.FAILED, MetricPhase.ERRORED], False, GatePhase.FAILED, "VerificationFailed"),
        ([MetricPhase.INVALID, MetricPhase.PASSED], False, GatePhase.INCONCLUSIVE, "InvalidQuery"),
        ([MetricPhase.ERRORED, MetricPhase.PASSED], False, GatePhase.HELD, "PrometheusErrors"),
        ([MetricPhase.ERRORED, MetricPhase.PASSED], True, GatePhase.INCONCLUSIVE, "PrometheusErrors"),
        ([MetricPhase.RUNNING, MetricPhase.PASSED], True, GatePhase.INCONCLUSIVE, "DeadlineExceeded"),
        ([MetricPhase.PASSED, MetricPhase.PASSED], True, GatePhase.PASSED, "VerificationPassed"),
    ],
)
def test_the_gates_verdict(phases: list[MetricPhase], deadline: bool, expected: GatePhase, reason: str) -> None:
    """Failed beats everything; a bad query or the deadline hold; Errored holds while sampling goes on."""
    found = verdict([_metric(p, f"m{i}") for i, p in enumerate(phases)], 3, deadline_reached=deadline)
    assert (found.phase, found.reason) == (expected, reason)
    assert found.phase.final == (expected not in (GatePhase.RUNNING, GatePhase.HELD))


def test_a_held_or_inconclusive_verdict_says_nothing_is_rolled_back() -> None:
    """The message of a Hold names the metric and says it is neither promoted nor rolled back."""
    held = verdict([_metric(MetricPhase.ERRORED, "error-ratio")], 3, deadline_reached=False)
    assert "error-ratio" in held.message and "neither promoted nor rolled back" in held.message
    late = verdict([_metric(MetricPhase.RUNNING, "latency")], 3, deadline_reached=True)
    assert "latency" in late.message and "neither promoted nor rolled back" in late.message


NOT_BEFORE = datetime(2026, 11, 22, 20, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("newest", "evaluated_at", "stale"),
    [
        (NOT_BEFORE.timestamp() + 5, NOT_BEFORE.timestamp() + 7, False),
        (NOT_BEFORE.timestamp(), NOT_BEFORE.timestamp() + 7, False),  # a point at not_before counts
        (NOT_BEFORE.timestamp() - 0.001, NOT_BEFORE.timestamp() + 7, True),
        (NOT_BEFORE.timestamp() - 120, None, True),
        (None, NOT_BEFORE.timestamp() + 7, True),  # a value, but no data point within the lookback
        (NOT_BEFORE.timestamp() + 7, NOT_BEFORE.timestamp() + 7, True),  # timestamp() gave the evaluation time
    ],
)
def test_staleness_of_the_newest_data_point(newest: float | None, evaluated_at: float | None, stale: bool) -> None:
    """A value counts only when its newest raw data point is at or after not_before, and that age is known."""
    assert bool(staleness(newest, NOT_BEFORE, evaluated_at)) is stale


def test_staleness_names_both_instants() -> None:
    """The message gives the newest data point's time and the instant evidence starts."""
    text = staleness(NOT_BEFORE.timestamp() - 60, NOT_BEFORE)
    assert "2026-11-22T20:00:00.000Z" in text and "2026-11-22T20:01:00.000Z" in text


def test_a_stale_value_out_of_range_is_no_data_not_fail() -> None:
    """The pre-outage error ratio of the previous release (0.5, over max 0.01) is NoData, with why."""
    why = staleness(NOT_BEFORE.timestamp() - 60, NOT_BEFORE)
    outcome, message = classify(replace(Reading.of(0.5), stale=why), Range(None, 0.01))
    assert outcome is SampleOutcome.NO_DATA
    assert message.startswith("0.5 is not evidence") and why in message


@pytest.mark.parametrize("no_data", ["Skip", "Pass", "Fail"])
def test_stale_samples_are_never_counted_whatever_no_data_says(no_data: NoData) -> None:
    """noData: Fail or Pass applies to empty results, not to old data: stale samples count neither way."""
    stale = replace(Reading.of(0.5), stale="the newest data point behind the query is from before")
    progress = fold([stale] * 3, spec(no_data=no_data))
    assert (progress.phase, progress.passed, progress.failed, progress.no_data) == (MetricPhase.RUNNING, 0, 0, 3)
    assert progress.samples[-1].outcome is SampleOutcome.NO_DATA and progress.samples[-1].value == 0.5
    assert progress.message.endswith("(not counted)")


def test_fresh_samples_after_stale_ones_decide_the_metric() -> None:
    """Two stale samples then fresh ones: the fresh ones alone pass the metric (samples: 3)."""
    stale = replace(Reading.of(0.5), stale="old")
    progress = fold([stale, stale, Reading.of(0.001), Reading.of(0.002), Reading.of(0.0)], spec())
    assert (progress.phase, progress.passed, progress.failed, progress.no_data) == (MetricPhase.PASSED, 3, 0, 2)
