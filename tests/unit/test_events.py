"""Events are aggregated per Environment, type and reason (gitopsd.events), on the in-memory fake."""

from __future__ import annotations

import pytest

from gitopsd.events import EVENTS, EventRecorder
from tests.fakes.kube import FakeKube

NS = "gitopsd-system"


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube(namespaces=(NS,))


def environment(fake: FakeKube, name: str) -> dict[str, object]:
    obj = {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment",
           "metadata": {"name": name, "namespace": NS}, "spec": {}}  # fmt: skip
    return fake.seed(obj)


async def events(fake: FakeKube) -> list[dict[str, object]]:
    return (await fake.list(EVENTS.path(NS))).items


async def test_one_event_per_environment_and_reason_with_the_latest_message(fake: FakeKube) -> None:
    shop = environment(fake, "shop")
    recorder = EventRecorder(fake)
    await recorder.record(shop, "Warning", "HealthCheckFailed", "web-1 is not ready")
    await recorder.record(shop, "Warning", "HealthCheckFailed", "web-2 is not ready")
    await recorder.record(shop, "Warning", "HealthCheckFailed", "web-2 is not ready")
    assert fake.stats.snapshot() == {"POST events": 1, "PATCH events": 2}  # created once, then patched
    (event,) = await events(fake)
    assert event["count"] == 3 and event["message"] == "web-2 is not ready"


async def test_other_reasons_types_and_environments_are_other_events(fake: FakeKube) -> None:
    shop, blog = environment(fake, "shop"), environment(fake, "blog")
    recorder = EventRecorder(fake)
    await recorder.record(shop, "Warning", "HealthCheckFailed", "web is not ready")
    await recorder.record(shop, "Normal", "HealthCheckFailed", "web is not ready")
    await recorder.record(shop, "Warning", "DriftCorrected", "ConfigMap/a")
    await recorder.record(blog, "Warning", "HealthCheckFailed", "web is not ready")
    found = {(e["involvedObject"]["name"], e["type"], e["reason"]) for e in await events(fake)}  # type: ignore[index]
    assert found == {
        ("shop", "Warning", "HealthCheckFailed"),
        ("shop", "Normal", "HealthCheckFailed"),
        ("shop", "Warning", "DriftCorrected"),
        ("blog", "Warning", "HealthCheckFailed"),
    }


async def test_an_expired_event_is_posted_again(fake: FakeKube) -> None:
    shop = environment(fake, "shop")
    recorder = EventRecorder(fake)
    await recorder.record(shop, "Warning", "HealthCheckFailed", "web is not ready")
    (first,) = await events(fake)
    await fake.delete(EVENTS.path(NS, str(first["metadata"]["name"])))  # type: ignore[index]
    await recorder.record(shop, "Warning", "HealthCheckFailed", "web is still not ready")
    (again,) = await events(fake)
    assert again["count"] == 1 and again["message"] == "web is still not ready"
