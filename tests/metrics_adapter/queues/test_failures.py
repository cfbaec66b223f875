"""Every broker kind, down or silent: a clear QueueError naming the upstream, never the credentials."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from metrics_adapter.queues import (
    QueueConfig,
    QueueConfigError,
    QueueTimeout,
    QueueUnreachable,
    open_reader,
    parse_queues,
)
from tests.metrics_adapter.queues.conftest import entry

SECRET = "hunter2-Sup3r"


def _config(kind: str, port: int, **fields: Any) -> QueueConfig:
    specs: dict[str, dict[str, Any]] = {
        "rabbitmq": {"url": f"http://watcher:{SECRET}@127.0.0.1:{port}", "queue": "orders"},
        "redis": {"url": f"redis://watcher:{SECRET}@127.0.0.1:{port}/0", "list": "jobs"},
        "sqs": {"queueUrl": f"http://127.0.0.1:{port}/123456789012/orders", "region": "us-east-1"},
    }
    return entry(kind, specs[kind], **fields)


@pytest.fixture
def aws_keys(aws_env: pytest.MonkeyPatch) -> None:
    """SQS credentials in the environment, the secret being the one that must never show."""
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE01")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


KINDS = ["rabbitmq", "redis", "sqs"]


@pytest.mark.usefixtures("aws_keys")
@pytest.mark.parametrize("kind", KINDS)
async def test_broker_down_is_unreachable_naming_upstream_without_credentials(
    kind: str, refused_port: int, http_session: aiohttp.ClientSession
) -> None:
    """Connection refused gives QueueUnreachable whose message names broker, address and queue, not the secret."""
    config = _config(kind, refused_port)
    reader = await open_reader(config, http_session)
    try:
        with pytest.raises(QueueUnreachable) as info:
            await reader.read()
    finally:
        await reader.close()
    message = str(info.value)
    assert info.value.upstream == config.upstream
    assert message.startswith(f"{kind} ") and f"127.0.0.1:{refused_port}" in message
    assert "Connection refused" in message
    assert SECRET not in message and "watcher:" not in message


@pytest.mark.usefixtures("aws_keys")
@pytest.mark.parametrize("kind", KINDS)
async def test_silent_broker_times_out_within_the_entry_timeout(
    kind: str, silent_port: int, http_session: aiohttp.ClientSession
) -> None:
    """A broker that accepts and never answers gives QueueTimeout once the entry's timeout has passed."""
    config = _config(kind, silent_port, timeout="300ms")
    reader = await open_reader(config, http_session)
    started = time.monotonic()
    try:
        with pytest.raises(QueueTimeout, match=r"no answer within 0.3s"):
            await reader.read()
    finally:
        await reader.close()
    # Not a speed assertion: proof that the 300 ms bound, not some library default, ended the read.
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
async def test_missing_password_file_stops_open_naming_the_field(
    kind: str, tmp_path: Any, http_session: aiohttp.ClientSession
) -> None:
    """A ``passwordFile`` that cannot be read is a config error at open, naming entry, field and file."""
    url = {"rabbitmq": "http://u@127.0.0.1:15672", "redis": "redis://u@127.0.0.1:6379/0"}[kind]
    spec = {"url": url, "passwordFile": str(tmp_path / "absent"), **({"queue": "q"} if kind == "rabbitmq" else {})}
    if kind == "redis":
        spec["list"] = "jobs"
    with pytest.raises(QueueConfigError) as info:
        await open_reader(entry(kind, spec), http_session)
    assert str(info.value) == (
        f"queues[0] (backlog): {kind}.passwordFile: cannot read {tmp_path / 'absent'}: No such file or directory"
    )


async def test_unset_password_env_stops_open_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, http_session: aiohttp.ClientSession
) -> None:
    """A ``passwordEnv`` naming an unset variable is a config error at open."""
    monkeypatch.delenv("E2E_QUEUE_PASSWORD", raising=False)
    config = entry("rabbitmq", {"url": "http://u@127.0.0.1:1", "queue": "q", "passwordEnv": "E2E_QUEUE_PASSWORD"})
    with pytest.raises(QueueConfigError, match=r"rabbitmq.passwordEnv: environment variable E2E_QUEUE_PASSWORD is not"):
        await open_reader(config, http_session)


async def test_unreadable_ca_file_stops_open(tmp_path: Any, http_session: aiohttp.ClientSession) -> None:
    """A ``caFile`` that is not a CA bundle is a config error at open, naming the field."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    config = entry("rabbitmq", {"url": "https://127.0.0.1:1", "queue": "q", "caFile": str(bad)})
    with pytest.raises(QueueConfigError, match=r"^queues\[0\] \(backlog\): rabbitmq.caFile: cannot load"):
        await open_reader(config, http_session)


async def test_entry_not_from_parse_queues_is_refused(http_session: aiohttp.ClientSession) -> None:
    """open_reader refuses a hand-built QueueConfig that has no validated source."""
    (good,) = parse_queues([{"name": "x", "redis": {"url": "redis://h/0", "list": "l"}}])
    hand_built = QueueConfig(name="x", namespace=None, labels={}, kind="redis", upstream=good.upstream)
    with pytest.raises(QueueConfigError, match="not a validated redis entry"):
        await open_reader(hand_built, http_session)
