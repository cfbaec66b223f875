"""One external provider: its HTTPS client, credentials, timeout, connection pool and circuit breaker.

Each provider gets its own connection pool (``maxConnections``) and breaker, so a provider that
is down or slow costs only the requests for its own names: they wait at most ``timeout``, and
after ``failureThreshold`` consecutive failures they are refused at once (503 naming the
provider) until a single probe after the cooldown finds it healthy again.

What comes back is checked before it is served: an ``ExternalMetricValueList`` whose every item
is the metric asked for, with a value and a timestamp. A provider answering HTML, another
metric, or 401 because our token expired must not become an HPA's input.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, NoReturn

import aiohttp

from metrics_adapter import api
from metrics_adapter.cache import CircuitBreaker
from metrics_adapter.errors import AdapterError, BadRequest, ConfigError, NotFound, Unavailable, truncate
from metrics_adapter.federation.config import ProviderConfig
from metrics_adapter.federation.telemetry import CLOSED, HALF_OPEN, OPEN, FederationMetrics

MAX_BODY = 8 << 20  # an ExternalMetricValueList of thousands of series is well under 1 MiB
TOKEN_REREAD = 60.0  # projected service-account tokens rotate well before they expire
_PATH = f"/apis/{api.EXTERNAL_GROUP}/v1beta1"


class _Failed(Exception):
    """One call failed; ``kind`` is the metric label, ``outage`` whether it counts for the breaker."""

    def __init__(self, kind: str, message: str, *, status: int = 503, outage: bool = True) -> None:
        super().__init__(message)
        self.kind, self.message, self.status, self.outage = kind, message, status, outage


def _ssl_context(cfg: ProviderConfig, where: str) -> ssl.SSLContext:
    def fail(field: str, path: str, exc: Exception) -> NoReturn:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"config file {where}: {cfg.where}: {field}: cannot use {path}: {why}") from exc

    try:
        ctx = ssl.create_default_context(cafile=cfg.ca_file)
    except (OSError, ssl.SSLError) as exc:
        fail("caFile", cfg.ca_file or "the system CA bundle", exc)
    if cfg.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.client_cert and cfg.client_key:
        try:
            ctx.load_cert_chain(cfg.client_cert, cfg.client_key)
        except (OSError, ssl.SSLError) as exc:
            fail("clientCert", f"{cfg.client_cert} / {cfg.client_key}", exc)
    return ctx


class _Token:
    """The bearer token in ``tokenFile``, re-read now and then (it rotates)."""

    def __init__(self, path: str, where: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.clock = path, clock
        try:
            self.value = self._read()
        except OSError as exc:
            raise ConfigError(f"config file {where}: tokenFile: cannot read {path}: {exc.strerror or exc}") from exc
        if not self.value:
            raise ConfigError(f"config file {where}: tokenFile: {path} is empty")
        self.read_at = clock()

    def _read(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()

    def get(self) -> str:
        if self.clock() - self.read_at > TOKEN_REREAD:
            self.read_at = self.clock()
            # An unreadable file keeps the last token: the provider will say if it is no longer good.
            with contextlib.suppress(OSError):
                self.value = self._read() or self.value
        return self.value


class Upstream:
    """Forwards external-metric requests to one provider. Call ``open()`` inside the event loop."""

    def __init__(self, cfg: ProviderConfig, metrics: FederationMetrics, where: str) -> None:
        self.cfg = cfg
        self.source = f"external provider {cfg.name}"
        self.metrics = metrics
        self.breaker = CircuitBreaker(threshold=cfg.failure_threshold)
        self.last_error = ""
        self.discovered: tuple[str, ...] | None = None  # the provider's last resource list
        self._ssl = _ssl_context(cfg, where)
        self._token = _Token(cfg.token_file, f"{where}: {cfg.where}") if cfg.token_file else None
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.cfg.max_connections, ssl=self._ssl, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout),
            headers={"Accept": "application/json", "User-Agent": "metrics-adapter (federation)"},
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def state(self) -> int:
        if not self.breaker.is_open:
            return CLOSED
        return HALF_OPEN if self.breaker.retry_in() == 0 else OPEN

    # -- calls -------------------------------------------------------------------------------

    async def external(self, namespace: str, metric: str, label_selector: str) -> bytes:
        """The provider's ExternalMetricValueList for ``metric``, checked, as JSON bytes."""
        path = f"{_PATH}/namespaces/{namespace}/{urllib.parse.quote(metric, safe='')}"
        query = {"labelSelector": label_selector} if label_selector else None
        body: bytes = await self._call("metric", path, query, lambda data: _metric_list(data, metric))
        return body

    async def discover(self) -> tuple[str, ...]:
        """The metric names in the provider's resource list (remembered in ``discovered``)."""
        names: tuple[str, ...] = await self._call("discovery", _PATH, None, _resource_names)
        self.discovered = names
        return names

    async def _call(self, call: str, path: str, query: dict[str, str] | None, check: Callable[[Any], Any]) -> Any:
        name = self.cfg.name
        self.metrics.requests.labels(name, call).inc()
        probing = self.breaker.is_open
        if not self.breaker.allow():
            self.metrics.errors.labels(name, "circuit_open").inc()
            raise Unavailable(
                self.source,
                f"not asked for {self.breaker.retry_in():.1f}s more after {self.breaker.failures} consecutive "
                f"failures (circuit open); last error: {self.last_error}",
            )
        started = time.perf_counter()
        try:
            data = await self._get(path, query)
            result = check(data)
        except _Failed as exc:
            self.metrics.errors.labels(name, exc.kind).inc()
            if exc.outage:
                self.last_error = exc.message
                self.breaker.failure()
            else:
                self.breaker.success()  # it answered; only this question was refused
            raise _as_adapter_error(self.source, exc) from None
        except BaseException:
            if probing:
                self.breaker.failure()  # a probe that did not finish must not leave the breaker waiting
            raise
        finally:
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)
        self.breaker.success()
        return result

    async def _get(self, path: str, query: dict[str, str] | None) -> Any:
        assert self._session is not None, "Upstream.open() was not called"
        headers = {"Authorization": f"Bearer {self._token.get()}"} if self._token else None
        try:
            # No redirects: the bearer token must reach the configured provider only.
            get = self._session.get(self.cfg.url + path, params=query, headers=headers, allow_redirects=False)
            async with get as resp:
                if resp.content_length is not None and resp.content_length > MAX_BODY:
                    raise _Failed("invalid", f"answered {resp.content_length} bytes; at most {MAX_BODY} are read")
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise _Failed("invalid", f"answered more than {MAX_BODY} bytes")
                    chunks.append(chunk)
                raw = b"".join(chunks)
                status = resp.status
        except TimeoutError:
            raise _Failed("timeout", f"no answer within {self.cfg.timeout:g}s (timeout)") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _Failed("connect", f"TLS: its certificate is not trusted: {exc.certificate_error}") from None
        except aiohttp.ClientConnectorError as exc:
            err = exc.os_error
            reason = os.strerror(err.errno) if err.errno else str(err) or type(err).__name__
            raise _Failed("connect", f"cannot connect to {exc.host}:{exc.port}: {reason}") from None
        except aiohttp.ClientError as exc:
            raise _Failed("connect", f"connection failed: {truncate(str(exc) or type(exc).__name__)}") from None
        if status != 200:
            _status_error(status, raw)
        try:
            return json.loads(raw)
        except ValueError:
            raise _Failed("invalid", f"answered something that is not JSON: {truncate(_text(raw), 120)!r}") from None


def _text(raw: bytes) -> str:
    return raw[:400].decode("utf-8", errors="replace")


def _status_error(status: int, raw: bytes) -> NoReturn:
    message = ""
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except ValueError:
        pass
    detail = f"HTTP {status}: {truncate(message or _text(raw), 200)}" if (message or raw) else f"HTTP {status}"
    if status in (401, 403):
        raise _Failed("unauthorized", f"refused the adapter's credentials ({detail})")
    if status == 404:
        raise _Failed("not_found", f"does not have it ({detail})", status=404, outage=False)
    if status == 400:
        raise _Failed("bad_request", f"refused the request ({detail})", status=400, outage=False)
    raise _Failed("status", f"answered an error ({detail})")


def _as_adapter_error(source: str, exc: _Failed) -> AdapterError:
    if exc.status == 404:
        return NotFound(f"{source}: {exc.message}")
    if exc.status == 400:
        return BadRequest(f"{source}: {exc.message}")
    return Unavailable(source, exc.message)


def _metric_list(data: Any, metric: str) -> bytes:
    if not isinstance(data, dict) or data.get("kind") != "ExternalMetricValueList":
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise _Failed("invalid", f"answered a {kind!s:.60} instead of an ExternalMetricValueList")
    items = data.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise _Failed("invalid", "answered an ExternalMetricValueList whose items are not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _Failed("invalid", f"answered an ExternalMetricValueList whose items[{i}] is not an object")
        got = item.get("metricName")
        if got != metric:
            raise _Failed("wrong_metric", f"answered metric {str(got)[:80]!r} when asked for {metric!r}")
        value, ts = item.get("value"), item.get("timestamp")
        if not isinstance(value, str) or not value or not isinstance(ts, str):
            raise _Failed("invalid", f"answered items[{i}] without a value and a timestamp")
        labels = item.get("metricLabels")
        if labels is not None and not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
            raise _Failed("invalid", f"answered items[{i}] whose metricLabels are not a map of strings")
    body = {"kind": "ExternalMetricValueList", "apiVersion": f"{api.EXTERNAL_GROUP}/v1beta1", "metadata": {}}
    body["items"] = items
    return json.dumps(body, separators=(",", ":")).encode()


def _resource_names(data: Any) -> tuple[str, ...]:
    if not isinstance(data, dict) or data.get("kind") != "APIResourceList":
        raise _Failed("invalid", "answered discovery with something that is not an APIResourceList")
    resources = data.get("resources") or []
    if not isinstance(resources, list):
        raise _Failed("invalid", "answered an APIResourceList whose resources are not a list")
    names = []
    for r in resources:
        n = r.get("name") if isinstance(r, dict) else None
        if isinstance(n, str) and n and "/" not in n:
            names.append(n)
    return tuple(sorted(set(names)))
