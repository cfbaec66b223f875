"""Queue backlogs (RabbitMQ, Redis, SQS) as external metrics: the port the server reads them through.

This module is the contract between the serving side (cache, routes) and the queue readers.
The serving side only needs: parse the ``queues:`` section of the config, open one reader per
entry, and ask it for the current backlog. How each broker is asked lives in the submodules:
:mod:`.config` (validation; the field reference is its docstring) on :mod:`.fields`,
:mod:`.rabbitmq`, :mod:`.redis`, :mod:`.sqs` (+ :mod:`.aws` for credentials and signing),
:mod:`.secrets` (usernames/passwords from files and env), :mod:`.http` (one bounded HTTP
exchange), :mod:`.errors` (the exception tree).

Each ``read()`` is bounded by the entry's ``timeout`` (default 5 s) from start to value, makes
one attempt (no retries: the caller refreshes on its own schedule), and either returns a
sample or raises a :class:`QueueError` subclass whose message names the upstream without
credentials. A broker's client library is imported only when an entry uses that broker.
"""

from __future__ import annotations

import aiohttp

from metrics_adapter.queues.config import parse_queues
from metrics_adapter.queues.errors import (
    QueueAuthError,
    QueueBadResponse,
    QueueConfigError,
    QueueError,
    QueueNotFound,
    QueueTimeout,
    QueueUnreachable,
)
from metrics_adapter.queues.model import (
    DEFAULT_TIMEOUT,
    QueueConfig,
    QueueKind,
    QueueReader,
    QueueSample,
    RabbitMQSource,
    RedisSource,
    SQSSource,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "QueueAuthError",
    "QueueBadResponse",
    "QueueConfig",
    "QueueConfigError",
    "QueueError",
    "QueueKind",
    "QueueNotFound",
    "QueueReader",
    "QueueSample",
    "QueueTimeout",
    "QueueUnreachable",
    "RabbitMQSource",
    "RedisSource",
    "SQSSource",
    "open_reader",
    "parse_queues",
]


async def open_reader(config: QueueConfig, session: aiohttp.ClientSession) -> QueueReader:
    """A reader for ``config``; HTTP brokers share ``session``.

    No network traffic happens here, so an unreachable broker never stops start-up; files
    named by ``usernameFile`` / ``passwordFile`` / ``caFile`` and ``*Env`` variables are read
    now, and a missing one raises ``QueueConfigError`` naming the entry and field.
    """
    if config.kind == "rabbitmq" and isinstance(config.source, RabbitMQSource):
        from metrics_adapter.queues.rabbitmq import open_rabbitmq

        return await open_rabbitmq(config, session)
    if config.kind == "redis" and isinstance(config.source, RedisSource):
        from metrics_adapter.queues.redis import open_redis

        return await open_redis(config)
    if config.kind == "sqs" and isinstance(config.source, SQSSource):
        from metrics_adapter.queues.sqs import open_sqs

        return await open_sqs(config, session)
    raise QueueConfigError(
        f"{config.where or config.name}: not a validated {config.kind} entry (build QueueConfig with parse_queues)"
    )
