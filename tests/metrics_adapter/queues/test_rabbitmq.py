"""RabbitMQ backlogs read through the management API of the harness's real RabbitMQ node."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pika  # type: ignore[import-untyped]
import pytest

from e2e import procs, services
from metrics_adapter.queues import QueueAuthError, QueueNotFound, open_reader
from tests.metrics_adapter.queues.conftest import entry, wait_for_value

pytestmark = pytest.mark.services

ORDERS = "e2e-orders"
VHOST = "team/a b"  # a slash and a space: both must be percent-encoded in the API path
JOBS = "jobs/high prio"


@dataclass(frozen=True, slots=True)
class Broker:
    rabbitmq: services.RabbitMQ
    url: str  # management URL with guest's credentials in it

    def spec(self, **fields: Any) -> dict[str, Any]:
        return {"url": self.url, "queue": ORDERS, **fields}


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest.fixture(scope="module")
def broker(rabbitmq: services.RabbitMQ) -> Iterator[Broker]:
    """ORDERS holds 3 ready + 2 unacked messages, VHOST/JOBS holds 2 ready, and the node's statistics say so."""
    rabbitmq.declare_queue(ORDERS)
    rabbitmq.publish(ORDERS, 5)
    rabbitmq.api("PUT", f"/api/vhosts/{_quote(VHOST)}")
    rabbitmq.api("PUT", f"/api/permissions/{_quote(VHOST)}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    rabbitmq.declare_queue(JOBS, vhost=VHOST)
    rabbitmq.publish(JOBS, 2, vhost=VHOST)
    # A consumer that takes two messages and never acknowledges them, for as long as the module runs.
    params = pika.ConnectionParameters(
        host=rabbitmq.host, port=rabbitmq.amqp_port, credentials=pika.PlainCredentials("guest", "guest")
    )
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    for _ in range(2):
        method, _, _ = channel.basic_get(ORDERS, auto_ack=False)
        assert method is not None
    procs.wait_until(
        "RabbitMQ statistics for both queues",
        lambda: (
            (o := rabbitmq.queue_info(ORDERS)).get("messages_ready") == 3
            and o.get("messages_unacknowledged") == 2
            and rabbitmq.queue_info(JOBS, vhost=VHOST).get("messages_ready") == 2
        ),
        timeout=60,
    )
    url = rabbitmq.management_url.replace("http://", "http://guest:guest@")
    try:
        yield Broker(rabbitmq, url)
    finally:
        connection.close()
        rabbitmq.api("DELETE", f"/api/queues/%2F/{_quote(ORDERS)}")
        rabbitmq.api("DELETE", f"/api/vhosts/{_quote(VHOST)}")


@pytest.mark.parametrize(("count", "expected"), [("ready", 3), ("unacked", 2), ("total", 5)])
async def test_count_modes_read_ready_unacked_and_total(
    broker: Broker, http_session: aiohttp.ClientSession, count: str, expected: int
) -> None:
    """``count`` picks ready, unacknowledged or all messages; the sample carries the time it was read."""
    reader = await open_reader(entry("rabbitmq", broker.spec(count=count)), http_session)
    before = time.time()
    sample = await reader.read()
    assert sample.value == expected
    assert before <= sample.timestamp <= time.time()


async def test_vhost_and_queue_with_slash_and_space_follow_the_backlog(
    broker: Broker, http_session: aiohttp.ClientSession
) -> None:
    """A vhost and a queue named with '/' and ' ' are found, and a new message shows up in the next reads."""
    reader = await open_reader(entry("rabbitmq", broker.spec(vhost=VHOST, queue=JOBS)), http_session)
    assert (await reader.read()).value == 2
    broker.rabbitmq.publish(JOBS, 1, vhost=VHOST)
    assert await wait_for_value(reader, 3) == 3


async def test_missing_queue_and_missing_vhost_are_told_apart(
    broker: Broker, http_session: aiohttp.ClientSession
) -> None:
    """A missing queue and a missing vhost are both QueueNotFound, each saying which is missing."""
    no_queue = await open_reader(entry("rabbitmq", broker.spec(queue="no-such-queue")), http_session)
    with pytest.raises(QueueNotFound, match=r"queue 'no-such-queue' does not exist in vhost '/'$"):
        await no_queue.read()
    no_vhost = await open_reader(entry("rabbitmq", broker.spec(vhost="no-such-vhost")), http_session)
    with pytest.raises(QueueNotFound, match=r"vhost 'no-such-vhost' does not exist$"):
        await no_vhost.read()


async def test_wrong_or_missing_credentials_are_auth_errors_without_the_password(
    broker: Broker, http_session: aiohttp.ClientSession
) -> None:
    """A wrong password and no credentials at all are QueueAuthError; the password is in no message."""
    wrong_url = broker.url.replace("guest:guest@", "guest:Wr0ng-pa55@")
    wrong = await open_reader(entry("rabbitmq", broker.spec(url=wrong_url)), http_session)
    with pytest.raises(QueueAuthError, match=r"refused access \(HTTP 401, user 'guest'\)") as info:
        await wrong.read()
    assert "Wr0ng-pa55" not in str(info.value)
    assert info.value.upstream == f"rabbitmq {broker.rabbitmq.management_url} vhost '/' queue '{ORDERS}'"

    anonymous = await open_reader(entry("rabbitmq", broker.spec(url=broker.rabbitmq.management_url)), http_session)
    with pytest.raises(QueueAuthError, match="no credentials configured"):
        await anonymous.read()


async def test_password_file_is_read_again_after_rotation(
    broker: Broker, http_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With ``passwordFile``, a password changed on the broker and then in the file is picked up without reopening."""
    rabbit, user = broker.rabbitmq, "e2e-watcher"
    rabbit.api("PUT", f"/api/users/{user}", {"password": "first-pw", "tags": "monitoring"})
    rabbit.api("PUT", f"/api/permissions/%2F/{user}", {"configure": "", "write": "", "read": ".*"})
    password_file = tmp_path / "password"
    password_file.write_text("first-pw\n")  # as `echo` writes it: the newline is not part of the password
    spec = broker.spec(url=rabbit.management_url, username=user, passwordFile=str(password_file))
    reader = await open_reader(entry("rabbitmq", spec), http_session)
    try:
        assert (await reader.read()).value == 3

        rabbit.api("PUT", f"/api/users/{user}", {"password": "second-pw", "tags": "monitoring"})
        with pytest.raises(QueueAuthError, match=f"user '{user}'"):
            await reader.read()  # the file still has the old password
        password_file.write_text("second-pw")
        assert (await reader.read()).value == 3
    finally:
        rabbit.api("DELETE", f"/api/users/{user}")
