"""``SecretWatch`` on the in-memory cluster: reads after the first cost no request, changes and
deletions arrive by the watch, a refused watch falls back to GETs, idle names stop being watched."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog

from gitopsd.kube.errors import Forbidden
from gitopsd.kube.secrets import SecretNotFound
from gitopsd.kube.secretwatch import PlainSecretReader, SecretWatch
from tests.fakes import FakeKube

SECRETS = "/api/v1/namespaces/shop/secrets"
WHERE = "spec.source.secretRef"


def secret(name: str, **values: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "shop"}, "data": data}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube(namespaces=("default", "shop"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def watch(fake: FakeKube, clock: Clock) -> AsyncIterator[SecretWatch]:
    made = SecretWatch(fake, clock=clock)  # type: ignore[arg-type]  # the fake speaks KubeAPI, not Kube
    yield made
    await made.close()


async def eventually(what: str, check: Callable[[], Any]) -> None:
    """Await ``check()`` (a coroutine function) until it returns True; fail naming ``what``."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never saw {what}")


async def test_second_read_makes_no_request(fake: FakeKube, watch: SecretWatch) -> None:
    """The first read lists and watches that one name; later reads are answered from memory."""
    fake.seed(secret("git", password="one"))
    fake.seed(secret("other", password="x"))
    first = await watch.read("shop", "git", where=WHERE)
    assert first["password"] == b"one"
    assert set(first) == {"password"}  # the field selector kept the other Secret out
    await asyncio.sleep(0.05)  # let the watch open
    fake.stats.reset()
    for _ in range(5):
        again = await watch.read("shop", "git", where=WHERE)
        assert again == first and again.where == WHERE
    assert fake.stats.snapshot() == {}
    assert watch.watching() == [("shop", "git")]


async def test_a_change_is_seen_without_a_request(fake: FakeKube, watch: SecretWatch) -> None:
    """A rotated value arrives by the watch: the next read returns it and makes no GET."""
    fake.seed(secret("git", password="one"))
    await watch.read("shop", "git")
    await fake.patch(f"{SECRETS}/git", {"data": {"password": base64.b64encode(b"two").decode()}})

    async def rotated() -> bool:
        return (await watch.read("shop", "git"))["password"] == b"two"

    await eventually("the rotated password", rotated)
    assert "GET secrets" not in fake.stats.snapshot()


async def test_deletion_is_secret_not_found_as_a_get_says(fake: FakeKube, watch: SecretWatch) -> None:
    """A deleted Secret is SecretNotFound with the very message a GET's reader gives."""
    fake.seed(secret("git", password="one"))
    await watch.read("shop", "git", where=WHERE)
    await fake.delete(f"{SECRETS}/git")
    with pytest.raises(SecretNotFound) as by_get:
        await PlainSecretReader(fake).read("shop", "git", where=WHERE)

    async def gone() -> bool:
        try:
            await watch.read("shop", "git", where=WHERE)
        except SecretNotFound as exc:
            assert str(exc) == str(by_get.value)
            return True
        return False

    await eventually("the deletion", gone)


async def test_missing_secret_is_not_found_and_its_creation_is_seen(fake: FakeKube, watch: SecretWatch) -> None:
    """A Secret that does not exist yet is SecretNotFound; once created the watch serves it."""
    with pytest.raises(SecretNotFound, match=r"spec.source.secretRef: Secret shop/late not found"):
        await watch.read("shop", "late", where=WHERE)
    fake.seed(secret("late", token="t"))

    async def created() -> bool:
        try:
            return (await watch.read("shop", "late"))["token"] == b"t"
        except SecretNotFound:
            return False

    await eventually("the created Secret", created)


async def test_a_refused_watch_falls_back_to_a_get_per_read(fake: FakeKube, watch: SecretWatch) -> None:
    """403 on the watch: reads still succeed, each with a GET, and one warning names the verb."""
    refused = Forbidden(403, "Forbidden", 'secrets "git" is forbidden: cannot watch resource "secrets"')
    fake.fail_next("WATCH", SECRETS, refused, times=100)
    fake.seed(secret("git", password="s3cr3t-value"))
    with structlog.testing.capture_logs() as logs:
        assert (await watch.read("shop", "git"))["password"] == b"s3cr3t-value"
        await asyncio.sleep(0.05)  # the watch is refused after the first list
        fake.stats.reset()
        for _ in range(3):
            assert (await watch.read("shop", "git"))["password"] == b"s3cr3t-value"
    assert fake.stats.snapshot() == {"GET secrets": 3}
    assert watch.watching() == []
    warnings = [e for e in logs if e["log_level"] == "warning" and e.get("namespace") == "shop"]
    assert len(warnings) == 1 and "'watch'" in warnings[0]["fix"]
    assert "s3cr3t" not in repr(logs) and "czNjcjN0" not in repr(logs)  # no value, plain or base64


async def test_a_refused_watch_is_tried_again_later(fake: FakeKube, clock: Clock, watch: SecretWatch) -> None:
    """After ``retry_refused`` a watch is tried again; granted by then, reads are free again."""
    fake.fail_next("WATCH", SECRETS, Forbidden(403, "Forbidden", "cannot watch"), times=1)
    fake.seed(secret("git", password="one"))
    await watch.read("shop", "git")
    await asyncio.sleep(0.05)
    await watch.read("shop", "git")  # sees the refusal: GET
    clock.now += watch.retry_refused + 1
    await watch.read("shop", "git")  # watched again
    await asyncio.sleep(0.05)
    fake.stats.reset()
    await watch.read("shop", "git")
    assert fake.stats.snapshot() == {}


async def test_names_not_read_for_the_idle_time_stop_being_watched(
    fake: FakeKube, clock: Clock, watch: SecretWatch
) -> None:
    """A name not read for ``idle`` seconds has its watch stopped; reading it again starts one."""
    fake.seed(secret("a", k="1"))
    fake.seed(secret("b", k="2"))
    await watch.read("shop", "a")
    await watch.read("shop", "b")
    clock.now += watch.idle - 1
    await watch.read("shop", "b")
    clock.now += 2
    await watch.read("shop", "b")
    assert watch.watching() == [("shop", "b")]
    fake.stats.reset()
    await watch.read("shop", "a")
    assert fake.stats.snapshot().get("LIST secrets") == 1
    assert watch.watching() == [("shop", "a"), ("shop", "b")]


async def test_after_close_reads_are_gets(fake: FakeKube, watch: SecretWatch) -> None:
    """Closed: every watch stopped, and a read is a plain GET."""
    fake.seed(secret("git", password="one"))
    await watch.read("shop", "git")
    await watch.close()
    assert watch.watching() == []
    fake.stats.reset()
    assert (await watch.read("shop", "git"))["password"] == b"one"
    assert fake.stats.snapshot() == {"GET secrets": 1}
