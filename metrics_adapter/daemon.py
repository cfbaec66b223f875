"""Run the adapter: connect the parts, start the background loops, serve until SIGTERM.

Start-up order matters for the errors a user sees. The config is validated first (exit 2,
naming rule and field). Kubernetes must be reachable (it is needed for authentication,
authorization and resource names): it is retried for ``--kube-startup-timeout`` with a log
line per attempt, then start-up fails with one line saying why (exit 1). Prometheus and the
queue brokers, by contrast, may be down at start-up: the adapter starts, answers their
metrics with 503 naming them, and recovers by itself when they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import structlog
from aiohttp import web

from gitopsd.aio import trim_tls_buffers, wait_set
from gitopsd.kube.config import Connection
from metrics_adapter.auth import Auth
from metrics_adapter.cache import DEFAULT_MAX_ENTRIES, CircuitBreaker, Source, ValueCache
from metrics_adapter.catalog import Catalog
from metrics_adapter.errors import AdapterError, ConfigError, UpstreamError
from metrics_adapter.federation.router import Federation
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.discovery import discover
from metrics_adapter.kube.mapper import Mapper
from metrics_adapter.kube.objects import ObjectIndex
from metrics_adapter.metrics import AdapterMetrics
from metrics_adapter.provider import Provider, QueueBinding
from metrics_adapter.queues import QueueConfigError, open_reader
from metrics_adapter.resourcemetrics.provider import ResourceMetrics
from metrics_adapter.rules.config import Config
from metrics_adapter.server import State, build_server
from metrics_adapter.sources.prometheus import PrometheusClient, PrometheusSettings
from metrics_adapter.stalls import GcPauses, watch_loop_lag
from metrics_adapter.tls import ServerTLS, ServingFiles
from metrics_adapter.tlspolicy import TLSPolicy

log = structlog.get_logger("metrics_adapter")


class StartupError(RuntimeError):
    """Start-up cannot continue; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Options:
    config: Config
    prometheus: PrometheusSettings | None
    kube: Connection
    serving: ServingFiles
    port: int
    bind: tuple[str, ...] = ()
    relist_interval: float = 600.0
    max_age: float | None = None
    refresh_interval: float = 10.0
    max_staleness: float = 30.0
    idle_after: float = 120.0
    max_cached_values: int = DEFAULT_MAX_ENTRIES
    kube_startup_timeout: float = 60.0
    insecure_skip_auth: bool = False
    tls_policy: TLSPolicy | None = None  # --tls-min-version, --tls-cipher-suites
    always_allow: frozenset[str] = field(default_factory=lambda: frozenset({"/healthz", "/readyz", "/livez"}))


def configure_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity >= 4 else logging.INFO
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


async def _retry_until(what: str, call: Callable[[], Awaitable[Mapper]], timeout: float) -> Mapper:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.5
    while True:
        try:
            return await call()
        except UpstreamError as exc:
            if loop.time() + delay > deadline:
                raise StartupError(f"{what} failed for {timeout:g}s: {exc}") from exc
            log.warning(f"{what} failed; retrying", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@dataclass(slots=True)
class Adapter:
    """Everything one running adapter holds (also used by tests and benches in-process)."""

    opts: Options
    metrics: AdapterMetrics
    kube: KubeClient
    catalog: Catalog
    cache: ValueCache
    provider: Provider
    auth: Auth | None
    tls: ServerTLS
    prom: PrometheusClient | None
    objects: ObjectIndex
    queue_session: aiohttp.ClientSession | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    auth_loaded: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    runner: web.BaseRunner | None = None
    resource_metrics: ResourceMetrics | None = None  # metrics.k8s.io (resourceRules)
    federation: Federation | None = None  # externalProviders
    gc_pauses: GcPauses | None = None  # observed while serving (stalls.py)

    def ready(self) -> tuple[bool, list[str]]:
        checks = [("resource discovery", True), ("front-proxy authentication", self.auth is None or self.auth_loaded)]
        details = [f"[{'+' if ok else '-'}]{name} {'ok' if ok else 'not loaded yet'}" for name, ok in checks]
        if self.prom is not None:
            if self.catalog.snapshot is not None:
                details.append("[+]prometheus discovery ok")
            else:
                why = self.catalog.error.message if self.catalog.error else "pending"
                details.append(f"[+]prometheus discovery not done yet (serving other metrics): {why}")
        return all(ok for _, ok in checks), details


async def build(opts: Options) -> Adapter:
    metrics = AdapterMetrics()
    # Provider credentials (CA, token, client certificate) are read now: a bad path exits 2 at once.
    providers = opts.config.external_providers
    federation = Federation(providers, metrics.registry, opts.config.path) if providers else None
    kube = KubeClient(opts.kube)
    mapper = await _retry_until(
        f"resource discovery from {kube.source}", lambda: discover(kube), opts.kube_startup_timeout
    )
    prom = None
    prom_source = None
    if opts.config.rules or opts.config.external_rules or opts.config.resource_rules:
        if opts.prometheus is None:
            raise ConfigError("the config has 'rules', 'externalRules' or 'resourceRules': give --prometheus-url")
        prom = PrometheusClient(opts.prometheus)
        prom_source = Source(prom.source, timeout=opts.prometheus.timeout, concurrency=16)
    catalog = Catalog(opts.config, prom, mapper, metrics, interval=opts.relist_interval, max_age=opts.max_age)
    for warning in catalog.validate():
        log.warning("rule fails every request", reason=warning)
    cache = ValueCache(
        metrics,
        refresh_interval=opts.refresh_interval,
        max_staleness=opts.max_staleness,
        idle_after=opts.idle_after,
        max_entries=opts.max_cached_values,
    )
    session = None
    bindings = []
    if opts.config.queues:
        session = aiohttp.ClientSession()
        for q in opts.config.queues:
            try:
                reader = await open_reader(q, session)
            except QueueConfigError as exc:
                await session.close()
                raise ConfigError(f"config file {opts.config.path}: {exc}") from exc
            source = Source(q.upstream, timeout=q.timeout, concurrency=2, breaker=CircuitBreaker())
            bindings.append(QueueBinding(q, reader, source))
    objects = ObjectIndex(kube)
    provider = Provider(catalog, cache, prom=prom, prom_source=prom_source, objects=objects, queues=bindings)
    tls = ServerTLS(opts.serving, verify_clients=not opts.insecure_skip_auth, policy=opts.tls_policy)
    auth = None if opts.insecure_skip_auth else Auth(kube, metrics)
    adapter = Adapter(opts, metrics, kube, catalog, cache, provider, auth, tls, prom, objects, session)
    adapter.federation = federation
    if opts.config.resource_rules is not None and prom is not None and prom_source is not None:
        rm = ResourceMetrics(
            opts.config.resource_rules, cache, prom=prom, prom_source=prom_source, objects=objects,
            mapper=lambda: catalog.mapper,
        )  # fmt: skip
        try:
            rm.validate()
        except AdapterError as exc:
            raise ConfigError(f"config file {opts.config.path}: {exc.message}") from exc
        adapter.resource_metrics = rm
    return adapter


async def start(adapter: Adapter) -> list[str]:
    """Start background loops and listeners; return the addresses listened on."""
    opts = adapter.opts
    loop = asyncio.get_running_loop()
    if adapter.auth is not None:
        auth = adapter.auth

        def on_change(cfg: object) -> None:
            adapter.tls.set_client_ca(auth.requestheader.ca_pem)
            adapter.auth_loaded = True

        adapter.tasks.append(loop.create_task(auth.watch_requestheader(on_change, adapter.stop), name="auth configmap"))
    else:
        log.warning(
            "!!! --insecure-skip-auth: every request is served WITHOUT authentication or authorization. "
            "For local development only; never expose this port. !!!"
        )

    async def refresh_mapper() -> Mapper:
        return await discover(adapter.kube)

    adapter.tasks.append(loop.create_task(adapter.catalog.run(adapter.stop, refresh_mapper), name="relist"))
    adapter.tasks.append(loop.create_task(adapter.cache.run(adapter.stop), name="refresh"))
    adapter.tasks.append(loop.create_task(_reload_certs(adapter), name="cert reload"))
    adapter.tasks.append(loop.create_task(watch_loop_lag(adapter.metrics, adapter.stop), name="loop lag"))
    adapter.gc_pauses = GcPauses(adapter.metrics)
    adapter.gc_pauses.install()
    if adapter.federation is not None:
        adapter.federation.open()
        adapter.tasks.append(loop.create_task(adapter.federation.run(adapter.stop), name="federation discovery"))
    state = State(
        provider=adapter.provider,
        metrics=adapter.metrics,
        auth=adapter.auth,
        ready=adapter.ready,
        always_allow=opts.always_allow,
        resource_metrics=adapter.resource_metrics,
        federation=adapter.federation,
    )
    state.track_sizes()
    # The request-line and header limits are build_server's (see server.py's docstring).
    runner = web.ServerRunner(build_server(state, access_log=None), handle_signals=False)
    await runner.setup()
    adapter.runner = runner
    hosts: list[str | None] = list(opts.bind) or [None]
    bound = []
    for host in hosts:
        site = web.TCPSite(runner, host, opts.port, ssl_context=adapter.tls.listening, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host or '*'}:{opts.port}: {exc.strerror or exc}") from exc
        bound.append(f"{host or '*'}:{opts.port}")
    return bound


async def _reload_certs(adapter: Adapter) -> None:
    while not adapter.stop.is_set():
        await wait_set(adapter.stop, 10)
        adapter.tls.reload_if_changed()


async def shutdown(adapter: Adapter) -> None:
    adapter.stop.set()
    if adapter.gc_pauses is not None:
        adapter.gc_pauses.remove()
    if adapter.runner is not None:
        await adapter.runner.cleanup()
    for t in adapter.tasks:
        t.cancel()
    for t in adapter.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    await adapter.objects.close()
    if adapter.federation is not None:
        await adapter.federation.close()
    for bindings in adapter.provider.queues.values():
        for b in bindings:
            with contextlib.suppress(Exception):
                await b.reader.close()
    if adapter.queue_session is not None:
        await adapter.queue_session.close()
    if adapter.prom is not None:
        await adapter.prom.close()
    await adapter.kube.close()


async def run(opts: Options) -> int:
    """Serve until SIGTERM or SIGINT; return the exit code."""
    trim_tls_buffers()  # its watches and every HTTPS client connection: see gitopsd.aio
    adapter = await build(opts)
    try:
        bound = await start(adapter)
        log.info(
            "serving",
            addresses=bound,
            custom_rules=len(opts.config.rules),
            external_rules=len(opts.config.external_rules),
            queues=len(opts.config.queues),
        )
        for w in opts.config.warnings:
            log.warning("config", warning=w)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise walk it on the request path.
        gc.freeze()
        # Full passes then walk only what came later, so they are cheap; make them frequent.
        # Connections that end in an error (a refused request line, a client gone) leave cycles
        # through their traceback, TLS state included (~200 KiB each); with the defaults, and a
        # long-lived count taken before the freeze, a flood of them waited for a full pass that
        # came thousands of connections later. Collecting once now resets that count.
        gc.collect()
        gen0, gen1, _ = gc.get_threshold()
        gc.set_threshold(gen0, gen1, 1)
        # Measured at 700 req/s (bench.adapter_load, stalls.py): a full pass then costs ~3 ms
        # for the ~10 000 objects the memos hold at 1 000 HPAs, and CPython still runs one only
        # once what survived since the last has grown by a quarter, i.e. every ~10-30 s here;
        # young passes stay under 1 ms. So no further tuning: what made full passes 10-30 ms
        # was memory held by mistake (a watch's pod list, old values), freed at the source.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, adapter.stop.set)
        await adapter.stop.wait()
        log.info("stopping")
    finally:
        await shutdown(adapter)
    return 0
