"""Unit tests for picking a PromQL query's vector selectors (gitopsd/gates/promql.py ``selectors``)."""

from __future__ import annotations

import pytest

from gitopsd.gates.promql import Selectors, freshness_query, selectors

RATIO = (
    'sum(rate(http_requests_total{namespace="shop",code=~"5.."}[2m]))'
    ' / sum(rate(http_requests_total{namespace="shop"}[2m]))'
)


@pytest.mark.parametrize(
    ("query", "current"),
    [
        (RATIO, ('http_requests_total{namespace="shop",code=~"5.."}', 'http_requests_total{namespace="shop"}')),
        ('histogram_quantile(0.99, sum by (le) (rate(req_bucket{job="a"}[5m])))', ('req_bucket{job="a"}',)),
        ("sum without (instance, pod) (x) > bool 0.5", ("x",)),
        ("SUM BY (job) (x) / ON (job) GROUP_LEFT (team) y", ("x", "y")),
        ("x / on (job) group_left y", ("x", "y")),
        ('{__name__="a", job="b"} * 2', ('{__name__="a", job="b"}',)),
        ('label_replace(up{job="j"}, "dst", "$1", "instance", "(.*):.*")', ('up{job="j"}',)),
        ('count_values("v", build_info) and topk(3, x)', ("build_info", "x")),
        ('job:rate5m:sum{a="}{[(", b=`x"y`}', ('job:rate5m:sum{a="}{[(", b=`x"y`}',)),
        ("x # a comment naming {y} and z\n + w", ("x", "w")),
        ("1e-3 * x + 0x1F - .5 - Inf + NaN", ("x",)),
        ("max_over_time(x[10m:30s]) unless absent(y)", ("x", "y")),
        ("x @ end() + y @ start()", ("x", "y")),
        ("x + x", ("x",)),  # once each
        ("vector(0) + time()", ()),
    ],
)
def test_current_selectors_are_found_as_written(query: str, current: tuple[str, ...]) -> None:
    """Metric names with their matchers, never functions, aggregations, keywords, label lists or strings."""
    assert selectors(query) == Selectors(current, ())


def test_offset_and_at_move_a_selector_back_in_time() -> None:
    """``offset d`` and ``@ t`` (after the range, in either order) make a selector historical."""
    found = selectors("rate(x[5m]) / rate(x[5m] offset 1d) + y @ 1700000000 offset -1m + z offset (1h)")
    assert found == Selectors(("x",), ("x", "y", "z"))


@pytest.mark.parametrize(
    "query",
    [
        "max_over_time(rate(x[1m])[10m:1m] offset 5m)",  # moves the whole subquery
        "rate(x[5m])[30m:1m] @ 1700000000",
        'x{a="b"',  # never closed
        "x ~ y",  # not PromQL
    ],
)
def test_what_it_cannot_follow_is_refused(query: str) -> None:
    """A subquery moved in time, or text it does not follow: ValueError (the caller counts nothing then)."""
    with pytest.raises(ValueError, match="character"):
        selectors(query)


def test_the_freshness_query_asks_the_newest_sample_of_each_selector() -> None:
    """timestamp() of each bare selector, tagged so ``or`` keeps all of them, and their max."""
    query = freshness_query(('a{b="c"}', "d"))
    assert query == (
        'max(label_replace(max(timestamp(a{b="c"})), "gitopsd_selector", "0", "", "")'
        ' or label_replace(max(timestamp(d)), "gitopsd_selector", "1", "", ""))'
    )
