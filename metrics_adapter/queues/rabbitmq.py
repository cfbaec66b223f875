"""RabbitMQ backlogs through the management HTTP API (``GET /api/queues/{vhost}/{queue}``).

The management API rather than AMQP: it needs no channel or passive declare per read, it is
what operators already expose and monitor, and it reports unacked messages, which AMQP's
queue.declare-ok does not. Its counters are as fresh as the node's statistics interval
(``collect_statistics_interval``, 5 s by default).
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from metrics_adapter.queues import http
from metrics_adapter.queues.errors import (
    QueueAuthError,
    QueueBadResponse,
    QueueConfigError,
    QueueNotFound,
    deadline,
    scrub,
)
from metrics_adapter.queues.model import QueueConfig, QueueSample, RabbitMQSource
from metrics_adapter.queues.secrets import Credentials, SecretUnavailable

# The queue object's counters for each ``count`` mode.
_FIELDS = {"ready": "messages_ready", "unacked": "messages_unacknowledged", "total": "messages"}


def _segment(value: str) -> str:
    # Every reserved character encoded: the default vhost "/" must travel as %2F.
    return quote(value, safe="")


class RabbitMQReader:
    """Reads one queue's ready, unacked or total message count."""

    def __init__(
        self,
        config: QueueConfig,
        source: RabbitMQSource,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.config = config
        self._source = source
        self._session = session
        self._credentials = credentials
        self._ssl = ssl_context
        self._field = _FIELDS[source.count]
        # columns= trims the answer from ~2 KB of per-queue statistics to the three counters.
        self._url = URL(
            f"{source.base_url}/api/queues/{_segment(source.vhost)}/{_segment(source.queue)}"
            "?columns=messages,messages_ready,messages_unacknowledged",
            encoded=True,
        )

    async def read(self) -> QueueSample:
        upstream = self.config.upstream
        async with deadline(upstream, self.config.timeout):
            resp = await self._get(self._url)
            if resp.status in (401, 403) and self._credentials.reloadable:
                try:
                    changed = await self._credentials.reload()
                except SecretUnavailable as exc:
                    raise QueueAuthError(upstream, str(exc)) from exc
                if changed:  # the Secret was rotated: the new password gets one try
                    resp = await self._get(self._url)
            if resp.status == 200:
                return QueueSample(self._count(resp.body), time.time())
            raise await self._error(resp)

    async def close(self) -> None:
        """Nothing to release: the HTTP session belongs to the caller."""

    async def _get(self, url: URL) -> http.Response:
        headers = {"Accept": "application/json"}
        user, password = self._credentials.username, self._credentials.password
        if user is not None:
            # Built by hand: aiohttp's BasicAuth is deprecated and its replacement is 3.14+ only.
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return await http.send(
            self._session,
            "GET",
            url,
            upstream=self.config.upstream,
            timeout=self.config.timeout,
            headers=headers,
            ssl_context=self._ssl,
            secrets=self._credentials.secrets(),
        )

    def _count(self, body: bytes) -> float:
        try:
            info: Any = json.loads(body)
        except ValueError as exc:
            raise QueueBadResponse(self.config.upstream, "the management API answered with invalid JSON") from exc
        value = info.get(self._field) if isinstance(info, dict) else None
        if value is None:
            raise QueueBadResponse(
                self.config.upstream,
                f"the queue has no {self._field} statistic yet (it appears after the node's statistics "
                "interval; it never does if management metrics collection is disabled)",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise QueueBadResponse(self.config.upstream, f"{self._field} is {value!r}, not a count")
        return float(value)

    async def _error(self, resp: http.Response) -> Exception:
        upstream, src = self.config.upstream, self._source
        reason = _reason(resp.body, self._credentials.secrets())
        if resp.status in (401, 403):
            who = f"user {self._credentials.username!r}" if self._credentials.username else "no credentials configured"
            return QueueAuthError(upstream, f"the management API refused access (HTTP {resp.status}, {who}){reason}")
        if resp.status == 404:
            # The same 404 for a missing vhost and a missing queue: one more request tells which.
            vhost = await self._get(URL(f"{src.base_url}/api/vhosts/{_segment(src.vhost)}", encoded=True))
            if vhost.status == 404:
                return QueueNotFound(upstream, f"vhost {src.vhost!r} does not exist")
            return QueueNotFound(upstream, f"queue {src.queue!r} does not exist in vhost {src.vhost!r}")
        return QueueBadResponse(upstream, f"the management API answered HTTP {resp.status}{reason}")


def _reason(body: bytes, secrets: list[str]) -> str:
    """The management API's own words (``{"error": ..., "reason": ...}``), if it gave any."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    text = ""
    if isinstance(data, dict):
        text = str(data.get("reason") or data.get("error") or "")
    elif body:
        text = body.decode("utf-8", "replace").strip()
    return f": {scrub(text, secrets)}" if text else ""


async def open_rabbitmq(config: QueueConfig, session: aiohttp.ClientSession) -> RabbitMQReader:
    """A reader for a validated rabbitmq entry; credentials files are read now, to fail at start-up."""
    source = config.source
    assert isinstance(source, RabbitMQSource)
    credentials = Credentials(source.username, source.password)
    try:
        await credentials.reload()
    except SecretUnavailable as exc:
        raise QueueConfigError(f"{config.where}: {exc}") from exc
    ssl_context = None
    if source.ca_file is not None:
        try:
            ssl_context = http.load_ca(source.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise QueueConfigError(f"{config.where}: rabbitmq.caFile: cannot load {source.ca_file}: {exc}") from exc
    return RabbitMQReader(config, source, session, credentials, ssl_context)
