"""One pooled HTTP transport to one Kubernetes API server, shared by gitopsd and metrics-adapter.

Both programs speak plain JSON over aiohttp (see ``client``); this module is what they share:
the TLS context and client certificate from a ``config.Connection``, the bearer token asked
again while the program runs (exec plugins and projected service-account tokens rotate), the
user agent, the connection limit, and timeouts. Each client keeps its own error types and its
own policy (gitopsd retries idempotent calls, the adapter answers or fails at once).

Timeouts: a connection (TCP and TLS) must be up within ``connect_timeout``, and a whole call
(every attempt and back-off included, for a client that retries) must finish within its
request timeout. A server that accepts connections and then says nothing fails in that time,
with a message saying so, instead of after several full connect timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from gitopsd.kube.config import Connection

_UNSET = object()


class Transport:
    """Session, headers and timeouts for one API server; ``close()`` (or ``async with``) when done."""

    def __init__(
        self,
        connection: Connection,
        *,
        user_agent: str,
        max_connections: int = 32,
        connect_timeout: float = 10.0,
        refresh_every: float = 1.0,
    ) -> None:
        self.connection = connection
        self.user_agent = user_agent
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        # How long a refreshed "Authorization" value is reused: the kubernetes package renews
        # exec-plugin tokens 5 minutes before they expire and re-reads in-cluster tokens each
        # minute, so asking at most once a second (in a thread) loses nothing.
        self.refresh_every = refresh_every
        self._session: aiohttp.ClientSession | None = None
        self._authorization: object = _UNSET
        self._fetched_at = 0.0
        self._refresh_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def server(self) -> str:
        return self.connection.server

    def url(self, path: str) -> str:
        return self.connection.server + path

    def session(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (inside the running loop)."""
        if self._session is None or self._session.closed:
            https = self.connection.server.startswith("https:")
            connector = aiohttp.TCPConnector(
                ssl=self.connection.ssl_context() if https else False, limit=self.max_connections
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def authorization(self) -> str | None:
        """The current "Bearer ..." value (None without a token), refreshed off the event loop."""
        if not self.connection.refreshes:
            return self.connection.authorization()
        if self._authorization is _UNSET or time.monotonic() - self._fetched_at >= self.refresh_every:
            async with self._lock():
                if self._authorization is _UNSET or time.monotonic() - self._fetched_at >= self.refresh_every:
                    self._authorization = await asyncio.to_thread(self.connection.authorization)
                    self._fetched_at = time.monotonic()
        value = self._authorization
        return value if isinstance(value, str) else None

    def _lock(self) -> asyncio.Lock:
        """One refresh at a time; a lock per event loop (a CLI may run several loops in turn)."""
        loop = asyncio.get_running_loop()
        if self._refresh_lock is None or self._refresh_lock[0] is not loop:
            self._refresh_lock = (loop, asyncio.Lock())
        return self._refresh_lock[1]

    async def headers(self, *, content_type: str | None = None, accept: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        auth = await self.authorization()
        if auth:
            headers["Authorization"] = auth
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        return headers

    def timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        """At most ``seconds`` for one attempt, connecting included."""
        return aiohttp.ClientTimeout(total=seconds, connect=min(self.connect_timeout, seconds))

    def stream_timeout(self, idle: float) -> aiohttp.ClientTimeout:
        """For a watch: no overall limit, but at most ``idle`` seconds without a byte."""
        return aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_read=idle)

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        params: Mapping[str, str] | None = None,
        data: bytes | str | None = None,
    ) -> Any:
        """``session().request(...)`` for ``path`` on this server (use as ``async with``)."""
        extra: dict[str, Any] = {}
        if self.connection.tls_server_name:
            extra["server_hostname"] = self.connection.tls_server_name
        return self.session().request(
            method, self.url(path), params=params, data=data, headers=headers, timeout=timeout, **extra
        )

    def describe(self, exc: BaseException, limit: float | None = None) -> str:
        """One line for a failed exchange (``limit``: the attempt's overall timeout, if any)."""
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            connect = self.connect_timeout if limit is None else min(self.connect_timeout, limit)
            return f"no connection within {connect:g}s"
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return "the server stopped sending"
        if isinstance(exc, TimeoutError):
            return f"no answer within {limit:g}s" if limit is not None else "timed out"
        return str(exc) or type(exc).__name__
