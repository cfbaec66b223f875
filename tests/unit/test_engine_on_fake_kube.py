"""The real engine runs on ``FakeKube`` unchanged: applier sync and prune, release records,
Environment status, Events and the health wait."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd import environments
from gitopsd.apply import Action, Applier, ApplyError, ApplyOptions, Inventory
from gitopsd.events import EVENTS, EventRecorder
from gitopsd.health import Overall
from gitopsd.model import ENVIRONMENT_LABEL, Manifest, ObjectRef
from gitopsd.releases import Ledgers, Owner, ReleaseInfo, ReleaseStore, Result, digest_of
from gitopsd.releases import record as release_record
from gitopsd.releases.store import RecordExists
from tests.fakes import FakeKube, failed, rolled_out

OWNER = "gitopsd-system.shop"


def manifest(obj: dict[str, Any]) -> Manifest:
    return Manifest(obj, f"deploy/{obj['metadata']['name']}.yaml")


def configmap(name: str, value: str = "v") -> Manifest:
    return manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
                     "data": {"k": value}})  # fmt: skip


def deployment(name: str, replicas: int = 2) -> Manifest:
    return manifest(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
                },
            },
        }
    )


def service(name: str) -> Manifest:
    return manifest({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
                     "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}})  # fmt: skip


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube(namespaces=("default", "shop", "gitopsd-system"))


async def test_sync_creates_then_an_identical_sync_writes_nothing(fake: FakeKube) -> None:
    """First sync creates every object (labelled); the same bundle again is all unchanged with 0 writes."""
    applier, options = Applier(fake), ApplyOptions(owner=OWNER)
    bundle = [configmap("settings"), deployment("web"), service("web")]
    first = await applier.sync(bundle, Inventory(), options)
    assert {o.action for o in first.objects} == {Action.CREATED}
    live = fake.stored(ObjectRef("apps", "Deployment", "shop", "web"))
    assert live is not None and live["metadata"]["labels"][ENVIRONMENT_LABEL] == OWNER
    second = await applier.sync(bundle, first.inventory, options)
    assert {o.action for o in second.objects} == {Action.UNCHANGED}
    assert second.writes == 0 and second.requests > 0


async def test_changed_object_is_patched_and_removed_one_pruned(fake: FakeKube) -> None:
    """A changed ConfigMap is configured (one write), a Service that left the bundle is deleted."""
    applier, options = Applier(fake), ApplyOptions(owner=OWNER)
    first = await applier.sync([configmap("settings"), service("web")], Inventory(), options)
    result = await applier.sync([configmap("settings", "new")], first.inventory, options)
    actions = {o.ref.kind: o.action for o in result.objects}
    assert actions == {"ConfigMap": Action.CONFIGURED, "Service": Action.PRUNED}
    assert result.writes == 2  # the apply and the delete
    stored = fake.stored(ObjectRef("", "ConfigMap", "shop", "settings"))
    assert stored is not None and stored["data"] == {"k": "new"}
    assert fake.stored(ObjectRef("", "Service", "shop", "web")) is None
    assert [e.ref.kind for e in result.inventory] == ["ConfigMap"]


async def test_hand_edit_is_drift_corrected(fake: FakeKube) -> None:
    """A replicas change by another manager is taken back and reported with its field and manager."""
    applier, options = Applier(fake), ApplyOptions(owner=OWNER)
    first = await applier.sync([deployment("web", 2)], Inventory(), options)
    path = "/apis/apps/v1/namespaces/shop/deployments/web"
    await fake.patch(path, {"spec": {"replicas": 5}}, field_manager="kubectl-edit")
    result = await applier.sync([deployment("web", 2)], first.inventory, options)
    (outcome,) = result.objects
    assert outcome.action is Action.DRIFT_CORRECTED and outcome.fields == (".spec.replicas",)
    assert "kubectl-edit" in outcome.detail
    assert (await fake.get(path))["spec"]["replicas"] == 2


async def test_health_wait_follows_the_status_the_test_sets(fake: FakeKube) -> None:
    """A Deployment marked rolled out is Healthy; one past its progress deadline is Failed."""
    applier, options = Applier(fake), ApplyOptions(owner=OWNER)
    synced = await applier.sync([deployment("web"), deployment("api")], Inventory(), options)
    web, api = ObjectRef("apps", "Deployment", "shop", "web"), ObjectRef("apps", "Deployment", "shop", "api")
    pending = await applier.wait(synced.inventory, 0, owner=OWNER)
    assert pending.overall is Overall.TIMED_OUT
    for ref in (web, api):
        live = fake.stored(ref)
        assert live is not None
        fake.set_status(ref, rolled_out(live))
    healthy = await applier.wait(synced.inventory, 5, owner=OWNER, interval=0.01)
    assert healthy.overall is Overall.HEALTHY
    live = fake.stored(api)
    assert live is not None
    fake.set_status(api, failed(live))
    broken = await applier.wait(synced.inventory, 5, owner=OWNER, interval=0.01)
    assert broken.overall is Overall.FAILED


def info(number: int, manifests: list[Manifest]) -> ReleaseInfo:
    return ReleaseInfo(number, "main@sha1:abc", digest_of(manifests), "2026-01-01T00:00:00Z", Result.PENDING)


async def test_release_record_round_trip_in_several_parts(fake: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record split over several Secrets is read back whole, listed, marked, and deleted with its parts."""
    monkeypatch.setattr(release_record, "CHUNK", 256)
    owner, store = Owner("gitopsd-system", "shop", "uid-1"), ReleaseStore(fake)
    bundle = [configmap(f"cm{i}", f"value-{i}-" + "x" * i) for i in range(12)] + [deployment("web")]
    written = await store.write(owner, info(1, bundle), bundle)
    assert written.info.parts > 1 and written.requests == written.info.parts
    release = await store.read(owner, 1)
    assert release.manifests == tuple(bundle) and release.info.digest == digest_of(bundle)
    listing = await store.scan(owner)
    assert listing.numbers() == [1] and not listing.invalid
    with pytest.raises(RecordExists):
        await store.write(owner, info(1, bundle), bundle)
    await store.mark(owner, written.info.with_result(Result.HEALTHY, "2026-01-01T00:01:00Z"))
    assert (await store.scan(owner)).records[1].result is Result.HEALTHY
    await store.delete(owner, written.info)
    assert (await fake.list("/api/v1/namespaces/gitopsd-system/secrets")).items == []


async def test_environment_status_round_trip(fake: FakeKube) -> None:
    """write_status then get: the status is there, the spec and generation untouched; a rewrite is a no-op."""
    env = {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment",
           "metadata": {"name": "shop", "namespace": "gitopsd-system"}, "spec": {"interval": "1m"}}  # fmt: skip
    fake.seed(env)
    status = {"observedGeneration": 1, "release": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    written = await environments.write_status(fake, "gitopsd-system", "shop", status)
    read = await environments.get(fake, "gitopsd-system", "shop")
    assert read["status"] == status and read["spec"] == {"interval": "1m"} and read["metadata"]["generation"] == 1
    again = await environments.write_status(fake, "gitopsd-system", "shop", status)
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    listed = await environments.list_all(fake, "gitopsd-system")
    assert [i["metadata"]["name"] for i in listed.items] == ["shop"]


async def test_repeated_event_is_one_event_with_a_count(fake: FakeKube) -> None:
    """The recorder creates an Event once and patches its count when the same event repeats."""
    env = fake.seed({"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment",
                     "metadata": {"name": "shop", "namespace": "gitopsd-system"}, "spec": {}})  # fmt: skip
    recorder = EventRecorder(fake)
    await recorder.record(env, "Warning", "HealthCheckFailed", "web is not ready")
    await recorder.record(env, "Warning", "HealthCheckFailed", "web is not ready")
    (event,) = (await fake.list(EVENTS.path("gitopsd-system"))).items
    assert event["count"] == 2 and event["involvedObject"]["uid"] == env["metadata"]["uid"]


async def test_ledger_numbers_releases_and_reuses_a_leftover(fake: FakeKube) -> None:
    """Ledger.begin takes the next number, supersedes a Pending current one, and reuses a leftover record."""
    owner = Owner("gitopsd-system", "shop", "uid-1")
    ledger = await Ledgers(ReleaseStore(fake)).of(owner)
    one, two = [configmap("a", "1")], [configmap("a", "2")]
    first = await ledger.begin({}, info(0, one), one, replaces=Result.SUPERSEDED)
    second = await ledger.begin({"release": first.number}, info(0, two), two, replaces=Result.SUPERSEDED)
    assert (first.number, second.number) == (1, 2)
    assert ledger.records[1].result is Result.SUPERSEDED
    fresh = await Ledgers(ReleaseStore(fake)).of(owner)  # a restart: the status still says release 1
    again = await fresh.begin({"release": 1}, info(0, two), two, replaces=Result.SUPERSEDED)
    assert again.number == 2 and len((await fake.list("/api/v1/namespaces/gitopsd-system/secrets")).items) == 2


async def test_a_dry_run_rejection_writes_nothing(fake: FakeKube) -> None:
    """One object refused by the server's dry-run: the sync raises and no object is written."""
    fake.add_validator(
        lambda kind, obj: [("data.k", "Forbidden: bad")] if (obj.get("data") or {}).get("k") == "bad" else []
    )
    with pytest.raises(ApplyError, match="bad"):
        await Applier(fake).sync([configmap("good"), configmap("evil", "bad")], Inventory(), ApplyOptions(owner=OWNER))
    assert fake.stats.writes == 0
    assert fake.stored(ObjectRef("", "ConfigMap", "shop", "good")) is None
