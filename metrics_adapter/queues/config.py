"""Validation of the ``queues:`` config section into typed, credential-free entries.

Everything a user can get wrong in an entry is caught here, at start-up, with a message
naming the entry (index and name) and the field: a typo'd key, two brokers in one entry,
a vhost that is not a string, a count mode the broker does not have. Nothing here touches
the network or the file system; secrets named by ``*File`` / ``*Env`` are read when a
reader opens (see :mod:`metrics_adapter.queues.secrets`).

Every field of an entry, with its default, is documented in docs/metrics-adapter.md ("queues");
``_ENTRY_FIELDS`` and the ``_*_FIELDS`` tuples below are the code's list of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast, get_args
from urllib.parse import SplitResult, unquote

from metrics_adapter.queues.errors import QueueConfigError
from metrics_adapter.queues.fields import Entry, kind_of, origin, parse_duration
from metrics_adapter.queues.model import (
    DEFAULT_TIMEOUT,
    QueueConfig,
    QueueKind,
    RabbitMQCount,
    RabbitMQSource,
    RedisSource,
    SecretRef,
    SQSSource,
    frozen_mapping,
)

KINDS: tuple[QueueKind, ...] = get_args(QueueKind)
_ENTRY_FIELDS = ("name", "namespace", "labels", "timeout", *KINDS)
_CREDENTIAL_FIELDS = ("username", "usernameFile", "usernameEnv", "passwordFile", "passwordEnv")
_RABBITMQ_FIELDS = ("url", "vhost", "queue", "count", "caFile", *_CREDENTIAL_FIELDS)
_REDIS_FIELDS = ("url", "list", "stream", "group", "count", "caFile", *_CREDENTIAL_FIELDS)
_SQS_FIELDS = ("queueUrl", "region", "includeInFlight", "endpointUrl", "profile")

_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
# sqs.us-east-1.amazonaws.com, sqs-fips.us-gov-west-1.amazonaws.com, sqs.cn-north-1.amazonaws.com.cn,
# and the legacy us-west-2.queue.amazonaws.com; the bare queue.amazonaws.com is us-east-1.
_SQS_HOST_REGION = (
    re.compile(r"(?:.*\.)?sqs(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"),
    re.compile(r"([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?"),
)


def _credentials(
    entry: Entry, raw: Mapping[str, Any], prefix: str, url: SplitResult
) -> tuple[SecretRef | None, SecretRef | None]:
    """Username and password from the URL's userinfo or exactly one of the ``*File`` / ``*Env`` fields."""
    users: list[SecretRef] = []
    passwords: list[SecretRef] = []
    if url.username:
        users.append(SecretRef(origin=f"{prefix}url", value=unquote(url.username)))
    if url.password is not None:
        passwords.append(SecretRef(origin=f"{prefix}url", value=unquote(url.password)))
    if (name := entry.string(raw, "username", prefix)) is not None:
        users.append(SecretRef(origin=f"{prefix}username", value=name))
    for key, found in (("usernameFile", users), ("passwordFile", passwords)):
        if (path := entry.string(raw, key, prefix)) is not None:
            found.append(SecretRef(origin=prefix + key, file=path))
    for key, found in (("usernameEnv", users), ("passwordEnv", passwords)):
        if (var := entry.string(raw, key, prefix)) is not None:
            if not _ENV_NAME.fullmatch(var):
                entry.fail(prefix + key, f"{var!r} is not an environment variable name")
            found.append(SecretRef(origin=prefix + key, env=var))
    for what, found in (("username", users), ("password", passwords)):
        if len(found) > 1:
            entry.fail(found[1].origin, f"the {what} is already given by {found[0].origin}; give it once")
    return (users[0] if users else None), (passwords[0] if passwords else None)


def _ca_file(entry: Entry, raw: Mapping[str, Any], prefix: str, tls: bool) -> str | None:
    path = entry.string(raw, "caFile", prefix)
    if path is not None and not tls:
        entry.fail(prefix + "caFile", "only applies to TLS URLs (https:// or rediss://)")
    return path


def _rabbitmq(entry: Entry, raw: Any) -> tuple[RabbitMQSource, str, dict[str, Any]]:
    p = "rabbitmq."
    spec = entry.mapping(raw, "rabbitmq")
    entry.known_fields(spec, _RABBITMQ_FIELDS, p)
    parts = entry.url(entry.required(spec, "url", p), p + "url", ("http", "https"))
    if parts.query:
        entry.fail(p + "url", "must not have a ?query")
    vhost = entry.string(spec, "vhost", p) or "/"
    queue = entry.required(spec, "queue", p)
    count = cast(RabbitMQCount, entry.choice(spec, "count", ("ready", "unacked", "total"), "ready", p))
    username, password = _credentials(entry, spec, p, parts)
    base = origin(parts, parts.path.rstrip("/"))
    source = RabbitMQSource(
        base_url=base,
        vhost=vhost,
        queue=queue,
        count=count,
        username=username,
        password=password,
        ca_file=_ca_file(entry, spec, p, parts.scheme == "https"),
    )
    upstream = f"rabbitmq {base} vhost {vhost!r} queue {queue!r}"
    return source, upstream, {"url": base, "vhost": vhost, "queue": queue, "count": count}


def _redis(entry: Entry, raw: Any) -> tuple[RedisSource, str, dict[str, Any]]:
    p = "redis."
    spec = entry.mapping(raw, "redis")
    entry.known_fields(spec, _REDIS_FIELDS, p)
    parts = entry.url(entry.required(spec, "url", p), p + "url", ("redis", "rediss"))
    if parts.query:
        entry.fail(p + "url", "must not have a ?query: put credentials in the URL's userinfo or the *File/*Env fields")
    db_text = parts.path.strip("/") or "0"
    if not db_text.isdigit():
        entry.fail(p + "url", f"the path must be a database number like /0, got {parts.path!r}")
    lst, stream = entry.string(spec, "list", p), entry.string(spec, "stream", p)
    if (lst is None) == (stream is None):
        entry.fail(p.rstrip("."), "needs exactly one of list or stream")
    group = entry.string(spec, "group", p)
    if group is not None and stream is None:
        entry.fail(p + "group", "only applies to a stream")
    if group is None and "count" in spec:
        entry.fail(p + "count", "only applies to a stream consumer group (set group)")
    count = entry.choice(spec, "count", ("pending", "lag"), "pending", p) if group is not None else "length"
    username, password = _credentials(entry, spec, p, parts)
    tls = parts.scheme == "rediss"
    key = lst if lst is not None else stream
    assert key is not None
    source = RedisSource(
        host=parts.hostname or "",
        port=parts.port or 6379,
        db=int(db_text),
        tls=tls,
        key=key,
        structure="list" if lst is not None else "stream",
        group=group,
        count=cast(Any, count),
        username=username,
        password=password,
        ca_file=_ca_file(entry, spec, p, tls),
    )
    address = origin(parts, f"/{int(db_text)}")
    what = f"list {key!r}" if lst is not None else f"stream {key!r}"
    if group is not None:
        what += f" group {group!r}"
    settings: dict[str, Any] = {"url": address, source.structure: key, "count": count}
    if group is not None:
        settings["group"] = group
    return source, f"redis {address} {what}", settings


def _sqs(entry: Entry, raw: Any) -> tuple[SQSSource, str, dict[str, Any]]:
    p = "sqs."
    spec = entry.mapping(raw, "sqs")
    entry.known_fields(spec, _SQS_FIELDS, p)
    queue_url = entry.required(spec, "queueUrl", p)
    parts = entry.url(queue_url, p + "queueUrl", ("https", "http"))
    if parts.username or parts.password:
        entry.fail(p + "queueUrl", "must not carry credentials: AWS credentials come from the SDK chain")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2 or parts.query:
        entry.fail(p + "queueUrl", f"must look like https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE, got {queue_url!r}")
    region = entry.string(spec, "region", p)
    host = parts.hostname or ""
    inferred = next((m.group(1) for rx in _SQS_HOST_REGION if (m := rx.fullmatch(host))), None)
    if host == "queue.amazonaws.com":
        inferred = "us-east-1"
    region = region or inferred
    if region is None:
        entry.fail(p + "region", f"is required: it cannot be read from the queue URL's host {host!r}")
    if not _AWS_REGION.fullmatch(region):
        entry.fail(p + "region", f"{region!r} is not an AWS region name like us-east-1")
    endpoint = entry.string(spec, "endpointUrl", p)
    if endpoint is not None:
        ep = entry.url(endpoint, p + "endpointUrl", ("https", "http"))
        if ep.username or ep.password or ep.query:
            entry.fail(p + "endpointUrl", "must be a plain scheme://host[:port][/path] URL")
        endpoint_url = origin(ep, ep.path or "/")
    else:
        endpoint_url = origin(parts, "/")
    source = SQSSource(
        queue_url=queue_url,
        region=region,
        endpoint_url=endpoint_url,
        include_in_flight=entry.boolean(spec, "includeInFlight", p, False),
        profile=entry.string(spec, "profile", p),
    )
    settings = {"queueUrl": queue_url, "region": region, "includeInFlight": source.include_in_flight}
    if endpoint is not None:
        settings["endpointUrl"] = endpoint_url
    return source, f"sqs {queue_url}", settings


_PARSERS: Mapping[QueueKind, Callable[[Entry, Any], tuple[Any, str, dict[str, Any]]]] = {
    "rabbitmq": _rabbitmq,
    "redis": _redis,
    "sqs": _sqs,
}


def _labels(entry: Entry, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    labels = entry.mapping(raw, "labels")
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix))) or not (
            len(name) <= 63 and _LABEL_NAME.fullmatch(name)
        ):
            entry.fail(f"labels.{key}", "is not a valid label name")
        if not isinstance(value, str):
            entry.fail(f"labels.{key}", f"must be a string (quote numbers and booleans), got {value!r}")
        if value and not (len(value) <= 63 and _LABEL_NAME.fullmatch(value)):
            entry.fail(f"labels.{key}", f"{value!r} is not a valid label value (63 characters: letters, digits, -_.)")
    return dict(labels)


def parse_entry(raw: Any, index: int, where: str = "queues") -> QueueConfig:
    """One validated entry; ``index`` is its position, for messages."""
    name = raw.get("name") if isinstance(raw, Mapping) else None
    entry = Entry(f"{where}[{index}]" + (f" ({name})" if isinstance(name, str) and name else ""))
    spec = entry.mapping(raw, "")
    entry.known_fields(spec, _ENTRY_FIELDS)
    name = entry.required(spec, "name")
    if len(name) > 253 or not _METRIC_NAME.fullmatch(name):
        entry.fail("name", f"{name!r} is not a metric name (letters, digits, _ . : -; not starting with a digit)")
    namespace = entry.string(spec, "namespace")
    if namespace is not None and (len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace)):
        entry.fail("namespace", f"{namespace!r} is not a namespace name")
    labels = _labels(entry, spec.get("labels"))
    timeout = parse_duration(entry, spec["timeout"], "timeout") if spec.get("timeout") is not None else DEFAULT_TIMEOUT
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        found = f"has {' and '.join(kinds)}" if kinds else "has none"
        entry.fail("", f"needs exactly one of {', '.join(KINDS)}; {found}")
    kind = kinds[0]
    source, upstream, settings = _PARSERS[kind](entry, spec[kind])
    return QueueConfig(
        name=name,
        namespace=namespace,
        labels=frozen_mapping(labels),
        kind=kind,
        upstream=upstream,
        settings=frozen_mapping(settings),
        source=source,
        timeout=timeout,
        where=entry.where,
    )


def parse_queues(raw: Sequence[Any] | None, *, where: str = "queues") -> list[QueueConfig]:
    """Validate the ``queues:`` section; raise ``QueueConfigError`` naming entry and field."""
    if raw is None:
        return []
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise QueueConfigError(f"{where}: must be a list of queue entries, got {kind_of(raw)}")
    entries = [parse_entry(item, i, where) for i, item in enumerate(raw)]
    seen: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], str] = {}
    for entry in entries:
        key = (entry.name, entry.namespace, tuple(sorted(entry.labels.items())))
        if key in seen:
            raise QueueConfigError(
                f"{entry.where}: name: metric {entry.name!r} with the same namespace and labels is already "
                f"defined by {seen[key]}; give one of them different labels (metricLabelSelector tells them apart)"
            )
        seen[key] = entry.where
    return entries
