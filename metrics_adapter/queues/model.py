"""The values the queue port speaks in: one validated config entry, one sample, one reader.

Kept apart from ``__init__`` so the broker modules can import them without importing the
package's dispatch (and so without importing each other's client libraries).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

QueueKind = Literal["rabbitmq", "redis", "sqs"]
RabbitMQCount = Literal["ready", "unacked", "total"]
RedisCount = Literal["length", "pending", "lag"]

DEFAULT_TIMEOUT = 5.0  # seconds, per read; an entry's ``timeout`` overrides it


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a credential comes from: inline (URL userinfo or ``username``), a file, or an env var.

    Files and variables are read when a reader opens and again after the broker refuses the
    credentials, so a rotated Kubernetes Secret is picked up without a restart.
    """

    origin: str  # the config field it came from, for messages ("rabbitmq.passwordFile")
    value: str | None = field(default=None, repr=False)
    file: str | None = None
    env: str | None = None


@dataclass(frozen=True, slots=True)
class RabbitMQSource:
    """A queue read through the RabbitMQ management HTTP API."""

    base_url: str  # scheme://host:port[/path-prefix], no userinfo, no trailing slash
    vhost: str
    queue: str
    count: RabbitMQCount
    username: SecretRef | None = None
    password: SecretRef | None = None
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class RedisSource:
    """A Redis list (LLEN), stream (XLEN) or stream consumer group (XINFO GROUPS)."""

    host: str
    port: int
    db: int
    tls: bool
    key: str
    structure: Literal["list", "stream"]
    group: str | None = None
    count: RedisCount = "length"  # pending | lag only with a group
    username: SecretRef | None = None
    password: SecretRef | None = None
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class SQSSource:
    """An SQS queue read with GetQueueAttributes (JSON protocol, SigV4-signed)."""

    queue_url: str
    region: str
    endpoint_url: str  # where requests go: ``endpointUrl``, else the queue URL's origin
    include_in_flight: bool = False
    profile: str | None = None  # AWS shared-config profile; None: the SDK default chain


Source = RabbitMQSource | RedisSource | SQSSource


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One entry of ``queues:``: an external metric ``name`` backed by one broker queue."""

    name: str  # the external metric name
    namespace: str | None  # None: served in every namespace
    labels: Mapping[str, str]  # metric labels, matched by metricLabelSelector
    kind: QueueKind
    upstream: str  # human-readable broker + queue for messages, credentials stripped
    settings: Mapping[str, Any] = field(default_factory=dict)  # kind-specific, validated, no secrets
    source: Source | None = None  # the typed settings the reader uses
    timeout: float = DEFAULT_TIMEOUT  # seconds, bounds one read() from start to value
    where: str = ""  # "queues[2] (jobs_backlog)": how messages name this entry


@dataclass(frozen=True, slots=True)
class QueueSample:
    """A backlog length and when the broker reported it (unix seconds)."""

    value: float
    timestamp: float


class QueueReader(Protocol):
    """Reads one queue's backlog. Safe to call from one task at a time."""

    config: QueueConfig

    async def read(self) -> QueueSample:
        """The current backlog; raises ``QueueError`` naming the upstream."""
        ...

    async def close(self) -> None: ...


def frozen_mapping(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view, so a shared config entry cannot be changed behind a reader's back."""
    return MappingProxyType(dict(values))
