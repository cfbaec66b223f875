"""``spec.verification`` and ``spec.promotion`` read into values, every error naming its field.

::

    verification:
      prometheus: {url: http://prometheus:9090, secretRef: {name: prom-auth}, timeout: 10s}
      startDelay: 1m        # after the health gate passed
      interval: 30s
      samples: 5            # conclusive samples each metric needs to pass
      deadline: 10m         # from the health gate passing; reached → Hold
      onFailure: Rollback   # or Hold
      enforce: true         # false: record results only (dry run)
      metrics:
      - name: error-ratio
        query: sum(rate(...{namespace="{{.namespace}}"}[{{.window}}])) / ...
        window: 2m
        range: {max: 0.01}  # min and/or max, both inclusive
        failureThreshold: 1 # the metric fails on its Nth failing sample
        noData: Skip        # Skip | Pass | Fail
    promotion:
      requireHealthyIn: [{name: staging}]
      match: commit         # or content: the same rendered digest

The CRD refuses most of this at admission (manifests/gitopsd/crd.yaml); this parser repeats
those checks and adds what a schema cannot say (template variables, a deadline too short for
the samples asked), so the daemon never runs a gate it half understands.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from gitopsd.errors import SpecError
from gitopsd.fields import SPEC as FIELDS
from gitopsd.fields import format_duration
from gitopsd.gates import templates

OnFailure = Literal["Rollback", "Hold"]
NoData = Literal["Skip", "Pass", "Fail"]
Match = Literal["commit", "content"]

MAX_METRICS = 20
MAX_SAMPLES = 100
MAX_SOURCES = 10
MAX_QUERY = 2048
_PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True, slots=True)
class Range:
    """Where a metric's value must lie; both bounds inclusive, either may be open."""

    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return f"[{_num(self.min)}, {_num(self.max)}]"
        if self.max is not None:
            return f"<= {_num(self.max)}"
        return f">= {_num(self.min or 0.0)}"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    query: str  # the template; resolved per release
    range: Range
    window: str | None = None
    failure_threshold: int = 1
    no_data: NoData = "Skip"


@dataclass(frozen=True, slots=True)
class PrometheusSpec:
    url: str
    secret_name: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class VerificationSpec:
    prometheus: PrometheusSpec
    metrics: tuple[MetricSpec, ...]
    start_delay: float = 60.0
    interval: float = 30.0
    samples: int = 5
    deadline: float = 600.0
    on_failure: OnFailure = "Rollback"
    enforce: bool = True
    #: Identifies the gate's definition: a running gate whose spec changed starts over.
    key: str = ""


@dataclass(frozen=True, slots=True)
class PromotionSpec:
    require_healthy_in: tuple[str, ...]
    match: Match = "commit"


def parse_verification(raw: Any, substitute: Mapping[str, str]) -> VerificationSpec | None:
    """Read ``spec.verification`` (None when absent); ``substitute`` keys are template variables too."""
    if raw is None:
        return None
    where = "verification"
    spec = FIELDS.mapping(raw, where, allowed=("prometheus", "startDelay", "interval", "samples", "deadline",
                                               "onFailure", "enforce", "metrics"))  # fmt: skip
    prometheus = _prometheus(spec.get("prometheus"))
    start_delay = FIELDS.duration(spec.get("startDelay", "1m"), f"{where}.startDelay")
    interval = FIELDS.duration(spec.get("interval", "30s"), f"{where}.interval", at_least=1)
    samples = FIELDS.whole_number(spec.get("samples", 5), f"{where}.samples", low=1, high=MAX_SAMPLES)
    deadline = FIELDS.duration(spec.get("deadline", "10m"), f"{where}.deadline")
    needed = start_delay + (samples - 1) * interval
    if deadline <= needed:
        raise SpecError(
            f"{where}.deadline",
            f"{spec.get('deadline', '10m')} leaves no time for {samples} samples: startDelay + (samples - 1) x "
            f"interval is already {format_duration(needed)}; make it longer",
        )
    on_failure = FIELDS.choice(spec.get("onFailure", "Rollback"), f"{where}.onFailure", ("Rollback", "Hold"))
    enforce = FIELDS.boolean(spec.get("enforce", True), f"{where}.enforce")
    metrics = FIELDS.items(spec.get("metrics"), f"{where}.metrics")
    if not metrics:
        raise SpecError(f"{where}.metrics", "needs at least one metric (name, query, range)")
    if len(metrics) > MAX_METRICS:
        raise SpecError(f"{where}.metrics", f"at most {MAX_METRICS} metrics (got {len(metrics)})")
    known = [*templates.BUILTINS, *substitute]
    parsed = tuple(_metric(item, i, samples, known) for i, item in enumerate(metrics))
    names = [m.name for m in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SpecError(
                f"{where}.metrics", f"lists a metric name twice ({name!r}: metrics[{names.index(name)}] and [{i}])"
            )
    key = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return VerificationSpec(
        prometheus=prometheus,
        metrics=parsed,
        start_delay=start_delay,
        interval=interval,
        samples=samples,
        deadline=deadline,
        on_failure=cast(OnFailure, on_failure),
        enforce=enforce,
        key=key,
    )


def parse_promotion(raw: Any, *, name: str | None = None) -> PromotionSpec | None:
    """Read ``spec.promotion``; ``name`` (the Environment's own) refuses a requirement on itself."""
    if raw is None:
        return None
    spec = FIELDS.mapping(raw, "promotion", allowed=("requireHealthyIn", "match"))
    sources = FIELDS.items(spec.get("requireHealthyIn"), "promotion.requireHealthyIn")
    if not sources:
        raise SpecError("promotion.requireHealthyIn", "needs at least one Environment ({name: staging})")
    if len(sources) > MAX_SOURCES:
        raise SpecError("promotion.requireHealthyIn", f"at most {MAX_SOURCES} Environments (got {len(sources)})")
    names: list[str] = []
    for i, item in enumerate(sources):
        where = f"promotion.requireHealthyIn[{i}]"
        entry = FIELDS.mapping(item, where, required=True, allowed=("name",))
        source = FIELDS.dns_label(entry.get("name"), f"{where}.name", what="the name of an Environment")
        if source == name:
            raise SpecError("promotion.requireHealthyIn", f"names this Environment itself ({name}): a cycle")
        if source in names:
            raise SpecError("promotion.requireHealthyIn", f"lists an Environment twice ({source!r})")
        names.append(source)
    match = FIELDS.choice(spec.get("match", "commit"), "promotion.match", ("commit", "content"))
    return PromotionSpec(tuple(names), cast(Match, match))


def _prometheus(raw: Any) -> PrometheusSpec:
    where = "verification.prometheus"
    if raw is None:
        raise SpecError(where, "is required: {url: http://prometheus:9090}")
    spec = FIELDS.mapping(raw, where, allowed=("url", "secretRef", "timeout"))
    url = spec.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url.strip()):
        raise SpecError(f"{where}.url", f"must be an http:// or https:// URL of Prometheus (got {url!r})")
    secret_name: str | None = None
    if "secretRef" in spec:
        ref = FIELDS.mapping(spec["secretRef"], f"{where}.secretRef", required=True, allowed=("name",))
        secret_name = FIELDS.string(ref.get("name"), f"{where}.secretRef.name")
    timeout = FIELDS.duration(spec.get("timeout", "10s"), f"{where}.timeout", more_than=0, at_most=300)
    return PrometheusSpec(url.strip().rstrip("/"), secret_name, timeout)


def _metric(raw: Any, index: int, samples: int, known: list[str]) -> MetricSpec:
    where = f"verification.metrics[{index}]"
    spec = FIELDS.mapping(raw, where, required=True,
                          allowed=("name", "query", "window", "range", "failureThreshold", "noData"))  # fmt: skip
    name = FIELDS.dns_label(spec.get("name"), f"{where}.name", what="a metric name")
    query = spec.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SpecError(f"{where}.query", "is required: a PromQL instant query giving one number")
    if len(query) > MAX_QUERY:
        raise SpecError(f"{where}.query", f"is {len(query)} characters, more than {MAX_QUERY}")
    window = spec.get("window")
    if window is not None and (not isinstance(window, str) or not _PROM_DURATION.match(window)):
        raise SpecError(f"{where}.window", f"must be a PromQL duration such as 30s, 2m or 1h (got {window!r})")
    try:
        used = templates.check(query, known)
    except templates.TemplateError as exc:
        raise SpecError(f"{where}.query", str(exc)) from None
    if "window" in used and window is None:
        raise SpecError(f"{where}.window", "is required: the query uses {{.window}}")
    bounds = FIELDS.mapping(spec.get("range"), f"{where}.range", required=True, allowed=("min", "max"))
    low, high = (
        None if bounds.get(k) is None else FIELDS.number(bounds[k], f"{where}.range.{k}") for k in ("min", "max")
    )
    if low is None and high is None:
        raise SpecError(f"{where}.range", "give min, max or both (inclusive)")
    if low is not None and high is not None and low > high:
        raise SpecError(f"{where}.range", f"min {_num(low)} is greater than max {_num(high)}")
    threshold = FIELDS.whole_number(spec.get("failureThreshold", 1), f"{where}.failureThreshold", low=1)
    if threshold > samples:
        raise SpecError(
            f"{where}.failureThreshold",
            f"{threshold} is more than samples ({samples}): the metric would pass before it could fail",
        )
    no_data = FIELDS.choice(spec.get("noData", "Skip"), f"{where}.noData", ("Skip", "Pass", "Fail"))
    return MetricSpec(name, query, Range(low, high), window, threshold, cast(NoData, no_data))


def _num(value: float) -> str:
    return f"{value:g}"
