"""``spec.dependsOn`` on the fakes: wait for Ready dependencies, name who is missing, refuse cycles."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.dependencies.check import not_ready, waiting_on
from gitopsd.errors import SpecError
from gitopsd.spec import parse_spec
from tests.unit.decisions.conftest import NAMESPACE, World
from tests.unit.decisions.ports import app


async def test_a_dependent_waits_until_its_dependency_is_ready(world: World) -> None:
    """shop waits for db: nothing applied, Ready False AwaitingDependencies naming db; applied once db is Ready."""
    world.source.push("A", app("1", namespace=None))
    world.create("db", targetNamespace="staging")
    world.create("shop", dependsOn=[{"name": "db"}])
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed" and world.live("ConfigMap", "settings") is None
    ready = await world.condition("shop", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "AwaitingDependencies")
    assert f"{NAMESPACE}/db (not reconciled yet)" in ready["message"]
    assert await world.condition("shop", "Stalled") is None  # retried, not Stalled
    await world.reconcile("db")
    assert (await world.reconcile("shop")).result == "applied"
    assert world.live("ConfigMap", "settings") is not None


async def test_a_failed_dependency_keeps_its_dependents_waiting(world: World) -> None:
    """db's release fails its health gate: shop says why db is not ready."""
    world.source.push("A", app("1", image="shop:1:bad", namespace=None))
    world.create("db", targetNamespace="staging")
    world.create("shop", dependsOn=[{"name": "db", "namespace": NAMESPACE}])
    await world.reconcile("db")
    await world.reconcile("shop")
    ready = await world.condition("shop", "Ready")
    assert ready is not None and "db (Ready is False: HealthCheckFailed)" in ready["message"]


async def test_a_missing_dependency_is_named(world: World) -> None:
    """dependsOn names an Environment that does not exist: said by name."""
    world.source.push("A", app("1"))
    world.create("shop", dependsOn=[{"name": "nowhere", "namespace": "other"}])
    await world.reconcile("shop")
    ready = await world.condition("shop", "Ready")
    assert ready is not None and "other/nowhere (not found)" in ready["message"]


async def test_a_cycle_is_refused_by_name(world: World) -> None:
    """a → b → a: both Stalled with DependencyCycle, the path spelled out; nothing applied."""
    world.source.push("A", app("1", namespace=None))
    world.create("a", targetNamespace="staging", dependsOn=[{"name": "b"}])
    world.create("b", targetNamespace="prod", dependsOn=[{"name": "a"}])
    await world.reconcile("a")
    stalled = await world.condition("a", "Stalled")
    assert stalled is not None and stalled["reason"] == "DependencyCycle"
    assert f"{NAMESPACE}/a → {NAMESPACE}/b → {NAMESPACE}/a" in stalled["message"]
    assert world.live("ConfigMap", "settings", "staging") is None


def test_an_environment_cannot_depend_on_itself() -> None:
    """The spec parser refuses the shortest cycle, naming the field."""
    spec: dict[str, Any] = {"source": {"url": "https://git.example.com/a.git", "branch": "main"}}
    with pytest.raises(SpecError, match=r"spec.dependsOn\[0\].name: an Environment cannot depend on itself"):
        parse_spec({**spec, "dependsOn": [{"name": "shop"}]}, name="shop")
    with pytest.raises(SpecError, match=r"spec.dependsOn\[1\]: .*listed twice"):
        parse_spec({**spec, "dependsOn": [{"name": "db"}, {"name": "db"}]}, name="shop")


def _env(name: str, *, ready: str = "True", reason: str = "ReconciliationSucceeded", **status: Any) -> dict[str, Any]:
    cond = {"type": "Ready", "status": ready, "reason": reason}
    base = {"observedGeneration": 1, "lastAttemptedRevision": "r1", "lastAppliedRevision": "r1", "conditions": [cond]}
    return {"metadata": {"name": name, "namespace": "ns", "generation": 1}, "spec": {}, "status": {**base, **status}}


def test_ready_means_done_with_what_it_was_last_asked() -> None:
    """Ready True, observed its generation, applied what it attempted, nothing held."""
    assert not_ready(_env("db")) == ""
    assert "generation 1 not reconciled" in not_ready(_env("db", observedGeneration=0))
    assert "r2 attempted, r1 applied" in not_ready(_env("db", lastAttemptedRevision="r2"))
    assert "holding r2" in not_ready(_env("db", held={"revision": "r2"}))


def test_the_daemon_queues_only_those_waiting_for_a_ready_dependency() -> None:
    """waiting_on: dependents whose Ready says AwaitingDependencies and which name it."""
    waiting = _env("shop", ready="False", reason="AwaitingDependencies")
    waiting["spec"] = {"dependsOn": [{"name": "db"}]}
    other = _env("web", ready="False", reason="AwaitingDependencies")
    other["spec"] = {"dependsOn": [{"name": "cache"}]}
    everyone = [("ns/shop", waiting), ("ns/web", other)]
    assert waiting_on("ns/db", _env("db"), everyone) == ["ns/shop"]
    assert waiting_on("ns/db", _env("db", ready="False"), everyone) == []
