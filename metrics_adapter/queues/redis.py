"""Redis backlogs: a list's length (LLEN), a stream's length (XLEN), a consumer group's
pending count or lag (XINFO GROUPS), with redis-py's asyncio client.

A list or stream that does not exist reads 0: Redis deletes a list when its last item is
popped, so "missing" and "empty" are the same thing there. A consumer group has to exist;
asking for one that does not is an error naming the groups that do. Lag needs Redis 7.

redis-py rather than a hand-written RESP exchange: bench.queue_reads measures 0.19 ms per
read through this reader against 0.07 ms for raw RESP on a socket; 0.1 ms per refresh buys
TLS, ACL authentication, reconnection and error parsing we would otherwise own.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from metrics_adapter.queues import http
from metrics_adapter.queues.errors import (
    QueueAuthError,
    QueueBadResponse,
    QueueConfigError,
    QueueError,
    QueueNotFound,
    QueueTimeout,
    QueueUnreachable,
    deadline,
    scrub,
)
from metrics_adapter.queues.model import QueueConfig, QueueSample, RedisSource
from metrics_adapter.queues.secrets import Credentials, SecretUnavailable


class RedisReader:
    """Reads one list, stream or consumer group; one connection, opened on first read."""

    def __init__(self, config: QueueConfig, source: RedisSource, credentials: Credentials) -> None:
        self.config = config
        self._source = source
        self._credentials = credentials
        self._client: aioredis.Redis | None = None

    async def read(self) -> QueueSample:
        try:
            async with deadline(self.config.upstream, self.config.timeout):
                try:
                    return await self._read_mapped()
                except QueueAuthError:
                    if not self._credentials.reloadable:
                        raise
                    try:
                        changed = await self._credentials.reload()
                    except SecretUnavailable as exc:
                        raise QueueAuthError(self.config.upstream, str(exc)) from exc
                    if not changed:
                        raise
                    await self.close()  # the Secret was rotated: reconnect with the new password once
                    return await self._read_mapped()
        except (QueueTimeout, QueueUnreachable):
            # A connection cut mid-command is in an unknown state: start the next read afresh.
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _connect(self) -> aioredis.Redis:
        src = self._source
        return aioredis.Redis(
            host=src.host,
            port=src.port,
            db=src.db,
            username=self._credentials.username,
            password=self._credentials.password,
            ssl=src.tls,
            ssl_ca_certs=src.ca_file,
            socket_timeout=self.config.timeout,
            socket_connect_timeout=self.config.timeout,
            # One reconnect, so a pooled connection the server closed (idle timeout, restart,
            # CLIENT KILL) costs nothing; more would only stretch the time a dead broker holds a
            # refresh, which refreshes again on its own schedule anyway.
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
            max_connections=2,
        )

    async def _read_mapped(self) -> QueueSample:
        if self._client is None:
            self._client = self._connect()
        try:
            value = await self._query(self._client)
        except QueueError:
            raise
        except rexc.RedisError as exc:
            raise self._map(exc) from exc
        except (OSError, ssl.SSLError) as exc:  # below redis-py: TLS and socket failures it lets through
            raise QueueUnreachable(self.config.upstream, f"cannot connect: {http.os_reason(exc)}") from exc
        return QueueSample(float(value), time.time())

    async def _query(self, client: aioredis.Redis) -> int:
        src, upstream = self._source, self.config.upstream
        try:
            if src.structure == "list":
                return int(await client.llen(src.key))
            if src.group is None:
                return int(await client.xlen(src.key))
            groups: list[dict[str, Any]] = await client.xinfo_groups(src.key)
        except rexc.ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                kind: Any = await client.type(src.key)
                raise QueueBadResponse(upstream, f"key {src.key!r} holds a {kind}, not a {src.structure}") from exc
            if "no such key" in str(exc):
                raise QueueNotFound(upstream, f"stream {src.key!r} does not exist") from exc
            raise
        group = next((g for g in groups if g.get("name") == src.group), None)
        if group is None:
            names = ", ".join(repr(g.get("name")) for g in groups) or "none"
            raise QueueNotFound(upstream, f"stream {src.key!r} has no consumer group {src.group!r} (groups: {names})")
        if src.count == "pending":
            return int(group["pending"])
        if "lag" not in group:
            raise QueueBadResponse(upstream, "this Redis reports no consumer-group lag (Redis 7.0 or later does)")
        if group["lag"] is None:
            raise QueueBadResponse(
                upstream,
                "Redis cannot tell this group's lag (entries were deleted or trimmed after the group's position)",
            )
        return int(group["lag"])

    def _map(self, exc: rexc.RedisError) -> QueueError:
        upstream = self.config.upstream
        detail = scrub(str(exc) or type(exc).__name__, self._credentials.secrets())
        if isinstance(exc, rexc.AuthenticationError | rexc.AuthenticationWrongNumberOfArgsError):
            who = f"user {self._credentials.username!r}" if self._credentials.username else "default user"
            return QueueAuthError(upstream, f"authentication failed ({who}): {detail}")
        if isinstance(exc, rexc.NoPermissionError):
            return QueueAuthError(upstream, f"not allowed: {detail}")
        if isinstance(exc, rexc.TimeoutError):
            return QueueTimeout(upstream, f"no answer within {self.config.timeout:g}s")
        if isinstance(exc, rexc.ConnectionError):
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
                detail = http.os_reason(cause)
            return QueueUnreachable(upstream, f"cannot connect: {detail}")
        if isinstance(exc, rexc.MovedError | rexc.AskError):
            return QueueBadResponse(upstream, "this is a Redis Cluster node; cluster mode is not supported")
        return QueueBadResponse(upstream, f"Redis answered an error: {detail}")


async def open_redis(config: QueueConfig) -> RedisReader:
    """A reader for a validated redis entry; credentials files are read now, to fail at start-up."""
    source = config.source
    assert isinstance(source, RedisSource)
    credentials = Credentials(source.username, source.password)
    try:
        await credentials.reload()
    except SecretUnavailable as exc:
        raise QueueConfigError(f"{config.where}: {exc}") from exc
    if source.ca_file is not None:
        try:
            http.load_ca(source.ca_file)  # only to fail at start-up: redis-py loads it itself
        except (OSError, ssl.SSLError) as exc:
            raise QueueConfigError(f"{config.where}: redis.caFile: cannot load {source.ca_file}: {exc}") from exc
    return RedisReader(config, source, credentials)
