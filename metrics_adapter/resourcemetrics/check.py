"""``metrics-adapter check`` for ``resourceRules``: what metrics.k8s.io would serve, and one query each.

Runs the cpu and memory queries for the pods of every namespace and for the nodes, and checks
their series carry the labels the config promises (the resource label, and ``containerLabel``
for pods): the mistake that otherwise shows only when ``kubectl top`` fails.
"""

from __future__ import annotations

from collections.abc import Callable

from metrics_adapter.errors import UpstreamError
from metrics_adapter.kube.mapper import Mapper
from metrics_adapter.resourcemetrics import wire
from metrics_adapter.resourcemetrics.config import ResourceRules
from metrics_adapter.resourcemetrics.provider import NODES, PODS, RuleError, build_query, index_samples
from metrics_adapter.rules.resources import ResourceConverter
from metrics_adapter.sources.prometheus import PrometheusClient


async def report(
    rules: ResourceRules | None,
    prom: PrometheusClient | None,
    mapper: Mapper,
    out: Callable[[str], None],
    not_checked: str | None,
) -> int:
    """Print the resource metrics lines; return the number of failures."""
    if rules is None:
        return 0
    out(f"{wire.API_VERSION} would serve pods and nodes (cpu, memory; window {wire.go_duration(rules.window_seconds)})")
    if prom is None:
        return 0
    failures = 0
    for rule in (rules.cpu, rules.memory):
        conv = ResourceConverter(rule.resources, lambda: mapper, rule.where)
        for info, field in ((PODS, "containerQuery"), (NODES, "nodeQuery")):
            if not_checked is not None:
                out(f"{rule.where}.{field}: not checked ({not_checked})")
                continue
            try:
                query, label = build_query(rule, conv, info, None)
                found = index_samples(rule, info, label, await prom.query(query))
                out(f"{rule.where}.{field}: query ok ({len(found)} {info.resource}): {' '.join(query.split())}")
            except (RuleError, UpstreamError) as exc:
                out(f"FAIL {rule.where}.{field}: {exc}")
                failures += 1
    return failures
