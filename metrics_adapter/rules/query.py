"""A rule's ``metricsQuery`` filled in for one request: the PromQL that is sent upstream.

Label matchers are built as prometheus-adapter builds them, so a config's queries keep their
meaning: the metric label selector's requirements first (sorted by key; ``=`` → ``=``, ``!=`` →
``!=``, ``in`` → ``=~"a|b"``, ``notin`` → ``!~``, exists → ``!=""``, ``!key`` → ``=""``;
``gt``/``lt`` cannot be expressed and are a 400), then the namespace, then the resource.

One difference, on purpose: for custom metrics the resource matcher covers every object of the
resource in the namespace (``pod=~".+"``) instead of the requested names. Every HPA asking about
pods in a namespace then shares one upstream query per refresh, and the object names are picked
from its result; the values are the same because the query groups by that label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from metrics_adapter.rules.config import Rule
from metrics_adapter.selectors import Selector

ALL_OBJECTS = ".+"


class QueryError(ValueError):
    """The request cannot be expressed as a query (e.g. a ``gt`` metric selector)."""


def _quote(value: str) -> str:
    # Go's %q: a double-quoted string with Go escapes, which PromQL accepts.
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Matchers:
    exprs: list[str]
    values: dict[str, str]


def selector_matchers(selector: Selector, where: str = "metricLabelSelector") -> Matchers:
    exprs: list[str] = []
    values: dict[str, str] = {}
    for r in selector.requirements:
        if r.op in ("gt", "lt"):
            raise QueryError(f"{where}: '{r}' ({r.op}) cannot be turned into a Prometheus label matcher")
        vals = list(r.values)
        if r.op in ("exists", "!"):
            op, target = ("!=" if r.op == "exists" else "="), ""
        elif len(vals) == 1:
            op = {"=": "=", "==": "=", "!=": "!=", "in": "=~", "notin": "!~"}[r.op]
            target = vals[0]
        else:
            op = "=~" if r.op in ("=", "==", "in") else "!~"
            target = "|".join(vals)
        exprs.append(f"{r.key}{op}{_quote(target)}")
        values[r.key] = "|".join(vals)
    return Matchers(exprs, values)


def _render(rule: Rule, series: str, m: Matchers, group_by: list[str]) -> str:
    query = rule.metrics_query.render(
        {
            "Series": series,
            "LabelMatchers": ",".join(m.exprs),
            "LabelValuesByName": m.values,
            "GroupBy": ",".join(group_by),
            "GroupBySlice": group_by,
        }
    )
    if not query.strip():
        raise QueryError(f"{rule.where}.metricsQuery produced an empty query")
    return query


def custom_query(
    rule: Rule,
    series: str,
    *,
    resource_label: str,
    namespace_label: str | None,
    namespace: str | None,
    metric_selector: Selector,
    names: list[str] | None = None,
) -> str:
    """The query for a custom metric; ``names=None`` covers all objects (see the module docstring)."""
    m = selector_matchers(metric_selector)
    if namespace is not None:
        if namespace_label is None:
            raise QueryError(f"{rule.where}: the rule has no label for namespaces")
        m.exprs.append(f"{namespace_label}={_quote(namespace)}")
        m.values[namespace_label] = namespace
    if names is None:
        m.exprs.append(f"{resource_label}=~{_quote(ALL_OBJECTS)}")
        m.values[resource_label] = ALL_OBJECTS
    else:
        target = "|".join(names)
        m.exprs.append(f"{resource_label}{'=~' if len(names) > 1 else '='}{_quote(target)}")
        m.values[resource_label] = target
    return _render(rule, series, m, [resource_label])


def external_query(
    rule: Rule, series: str, *, namespace_label: str | None, namespace: str | None, metric_selector: Selector
) -> str:
    """The query for an external metric: selector matchers, plus the namespace unless ``namespaced: false``."""
    m = selector_matchers(metric_selector, "labelSelector")
    if rule.resources.namespaced and namespace:
        if namespace_label is None:
            raise QueryError(
                f"{rule.where}: the rule has no label for namespaces; map one in resources.overrides "
                "or set resources.namespaced: false"
            )
        m.exprs.append(f"{namespace_label}={_quote(namespace)}")
        m.values[namespace_label] = namespace
    return _render(rule, series, m, [])
