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
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from gitopsd.errors import SpecError
from gitopsd.gates import templates

OnFailure = Literal["Rollback", "Hold"]
NoData = Literal["Skip", "Pass", "Fail"]
Match = Literal["commit", "content"]

MAX_METRICS = 20
MAX_SAMPLES = 100
MAX_SOURCES = 10
MAX_QUERY = 2048
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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
    from gitopsd.spec import parse_duration  # gitopsd.spec imports this module for the field

    if raw is None:
        return None
    where = "verification"
    spec = _object(raw, where, ("prometheus", "startDelay", "interval", "samples", "deadline", "onFailure",
                                "enforce", "metrics"))  # fmt: skip
    prometheus = _prometheus(spec.get("prometheus"))
    start_delay = parse_duration(spec.get("startDelay", "1m"), f"{where}.startDelay")
    interval = parse_duration(spec.get("interval", "30s"), f"{where}.interval")
    if interval < 1:
        raise SpecError(f"{where}.interval", f"must be at least 1s (got {spec.get('interval')!r})")
    samples = spec.get("samples", 5)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise SpecError(f"{where}.samples", f"must be a whole number from 1 to {MAX_SAMPLES} (got {samples!r})")
    deadline = parse_duration(spec.get("deadline", "10m"), f"{where}.deadline")
    needed = start_delay + (samples - 1) * interval
    if deadline <= needed:
        raise SpecError(
            f"{where}.deadline",
            f"{spec.get('deadline', '10m')} leaves no time for {samples} samples: startDelay + (samples - 1) x "
            f"interval is already {_seconds(needed)}; make it longer",
        )
    on_failure = spec.get("onFailure", "Rollback")
    if on_failure not in ("Rollback", "Hold"):
        raise SpecError(f"{where}.onFailure", f"must be Rollback or Hold (got {on_failure!r})")
    enforce = spec.get("enforce", True)
    if not isinstance(enforce, bool):
        raise SpecError(f"{where}.enforce", f"must be true or false (got {enforce!r})")
    metrics = spec.get("metrics")
    if not isinstance(metrics, list) or not metrics:
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
    spec = _object(raw, "promotion", ("requireHealthyIn", "match"))
    sources = spec.get("requireHealthyIn")
    if not isinstance(sources, list) or not sources:
        raise SpecError("promotion.requireHealthyIn", "needs at least one Environment ({name: staging})")
    if len(sources) > MAX_SOURCES:
        raise SpecError("promotion.requireHealthyIn", f"at most {MAX_SOURCES} Environments (got {len(sources)})")
    names: list[str] = []
    for i, item in enumerate(sources):
        where = f"promotion.requireHealthyIn[{i}]"
        entry = _object(item, where, ("name",))
        source = entry.get("name")
        if not isinstance(source, str) or not _NAME.match(source) or len(source) > 63:
            raise SpecError(f"{where}.name", f"must be the name of an Environment in this namespace (got {source!r})")
        if source == name:
            raise SpecError("promotion.requireHealthyIn", f"names this Environment itself ({name}): a cycle")
        if source in names:
            raise SpecError("promotion.requireHealthyIn", f"lists an Environment twice ({source!r})")
        names.append(source)
    match = spec.get("match", "commit")
    if match not in ("commit", "content"):
        raise SpecError("promotion.match", f"must be commit or content (got {match!r})")
    return PromotionSpec(tuple(names), cast(Match, match))


def _prometheus(raw: Any) -> PrometheusSpec:
    from gitopsd.spec import parse_duration

    where = "verification.prometheus"
    if raw is None:
        raise SpecError(where, "is required: {url: http://prometheus:9090}")
    spec = _object(raw, where, ("url", "secretRef", "timeout"))
    url = spec.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url.strip()):
        raise SpecError(f"{where}.url", f"must be an http:// or https:// URL of Prometheus (got {url!r})")
    secret_name: str | None = None
    if "secretRef" in spec:
        ref = _object(spec["secretRef"], f"{where}.secretRef", ("name",))
        secret_name = ref.get("name")
        if not isinstance(secret_name, str) or not secret_name:
            raise SpecError(f"{where}.secretRef.name", "is required when secretRef is given")
    timeout = parse_duration(spec.get("timeout", "10s"), f"{where}.timeout")
    if not 0 < timeout <= 300:
        raise SpecError(f"{where}.timeout", f"must be more than 0 and at most 5m (got {spec.get('timeout')!r})")
    return PrometheusSpec(url.strip().rstrip("/"), secret_name, timeout)


def _metric(raw: Any, index: int, samples: int, known: list[str]) -> MetricSpec:
    where = f"verification.metrics[{index}]"
    spec = _object(raw, where, ("name", "query", "window", "range", "failureThreshold", "noData"))
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 63:
        raise SpecError(f"{where}.name", f"must be lowercase letters, digits and '-' (got {name!r})")
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
    bounds = _object(spec.get("range"), f"{where}.range", ("min", "max"), required=True)
    low, high = (_bound(bounds.get(k), f"{where}.range.{k}") for k in ("min", "max"))
    if low is None and high is None:
        raise SpecError(f"{where}.range", "give min, max or both (inclusive)")
    if low is not None and high is not None and low > high:
        raise SpecError(f"{where}.range", f"min {_num(low)} is greater than max {_num(high)}")
    threshold = spec.get("failureThreshold", 1)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise SpecError(f"{where}.failureThreshold", f"must be a whole number of at least 1 (got {threshold!r})")
    if threshold > samples:
        raise SpecError(
            f"{where}.failureThreshold",
            f"{threshold} is more than samples ({samples}): the metric would pass before it could fail",
        )
    no_data = spec.get("noData", "Skip")
    if no_data not in ("Skip", "Pass", "Fail"):
        raise SpecError(f"{where}.noData", f"must be Skip, Pass or Fail (got {no_data!r})")
    return MetricSpec(name, query, Range(low, high), window, threshold, cast(NoData, no_data))


def _bound(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, f"must be a number (got {value!r}; leave it unquoted in YAML)")
    if math.isnan(value) or math.isinf(value):
        raise SpecError(field, f"must be a finite number (got {value!r}; leave the bound out for none)")
    return float(value)


def _object(raw: Any, field: str, allowed: tuple[str, ...], *, required: bool = False) -> Mapping[str, Any]:
    if raw is None and required:
        raise SpecError(field, "is required")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(field, f"must be an object (got {type(raw).__name__})")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}", f"is not a field here (known: {', '.join(allowed)})")
    return raw


def _num(value: float) -> str:
    return f"{value:g}"


def _seconds(value: float) -> str:
    from gitopsd.spec import format_duration

    return format_duration(value)
