"""Which metrics exist: periodic series discovery against Prometheus (``--metrics-relist-interval``).

Every relist asks ``/api/v1/series`` once per distinct ``seriesQuery`` (rules sharing one share
the call), looking back ``--metrics-max-age``, and swaps in a new registry snapshot. A failed
relist keeps the previous snapshot, so discovery does not flap or go empty while Prometheus is
briefly away; before the first success, requests get 503 naming Prometheus and the reason.
The Kubernetes resource list (for rules' resource mapping) is refreshed on the same beat, so
CRDs installed later become usable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from gitopsd.aio import wait_set
from metrics_adapter.errors import ConfigError, UpstreamError
from metrics_adapter.kube.mapper import Mapper, UnknownResource
from metrics_adapter.metrics import AdapterMetrics
from metrics_adapter.rules.config import Config, Rule
from metrics_adapter.rules.registry import Snapshot, build
from metrics_adapter.rules.resources import ResourceConverter
from metrics_adapter.sources.prometheus import PrometheusClient

log = structlog.get_logger("metrics_adapter.catalog")

NO_NAMESPACE_LABEL = (
    "no label maps to namespaces, so a request (always under a namespace) cannot be answered; "
    "add resources.overrides: {namespace: {resource: namespace}} or set resources.namespaced: false"
)


class Catalog:
    def __init__(
        self,
        config: Config,
        prom: PrometheusClient | None,
        mapper: Mapper,
        metrics: AdapterMetrics,
        *,
        interval: float = 600.0,
        max_age: float | None = None,
    ) -> None:
        self.config = config
        self.prom = prom
        self.mapper = mapper
        self.metrics = metrics
        self.interval = interval
        self.max_age = max_age or interval
        self.converters: dict[tuple[str, int], ResourceConverter] = {
            (r.kind, r.index): ResourceConverter(r.resources, lambda: self.mapper, r.where)
            for r in (*config.rules, *config.external_rules)
        }
        self.snapshot: Snapshot | None = None
        self.error: UpstreamError | None = None
        self.listed_at: float | None = None

    def converter(self, rule: Rule) -> ResourceConverter:
        return self.converters[(rule.kind, rule.index)]

    def set_mapper(self, mapper: Mapper) -> None:
        if mapper.resources != self.mapper.resources:
            self.mapper = mapper
            for conv in self.converters.values():
                conv.reset()

    def validate(self, *, unknown_resource: str | None = None) -> list[str]:
        """Check what needs the cluster's resources; raise ConfigError naming the rule and field.

        Returns what is served but will fail at query time: an ``externalRules`` entry that is
        namespaced with no label for namespaces. prometheus-adapter starts with such a rule (its
        docs' sample config has one) and fails each request for it, so it is not refused. With
        ``unknown_resource`` (``check`` without a cluster), an override naming a resource the
        mapper does not know is returned as a warning ending with that text instead of refused.
        """
        warnings: list[str] = []
        for conv in self.converters.values():
            try:
                conv.validate()
            except UnknownResource as exc:
                if unknown_resource is None:
                    raise ConfigError(f"config file {self.config.path}: {exc}") from exc
                warnings.append(f"{exc}: {unknown_resource}")
        warnings += [
            f"{rule.where}: {NO_NAMESPACE_LABEL}"
            for rule in self.config.external_rules
            if rule.resources.namespaced and self.converter(rule).namespace_label() is None
        ]
        return warnings

    async def relist(self) -> Snapshot:
        """Discover series now and install the new snapshot (raises UpstreamError; keeps the old one)."""
        queries = list(dict.fromkeys(r.series_query for r in (*self.config.rules, *self.config.external_rules)))
        if not queries:
            snap = Snapshot()
        else:
            assert self.prom is not None
            prom = self.prom
            results: Sequence[list[dict[str, str]] | BaseException] = await asyncio.gather(
                *(prom.series(q, since=self.max_age) for q in queries), return_exceptions=True
            )
            by_query: dict[str, list[dict[str, str]]] = {}
            for q, res in zip(queries, results, strict=True):
                if isinstance(res, UpstreamError):
                    owners = ", ".join(
                        r.where for r in (*self.config.rules, *self.config.external_rules) if r.series_query == q
                    )
                    raise UpstreamError(
                        res.source, f"series discovery for {owners} failed: {res.message}", outage=res.outage
                    )
                if isinstance(res, BaseException):
                    raise res
                by_query[q] = res
            snap = build([(r, self.converter(r)) for r in self.config.rules], self.config.external_rules, by_query)
        self.snapshot, self.error, self.listed_at = snap, None, time.monotonic()
        self.metrics.discovered.labels("custom").set(len(snap.custom))
        self.metrics.discovered.labels("external-prometheus").set(len(snap.external))
        for why in snap.skipped:
            log.warning("series skipped", reason=why)
        return snap

    async def run(self, stop: asyncio.Event, refresh_mapper: Callable[[], Awaitable[Mapper]] | None = None) -> None:
        """Relist every ``interval``; after a failure retry sooner, with backoff."""
        retry = 1.0
        last_counts: tuple[int, int] | None = None
        while not stop.is_set():
            if refresh_mapper is not None:
                try:
                    self.set_mapper(await refresh_mapper())
                except UpstreamError as exc:
                    log.warning("resource discovery failed; keeping the previous resource list", error=exc.message)
            try:
                snap = await self.relist()
                self.metrics.relists.labels("success").inc()
                counts = (len(snap.custom), len(snap.external))
                if counts != last_counts:
                    log.info("metrics discovered", custom=counts[0], external=counts[1])
                    last_counts = counts
                wait = self.interval
                retry = 1.0
            except UpstreamError as exc:
                self.error = exc
                self.metrics.relists.labels("failure").inc()
                log.warning("series discovery failed; serving the previous list", error=str(exc))
                wait = min(retry, self.interval)
                retry = min(retry * 2, 30.0)
            await wait_set(stop, wait)
