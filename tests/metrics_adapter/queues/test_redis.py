"""Redis backlogs (list, stream, consumer group) read from the harness's real redis-server, over IPv4 and IPv6."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from e2e import pki, procs, services
from metrics_adapter.queues import (
    QueueAuthError,
    QueueBadResponse,
    QueueNotFound,
    QueueReader,
    QueueUnreachable,
    open_reader,
)
from tests.metrics_adapter.queues.conftest import entry

pytestmark = pytest.mark.services

READER = "e2e-reader"
# Only what the reader needs: the commands it sends, on keys under "e2e:".
READER_ACL = ["on", ">first-pw", "~e2e:*", "+llen", "+xlen", "+xinfo|groups", "+type", "+ping"]


@pytest.fixture(scope="module")
def redis_ipv6() -> Iterator[services.Redis]:
    """A second redis-server, listening on ::1 only."""
    server = services.start_redis("ipv6")
    yield server
    server.stop()


@pytest.fixture
def key() -> str:
    """A key no other test uses."""
    return f"e2e:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(redis_server: services.Redis) -> Iterator[redis.Redis]:
    """A plain redis-py client to set up data."""
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield r
    r.close()


def _raw(client: redis.Redis) -> Any:
    """The client, for commands redis-py has no typed method for (ACL SETUSER rules, CLIENT KILL USER)."""
    return client


async def _reader(session: aiohttp.ClientSession, url: str, **spec: Any) -> QueueReader:
    return await open_reader(entry("redis", {"url": url, **spec}), session)


async def test_list_length_follows_pushes_and_pops(
    redis_server: services.Redis, client: redis.Redis, key: str, http_session: aiohttp.ClientSession
) -> None:
    """A list reads as its LLEN, live; a list that does not exist (or was emptied) reads 0."""
    reader = await _reader(http_session, redis_server.url, list=key)
    try:
        assert (await reader.read()).value == 0
        client.rpush(key, *[f"job-{i}" for i in range(5)])
        before = time.time()
        sample = await reader.read()
        assert sample.value == 5 and before <= sample.timestamp <= time.time()
        client.lpop(key, 5)  # Redis deletes the emptied list
        assert (await reader.read()).value == 0
    finally:
        await reader.close()


async def test_stream_length_and_group_pending_and_lag(
    redis_server: services.Redis, client: redis.Redis, key: str, http_session: aiohttp.ClientSession
) -> None:
    """A stream reads as XLEN; a group as its pending count or its lag, each following reads and acks."""
    for i in range(6):
        client.xadd(key, {"n": i})
    client.xgroup_create(key, "workers", id="0")
    delivered: Any = client.xreadgroup("workers", "w1", {key: ">"}, count=4)
    ids = [msg_id for msg_id, _ in delivered[0][1]]

    length = await _reader(http_session, redis_server.url, stream=key)
    pending = await _reader(http_session, redis_server.url, stream=key, group="workers")
    lag = await _reader(http_session, redis_server.url, stream=key, group="workers", count="lag")
    try:
        assert [(await r.read()).value for r in (length, pending, lag)] == [6, 4, 2]
        client.xack(key, "workers", *ids[:3])
        client.xadd(key, {"n": 6})
        assert [(await r.read()).value for r in (length, pending, lag)] == [7, 1, 3]
    finally:
        for r in (length, pending, lag):
            await r.close()


async def test_missing_stream_group_and_wrong_type(
    redis_server: services.Redis, client: redis.Redis, key: str, http_session: aiohttp.ClientSession
) -> None:
    """A group on a missing stream, a missing group, and a key of another type are clear errors."""
    no_stream = await _reader(http_session, redis_server.url, stream=key, group="workers")
    with pytest.raises(QueueNotFound, match=f"stream '{key}' does not exist$"):
        await no_stream.read()

    client.xadd(key, {"n": 1})
    client.xgroup_create(key, "billing", id="0")
    no_group = await _reader(http_session, redis_server.url, stream=key, group="workers")
    with pytest.raises(QueueNotFound, match=r"has no consumer group 'workers' \(groups: 'billing'\)$"):
        await no_group.read()

    wrong_type = await _reader(http_session, redis_server.url, list=key)
    with pytest.raises(QueueBadResponse, match=f"key '{key}' holds a stream, not a list$"):
        await wrong_type.read()
    for r in (no_stream, no_group, wrong_type):
        await r.close()


@pytest.fixture
def acl_user(client: redis.Redis) -> Iterator[str]:
    """A Redis ACL user allowed only the reader's commands on e2e:* keys, password ``first-pw``."""
    client.acl_setuser(READER, reset=True)
    _raw(client).execute_command("ACL", "SETUSER", READER, *READER_ACL)
    yield READER
    client.acl_deluser(READER)


async def test_acl_user_with_wrong_password_or_without_permission(
    redis_server: services.Redis, client: redis.Redis, acl_user: str, key: str, http_session: aiohttp.ClientSession
) -> None:
    """A least-privilege ACL user reads; a wrong password and a key outside its ACL are auth errors without secrets."""
    client.rpush(key, "a", "b")
    base = redis_server.url.replace("redis://", f"redis://{acl_user}:{{password}}@")
    good = await _reader(http_session, base.format(password="first-pw"), list=key)
    assert (await good.read()).value == 2

    wrong = await _reader(http_session, base.format(password="Wr0ng-pa55"), list=key)
    with pytest.raises(QueueAuthError, match=f"authentication failed \\(user '{acl_user}'\\)") as info:
        await wrong.read()
    assert "Wr0ng-pa55" not in str(info.value) and "first-pw" not in str(info.value)
    assert info.value.upstream == f"redis {redis_server.url} list '{key}'"

    outside = await _reader(http_session, base.format(password="first-pw"), list="other:jobs")
    with pytest.raises(QueueAuthError, match=r"not allowed: .*no permissions to access one of the keys"):
        await outside.read()
    for r in (good, wrong, outside):
        await r.close()


async def test_password_file_is_read_again_after_rotation(
    redis_server: services.Redis,
    client: redis.Redis,
    acl_user: str,
    key: str,
    tmp_path: Path,
    http_session: aiohttp.ClientSession,
) -> None:
    """With ``passwordFile``, a rotated password is picked up on the read after the server refuses the old one."""
    client.rpush(key, "a")
    password_file = tmp_path / "password"
    password_file.write_text("first-pw\n")
    reader = await _reader(http_session, redis_server.url, list=key, username=acl_user, passwordFile=str(password_file))
    try:
        assert (await reader.read()).value == 1
        _raw(client).execute_command("ACL", "SETUSER", acl_user, "resetpass", ">second-pw")
        _raw(client).execute_command("CLIENT", "KILL", "USER", acl_user)  # the open connection is still authenticated
        with pytest.raises(QueueAuthError):
            await reader.read()
        password_file.write_text("second-pw")
        assert (await reader.read()).value == 1
    finally:
        await reader.close()


async def test_ipv6_redis_is_read_over_loopback_v6(
    redis_ipv6: services.Redis, key: str, http_session: aiohttp.ClientSession
) -> None:
    """A Redis on [::1] is read through a bracketed IPv6 URL; upstream shows the address."""
    assert redis_ipv6.url.startswith("redis://[::1]:")
    r = redis.Redis.from_url(redis_ipv6.url)
    r.rpush(key, *range(3))
    r.close()
    reader = await _reader(http_session, redis_ipv6.url, list=key)
    try:
        assert (await reader.read()).value == 3
        assert reader.config.upstream == f"redis {redis_ipv6.url} list '{key}'"
    finally:
        await reader.close()


@pytest.fixture(scope="module")
def redis_tls() -> Iterator[tuple[str, Path]]:
    """A redis-server that speaks only TLS, with a certificate from a throwaway CA: (rediss URL, CA file)."""
    directory = procs.private_dir("redis-tls")
    processes = procs.ProcessSet()
    try:
        ca_cert, ca_key = pki.new_ca("e2e-redis-ca")
        cert, key = pki.issue(ca_cert, ca_key, "redis", server=True, ips=("127.0.0.1",))
        crt_path, key_path = pki.write_pair(directory, "redis", cert, key)
        ca_path, _ = pki.write_pair(directory, "ca", ca_cert, ca_key)
        port = procs.free_port()
        argv = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--tls-cert-file", str(crt_path), "--tls-key-file", str(key_path), "--tls-ca-cert-file", str(ca_path)]
        argv += ["--tls-auth-clients", "no", "--dir", str(directory), "--appendonly", "no"]
        proc = processes.add(procs.start("redis-tls", argv, directory / "logs"))
        url = f"rediss://127.0.0.1:{port}/0"
        procs.wait_until(
            "redis TLS PING",
            lambda: redis.Redis.from_url(url, ssl_ca_certs=str(ca_path), socket_timeout=2).ping(),
            timeout=30,
            watch=[proc],
        )
        yield url, ca_path
    finally:
        processes.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_rediss_with_ca_file_and_without(
    redis_tls: tuple[str, Path], key: str, http_session: aiohttp.ClientSession
) -> None:
    """rediss:// with ``caFile`` verifies the server and reads; without it the unknown CA is refused."""
    url, ca_path = redis_tls
    seed = redis.Redis.from_url(url, ssl_ca_certs=str(ca_path))
    seed.rpush(key, "a", "b", "c", "d")
    seed.close()
    trusted = await _reader(http_session, url, list=key, caFile=str(ca_path))
    try:
        assert (await trusted.read()).value == 4
    finally:
        await trusted.close()
    untrusted = await _reader(http_session, url, list=key)
    try:
        with pytest.raises(QueueUnreachable, match="certificate verify failed"):
            await untrusted.read()
    finally:
        await untrusted.close()
