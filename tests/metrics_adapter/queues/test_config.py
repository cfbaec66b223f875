"""Validation of the ``queues:`` section: what a valid entry becomes, and every bad field named."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.queues import (
    QueueConfigError,
    RabbitMQSource,
    RedisSource,
    SQSSource,
    parse_queues,
)

RABBIT = {"url": "http://rabbitmq:15672", "queue": "orders"}
REDIS = {"url": "redis://redis:6379/0", "list": "jobs"}
SQS = {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"}


def _entry(**fields: Any) -> dict[str, Any]:
    return {"name": "backlog", **fields}


def test_design_example_parses_into_typed_sources() -> None:
    """The ``queues:`` example of design.md gives one typed, credential-free entry per queue."""
    entries = parse_queues(
        [
            {
                "name": "orders_backlog",
                "namespace": "shop",
                "rabbitmq": {"url": "http://rabbitmq:15672", "vhost": "/", "queue": "orders", "count": "ready"},
            },
            {"name": "jobs_backlog", "redis": {"url": "redis://redis:6379/0", "list": "jobs"}},
            {
                "name": "sqs_backlog",
                "labels": {"queue": "orders", "team.example.com/tier": "gold"},
                "timeout": "1500ms",
                "sqs": {"queueUrl": SQS["queueUrl"], "includeInFlight": True},
            },
        ]
    )
    orders, jobs, sqs = entries
    assert (orders.name, orders.namespace, orders.kind, orders.where) == (
        "orders_backlog",
        "shop",
        "rabbitmq",
        "queues[0] (orders_backlog)",
    )
    assert orders.source == RabbitMQSource(base_url="http://rabbitmq:15672", vhost="/", queue="orders", count="ready")
    assert orders.timeout == 5.0
    assert jobs.namespace is None and dict(jobs.labels) == {}
    assert jobs.source == RedisSource(
        host="redis", port=6379, db=0, tls=False, key="jobs", structure="list", group=None, count="length"
    )
    assert dict(sqs.labels) == {"queue": "orders", "team.example.com/tier": "gold"}
    assert sqs.timeout == 1.5
    assert sqs.source == SQSSource(
        queue_url=SQS["queueUrl"],
        region="eu-west-1",  # read from the queue URL's host
        endpoint_url="https://sqs.eu-west-1.amazonaws.com/",
        include_in_flight=True,
    )
    assert dict(sqs.settings) == {"queueUrl": SQS["queueUrl"], "region": "eu-west-1", "includeInFlight": True}


def test_credentials_never_reach_upstream_or_settings() -> None:
    """Passwords in URLs are kept for the reader but left out of ``upstream``, ``settings`` and repr."""
    rabbit, redis = parse_queues(
        [
            _entry(rabbitmq={"url": "https://svc:s3cr%2Ft@mq.example:15671/mgmt/", "vhost": "a/b", "queue": "q"}),
            {"name": "jobs", "redis": {"url": "rediss://user:pa55@[::1]:6380/2", "stream": "s", "group": "g"}},
        ]
    )
    for entry in (rabbit, redis):
        text = f"{entry.upstream} {dict(entry.settings)} {entry!r}"
        assert "s3cr" not in text and "pa55" not in text
    assert rabbit.upstream == "rabbitmq https://mq.example:15671/mgmt vhost 'a/b' queue 'q'"
    assert isinstance(rabbit.source, RabbitMQSource)
    assert rabbit.source.base_url == "https://mq.example:15671/mgmt"
    assert rabbit.source.password is not None and rabbit.source.password.value == "s3cr/t"  # percent-decoded
    assert redis.upstream == "redis rediss://[::1]:6380/2 stream 's' group 'g'"
    assert isinstance(redis.source, RedisSource)
    assert (redis.source.host, redis.source.port, redis.source.db, redis.source.tls) == ("::1", 6380, 2, True)
    assert redis.source.count == "pending"  # a group's default, as KEDA's
    assert redis.source.username is not None and redis.source.username.value == "user"


def test_secret_files_and_env_are_references_not_values() -> None:
    """``passwordFile`` / ``usernameEnv`` are recorded with their field, to be read when a reader opens."""
    (entry,) = parse_queues(
        [_entry(redis={**REDIS, "usernameEnv": "REDIS_USER", "passwordFile": "/var/run/secrets/redis/password"})]
    )
    assert isinstance(entry.source, RedisSource)
    assert entry.source.username is not None and entry.source.username.env == "REDIS_USER"
    assert entry.source.password is not None and entry.source.password.file == "/var/run/secrets/redis/password"
    assert entry.source.password.origin == "redis.passwordFile"


def test_same_name_with_different_labels_is_allowed() -> None:
    """Two queues may share a metric name when labels (for metricLabelSelector) tell them apart."""
    entries = parse_queues(
        [_entry(labels={"queue": "a"}, redis={**REDIS, "list": "a"}), _entry(labels={"queue": "b"}, redis=REDIS)]
    )
    assert [dict(e.labels) for e in entries] == [{"queue": "a"}, {"queue": "b"}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x"}, "queues: must be a list of queue entries, got a mapping"),
        ("x", "queues: must be a list of queue entries, got a string"),
    ],
)
def test_section_that_is_not_a_list_is_refused(raw: Any, message: str) -> None:
    """A ``queues:`` that is not a list is refused as a whole."""
    with pytest.raises(QueueConfigError, match=f"^{message}$"):
        parse_queues(raw)


def test_empty_or_missing_section_is_no_queues() -> None:
    """No ``queues:`` section (None) or an empty one gives no entries."""
    assert parse_queues(None) == [] and parse_queues([]) == []


BAD_ENTRIES: list[tuple[Any, str]] = [
    # the entry itself
    ("orders", "must be a mapping, got a string"),
    (_entry(redis=REDIS, namesapce="shop"), "namesapce: unknown field (did you mean 'namespace'?)"),
    ({"redis": REDIS}, "name: is required"),
    (_entry(name=7, redis=REDIS), "name: must be a string, got a number"),
    (_entry(name="", redis=REDIS), "name: must not be empty"),
    (_entry(name="9lives", redis=REDIS), "name: '9lives' is not a metric name"),
    (_entry(name="a/b", redis=REDIS), "name: 'a/b' is not a metric name"),
    (_entry(namespace="Shop", redis=REDIS), "namespace: 'Shop' is not a namespace name"),
    (_entry(labels=["a"], redis=REDIS), "labels: must be a mapping, got a list"),
    (_entry(labels={"bad key": "x"}, redis=REDIS), "labels.bad key: is not a valid label name"),
    (_entry(labels={"tier": 1}, redis=REDIS), "labels.tier: must be a string (quote numbers"),
    (_entry(labels={"tier": "a b"}, redis=REDIS), "labels.tier: 'a b' is not a valid label value"),
    (_entry(timeout="soon", redis=REDIS), "timeout: must be a duration like 5s or 500ms, got 'soon'"),
    (_entry(timeout=0, redis=REDIS), "timeout: must be between 1ms and 60s, got 0"),
    (_entry(timeout="2m", redis=REDIS), "timeout: must be between 1ms and 60s, got '2m'"),
    (_entry(timeout=True, redis=REDIS), "timeout: must be a duration like 5s or 500ms"),
    (_entry(), "needs exactly one of rabbitmq, redis, sqs; has none"),
    (_entry(redis=REDIS, sqs=SQS), "needs exactly one of rabbitmq, redis, sqs; has redis and sqs"),
    # rabbitmq
    (_entry(rabbitmq="http://mq"), "rabbitmq: must be a mapping, got a string"),
    (_entry(rabbitmq={"queue": "q"}), "rabbitmq.url: is required"),
    (
        _entry(rabbitmq={**RABBIT, "url": "amqp://mq:5672"}),
        "rabbitmq.url: scheme must be http:// or https://; got 'amqp'",
    ),
    (_entry(rabbitmq={**RABBIT, "url": "http://:15672"}), "rabbitmq.url: has no host"),
    (_entry(rabbitmq={**RABBIT, "url": "http://mq:99999"}), "rabbitmq.url: is not a valid URL"),
    (_entry(rabbitmq={**RABBIT, "url": "http://mq:15672?x=1"}), "rabbitmq.url: must not have a ?query"),
    (_entry(rabbitmq={**RABBIT, "vhost": 1}), "rabbitmq.vhost: must be a string, got a number"),
    (_entry(rabbitmq={"url": RABBIT["url"]}), "rabbitmq.queue: is required"),
    (_entry(rabbitmq={**RABBIT, "count": "all"}), "rabbitmq.count: must be one of ready, unacked, total; got 'all'"),
    (_entry(rabbitmq={**RABBIT, "qeue": "q"}), "rabbitmq.qeue: unknown field (did you mean 'queue'?)"),
    (
        _entry(rabbitmq={**RABBIT, "url": "http://u:p@mq:15672", "passwordFile": "/p"}),
        "rabbitmq.passwordFile: the password is already given by rabbitmq.url; give it once",
    ),
    (
        _entry(rabbitmq={**RABBIT, "username": "a", "usernameFile": "/u"}),
        "rabbitmq.usernameFile: the username is already given by rabbitmq.username",
    ),
    (_entry(rabbitmq={**RABBIT, "passwordEnv": "MY-PASS"}), "rabbitmq.passwordEnv: 'MY-PASS' is not an environment"),
    (_entry(rabbitmq={**RABBIT, "caFile": "/ca.pem"}), "rabbitmq.caFile: only applies to TLS URLs"),
    # redis
    (
        _entry(redis={**REDIS, "url": "http://redis:6379"}),
        "redis.url: scheme must be redis:// or rediss://; got 'http'",
    ),
    (_entry(redis={**REDIS, "url": "redis://redis/zero"}), "redis.url: the path must be a database number like /0"),
    (_entry(redis={**REDIS, "url": "redis://redis?password=x"}), "redis.url: must not have a ?query"),
    (_entry(redis={"url": REDIS["url"]}), "redis: needs exactly one of list or stream"),
    (_entry(redis={**REDIS, "stream": "s"}), "redis: needs exactly one of list or stream"),
    (_entry(redis={**REDIS, "group": "g"}), "redis.group: only applies to a stream"),
    (_entry(redis={**REDIS, "count": "lag"}), "redis.count: only applies to a stream consumer group (set group)"),
    (
        _entry(redis={"url": REDIS["url"], "stream": "s", "group": "g", "count": "length"}),
        "redis.count: must be one of pending, lag; got 'length'",
    ),
    (_entry(redis={**REDIS, "list": ""}), "redis.list: must not be empty"),
    # sqs
    (_entry(sqs={"region": "us-east-1"}), "sqs.queueUrl: is required"),
    (_entry(sqs={"queueUrl": "https://sqs.us-east-1.amazonaws.com/orders"}), "sqs.queueUrl: must look like https://"),
    (
        _entry(sqs={"queueUrl": "https://k:s@sqs.us-east-1.amazonaws.com/1/q"}),
        "sqs.queueUrl: must not carry credentials",
    ),
    (
        _entry(sqs={"queueUrl": "http://localhost:4566/000000000000/q"}),
        "sqs.region: is required: it cannot be read from the queue URL's host 'localhost'",
    ),
    (_entry(sqs={**SQS, "region": "Europe"}), "sqs.region: 'Europe' is not an AWS region name"),
    (_entry(sqs={**SQS, "includeInFlight": "yes"}), "sqs.includeInFlight: must be true or false, got 'yes'"),
    (_entry(sqs={**SQS, "endpointUrl": "ftp://x"}), "sqs.endpointUrl: scheme must be https:// or http://; got 'ftp'"),
    (_entry(sqs={**SQS, "endpointUrl": "https://x/?a=1"}), "sqs.endpointUrl: must be a plain scheme://host"),
    (
        _entry(sqs={**SQS, "includeInflight": True}),
        "sqs.includeInflight: unknown field (did you mean 'includeInFlight'?)",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_ENTRIES, ids=[m for _, m in BAD_ENTRIES])
def test_bad_entry_is_refused_naming_entry_and_field(raw: Any, message: str) -> None:
    """Each bad field is refused with a message that names the entry and the field."""
    good = _entry(name="first", redis=REDIS)
    with pytest.raises(QueueConfigError) as info:
        parse_queues([good, raw])  # the bad entry is the second one: its index must be 1
    name = raw.get("name") if isinstance(raw, dict) else None
    entry = f"queues[1] ({name})" if isinstance(name, str) and name else "queues[1]"
    assert str(info.value).startswith(f"{entry}: ")
    assert message in str(info.value)


def test_where_prefix_is_used_in_messages() -> None:
    """The caller's ``where`` (e.g. the config file) prefixes every message."""
    with pytest.raises(QueueConfigError, match=r"^adapter.yaml: queues\[0\] \(x\): redis.url: is required$"):
        parse_queues([{"name": "x", "redis": {"list": "a"}}], where="adapter.yaml: queues")


def test_duplicate_metric_is_refused_naming_both_entries() -> None:
    """Two entries with the same name, namespace and labels are refused, naming the first."""
    with pytest.raises(QueueConfigError, match=r"^queues\[1\] \(backlog\): name: .*already defined by queues\[0\]"):
        parse_queues([_entry(redis=REDIS), _entry(redis={**REDIS, "list": "other"})])


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("sqs.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
        ("sqs-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("sqs.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("us-west-2.queue.amazonaws.com", "us-west-2"),
        ("queue.amazonaws.com", "us-east-1"),
    ],
)
def test_region_is_read_from_aws_queue_hosts(host: str, region: str) -> None:
    """Without ``region``, the region comes from an AWS queue URL's host."""
    (entry,) = parse_queues([_entry(sqs={"queueUrl": f"https://{host}/123456789012/q"})])
    assert isinstance(entry.source, SQSSource) and entry.source.region == region


def test_endpoint_url_overrides_where_requests_go() -> None:
    """``endpointUrl`` (a VPC endpoint, a local server) is where requests go; the queue URL stays the queue's name."""
    (entry,) = parse_queues(
        [_entry(sqs={**SQS, "endpointUrl": "https://vpce-1.sqs.eu-west-1.vpce.amazonaws.com", "profile": "team"})]
    )
    assert isinstance(entry.source, SQSSource)
    assert entry.source.endpoint_url == "https://vpce-1.sqs.eu-west-1.vpce.amazonaws.com/"
    assert entry.source.queue_url == SQS["queueUrl"]
    assert entry.source.profile == "team"
