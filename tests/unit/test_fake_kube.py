"""The in-memory ``FakeKube`` behaves like kube-apiserver where the engine relies on it, and the
real engine (applier, release store, environments, events, health wait) runs on it unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gitopsd import environments
from gitopsd.apply import conflicts
from gitopsd.kube import Conflict, Gone, Invalid, NotFound, UnknownKind, Unreachable
from gitopsd.kube.errors import BadRequest
from gitopsd.model import ObjectRef
from tests.fakes import FakeKube, Kind

CM = "/api/v1/namespaces/shop/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/shop/deployments"


def configmap(name: str, data: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name: str, replicas: int = 2, image: str = "nginx:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube(namespaces=("default", "shop"))


# -- discovery ---------------------------------------------------------------------------------


async def test_discovery_serves_builtin_kinds_and_the_environment_crd(fake: FakeKube) -> None:
    """Discovery finds the built-in kinds and Environment at v1alpha1; an unknown kind is UnknownKind."""
    deploy = await fake.discovery.resource("apps/v1", "Deployment")
    env = await fake.discovery.resource("gitopsd.dev/v1alpha1", "Environment")
    ns = await fake.discovery.resource("v1", "Namespace")
    assert (deploy.plural, deploy.namespaced) == ("deployments", True)
    assert (env.plural, env.namespaced) == ("environments", True)
    assert ns.namespaced is False
    with pytest.raises(UnknownKind):
        await fake.discovery.resource("example.com/v1", "Widget")


async def test_registered_kind_is_discovered_and_served(fake: FakeKube) -> None:
    """A kind a test registers is found by discovery and can be created."""
    fake.register(Kind("example.com", "v1", "Widget", "widgets", True))
    await fake.discovery.refresh()
    widget = await fake.discovery.resource("example.com/v1", "Widget")
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    created = await fake.create(widget.path("shop"), body)
    assert created["metadata"]["namespace"] == "shop"
    assert (await fake.get("/apis/example.com/v1"))["resources"][0]["name"] == "widgets"


# -- reads and writes --------------------------------------------------------------------------


async def test_create_sets_identity_and_reads_are_copies(fake: FakeKube) -> None:
    """Create sets uid, creationTimestamp and a resourceVersion; a read never aliases the store."""
    created = await fake.create(CM, configmap("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    read = await fake.get(f"{CM}/a")
    read["data"]["k"] = "changed"
    assert (await fake.get(f"{CM}/a"))["data"] == {"k": "v"}


async def test_errors_are_the_real_classes(fake: FakeKube) -> None:
    """404, 409 AlreadyExists, 422 for a bad name, 404 for a missing namespace."""
    await fake.create(CM, configmap("a"))
    with pytest.raises(Conflict) as exists:
        await fake.create(CM, configmap("a"))
    assert exists.value.status_reason == "AlreadyExists"
    with pytest.raises(NotFound):
        await fake.get(f"{CM}/missing")
    with pytest.raises(Invalid) as bad:
        await fake.create(CM, configmap("Not_A_Name"))
    assert bad.value.causes[0]["field"] == "metadata.name"
    with pytest.raises(NotFound, match="namespaces"):
        await fake.create("/api/v1/namespaces/nowhere/configmaps", {**configmap("a"), "metadata": {"name": "a"}})


async def test_generation_moves_with_spec_not_metadata_or_status(fake: FakeKube) -> None:
    """metadata.generation is bumped by a spec change only; the main resource cannot write status."""
    created = await fake.create(DEPLOY, deployment("web"))
    assert created["metadata"]["generation"] == 1
    labelled = await fake.patch(f"{DEPLOY}/web", {"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 9}})
    assert labelled["metadata"]["generation"] == 1 and "status" not in labelled
    scaled = await fake.patch(f"{DEPLOY}/web", {"spec": {"replicas": 3}})
    assert scaled["metadata"]["generation"] == 2
    status = await fake.patch(f"{DEPLOY}/web/status", {"status": {"replicas": 3}, "spec": {"replicas": 7}})
    assert status["status"] == {"replicas": 3} and status["spec"]["replicas"] == 3
    assert status["metadata"]["generation"] == 2


async def test_replace_checks_resource_version(fake: FakeKube) -> None:
    """A PUT with a stale resourceVersion is a 409; with the current one it succeeds."""
    created = await fake.create(CM, configmap("a"))
    await fake.patch(f"{CM}/a", {"data": {"k": "w"}})
    with pytest.raises(Conflict, match="modified"):
        await fake.replace(f"{CM}/a", created)
    current = await fake.get(f"{CM}/a")
    current["data"] = {"k": "x"}
    assert (await fake.replace(f"{CM}/a", current))["data"] == {"k": "x"}


async def test_json_patch_test_failure_is_422(fake: FakeKube) -> None:
    """A JSON patch whose ``test`` fails is refused with 422 and changes nothing."""
    await fake.create(CM, configmap("a"))
    patch = [{"op": "test", "path": "/data/k", "value": "other"}, {"op": "remove", "path": "/data/k"}]
    with pytest.raises(Invalid):
        await fake.patch(f"{CM}/a", patch, patch_type="json")
    assert (await fake.get(f"{CM}/a"))["data"] == {"k": "v"}


# -- server-side apply -------------------------------------------------------------------------


async def test_apply_creates_then_an_identical_apply_changes_nothing(fake: FakeKube) -> None:
    """Apply creates; the same apply again keeps the resourceVersion; dry-run stores nothing."""
    first = await fake.apply(f"{DEPLOY}/web", deployment("web"), field_manager="gitopsd")
    again = await fake.apply(f"{DEPLOY}/web", deployment("web"), field_manager="gitopsd")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    preview = await fake.apply(f"{DEPLOY}/web", deployment("web", 5), field_manager="gitopsd", dry_run=True)
    assert preview["spec"]["replicas"] == 5 and preview["metadata"]["generation"] == 2
    assert (await fake.get(f"{DEPLOY}/web"))["spec"]["replicas"] == 2
    dry_new = await fake.apply(f"{DEPLOY}/other", deployment("other"), field_manager="gitopsd", dry_run=True)
    assert dry_new["metadata"]["name"] == "other"
    with pytest.raises(NotFound):
        await fake.get(f"{DEPLOY}/other")


async def test_apply_drops_what_the_manager_stopped_sending_and_keeps_others_fields(fake: FakeKube) -> None:
    """Fields a manager no longer applies are removed; fields of another manager stay."""
    await fake.apply(f"{CM}/a", configmap("a", {"one": "1", "two": "2"}), field_manager="gitopsd")
    await fake.patch(f"{CM}/a", {"data": {"mine": "x"}}, field_manager="kubectl-edit")
    result = await fake.apply(f"{CM}/a", configmap("a", {"one": "1"}), field_manager="gitopsd")
    assert result["data"] == {"one": "1", "mine": "x"}
    managers = {(e["manager"], e["operation"]) for e in result["metadata"]["managedFields"]}
    assert managers == {("gitopsd", "Apply"), ("kubectl-edit", "Update")}


async def test_apply_conflicts_name_the_manager_and_force_takes_over(fake: FakeKube) -> None:
    """A field another manager changed is a 409 the engine's parser reads as an Update manager; force wins."""
    await fake.apply(f"{DEPLOY}/web", deployment("web", 2), field_manager="gitopsd")
    await fake.patch(f"{DEPLOY}/web", {"spec": {"replicas": 5}}, field_manager="kubectl-edit")
    with pytest.raises(Conflict) as refused:
        await fake.apply(f"{DEPLOY}/web", deployment("web", 2), field_manager="gitopsd")
    (owner,) = conflicts.parse(refused.value.causes, str(refused.value))
    assert (owner.field, owner.manager, owner.update) == (".spec.replicas", "kubectl-edit", True)
    forced = await fake.apply(f"{DEPLOY}/web", deployment("web", 2), field_manager="gitopsd", force=True)
    assert forced["spec"]["replicas"] == 2
    assert [e["manager"] for e in forced["metadata"]["managedFields"]] == ["gitopsd"]


async def test_apply_to_status_subresource_touches_only_status(fake: FakeKube) -> None:
    """Apply on /status writes the status and nothing else, under its own manager entry."""
    await fake.create(DEPLOY, deployment("web"))
    body = {**deployment("web", 9), "status": {"replicas": 1}}
    result = await fake.apply(f"{DEPLOY}/web/status", body, field_manager="gitopsd", force=True)
    assert result["status"] == {"replicas": 1} and result["spec"]["replicas"] == 2
    entry = next(e for e in result["metadata"]["managedFields"] if e["operation"] == "Apply")
    assert entry["subresource"] == "status" and list(entry["fieldsV1"]) == ["f:status"]


# -- lists and selectors -----------------------------------------------------------------------


async def test_label_and_field_selectors(fake: FakeKube) -> None:
    """=, !=, in, notin, exists and !exists select as upstream; a field selector on the name too."""
    for name, tier in (("a", "web"), ("b", "db"), ("c", "")):
        await fake.create(CM, configmap(name, **({"tier": tier} if tier else {})))

    async def names(**kw: str) -> list[str]:
        return [i["metadata"]["name"] for i in (await fake.list(CM, **kw)).items]

    assert await names(label_selector="tier=web") == ["a"]
    assert await names(label_selector="tier!=web") == ["b", "c"]
    assert await names(label_selector="tier in (web,db)") == ["a", "b"]
    assert await names(label_selector="tier notin (web)") == ["b", "c"]
    assert await names(label_selector="tier") == ["a", "b"]
    assert await names(label_selector="!tier") == ["c"]
    assert await names(label_selector="tier in (web,db),tier!=db") == ["a"]
    assert await names(field_selector="metadata.name=b") == ["b"]
    with pytest.raises(BadRequest):
        await names(label_selector="tier in web")


async def test_pagination_and_expired_continue(fake: FakeKube) -> None:
    """Pages of ``limit`` items chain by continue token; a token older than compaction is 410."""
    for i in range(5):
        await fake.create(CM, configmap(f"cm{i}"))
    listed = await fake.list(CM, page_size=2)
    assert [i["metadata"]["name"] for i in listed.items] == [f"cm{i}" for i in range(5)]
    assert listed.items[0]["kind"] == "ConfigMap"
    assert fake.stats.snapshot()["LIST configmaps"] == 3
    page = await fake.get(CM, limit=2)
    await fake.create(CM, configmap("later"))
    fake.compact()
    with pytest.raises(Gone):
        await fake.get(CM, limit=2, **{"continue": page["metadata"]["continue"]})


async def test_metadata_only_list(fake: FakeKube) -> None:
    """A list asked as PartialObjectMetadataList carries metadata only."""
    await fake.create(CM, configmap("a"))
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    page = await fake.request("GET", CM, accept=accept)
    assert page["kind"] == "PartialObjectMetadataList"
    assert set(page["items"][0]) == {"apiVersion", "kind", "metadata"}


# -- watch -------------------------------------------------------------------------------------


async def collect(fake: FakeKube, rv: str, count: int, **kw: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    async for event in fake.watch(CM, resource_version=rv, timeout_seconds=30, **kw):
        out.append((event.type, str(event.object["metadata"].get("name", ""))))
        if len(out) == count:
            break
    return out


async def test_watch_replays_changes_after_a_resource_version(fake: FakeKube) -> None:
    """ADDED, MODIFIED, DELETED after the given version, in order; earlier changes are not sent."""
    await fake.create(CM, configmap("old"))
    rv = (await fake.list(CM)).resource_version
    await fake.create(CM, configmap("a"))
    await fake.patch(f"{CM}/a", {"data": {"k": "w"}})
    await fake.delete(f"{CM}/a")
    assert await collect(fake, rv, 3) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_watch_waits_for_live_changes_and_bookmarks(fake: FakeKube) -> None:
    """A watch started before a change receives it; bookmark() sends the current version."""
    rv = (await fake.list(CM)).resource_version
    task = asyncio.create_task(collect(fake, rv, 2))
    await asyncio.sleep(0.01)
    await fake.create(CM, configmap("late"))
    fake.bookmark()
    assert await asyncio.wait_for(task, 10) == [("ADDED", "late"), ("BOOKMARK", "")]


async def test_watch_from_empty_version_lists_first_and_selector_exit_is_deleted(fake: FakeKube) -> None:
    """No version: current objects as ADDED; an object relabelled out of the selector is DELETED."""
    await fake.create(CM, configmap("a", team="x"))
    task = asyncio.create_task(collect(fake, "", 2, label_selector="team=x"))
    await asyncio.sleep(0.01)
    await fake.patch(f"{CM}/a", {"metadata": {"labels": {"team": "y"}}})
    assert await asyncio.wait_for(task, 10) == [("ADDED", "a"), ("DELETED", "a")]


async def test_watch_from_a_compacted_version_is_gone(fake: FakeKube) -> None:
    """A watch from before the compaction point raises Gone, as after etcd compaction."""
    rv = (await fake.list(CM)).resource_version
    await fake.create(CM, configmap("a"))
    fake.compact()
    with pytest.raises(Gone):
        await collect(fake, rv, 1)


# -- deletion ----------------------------------------------------------------------------------


async def test_delete_preconditions_finalizers_and_owner_references(fake: FakeKube) -> None:
    """A uid precondition that differs is 409; finalizers hold an object until removed; dependents go too."""
    owner = await fake.create(CM, {**configmap("owner"), "metadata": {"name": "owner", "finalizers": ["x/y"]}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    await fake.create(CM, {**configmap("child"), "metadata": {"name": "child", "ownerReferences": [ref]}})
    with pytest.raises(Conflict, match="Precondition"):
        await fake.delete(f"{CM}/owner", uid="another-uid")
    held = await fake.delete(f"{CM}/owner", uid=owner["metadata"]["uid"])
    assert held is not None and held["metadata"]["deletionTimestamp"]
    assert (await fake.get(f"{CM}/owner"))["metadata"]["deletionTimestamp"]
    await fake.patch(f"{CM}/owner", [{"op": "remove", "path": "/metadata/finalizers/0"}], patch_type="json")
    for name in ("owner", "child"):
        with pytest.raises(NotFound):
            await fake.get(f"{CM}/{name}")


# -- hooks -------------------------------------------------------------------------------------


async def test_fail_next_injects_once_and_requests_are_counted(fake: FakeKube) -> None:
    """An injected error is raised by the next matching request only; every request is counted."""
    fake.fail_next("GET", CM, Unreachable("connection refused"))
    with pytest.raises(Unreachable):
        await fake.get(f"{CM}/a")
    with pytest.raises(NotFound):
        await fake.get(f"{CM}/a")
    await fake.apply(f"{CM}/a", configmap("a"), field_manager="m", dry_run=True)
    assert fake.stats.snapshot() == {"GET configmaps": 2, "DRYRUN configmaps": 1}
    assert fake.stats.writes == 0


async def test_set_status_is_a_controller_write(fake: FakeKube) -> None:
    """set_status changes only the status, with a new resourceVersion a watch sees."""
    created = await fake.create(DEPLOY, deployment("web"))
    updated = fake.set_status(ObjectRef("apps", "Deployment", "shop", "web"), {"replicas": 2})
    assert updated["status"] == {"replicas": 2} and updated["spec"] == created["spec"]
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert environments.RESOURCE.path("shop", "x") == "/apis/gitopsd.dev/v1alpha1/namespaces/shop/environments/x"
