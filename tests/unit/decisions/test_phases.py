"""Waves and hooks on the fakes: the order of a release's writes, a failed hook, policies, retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.phases.classify import HOOK_LABEL
from tests.fakes import Kind
from tests.unit.decisions.conftest import TARGET, World
from tests.unit.decisions.ports import configmap, deployment

ARGO = "argocd.argoproj.io/"
#: The fake Job controller's outcome for a Job carrying it: "fail", "never" (else it completes).
OUTCOME = "test.gitopsd.dev/outcome"


def wave(obj: dict[str, Any], number: int) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[ARGO + "sync-wave"] = str(number)
    return obj


def job(generate: str, phase: str, outcome: str = "", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"generateName": generate, "namespace": TARGET}
    meta["annotations"] = {ARGO + "hook": phase, **annotations, **({OUTCOME: outcome} if outcome else {})}
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "tool:1"}]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": template}}


class Cluster:
    """The fake with a Job controller, and the order objects were first stored in."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.order: list[str] = []
        world.kube.react("batch", "Job", self.job_controller)
        world.kube.react("", "ConfigMap", self.seen)

    def seen(self, obj: Mapping[str, Any]) -> None:
        name = str(obj["metadata"]["name"])
        if name not in self.order:
            self.order.append(name)

    def job_controller(self, obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
        self.seen(obj)
        outcome = (obj["metadata"].get("annotations") or {}).get(OUTCOME)
        if outcome == "never":
            return {"startTime": "2026-06-01T12:00:00Z", "active": 1}
        if outcome == "fail":
            failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                      "message": "Job has reached the specified backoff limit"}  # fmt: skip
            return {"startTime": "2026-06-01T12:00:00Z", "failed": 1, "conditions": [failed]}
        done = {"type": "Complete", "status": "True", "reason": "Completed"}
        return {"startTime": "2026-06-01T12:00:00Z", "succeeded": 1, "conditions": [done]}

    async def jobs(self) -> list[dict[str, Any]]:
        listed = await self.world.kube.list(f"/apis/batch/v1/namespaces/{TARGET}/jobs")
        return list(listed.items)

    def job_names(self) -> list[str]:
        return [n for n in self.order if n.startswith(("migrate-", "smoke-", "cleanup-"))]


def release(version: str, *, migrate: str = "", image: str = "") -> list[dict[str, Any]]:
    """Argo CD's style: a PreSync migration, waves -1/0/1, a PostSync smoke test, a SyncFail cleanup."""
    return [
        wave(configmap("config", version), -1),
        wave(deployment("web", image or f"shop:{version}"), 0),
        wave(configmap("after", version), 1),
        job("migrate-", "PreSync", migrate),
        job("smoke-", "PostSync", **{ARGO + "hook-delete-policy": "HookSucceeded"}),
        job("cleanup-", "SyncFail"),
    ]


async def test_a_release_runs_presync_waves_in_order_then_postsync(world: World) -> None:
    """PreSync Job, waves -1, 0, 1, then the PostSync Job; hooks stay out of the inventory."""
    cluster = Cluster(world)
    world.source.push("A", release("1"))
    world.create("shop")
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.verdict) == ("applied", "Healthy"), outcome.message
    order = cluster.order
    assert order[0].startswith("migrate-") and order[1:3] == ["config", "after"] and order[3].startswith("smoke-")
    assert not any(n.startswith("cleanup-") for n in order)  # SyncFail runs only on failure
    inventory = (await world.status("shop"))["inventory"]
    assert "Job" not in str(inventory) and "config" in str(inventory)
    jobs = {j["metadata"]["generateName"]: j for j in await cluster.jobs()}
    assert set(jobs) == {"migrate-"}  # HookSucceeded deleted the smoke test; the migration is kept
    assert jobs["migrate-"]["metadata"]["labels"][HOOK_LABEL]
    reasons = await world.reasons("shop")
    assert "HookSucceeded" in reasons and "WaveApplied" in reasons  # one Event per reason, counted


async def test_the_steady_state_runs_no_hook_and_a_new_release_replaces_them(world: World) -> None:
    """Same revision again: no hook runs. A new revision: BeforeHookCreation deletes the last migration first."""
    cluster = Cluster(world)
    world.source.push("A", release("1"))
    world.create("shop")
    await world.reconcile("shop")
    first = [j["metadata"]["name"] for j in await cluster.jobs()]
    world.kube.stats.reset()
    again = await world.reconcile("shop")
    assert again.result == "unchanged" and [j["metadata"]["name"] for j in await cluster.jobs()] == first
    dry_runs = {k: n for k, n in world.kube.stats.snapshot().items() if k.startswith("DRYRUN")}
    assert dry_runs == {} and world.kube.stats.writes == 0  # every wave's objects remembered, none sent
    world.source.push("B", release("2"))
    await world.reconcile("shop")
    now = [j["metadata"]["name"] for j in await cluster.jobs()]
    assert len(now) == 1 and now != first and len(cluster.job_names()) == 4  # 2 migrations, 2 smoke tests


async def test_a_failed_presync_hook_applies_nothing_and_runs_syncfail(world: World) -> None:
    """The migration fails: no wave applied, Ready False HookFailed naming the Job and its reason, SyncFail ran."""
    cluster = Cluster(world)
    world.source.push("A", release("1", migrate="fail"))
    world.create("shop")
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.verdict) == ("failed", "Failed")
    assert world.live("ConfigMap", "config") is None and world.live("Deployment", "web") is None
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["reason"] == "HookFailed"
    migrate = next(n for n in cluster.order if n.startswith("migrate-"))
    assert f"Job.batch/{TARGET}/{migrate}" in ready["message"] or f"{TARGET}/{migrate}" in ready["message"]
    assert "BackoffLimitExceeded" in ready["message"], ready["message"]
    assert any(n.startswith("cleanup-") for n in cluster.order)
    records = await world.records("shop")
    assert records[1].reason == "HookFailed"


async def test_a_failed_hook_rolls_back_with_rollback_auto(world: World) -> None:
    """Release 2's migration fails: rolled back to release 1 and revision B held, like a failed health gate."""
    cluster = Cluster(world)
    world.source.push("A", release("1"))
    world.create("shop", rollback={"auto": True})
    await world.reconcile("shop")
    b = world.source.push("B", release("2", migrate="fail"))
    outcome = await world.reconcile("shop")
    assert await world.results("shop") == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}, outcome.message
    st = await world.status("shop")
    assert (st["held"]["revision"], st["held"]["reason"], st["held"]["release"]) == (str(b), "HookFailed", 2)
    records = await world.records("shop")
    assert records[3].trigger == "auto:HookFailed"
    assert "HookFailed" in await world.reasons("shop")
    assert world.image() == "shop:1"
    migrations = [n for n in cluster.order if n.startswith("migrate-")]
    assert len(migrations) == 3  # release 1, release 2 (failed), release 3 (a sync of release 1: its hooks run)


async def test_a_first_release_whose_hook_fails_is_held_as_hookfailed(world: World) -> None:
    """Nothing Healthy to go back to: revision A is held with reason HookFailed; the Event says a hook failed."""
    Cluster(world)
    a = world.source.push("A", release("1", migrate="fail"))
    world.create("shop", rollback={"auto": True})
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.release) == ("failed", 1)
    st = await world.status("shop")
    assert (st["held"]["revision"], st["held"]["reason"]) == (str(a), "HookFailed")
    held = [e for e in await world.events("shop") if e[1] == "RevisionHeld"]
    assert len(held) == 1 and "a hook failed and no Healthy release is kept" in held[0][2], held


async def test_an_unhealthy_wave_stops_the_later_waves(world: World) -> None:
    """Wave 0's Deployment fails: wave 1 is never applied, PostSync never runs, SyncFail does."""
    cluster = Cluster(world)
    world.source.push("A", release("1", image="shop:1:bad"))
    world.create("shop")
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed"
    assert world.live("ConfigMap", "config") is not None and world.live("ConfigMap", "after") is None
    assert not any(n.startswith("smoke-") for n in cluster.order)
    assert any(n.startswith("cleanup-") for n in cluster.order)
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["reason"] == "HealthCheckFailed" and "Deployment" in ready["message"]
    inventory = str((await world.status("shop"))["inventory"])
    assert "after" in inventory or "config" in inventory  # what was written stays tracked


async def test_a_hook_that_never_finishes_times_out(world: World) -> None:
    """A migration still running at wait.timeout fails the release, saying so."""
    cluster = Cluster(world)
    world.source.push("A", release("1", migrate="never"))
    world.create("shop", wait={"timeout": "1s"})
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed"
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["reason"] == "HookFailed" and "did not finish within 1s" in ready["message"]
    assert world.live("ConfigMap", "config") is None and any(n.startswith("cleanup-") for n in cluster.order)


async def test_a_rejected_object_refuses_the_release_before_any_hook(world: World) -> None:
    """A wave-1 object the server refuses: no hook runs, nothing is written (every wave is dry-run first)."""
    cluster = Cluster(world)
    world.kube.add_validator(_refuse_after)
    world.source.push("A", release("1"))
    world.create("shop")
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed"
    assert cluster.order == [] and world.live("ConfigMap", "config") is None


def _refuse_after(kind: Kind, obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    refused = kind.kind == "ConfigMap" and obj["metadata"].get("name") == "after"
    return [("data.version", "refused by a test")] if refused else []


async def test_hook_failed_policy_deletes_a_failed_hook_after_reading_why(world: World) -> None:
    """HookFailed: the failed migration is gone, and the message still has the Job's failure reason."""
    cluster = Cluster(world)
    objects = release("1", migrate="fail")
    objects[3]["metadata"]["annotations"][ARGO + "hook-delete-policy"] = "HookFailed"
    world.source.push("A", objects)
    world.create("shop")
    await world.reconcile("shop")
    ready = await world.condition("shop", "Ready")
    assert ready is not None and "BackoffLimitExceeded" in ready["message"]
    names = [j["metadata"]["name"] for j in await cluster.jobs()]
    assert not any(n.startswith("migrate-") for n in names) and any(n.startswith("cleanup-") for n in names)
