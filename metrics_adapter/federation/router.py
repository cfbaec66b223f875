"""Which external metric names go to which provider, and the discovery list they share.

Routing, in this order: a name we serve ourselves (a ``queues`` entry, a discovered
``externalRules`` name) is ours, whatever the providers' globs say; then the provider that lists
the name exactly; then the first provider (in config order) whose glob matches; then the one
provider without ``metrics``, if any. Until our first Prometheus discovery has finished we
cannot know every name of ours, so only exactly listed names are forwarded meanwhile (a glob
match answers our own 503 "not discovered yet" rather than risk answering for the wrong server).

Discovery merges each provider's last resource list with ours. A provider that stops answering
keeps its last list: discovery is what ``kubectl`` and the garbage collector cache for a long
time, and names that vanish and return with every blip would churn them, while a request for a
name of a provider that is down already gets a 503 naming it. Names a provider lists exactly
are listed even before it first answers.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry

from gitopsd.aio import wait_set
from metrics_adapter import api
from metrics_adapter.errors import AdapterError
from metrics_adapter.federation.config import ProviderConfig
from metrics_adapter.federation.telemetry import FederationMetrics
from metrics_adapter.federation.upstream import Upstream
from metrics_adapter.provider import Provider

log = structlog.get_logger("metrics_adapter.federation")

DISCOVERY_INTERVAL = 30.0


class Federation:
    def __init__(
        self,
        providers: tuple[ProviderConfig, ...],
        registry: CollectorRegistry,
        where: str,
        *,
        discovery_interval: float = DISCOVERY_INTERVAL,
    ) -> None:
        self.upstreams: list[Upstream] = []  # the registry reads the breaker states at once
        self.metrics = FederationMetrics(registry, self._states)
        self.upstreams = [Upstream(p, self.metrics, where) for p in providers]
        self.interval = discovery_interval
        self._exact = {n: u for u in self.upstreams for n in u.cfg.names}
        self._globs: list[tuple[re.Pattern[str], Upstream]] = [
            (re.compile(fnmatch.translate(g)), u) for u in self.upstreams if not u.cfg.catch_all for g in u.cfg.globs
        ]
        self._catch_all = next((u for u in self.upstreams if u.cfg.catch_all), None)
        self._warned: set[str] = set()

    def _states(self) -> Iterator[tuple[str, int]]:
        for u in self.upstreams:
            yield u.cfg.name, u.state()

    # -- routing -----------------------------------------------------------------------------

    def route(self, name: str, ours: Provider) -> Upstream | None:
        """The provider that answers ``name``, or None when we answer it ourselves (or nobody does)."""
        exact = self._exact.get(name)
        served = _served_here(ours, name)
        if served is True:
            if exact is not None and name not in self._warned:
                self._warned.add(name)  # only names discovered after start-up can get here
                log.warning(
                    "external metric discovered in our rules is also listed by a provider; ours is served",
                    metric=name,
                    provider=exact.cfg.name,
                )
            return None
        if exact is not None:
            return exact
        if served is None:
            return None  # not discovered yet: ours may have it
        return self._by_pattern(name)

    def _by_pattern(self, name: str) -> Upstream | None:
        for pattern, upstream in self._globs:
            if pattern.match(name):
                return upstream
        return self._catch_all

    def merge(self, resources: list[api.APIResource], ours: Provider) -> list[api.APIResource]:
        """Our external resource list plus every provider's names that are routed to it."""
        names = {r["name"] for r in resources}
        out = list(resources)
        for upstream in self.upstreams:
            candidates = set(upstream.cfg.names) | set(upstream.discovered or ())
            for n in sorted(candidates - names):
                if self.route(n, ours) is upstream:
                    names.add(n)
                    out.append(api.resource_entry(n, True, "ExternalMetricValueList"))
        out.sort(key=lambda r: r["name"])
        return out

    # -- life cycle --------------------------------------------------------------------------

    def open(self) -> None:
        for u in self.upstreams:
            u.open()

    async def close(self) -> None:
        for u in self.upstreams:
            await u.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every provider's resource list until ``stop``, each on its own schedule."""
        await asyncio.gather(*(self._discover_loop(u, stop) for u in self.upstreams))

    async def _discover_loop(self, upstream: Upstream, stop: asyncio.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                names = await upstream.discover()
            except AdapterError as exc:
                if not failing:
                    log.warning(
                        "external provider discovery failed; keeping its last list",
                        provider=upstream.cfg.name,
                        error=exc.message,
                    )
                failing = True
            else:
                if failing:
                    log.info("external provider discovery recovered", provider=upstream.cfg.name, metrics=len(names))
                failing = False
            await wait_set(stop, self.interval)


def _served_here(ours: Provider, name: str) -> bool | None:
    """True: ours; False: not ours; None: cannot tell yet (Prometheus discovery pending)."""
    if name in ours.queues:
        return True
    snap = ours.catalog.snapshot
    if snap is None:
        return None if ours.catalog.config.external_rules else False
    return name in snap.external
