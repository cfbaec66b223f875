"""Answer metric requests: registry lookup, upstream value from the cache, objects from the index.

This is where the pieces meet. A custom metric request resolves the resource (404 when the
cluster has no such resource or the rules serve no such metric), builds the rule's query for
every object of that resource in the namespace, reads it through the cache, and picks the
requested object or the objects the label selector selects. An external metric is either a
queue backlog (``queues:``) or an ``externalRules`` query. The JSON body is memoised until one
of its inputs changes (a refreshed value, an object change), which keeps the hot path to a few
dictionary lookups however many HPAs ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Hashable
from dataclasses import dataclass

from metrics_adapter import api
from metrics_adapter.bodies import Bodies
from metrics_adapter.cache import Served, Source, ValueCache
from metrics_adapter.catalog import NO_NAMESPACE_LABEL, Catalog
from metrics_adapter.errors import AdapterError, BadRequest, NotFound, Unavailable, UpstreamError
from metrics_adapter.kube.mapper import Mapper, ResourceInfo, UnknownResource
from metrics_adapter.kube.objects import ObjectIndex
from metrics_adapter.queues import QueueConfig, QueueError, QueueReader, QueueSample
from metrics_adapter.rules.query import QueryError, custom_query, external_query
from metrics_adapter.rules.registry import CustomMetric, Snapshot
from metrics_adapter.rules.resources import NoLabel
from metrics_adapter.selectors import Selector
from metrics_adapter.sources.prometheus import PrometheusClient, QueryResult, Sample

_MEMO_LIMIT = 20000


@dataclass(frozen=True, slots=True)
class CustomRequest:
    version: api.CustomVersion
    namespace: str | None  # None: a cluster-scoped object (or a namespace itself)
    resource: str  # as in the URL: pods, deployments.apps, namespaces
    name: str  # "*" for every object the label selector picks
    metric: str
    label_selector: Selector
    metric_selector: Selector


@dataclass(frozen=True, slots=True)
class ExternalRequest:
    namespace: str
    metric: str
    selector: Selector


@dataclass(frozen=True, slots=True)
class _Plan:
    """How a request maps to a query, valid for one registry snapshot and resource list."""

    snapshot: Snapshot
    mapper: Mapper
    info: ResourceInfo
    metric: CustomMetric
    query: str
    label: str


@dataclass(slots=True)
class QueueBinding:
    config: QueueConfig
    reader: QueueReader
    source: Source

    async def fetch(self) -> QueueSample:
        try:
            return await self.reader.read()
        except QueueError as exc:
            text = str(exc)
            prefix = f"{exc.upstream}: "
            raise UpstreamError(self.source.name, text[len(prefix) :] if text.startswith(prefix) else text) from exc


class Provider:
    def __init__(
        self,
        catalog: Catalog,
        cache: ValueCache,
        *,
        prom: PrometheusClient | None,
        prom_source: Source | None,
        objects: ObjectIndex | None,
        queues: list[QueueBinding] | None = None,
    ) -> None:
        self.catalog = catalog
        self.cache = cache
        self.prom = prom
        self.prom_source = prom_source
        self.objects = objects
        self.queues: dict[str, list[QueueBinding]] = {}
        for q in queues or []:
            self.queues.setdefault(q.config.name, []).append(q)
        self._memo = Bodies(_MEMO_LIMIT)
        self._plans: dict[Hashable, _Plan] = {}
        # (label, query) → (value version, samples by that label): only the newest version is
        # kept. Keyed by version too, it kept every refresh's samples (one more copy of a
        # 1 000-pod answer every 10 s) until 20 000 keys, and full garbage collections, which
        # walk all of it, grew slower with uptime.
        self._by_label: dict[str, tuple[int, dict[str, Sample]]] = {}

    # -- discovery ---------------------------------------------------------------------------

    def custom_resources(self) -> list[api.APIResource]:
        snap = self.catalog.snapshot
        if snap is None:
            return []
        return [api.resource_entry(name, namespaced, "MetricValueList") for name, namespaced in snap.custom_names()]

    def external_resources(self) -> list[api.APIResource]:
        names = set(self.queues)
        snap = self.catalog.snapshot
        if snap is not None:
            names |= set(snap.external)
        return [api.resource_entry(n, True, "ExternalMetricValueList") for n in sorted(names)]

    # -- custom metrics ----------------------------------------------------------------------

    def _prom_value(self, query: str) -> Awaitable[Served[QueryResult]]:
        prom, source = self.prom, self.prom_source
        assert prom is not None and source is not None
        return self.cache.get(("prometheus", query), source, lambda: prom.query(query))

    def _not_discovered(self) -> Unavailable:
        source = self.prom.source if self.prom else "prometheus"
        reason = self.catalog.error.message if self.catalog.error else "the first discovery has not finished"
        return Unavailable(source, f"metrics are not discovered yet: {reason}")

    async def custom(self, req: CustomRequest) -> bytes:
        snap = self.catalog.snapshot
        if snap is None:
            raise self._not_discovered()
        key = (req.namespace, req.resource, req.metric, req.metric_selector)
        plan = self._plans.get(key)
        if plan is None or plan.snapshot is not snap or plan.mapper is not self.catalog.mapper:
            plan = self._plan(req, snap)
            if len(self._plans) > _MEMO_LIMIT:
                self._plans.clear()
            self._plans[key] = plan
        info, metric, query, label = plan.info, plan.metric, plan.query, plan.label
        served = await self._prom_value(query)
        if served.value.kind != "vector":
            raise AdapterError(
                f"{metric.rule.where}.metricsQuery returned a {served.value.kind}; "
                f"it must return a vector with the {label!r} label"
            )
        values = self._values_by(label, query, served)
        if req.name != "*":
            fingerprint: Hashable = (query, served.version)
            names = [req.name] if req.name in values else []
            if not names:
                raise self._missing(req, info, label, served.value, [req.name])
        else:
            if self.objects is None:
                raise Unavailable("kubernetes", "no cluster connection to list objects for a label selector")
            gen, selected = await self.objects.names(info, req.namespace, req.label_selector)
            fingerprint = (query, served.version, gen)
            # An object without a usable value is left out (the HPA counts such pods against
            # scaling either way); when none is left the answer is an error, not an empty list.
            names = [n for n in selected if n in values]
            if selected and not names:
                raise self._missing(req, info, label, served.value, selected)
        kept = self._memo.get(req, fingerprint)
        if kept is not None:
            return kept
        selector = req.metric_selector.to_label_selector()
        items = [
            api.CustomItem(
                self._reference(info, req.namespace, n), req.metric, values[n].timestamp, values[n].value, selector
            )
            for n in names
        ]
        return self._memo.remember(req, fingerprint, api.custom_list(req.version, items))

    def _plan(self, req: CustomRequest, snap: Snapshot) -> _Plan:
        """Resolve resource and metric and build the query (raises NotFound / BadRequest)."""
        try:
            info = self.catalog.mapper.parse_group_resource(req.resource)
        except UnknownResource as exc:
            raise NotFound(f"the server could not find the requested resource {req.resource!r}: {exc}") from exc
        metric = snap.custom.get((info.group, info.resource, req.metric))
        if metric is None:
            raise NotFound(f"the server could not find the metric {req.metric} for {info.group_resource}")
        if metric.namespaced and req.namespace is None:
            raise NotFound(
                f"the metric {req.metric} for {info.group_resource} is namespaced: ask under /namespaces/NAMESPACE/"
            )
        if not metric.namespaced and req.namespace is not None:
            raise NotFound(f"the metric {req.metric} for {info.group_resource} is not namespaced")
        conv = self.catalog.converter(metric.rule)
        try:
            query = custom_query(
                metric.rule,
                metric.series,
                resource_label=conv.label_for(info),
                namespace_label=conv.namespace_label(),
                namespace=req.namespace,
                metric_selector=req.metric_selector,
            )
        except QueryError as exc:
            raise BadRequest(str(exc)) from exc
        except NoLabel as exc:
            raise AdapterError(str(exc)) from exc
        return _Plan(snap, self.catalog.mapper, info, metric, query, conv.label_for(info))

    def _missing(
        self, req: CustomRequest, info: ResourceInfo, label: str, result: QueryResult, names: list[str]
    ) -> AdapterError:
        """Why ``names`` have no value: a NaN/infinite one (503) or no series at all (404); never 0."""
        odd = {s.labels.get(label): s.value for s in result.non_finite}
        bad = [n for n in names if n in odd]
        if bad:
            source = self.prom.source if self.prom else "prometheus"
            return Unavailable(
                source,
                f"the metric {req.metric} for {info.group_resource} {bad[0]} is {odd[bad[0]]} "
                "(NaN and infinite values are not served)",
            )
        if req.name != "*":
            return NotFound(f"the server could not find the metric {req.metric} for {info.group_resource} {req.name}")
        return NotFound(
            f"the server could not find the metric {req.metric} for any of the {len(names)} {info.group_resource} "
            "selected: Prometheus has no series for them"
        )

    def _values_by(self, label: str, query: str, served: Served[QueryResult]) -> dict[str, Sample]:
        key = label + "\x00" + query
        known = self._by_label.get(key)
        if known is not None and known[0] == served.version:
            return known[1]
        hit = {s.labels[label]: s for s in served.value.samples if s.labels.get(label)}
        if len(self._by_label) > _MEMO_LIMIT:
            self._by_label.clear()
        self._by_label[key] = (served.version, hit)
        return hit

    @staticmethod
    def _reference(info: ResourceInfo, namespace: str | None, name: str) -> api.ObjectReference:
        return api.object_reference(info.kind, namespace, name, info.api_version)

    # -- external metrics --------------------------------------------------------------------

    async def external(self, req: ExternalRequest) -> bytes:
        bindings = self.queues.get(req.metric)
        if bindings:
            return await self._queue_metric(req, bindings)
        snap = self.catalog.snapshot
        if snap is None:
            if self.catalog.config.external_rules:
                raise self._not_discovered()
            raise NotFound(f"the server could not find the external metric {req.metric}")
        metric = snap.external.get(req.metric)
        if metric is None:
            raise NotFound(f"the server could not find the external metric {req.metric}")
        conv = self.catalog.converter(metric.rule)
        if metric.rule.resources.namespaced and conv.namespace_label() is None:
            # Served and failing, as prometheus-adapter does (its 500 says only "unable to fetch metrics").
            raise AdapterError(f"the external metric {req.metric} comes from {metric.rule.where}: {NO_NAMESPACE_LABEL}")
        try:
            query = external_query(
                metric.rule,
                metric.series,
                namespace_label=conv.namespace_label(),
                namespace=req.namespace,
                metric_selector=req.selector,
            )
        except QueryError as exc:
            raise BadRequest(str(exc)) from exc
        served = await self._prom_value(query)
        if served.value.non_finite:
            odd = served.value.non_finite[0]
            raise Unavailable(
                self.prom.source if self.prom else "prometheus",
                f"the external metric {req.metric} is {odd.value} for {dict(odd.labels)} "
                "(NaN and infinite values are not served)",
            )
        if not served.value.samples:
            # An empty list would read as "nothing there"; the HPA must hold instead.
            raise NotFound(
                f"the server could not find the external metric {req.metric} in namespace {req.namespace}: "
                "Prometheus has no series for its query"
            )
        fingerprint = (query, served.version)
        kept = self._memo.get(req, fingerprint)
        if kept is not None:
            return kept
        # Prometheus returns series in no particular order; sorted, the answer is stable.
        samples = sorted(served.value.samples, key=lambda s: sorted(s.labels.items()))
        items = [api.ExternalItem(req.metric, s.labels, s.timestamp, s.value) for s in samples]
        return self._memo.remember(req, fingerprint, api.external_list(items))

    async def _queue_metric(self, req: ExternalRequest, bindings: list[QueueBinding]) -> bytes:
        visible = [b for b in bindings if b.config.namespace in (None, req.namespace)]
        if not visible:
            raise NotFound(f"the server could not find the external metric {req.metric} in namespace {req.namespace}")
        chosen = [b for b in visible if req.selector.matches(b.config.labels)]
        results = await asyncio.gather(
            *(self.cache.get(("queue", id(b)), b.source, b.fetch) for b in chosen), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
        served: list[Served[QueueSample]] = [r for r in results if isinstance(r, Served)]
        fingerprint = tuple((id(b), s.version) for b, s in zip(chosen, served, strict=True))
        kept = self._memo.get(req, fingerprint)
        if kept is not None:
            return kept
        items = [
            api.ExternalItem(req.metric, b.config.labels, s.value.timestamp, s.value.value)
            for b, s in zip(chosen, served, strict=True)
        ]
        return self._memo.remember(req, fingerprint, api.external_list(items))
