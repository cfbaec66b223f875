"""Answer metrics.k8s.io requests from ``resourceRules`` queries, through the shared value cache.

Queries are built as prometheus-adapter's resource provider builds them (the namespace
matcher, the resource label, ``GroupBy`` = resource label plus ``containerLabel`` for pods),
with one difference shared with the custom metrics API (``rules/query.py``): the resource
matcher covers every pod of the namespace (``pod=~".+"``) and every node, not the names
asked for. Every ``kubectl top`` and HPA asking about one namespace then shares one cached
query per resource and refresh; the objects are picked from the result.

The pods and nodes listed are the cluster's (the object index, with their labels), so
``labelSelector`` and ``fieldSelector`` select as metrics-server does. As in prometheus-adapter,
a pod or node without both a cpu and a memory series is left out of lists and is a 404 by
name; a container with only one of them gets 0 for the other. A query whose series lack the
container or resource label is a configuration error, answered 500 naming the query, rather
than served as containers without names.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from metrics_adapter.bodies import Bodies
from metrics_adapter.cache import Served, Source, ValueCache
from metrics_adapter.errors import AdapterError, NotFound
from metrics_adapter.kube.mapper import Mapper, ResourceInfo, UnknownResource
from metrics_adapter.kube.objects import ObjectIndex
from metrics_adapter.resourcemetrics import wire
from metrics_adapter.resourcemetrics.config import ResourceRule, ResourceRules
from metrics_adapter.resourcemetrics.fields import FieldSelector
from metrics_adapter.rules.resources import NoLabel, ResourceConverter
from metrics_adapter.selectors import EVERYTHING, Selector
from metrics_adapter.sources.prometheus import PrometheusClient, QueryResult

_MEMO_LIMIT = 4096
PODS = ResourceInfo("", "v1", "pods", "pod", "Pod", True)
NODES = ResourceInfo("", "v1", "nodes", "node", "Node", False)


class RuleError(AdapterError):
    """A resourceRules query answers series without the labels the config promises (status 500)."""


@dataclass(frozen=True, slots=True)
class _Part:
    rule: ResourceRule
    converter: ResourceConverter


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def build_query(
    rule: ResourceRule, conv: ResourceConverter, info: ResourceInfo, namespace: str | None
) -> tuple[str, str]:
    """(PromQL, resource label) for every object of ``info`` (pods: in ``namespace``)."""
    try:
        label = conv.label_for(info)
        exprs, values = [], {}
        if namespace is not None:
            ns_label = conv.namespace_label()
            if ns_label is None:
                raise NoLabel(f"{rule.where}.resources: no label for namespaces")
            exprs.append(f"{ns_label}={_quote(namespace)}")
            values[ns_label] = namespace
    except NoLabel as exc:
        raise RuleError(str(exc)) from exc
    exprs.append(f"{label}=~{_quote('.+')}")
    values[label] = ".+"
    pods = info.resource == "pods"
    group_by = [label, rule.container_label] if pods else [label]
    template = rule.container_query if pods else rule.node_query
    query = template.render(
        {
            "Series": "",
            "LabelMatchers": ",".join(exprs),
            "LabelValuesByName": values,
            "GroupBy": ",".join(group_by),
            "GroupBySlice": group_by,
        }
    )
    if not query.strip():
        field = "containerQuery" if pods else "nodeQuery"
        raise RuleError(f"{rule.where}.{field} produced an empty query")
    return query, label


def index_samples(
    rule: ResourceRule, info: ResourceInfo, label: str, result: QueryResult
) -> dict[str, dict[str, tuple[float, float]]]:
    """Object name → container ("" for nodes) → (value, timestamp); RuleError if labels are missing."""
    pods = info.resource == "pods"
    field = "containerQuery" if pods else "nodeQuery"
    if result.kind != "vector":
        raise RuleError(f"{rule.where}.{field} returned a {result.kind}; it must return a vector by {label!r}")
    by_object: dict[str, dict[str, tuple[float, float]]] = {}
    for s in result.samples:
        obj = s.labels.get(label)
        if not obj:
            raise RuleError(
                f"{rule.where}.{field} returned a series without the {label!r} label "
                f"({dict(s.labels)}); group the query by <<.GroupBy>>"
            )
        container = ""
        if pods:
            container = s.labels.get(rule.container_label, "")
            if not container:
                raise RuleError(
                    f"{rule.where}.{field} returned a series without the container label "
                    f"{rule.container_label!r} (containerLabel) for {label} {obj!r}: group the query by "
                    '<<.GroupBy>> and filter out series without a container (container!="")'
                )
        value = s.value if s.value > 0 else 0.0  # negative (a counter reset) as 0, as prometheus-adapter
        by_object.setdefault(obj, {})[container] = (value, s.timestamp)
    return by_object


class ResourceMetrics:
    """The metrics.k8s.io/v1beta1 provider: pods and nodes."""

    def __init__(
        self,
        rules: ResourceRules,
        cache: ValueCache,
        *,
        prom: PrometheusClient,
        prom_source: Source,
        objects: ObjectIndex,
        mapper: Callable[[], Mapper],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.cache = cache
        self.prom = prom
        self.prom_source = prom_source
        self.objects = objects
        self.mapper = mapper
        self.clock = clock
        self._parts = {
            r.name: _Part(r, ResourceConverter(r.resources, mapper, r.where)) for r in (rules.cpu, rules.memory)
        }
        self._memo = Bodies(_MEMO_LIMIT)

    def validate(self) -> None:
        """Resolve overrides and the labels for pods, namespaces and nodes now (start-up errors)."""
        for part in self._parts.values():
            try:
                part.converter.validate()
                for info in (PODS, NODES):
                    part.converter.label_for(info)
                if part.converter.namespace_label() is None:
                    raise NoLabel(f"{part.rule.where}.resources: no label for namespaces (no override, no template)")
            except (UnknownResource, NoLabel) as exc:
                raise AdapterError(str(exc)) from exc

    def _info(self, plural: str, fallback: ResourceInfo) -> ResourceInfo:
        try:
            return self.mapper().resource_for("", plural)
        except UnknownResource:
            return fallback

    # -- queries ----------------------------------------------------------------------------

    def _query(self, part: _Part, info: ResourceInfo, namespace: str | None) -> tuple[str, str]:
        return build_query(part.rule, part.converter, info, namespace)

    async def _fetch(self, query: str) -> Served[QueryResult]:
        prom = self.prom
        return await self.cache.get(("prometheus", query), self.prom_source, lambda: prom.query(query))

    async def _both(self, info: ResourceInfo, namespace: str | None) -> tuple[Hashable, dict[str, Any]]:
        """Per resource (cpu, memory): object name → container → (value, timestamp)."""
        planned = [(name, *self._query(part, info, namespace)) for name, part in self._parts.items()]
        served = await asyncio.gather(*(self._fetch(q) for _, q, _ in planned))
        out: dict[str, Any] = {}
        for (name, _, label), s in zip(planned, served, strict=True):
            out[name] = index_samples(self._parts[name].rule, info, label, s.value)
        return tuple((q, s.version) for (_, q, _), s in zip(planned, served, strict=True)), out

    # -- pods -------------------------------------------------------------------------------

    async def pods(self, namespace: str | None, name: str | None, labels: Selector, fields: FieldSelector) -> bytes:
        """``/namespaces/NS/pods[/NAME]`` or ``/pods`` (namespace None) as JSON."""
        info = self._info("pods", PODS)
        gen, objects = await self.objects.labelled(info, namespace, labels if name is None else EVERYTHING)
        if name is not None:
            objects = [o for o in objects if o[1] == name]
        else:
            objects = [o for o in objects if fields.matches({"metadata.name": o[1], "metadata.namespace": o[0]})]
        spaces = sorted({o[0] for o in objects})
        results = await asyncio.gather(*(self._both(info, ns) for ns in spaces))
        fingerprint = (gen, tuple(r[0] for r in results), tuple((o[0], o[1]) for o in objects))
        key = ("pods", namespace, name, str(labels), str(fields))
        kept = self._memo.get(key, fingerprint)
        if kept is not None:
            return kept
        by_ns = {ns: r[1] for ns, r in zip(spaces, results, strict=True)}
        items = []
        for ns, pod, pod_labels in objects:
            usage = self._pod(ns, pod, pod_labels, by_ns[ns])
            if usage is not None:
                items.append(usage)
        now, window = self.clock(), self.rules.window_seconds
        if name is not None:
            if not items:
                raise NotFound(f'podmetrics.{wire.GROUP} "{namespace}/{name}" not found')
            body = wire.single("PodMetrics", wire.pod(items[0], window, now))
        else:
            body = wire.pod_list(items, window, now)
        return self._memo.remember(key, fingerprint, body)

    @staticmethod
    def _pod(ns: str, pod: str, labels: dict[str, str], values: dict[str, Any]) -> wire.PodUsage | None:
        cpu, mem = values["cpu"].get(pod), values["memory"].get(pod)
        if not cpu or not mem:
            return None
        containers = sorted(set(cpu) | set(mem))
        zero = (0.0, float("inf"))
        ts = min(t for _, t in (*cpu.values(), *mem.values()))
        usage = [(c, wire.Usage(cpu.get(c, zero)[0], mem.get(c, zero)[0])) for c in containers]
        return wire.PodUsage(ns, pod, labels, ts, usage)

    # -- nodes ------------------------------------------------------------------------------

    async def nodes(self, name: str | None, labels: Selector, fields: FieldSelector) -> bytes:
        """``/nodes[/NAME]`` as JSON."""
        info = self._info("nodes", NODES)
        gen, objects = await self.objects.labelled(info, "", labels if name is None else EVERYTHING)
        if name is not None:
            objects = [o for o in objects if o[1] == name]
        else:
            objects = [o for o in objects if fields.matches({"metadata.name": o[1]})]
        versions, values = await self._both(info, None)
        fingerprint = (gen, versions, tuple(o[1] for o in objects))
        key = ("nodes", name, str(labels), str(fields))
        kept = self._memo.get(key, fingerprint)
        if kept is not None:
            return kept
        items = []
        for _, node, node_labels in objects:
            cpu, mem = values["cpu"].get(node), values["memory"].get(node)
            if not cpu or not mem:
                continue
            (c, ct), (m, mt) = cpu[""], mem[""]
            items.append(wire.NodeUsage(node, node_labels, min(ct, mt), wire.Usage(c, m)))
        now, window = self.clock(), self.rules.window_seconds
        if name is not None:
            if not items:
                raise NotFound(f'nodemetrics.{wire.GROUP} "{name}" not found')
            body = wire.single("NodeMetrics", wire.node(items[0], window, now))
        else:
            body = wire.node_list(items, window, now)
        return self._memo.remember(key, fingerprint, body)
