"""The Prometheus port of verification: instant queries (``/api/v1/query``) and syntax checks.

Plain aiohttp, not prometheus-api-client (the design card's choice, so not a dependency): that
library is a blocking ``requests`` client (every call would need a worker thread beside the
daemon's event loop), and it brings a second HTTP stack and its date parsing for one GET and its
JSON, which are a few lines here. Measured in a fresh virtualenv: 0.7.2 adds 18 MB (requests,
dateparser, regex, pytz, tzdata...); 0.5.5, the floor once declared, required pandas, numpy
and matplotlib: 278 MB. (metrics_adapter made the same choice, with latency measurements.)

``check`` asks ``/api/v1/format_query`` (Prometheus >= 2.38), which parses without evaluating:
a query that does not parse is known before anything is deployed, with Prometheus' own error.

**How old is the data behind a value.** ``query(promql, not_before)`` must tell a value computed
from data scraped since ``not_before`` from one computed from older data (Prometheus, back from
an outage, answers an instant selector with the last sample it had, up to its 5-minute
lookback). Prometheus reports no such age: ``timestamp()`` of an aggregate or a function is the
evaluation time, and the ``lookback_delta`` query parameter (2.43+; 2.42 ignores it silently)
bounds instant selectors only, never the ``[2m]`` of a ``rate``. What does work on every 2.x and
3.x server: ``timestamp()`` of a bare vector selector is the raw sample's own timestamp. So the
query's vector selectors are picked out of its text (:mod:`gitopsd.gates.promql`, a small PromQL
lexer: Prometheus has no parse API before 3.0) and one more instant query, at the same evaluation
time, asks for the newest sample of any of them (``freshness_query``). Whatever cannot be told
(text the lexer does not follow, an ``offset`` on a subquery, a check Prometheus refuses) makes
the value stale, never counted: unknown age is never evidence, for a pass or for a failure.

Errors, each naming the server (credentials never included)::

    PrometheusError
    ├── PrometheusUnreachable   no connection, or no answer within the timeout
    ├── QueryRejected           HTTP 400 bad_data: the query does not parse (a spec error)
    └── QueryFailed             any other HTTP error (422 execution, 401/403, 5xx) or a bad payload
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from gitopsd.errors import GitopsdError, truncate
from gitopsd.gates.evaluate import Reading, staleness
from gitopsd.gates.promql import freshness_query, selectors


class PrometheusError(GitopsdError):
    reason = "PrometheusError"


class PrometheusUnreachable(PrometheusError):
    reason = "PrometheusUnreachable"


class QueryRejected(PrometheusError):
    reason = "InvalidQuery"


class QueryFailed(PrometheusError):
    reason = "PrometheusQueryFailed"


@dataclass(frozen=True, slots=True)
class Connection:
    """Where Prometheus is and how to authenticate (from ``spec.verification.prometheus``)."""

    url: str
    timeout: float = 10.0
    token: str | None = None
    username: str | None = None
    password: str | None = None
    ca: bytes | None = None

    def __repr__(self) -> str:  # never print credentials
        return f"Connection({self.url!r}, timeout={self.timeout})"


class Prometheus(Protocol):
    async def query(self, promql: str, not_before: datetime | None = None) -> Reading:
        """One instant query, as a reading (a value, empty, or several series).

        With ``not_before``, a value built only from data older than that instant is ``stale``.
        """
        ...

    async def check(self, promql: str) -> None:
        """Raise ``QueryRejected`` when ``promql`` does not parse."""
        ...


class HttpPrometheus:
    def __init__(self, connection: Connection, session: aiohttp.ClientSession) -> None:
        self.connection = connection
        self.session = session
        self.where = f"Prometheus {connection.url}"

    @classmethod
    @asynccontextmanager
    async def open(cls, connection: Connection) -> AsyncIterator[HttpPrometheus]:
        """A client with its own session, closed on exit (a gate round is a few seconds long)."""
        context: ssl.SSLContext | bool = True
        if connection.ca:
            context = ssl.create_default_context(cadata=connection.ca.decode())
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=8),
            timeout=aiohttp.ClientTimeout(total=connection.timeout),
            headers=_auth_headers(connection),
        ) as session:
            yield cls(connection, session)

    async def query(self, promql: str, not_before: datetime | None = None) -> Reading:
        reading, at = await self._instant(promql)
        if not_before is None or reading.value is None or math.isnan(reading.value) or at is None:
            return reading
        try:
            found = selectors(promql)
        except ValueError as exc:
            return replace(reading, stale=f"the age of the data behind the query cannot be told ({exc})")
        if not found.current:
            if not found.historical:
                return reading  # a constant: no data to be old
            return replace(reading, stale="the query reads only data moved back in time (offset or @)")
        try:
            newest, _ = await self._instant(freshness_query(found.current), at=at)
        except (QueryRejected, QueryFailed) as exc:  # not the user's query: its age is unknown, not an error
            return replace(reading, stale=f"the age of the data behind the query cannot be told ({exc.message})")
        if newest.series > 1:
            return replace(reading, stale="the age of the data behind the query cannot be told (several answers)")
        return replace(reading, stale=staleness(newest.value, not_before, evaluated_at=at))

    async def _instant(self, promql: str, *, at: float | None = None) -> tuple[Reading, float | None]:
        """A reading and the evaluation time Prometheus gave it (None when the result is empty)."""
        params = {"query": promql, "timeout": f"{self.connection.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = await self._get("/api/v1/query", params)
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise QueryFailed(f"{self.where}: the answer has no data")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return Reading.of(_number(result[1], self.where)), _time(result[0])
        if kind == "vector" and isinstance(result, list):
            if not result:
                return Reading.empty(), None
            if len(result) == 1:
                point = result[0].get("value") or [None, None]
                return Reading.of(_number(point[1], self.where)), _time(point[0])
            return Reading.many([_labels(item.get("metric") or {}) for item in result]), None
        if kind == "matrix":
            raise QueryFailed(
                f"{self.where}: the query returned a range vector; give an instant one (no [..] at the end)"
            )
        raise QueryFailed(f"{self.where}: unexpected result type {kind!r}")

    async def check(self, promql: str) -> None:
        try:
            await self._get("/api/v1/format_query", {"query": promql})
        except QueryFailed as exc:
            if "HTTP 404" not in exc.message:
                raise
            await self._get("/api/v1/query", {"query": promql})  # an older Prometheus: evaluate it instead

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        url = self.connection.url + path
        try:
            async with self.session.get(url, params=dict(params)) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise PrometheusUnreachable(f"{self.where}: no answer within {self.connection.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise PrometheusUnreachable(f"{self.where}: {_describe(exc)}") from None
        except asyncio.CancelledError:
            raise
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status == 200 and isinstance(body, dict) and body.get("status") == "success":
            return body
        error = body.get("error") if isinstance(body, dict) else None
        kind = body.get("errorType") if isinstance(body, dict) else None
        text = truncate(str(error) if error else raw.decode(errors="replace"), 400)
        if status == 400 and kind == "bad_data":
            raise QueryRejected(f"{self.where} rejected the query: {text}")
        if status in (401, 403):
            raise QueryFailed(
                f"{self.where} refused the credentials (HTTP {status}); check spec.verification.prometheus.secretRef"
            )
        raise QueryFailed(f"{self.where}: HTTP {status}" + (f" {kind}" if kind else "") + f": {text}")


def _auth_headers(connection: Connection) -> dict[str, str]:
    if connection.token:
        return {"Authorization": f"Bearer {connection.token}"}
    if connection.username is not None:
        auth = aiohttp.BasicAuth(connection.username, connection.password or "")
        return {"Authorization": auth.encode()}
    return {}


def _number(text: Any, where: str) -> float:
    try:
        return float(text)  # "NaN", "+Inf" and "-Inf" included
    except (TypeError, ValueError):
        raise QueryFailed(f"{where}: sample value {text!r} is not a number") from None


def _time(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _labels(metric: Mapping[str, Any]) -> str:
    name = str(metric.get("__name__") or "")
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{pairs}}}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    text = str(exc) or type(exc).__name__
    return truncate(text, 200)
