"""A gate's progress as it is kept in ``status.verification``, so a restarted daemon picks it up.

Everything a gate needs to continue is here: which release it judges, the counts of every
metric, when the next sample is due and the deadline (wall-clock RFC 3339, as they must survive
a restart), whether the verdict is already on the release record (``recorded``) and whether
its consequence was carried out (``acted``). The newest samples of each metric are kept for
people (``kubectl get env -o yaml``, ``gitopsd verify``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gitopsd.gates.evaluate import GatePhase, MetricPhase, MetricProgress, Sample, SampleOutcome


def stamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds (gates sample every few seconds in tests)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class GateProgress:
    release: int
    revision: str
    phase: GatePhase
    reason: str = ""
    message: str = ""
    enforce: bool = True
    on_failure: str = "Rollback"
    started_at: str = ""
    deadline: str = ""
    next_sample_at: str = ""
    finished_at: str = ""
    spec_key: str = ""
    recorded: bool = False  # the verdict is on the release record
    acted: bool = False  # onFailure carried out (or decided against)
    action: str = ""  # what was done about the verdict, for people
    request: str | None = None  # the `gitopsd verify` request this run answers
    requested_by: str | None = None
    metrics: tuple[MetricProgress, ...] = field(default_factory=tuple)

    @property
    def running(self) -> bool:
        return self.phase in (GatePhase.RUNNING, GatePhase.HELD)

    def due(self, now: datetime) -> bool:
        due = parse_time(self.next_sample_at)
        return due is None or now >= due

    def deadline_reached(self, now: datetime) -> bool:
        end = parse_time(self.deadline)
        return end is not None and now >= end

    def wait(self, now: datetime) -> float:
        """Seconds until this gate needs the reconciler again (a sample or the deadline)."""
        moments = [t for t in (parse_time(self.next_sample_at), parse_time(self.deadline)) if t is not None]
        if not moments:
            return 0.0
        return max((min(moments) - now).total_seconds(), 0.0)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "release": self.release,
            "revision": self.revision,
            "phase": str(self.phase),
            "reason": self.reason,
            "message": self.message,
            "enforce": self.enforce,
            "onFailure": self.on_failure,
            "startedAt": self.started_at,
            "deadline": self.deadline,
            "specKey": self.spec_key,
            "recorded": self.recorded,
            "acted": self.acted,
            "metrics": [_metric_status(m) for m in self.metrics],
        }
        optional = {
            "nextSampleAt": self.next_sample_at,
            "finishedAt": self.finished_at,
            "action": self.action,
            "request": self.request,
            "requestedBy": self.requested_by,
        }
        out.update({k: v for k, v in optional.items() if v})
        return out


def start(
    release: int,
    revision: str,
    metrics: tuple[MetricProgress, ...],
    *,
    now: datetime,
    start_delay: float,
    deadline: float,
    enforce: bool,
    on_failure: str,
    spec_key: str,
    request: str | None = None,
    requested_by: str | None = None,
) -> GateProgress:
    return GateProgress(
        release=release,
        revision=revision,
        phase=GatePhase.RUNNING,
        reason="Verifying",
        message=f"first sample in {start_delay:g}s",
        enforce=enforce,
        on_failure=on_failure,
        started_at=stamp(now),
        deadline=stamp(now + timedelta(seconds=deadline)),
        next_sample_at=stamp(now + timedelta(seconds=start_delay)),
        spec_key=spec_key,
        request=request,
        requested_by=requested_by,
        metrics=metrics,
    )


def from_status(raw: Any) -> GateProgress | None:
    """Read ``status.verification`` back (None when absent or not ours to read)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("release"), int):
        return None
    try:
        phase = GatePhase(str(raw.get("phase")))
    except ValueError:
        return None
    return GateProgress(
        release=int(raw["release"]),
        revision=str(raw.get("revision") or ""),
        phase=phase,
        reason=str(raw.get("reason") or ""),
        message=str(raw.get("message") or ""),
        enforce=bool(raw.get("enforce", True)),
        on_failure=str(raw.get("onFailure") or "Rollback"),
        started_at=str(raw.get("startedAt") or ""),
        deadline=str(raw.get("deadline") or ""),
        next_sample_at=str(raw.get("nextSampleAt") or ""),
        finished_at=str(raw.get("finishedAt") or ""),
        spec_key=str(raw.get("specKey") or ""),
        recorded=bool(raw.get("recorded", False)),
        acted=bool(raw.get("acted", False)),
        action=str(raw.get("action") or ""),
        request=raw.get("request") if isinstance(raw.get("request"), str) else None,
        requested_by=raw.get("requestedBy") if isinstance(raw.get("requestedBy"), str) else None,
        metrics=tuple(m for m in (_metric_of(item) for item in raw.get("metrics") or []) if m is not None),
    )


def with_metrics(gate: GateProgress, metrics: tuple[MetricProgress, ...]) -> GateProgress:
    return replace(gate, metrics=metrics)


def _metric_status(m: MetricProgress) -> dict[str, Any]:
    return {
        "name": m.name,
        "query": m.query,
        "phase": str(m.phase),
        "passed": m.passed,
        "failed": m.failed,
        "noData": m.no_data,
        "errors": m.errors,
        "message": m.message,
        "samples": [
            {"time": s.at, "outcome": str(s.outcome), "message": s.message}
            | ({"value": _value_text(s.value)} if s.value is not None else {})
            for s in m.samples
        ],
    }


def _metric_of(raw: Any) -> MetricProgress | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        return None
    try:
        phase = MetricPhase(str(raw.get("phase")))
    except ValueError:
        return None
    samples: list[Sample] = []
    for item in raw.get("samples") or []:
        if not isinstance(item, Mapping):
            continue
        try:
            outcome = SampleOutcome(str(item.get("outcome")))
        except ValueError:
            continue
        value = item.get("value")
        samples.append(
            Sample(str(item.get("time") or ""), outcome, float(value) if value is not None else None,
                   str(item.get("message") or ""))
        )  # fmt: skip
    return MetricProgress(
        name=raw["name"],
        query=str(raw.get("query") or ""),
        phase=phase,
        passed=int(raw.get("passed") or 0),
        failed=int(raw.get("failed") or 0),
        no_data=int(raw.get("noData") or 0),
        errors=int(raw.get("errors") or 0),
        samples=tuple(samples),
        message=str(raw.get("message") or ""),
    )


def _value_text(value: float) -> str:
    # A string, not a JSON number: Prometheus values include NaN and ±Inf, which JSON cannot hold.
    return format(value, ".10g")
