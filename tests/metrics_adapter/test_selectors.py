"""Label selector parsing and matching: apimachinery's grammar, errors naming the bad part."""

from __future__ import annotations

import pytest

from metrics_adapter.selectors import SelectorError, parse


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier in (a,b)", {}, False),
        ("tier notin (a,b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("canary", {"canary": ""}, True),
        ("!canary", {"canary": ""}, False),
        ("!canary", {"app": "x"}, True),
        ("replicas>3", {"replicas": "4"}, True),
        ("replicas<3", {"replicas": "4"}, False),
        ("replicas>3", {"replicas": "many"}, False),
        ("app=web,tier in (a),!canary", {"app": "web", "tier": "a"}, True),
        ("example.com/team=ops", {"example.com/team": "ops"}, True),
        ("app=", {"app": ""}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_matching(text: str, labels: dict[str, str], expected: bool) -> None:
    """Each operator selects exactly what apimachinery's selector selects."""
    assert parse(text).matches(labels) is expected


def test_requirements_are_sorted_and_canonical() -> None:
    """Equal selectors written differently compare and print the same (used as cache keys)."""
    a = parse("tier in (b, a),app=web")
    b = parse("app=web, tier in (a,b,a)")
    assert a == b
    assert str(a) == "app=web,tier in (a,b)"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("app=web=x", "expected ',' or end of selector"),
        ("=web", "expected a label key"),
        ("tier in ()", "needs at least one value"),
        ("tier in (a b)", "expected ',' or ')'"),
        ("tier in (a", "unterminated"),
        ("tier notin a", "expected '('"),
        ("app=%zz", "invalid value '%zz'"),
        ("a" * 64 + "=x", "invalid label key"),
        ("Bad_Prefix!/x=y", "unknown operator"),
        ("bad..prefix/x=y", "invalid prefix"),
        ("n>three", "needs an integer value"),
        ("app,,tier", "expected a label key"),
        ("app ~ x", "unknown operator"),
        ("x=" + "a" * 64, "at most 63 characters"),
    ],
)
def test_malformed_selectors_name_the_problem(text: str, fragment: str) -> None:
    """A malformed selector raises SelectorError naming the parameter and the offending part."""
    with pytest.raises(SelectorError) as err:
        parse(text, where="metricLabelSelector")
    assert str(err.value).startswith("metricLabelSelector: ")
    assert fragment in str(err.value)


def test_huge_selector_is_refused_without_parsing() -> None:
    """An absurdly long selector is refused by length, not parsed."""
    with pytest.raises(SelectorError, match="at most 8192"):
        parse("a=b," * 5000)


def test_label_selector_form_matches_parse_to_label_selector() -> None:
    """The metav1.LabelSelector form follows ParseToLabelSelector: = in matchLabels, the rest as expressions."""
    sel = parse("app=web,env!=prod,tier in (a,b),x,!y")
    assert sel.to_label_selector() == {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "Exists"},
            {"key": "y", "operator": "DoesNotExist"},
        ],
    }
    assert parse("").to_label_selector() is None
