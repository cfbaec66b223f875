"""Unit tests for reading spec.verification and spec.promotion (gitopsd/gates/spec.py via gitopsd.spec)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.errors import SpecError
from gitopsd.spec import parse_spec

SOURCE = {"url": "https://git.example.com/shop.git", "branch": "main"}
METRIC = {"name": "error-ratio", "query": 'x{ns="{{.namespace}}"}[{{.window}}]', "window": "2m", "range": {"max": 0.01}}


def verification(**extra: Any) -> dict[str, Any]:
    return {"source": SOURCE, "verification": {"prometheus": {"url": "http://prom:9090"}, "metrics": [METRIC], **extra}}


def test_defaults() -> None:
    """startDelay 1m, interval 30s, samples 5, deadline 10m, onFailure Rollback, enforce, timeout 10s, noData Skip."""
    spec = parse_spec(verification()).verification
    assert spec is not None
    assert (spec.start_delay, spec.interval, spec.samples, spec.deadline) == (60, 30, 5, 600)
    assert (spec.on_failure, spec.enforce, spec.prometheus.timeout) == ("Rollback", True, 10)
    metric = spec.metrics[0]
    assert (metric.failure_threshold, metric.no_data, metric.window, metric.range.max) == (1, "Skip", "2m", 0.01)


def test_a_changed_gate_has_another_key() -> None:
    """The key identifies the definition: the same spec gives the same key, a changed bound another."""
    a = parse_spec(verification()).verification
    b = parse_spec(verification()).verification
    c = parse_spec(verification(metrics=[{**METRIC, "range": {"max": 0.02}}])).verification
    assert a is not None and b is not None and c is not None
    assert a.key == b.key != c.key


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"samples": 0}, "spec.verification.samples", "from 1 to 100"),
        ({"metrics": [{**METRIC, "range": {"min": 2, "max": 1}}]}, "spec.verification.metrics[0].range",
         "min 2 is greater than max 1"),
        ({"metrics": [{**METRIC, "range": {}}]}, "spec.verification.metrics[0].range", "give min, max or both"),
        ({"metrics": [{**METRIC, "range": {"max": "0.01"}}]}, "spec.verification.metrics[0].range.max", "a number"),
        ({"metrics": [{**METRIC, "query": 'x{a="{{.app}}"}'}]}, "spec.verification.metrics[0].query",
         "unknown template variable .app"),
        ({"metrics": [{**METRIC, "window": None}]}, "spec.verification.metrics[0].window", "uses {{.window}}"),
        ({"metrics": [METRIC, METRIC]}, "spec.verification.metrics", "twice"),
        ({"metrics": []}, "spec.verification.metrics", "at least one"),
        ({"samples": 2, "metrics": [{**METRIC, "failureThreshold": 3}]},
         "spec.verification.metrics[0].failureThreshold", "more than samples"),
        ({"deadline": "2m"}, "spec.verification.deadline", "leaves no time for 5 samples"),
        ({"interval": "500ms"}, "spec.verification.interval", "at least 1s"),
        ({"onFailure": "Retry"}, "spec.verification.onFailure", "Rollback or Hold"),
        ({"enforce": "no"}, "spec.verification.enforce", "true or false"),
        ({"metrics": [{**METRIC, "noData": "Maybe"}]}, "spec.verification.metrics[0].noData", "Skip, Pass or Fail"),
        ({"prometheus": {"url": "prom:9090"}}, "spec.verification.prometheus.url", "http://"),
        ({"prometheus": {"url": "http://p", "timeout": "0s"}}, "spec.verification.prometheus.timeout", "more than 0"),
        ({"metrics": [{**METRIC, "treshold": 2}]}, "spec.verification.metrics[0].treshold", "unknown field"),
    ],
)  # fmt: skip
def test_bad_verification_names_the_field(extra: dict[str, Any], field: str, words: str) -> None:
    """Each bad value is refused with the field named and the problem said."""
    spec = verification(**extra)
    for metric in spec["verification"]["metrics"]:
        for key in [k for k, v in metric.items() if v is None]:
            del metric[key]
    with pytest.raises(SpecError) as err:
        parse_spec(spec, name="prod")
    assert str(err.value).startswith(f"{field}:") and words in str(err.value), str(err.value)


def test_substitute_keys_are_template_variables() -> None:
    """{{.APP}} is known once spec.substitute has APP."""
    spec = {**verification(metrics=[{**METRIC, "query": 'x{app="{{.APP}}"}'}]), "substitute": {"APP": "web"}}
    assert parse_spec(spec).verification is not None


def test_promotion() -> None:
    """requireHealthyIn names, match commit by default or content; itself, twice, none or a bad match refused."""
    spec = parse_spec({"source": SOURCE, "promotion": {"requireHealthyIn": [{"name": "staging"}]}}, name="prod")
    assert spec.promotion is not None and spec.promotion.require_healthy_in == ("staging",)
    assert spec.promotion.match == "commit"
    for promotion, words in [
        ({"requireHealthyIn": [{"name": "prod"}]}, "names this Environment itself"),
        ({"requireHealthyIn": [{"name": "staging"}, {"name": "staging"}]}, "twice"),
        ({"requireHealthyIn": []}, "at least one"),
        ({"requireHealthyIn": [{"name": "staging"}], "match": "tree"}, "commit or content"),
        ({"requireHealthyIn": [{"name": "Staging"}]}, "name of an Environment"),
    ]:
        with pytest.raises(SpecError, match=r"^spec\.promotion") as err:
            parse_spec({"source": SOURCE, "promotion": promotion}, name="prod")
        assert words in str(err.value)
