"""The verification rules, as pure functions of plain data: one sample, one metric, one gate.

One **sample** of a metric is one instant query:

- a scalar or exactly one series, in range → ``Pass``; out of range → ``Fail``;
- an empty result or NaN → ``NoData``, then counted as the metric's ``noData`` says: ``Skip``
  (not counted at all), ``Pass`` or ``Fail``;
- a value computed only from data older than the release (``stale``: the newest raw data point
  behind the query predates ``not_before``, or its age cannot be told) → ``NoData``, never
  counted whatever ``noData`` says: it is evidence about an earlier release (a Prometheus that
  was down answers with its last pre-outage value for up to its 5-minute lookback), and a
  monitoring outage must neither fail nor pass a release;
- an HTTP or PromQL error, or a timeout → ``Error``: not counted. Three in a row make the metric
  ``Errored``, which holds the gate; the next good sample takes it back to ``Running``;
- more than one series → a configuration error: the metric is ``Invalid`` at once (reported
  once, never sampled again), since no later sample can make such a query mean one number.

A **metric** is ``Failed`` as soon as ``failureThreshold`` of its samples failed (the Nth failing
sample fails it: ``failed >= failureThreshold``), and ``Passed`` once it has ``samples``
conclusive samples (passed + failed) without reaching that threshold.

The **gate**, checked after every round, in this order: any metric Failed → ``Failed``; any
Invalid → ``Inconclusive`` (InvalidQuery); all Passed → ``Passed``; the deadline reached →
``Inconclusive`` (DeadlineExceeded); any Errored → ``Held`` (still sampling, until the deadline);
else ``Running``. Failed is final even while other metrics are still sampling: one bad metric is
enough to judge a release.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gitopsd.gates.spec import MetricSpec, Range

ERRORS_IN_A_ROW = 3
KEPT_SAMPLES = 5


class SampleOutcome(enum.StrEnum):
    PASS = "Pass"  # noqa: S105 (an outcome, not a password)
    FAIL = "Fail"
    NO_DATA = "NoData"
    ERROR = "Error"


class MetricPhase(enum.StrEnum):
    RUNNING = "Running"
    PASSED = "Passed"
    FAILED = "Failed"
    ERRORED = "Errored"
    INVALID = "Invalid"


class GatePhase(enum.StrEnum):
    PENDING = "Pending"  # the release has not passed its health gate yet
    RUNNING = "Running"
    HELD = "Held"  # a metric is Errored: neither promote nor roll back, keep sampling
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"  # deadline, Errored at the deadline, or a bad query: Hold
    CANCELLED = "Cancelled"  # a newer release replaced it before the verdict

    @property
    def final(self) -> bool:
        return self in (GatePhase.PASSED, GatePhase.FAILED, GatePhase.INCONCLUSIVE, GatePhase.CANCELLED)


@dataclass(frozen=True, slots=True)
class Reading:
    """What one instant query gave: a value (None: empty result), an error, or too many series.

    ``stale`` says why a value is not evidence about the release (see ``staleness``); empty
    when it is, or when nobody asked.
    """

    value: float | None = None
    error: str | None = None
    series: int = 1
    labels: tuple[str, ...] = ()  # of the series, when there are several
    stale: str = ""

    @classmethod
    def of(cls, value: float) -> Reading:
        return cls(value=value)

    @classmethod
    def empty(cls) -> Reading:
        return cls(series=0)

    @classmethod
    def failed(cls, error: str) -> Reading:
        return cls(error=error, series=0)

    @classmethod
    def many(cls, labels: Sequence[str]) -> Reading:
        return cls(series=len(labels), labels=tuple(labels))


@dataclass(frozen=True, slots=True)
class Sample:
    at: str  # RFC 3339
    outcome: SampleOutcome
    value: float | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class MetricProgress:
    name: str
    query: str  # resolved
    phase: MetricPhase = MetricPhase.RUNNING
    passed: int = 0
    failed: int = 0
    no_data: int = 0
    errors: int = 0  # in a row
    samples: tuple[Sample, ...] = ()  # the newest KEPT_SAMPLES
    message: str = ""

    @property
    def conclusive(self) -> int:
        return self.passed + self.failed

    @property
    def sampling(self) -> bool:
        """Whether this metric is still asked (Errored ones are, to see Prometheus come back)."""
        return self.phase in (MetricPhase.RUNNING, MetricPhase.ERRORED)


@dataclass(frozen=True, slots=True)
class Verdict:
    phase: GatePhase
    reason: str
    message: str


def classify(reading: Reading, bounds: Range) -> tuple[SampleOutcome, str]:
    """One reading's outcome and why (the value against the range, the error...)."""
    if reading.error is not None:
        return SampleOutcome.ERROR, reading.error
    if reading.series > 1:
        return SampleOutcome.ERROR, _many(reading)
    if reading.value is None:
        return SampleOutcome.NO_DATA, "the query returned no data"
    if math.isnan(reading.value):
        return SampleOutcome.NO_DATA, "the query returned NaN"
    if reading.stale:
        return SampleOutcome.NO_DATA, f"{_num(reading.value)} is not evidence: {reading.stale}"
    if bounds.contains(reading.value):
        return SampleOutcome.PASS, f"{_num(reading.value)} is {bounds}"
    return SampleOutcome.FAIL, f"{_num(reading.value)} is not {bounds}"


def staleness(newest: float | None, not_before: datetime, evaluated_at: float | None = None) -> str:
    """Why a value is not evidence about what happened since ``not_before`` ("" when it is).

    ``newest`` is the newest raw data point behind the query (Unix seconds; None: none was
    found within Prometheus' lookback although the query gave a value, so it was computed from
    older data only). A ``newest`` equal to the evaluation time (to the millisecond) is the mark
    of a server whose ``timestamp()`` reports when it evaluated rather than when the data was
    scraped: then the age cannot be told, and the value does not count either.
    """
    since = _clock(not_before.timestamp())
    if newest is None:
        return f"no data point behind the query is newer than {since} (evidence starts then): older data only"
    if evaluated_at is not None and abs(newest - evaluated_at) < 0.0005:
        return "the age of the data behind the query cannot be told (timestamp() gave the evaluation time)"
    if newest < not_before.timestamp():
        return f"the newest data point behind the query is from {_clock(newest)}, before {since} (evidence starts then)"
    return ""


def record(progress: MetricProgress, reading: Reading, at: str, spec: MetricSpec, samples: int) -> MetricProgress:
    """Fold one reading into a metric's progress (a metric no longer sampling is returned as is)."""
    if not progress.sampling:
        return progress
    outcome, message = classify(reading, spec.range)
    value = reading.value if reading.error is None and reading.series <= 1 else None
    kept = (*progress.samples, Sample(at, outcome, value, message))[-KEPT_SAMPLES:]
    new = replace(progress, samples=kept)
    if reading.series > 1:
        return replace(new, phase=MetricPhase.INVALID, message=f"configuration error: {message}")
    if outcome is SampleOutcome.ERROR:
        errors = progress.errors + 1
        if errors >= ERRORS_IN_A_ROW:
            text = f"{errors} errors in a row, the last: {message}"
            return replace(new, errors=errors, phase=MetricPhase.ERRORED, message=text)
        return replace(new, errors=errors)
    counted = outcome
    if outcome is SampleOutcome.NO_DATA:
        new = replace(new, no_data=progress.no_data + 1)
        if reading.stale:
            return replace(new, errors=0, phase=MetricPhase.RUNNING, message=f"{message} (not counted)")
        if spec.no_data == "Skip":
            return replace(new, errors=0, phase=MetricPhase.RUNNING, message=f"{message} (skipped)")
        counted = SampleOutcome.PASS if spec.no_data == "Pass" else SampleOutcome.FAIL
    if counted is SampleOutcome.PASS:
        new = replace(new, passed=progress.passed + 1)
    else:
        new = replace(new, failed=progress.failed + 1)
    new = replace(new, errors=0, phase=MetricPhase.RUNNING, message=message)
    if new.failed >= spec.failure_threshold:
        allowed = f"{spec.failure_threshold} failing sample" + ("s" if spec.failure_threshold > 1 else "")
        return replace(new, phase=MetricPhase.FAILED, message=f"{allowed} reached: {message}")
    if new.conclusive >= samples:
        return replace(new, phase=MetricPhase.PASSED, message=f"{new.passed} of {new.conclusive} samples passed")
    return new


def verdict(metrics: Sequence[MetricProgress], samples: int, *, deadline_reached: bool) -> Verdict:
    """The gate's state after a round (see the module docstring for the order)."""
    failed = [m for m in metrics if m.phase is MetricPhase.FAILED]
    if failed:
        return Verdict(GatePhase.FAILED, "VerificationFailed", _join(failed))
    invalid = [m for m in metrics if m.phase is MetricPhase.INVALID]
    if invalid:
        return Verdict(GatePhase.INCONCLUSIVE, "InvalidQuery", _join(invalid) + "; holding: fix the query")
    if all(m.phase is MetricPhase.PASSED for m in metrics):
        return Verdict(GatePhase.PASSED, "VerificationPassed", _join(metrics))
    errored = [m for m in metrics if m.phase is MetricPhase.ERRORED]
    if deadline_reached:
        pending = [m for m in metrics if m.phase is not MetricPhase.PASSED]
        reason = "PrometheusErrors" if errored else "DeadlineExceeded"
        text = "deadline reached before every metric passed: " + _join(pending)
        return Verdict(GatePhase.INCONCLUSIVE, reason, text + "; holding: neither promoted nor rolled back")
    if errored:
        text = _join(errored) + "; holding (neither promoted nor rolled back) while sampling goes on until the deadline"
        return Verdict(GatePhase.HELD, "PrometheusErrors", text)
    return Verdict(GatePhase.RUNNING, "Verifying", "; ".join(summary(m, samples) for m in metrics))


def summary(progress: MetricProgress, samples: int) -> str:
    """``error-ratio: 3/5 passed`` or the metric's own message once it is decided."""
    if progress.phase is MetricPhase.RUNNING:
        return f"{progress.name}: {progress.passed}/{samples} passed" + (
            f", {progress.failed} failed" if progress.failed else ""
        )
    return f"{progress.name}: {progress.phase.value.lower()}, {progress.message}"


def _join(metrics: Sequence[MetricProgress]) -> str:
    return "; ".join(f"{m.name} {m.phase.value.lower()}" + (f" ({m.message})" if m.message else "") for m in metrics)


def _many(reading: Reading) -> str:
    shown = ", ".join(reading.labels[:3]) + (f" and {len(reading.labels) - 3} more" if len(reading.labels) > 3 else "")
    return (
        f"the query returned {reading.series} series ({shown}); it must give a scalar or exactly one series "
        "(aggregate it, e.g. with sum or max)"
    )


def _num(value: float) -> str:
    return f"{value:.6g}"


def _clock(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
