"""The metrics a config serves, computed from the series Prometheus has (one relist's snapshot).

For ``rules``: each series kept by its rule's filters is named, and attached to every
resource its labels map to; namespaces and nodes are never namespaced, other resources are
when the series carries the namespace label (prometheus-adapter's series registry). For
``externalRules``: each kept series gives one external metric name. When two rules produce the
same metric the later rule wins, as it does upstream. The snapshot is immutable; a relist
builds a new one and swaps it in, so readers never see half an update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from metrics_adapter.kube.mapper import ResourceInfo
from metrics_adapter.rules.config import Rule
from metrics_adapter.rules.resources import NAMESPACES, NODES, ResourceConverter

Series = Mapping[str, str]  # one series' labels, __name__ included


@dataclass(frozen=True, slots=True)
class CustomMetric:
    """A custom metric served for one resource."""

    resource: ResourceInfo
    name: str
    namespaced: bool
    series: str  # the Prometheus series name the rule found
    rule: Rule


@dataclass(frozen=True, slots=True)
class ExternalMetric:
    name: str
    series: str
    rule: Rule


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every metric discovered in one relist, keyed for request lookups."""

    custom: Mapping[tuple[str, str, str], CustomMetric] = field(default_factory=dict)  # (group, resource, metric)
    external: Mapping[str, ExternalMetric] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # why some series gave no metric (for logs and `check`)

    def custom_names(self) -> list[tuple[str, bool]]:
        """Discovery entries (``pods/metric``, namespaced), sorted so the list is stable."""
        out = {(f"{m.resource.group_resource}/{m.name}", m.namespaced) for m in self.custom.values()}
        return sorted(out)


def build(
    rules: Sequence[tuple[Rule, ResourceConverter]],
    external: Sequence[Rule],
    series_by_query: Mapping[str, Sequence[Series]],
) -> Snapshot:
    """Name every series of every rule (``series_by_query`` maps seriesQuery → its series)."""
    custom: dict[tuple[str, str, str], CustomMetric] = {}
    skipped: list[str] = []
    for rule, conv in rules:
        for s in series_by_query.get(rule.series_query, ()):
            name = s.get("__name__", "")
            if not rule.namer.keeps(name):
                continue
            metric = rule.namer.metric_name(name)
            if not metric:
                skipped.append(f"{rule.where}: series {name!r} gives an empty metric name")
                continue
            resources, namespaced = conv.resources_for_series(k for k in s if k != "__name__")
            for info in resources:
                key = (info.group, info.resource)
                ns = namespaced and key not in (NAMESPACES, NODES)
                custom[(info.group, info.resource, metric)] = CustomMetric(info, metric, ns, name, rule)
    ext: dict[str, ExternalMetric] = {}
    for rule in external:
        for s in series_by_query.get(rule.series_query, ()):
            name = s.get("__name__", "")
            if not rule.namer.keeps(name):
                continue
            metric = rule.namer.metric_name(name)
            if not metric:
                skipped.append(f"{rule.where}: series {name!r} gives an empty metric name")
                continue
            ext[metric] = ExternalMetric(metric, name, rule)
    return Snapshot(custom, ext, tuple(dict.fromkeys(skipped)))
