"""The shared watch cache against the real API server: what it holds, resume, 410, failures."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.tcpproxy import TcpProxy
from gitopsd.kube import Kube, KubeError, Resource
from gitopsd.kube.reflector import SHARED_STRING_MAX, Change, Reflector, compact, strip
from gitopsd.kube.watchcache import WatchCache
from tests.e2e.kube import api_client, kubectl, new_namespace, role_kubeconfig

LABEL = "gitopsd.dev/environment"
CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True)
SECRETS = Resource("", "v1", "Secret", "secrets", True)


def configmap(name: str, namespace: str, owner: str | None = "ops.app", **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner is not None:
        meta["labels"] = {LABEL: owner}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


async def eventually(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Wait (bounded, generous) until ``check()`` is truthy; fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def ns(cluster_ipv4: ClusterInfo) -> Iterator[str]:
    name = new_namespace(api_client(cluster_ipv4), "watch")
    yield name
    kubectl(cluster_ipv4, "delete", "namespace", name, "--wait=false")


@pytest.fixture
async def kube(cluster_ipv4: ClusterInfo) -> AsyncIterator[Kube]:
    async with Kube.from_kubeconfig(cluster_ipv4.kubeconfig) as client:
        yield client


async def put(kube: Kube, obj: dict[str, Any], manager: str = "gitopsd") -> dict[str, Any]:
    meta = obj["metadata"]
    return await kube.apply(CONFIGMAPS.path(meta["namespace"], meta["name"]), obj, field_manager=manager, force=True)


def test_strip_keeps_only_the_managers_field_set() -> None:
    """Other managers' fieldsV1 and the last-applied annotation go; our Apply entry and every entry's time stay."""
    obj = {
        "metadata": {
            "name": "a",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "1"},
            "managedFields": [
                {"manager": "gitopsd", "operation": "Apply", "time": "t1", "fieldsV1": {"f:data": {}}},
                {"manager": "kubectl", "operation": "Update", "time": "t2", "fieldsV1": {"f:data": {}}},
            ],
        },
        "data": {"k": "v"},
    }
    out = strip(obj, "gitopsd")
    assert out["metadata"]["annotations"] == {"keep": "1"}
    assert out["metadata"]["managedFields"] == [
        {"manager": "gitopsd", "operation": "Apply", "time": "t1", "fieldsV1": {"f:data": {}}},
        {"manager": "kubectl", "operation": "Update", "time": "t2"},
    ]
    assert out["data"] == {"k": "v"}
    assert "fieldsV1" in obj["metadata"]["managedFields"][1], "the input is not modified"


def test_compact_is_equal_and_shares_keys_and_short_strings() -> None:
    """Two decoded objects compact to equal values whose keys and short strings are the same
    objects (one copy in memory), long strings are left alone, and the input is not modified."""
    long = "x" * (SHARED_STRING_MAX + 1)
    text = json.dumps({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"n": 1, "msg": long}})
    first, second = json.loads(text), json.loads(text)
    assert next(iter(first)) is not next(iter(second)), "the decoder makes a new string per key"
    a, b = compact(first), compact(second)
    assert a == first == b
    assert next(iter(a)) is next(iter(b))
    assert a["metadata"]["labels"]["app"] is b["metadata"]["labels"]["app"]
    assert a["spec"]["msg"] == long
    a["metadata"]["labels"]["app"] = "changed"
    assert first["metadata"]["labels"]["app"] == "web", "the result is a copy, free to edit"


def test_strip_output_is_compact() -> None:
    """What the cache stores shares its strings with every other stored object."""
    raw = '{"metadata": {"name": "a", "namespace": "ns"}, "data": {"key": "value"}}'
    one, two = strip(json.loads(raw), "gitopsd"), strip(json.loads(raw), "gitopsd")
    assert one == json.loads(raw)
    assert one["data"]["key"] is two["data"]["key"]
    assert next(iter(one["data"])) is next(iter(two["data"]))


def test_strip_shares_equal_field_sets() -> None:
    """Objects applied from one template hold one copy of our field set; a different set is its own."""

    def applied(name: str, fields: dict[str, Any]) -> dict[str, Any]:
        entry = {"manager": "gitopsd", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields}
        return {"metadata": {"name": name, "managedFields": [entry]}}

    template = '{"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}'
    one = strip(applied("one", json.loads(template)), "gitopsd")
    two = strip(applied("two", json.loads(template)), "gitopsd")
    other = strip(applied("three", {"f:data": {"f:b": {}}}), "gitopsd")
    fields = [o["metadata"]["managedFields"][0]["fieldsV1"] for o in (one, two, other)]
    assert fields[0] == json.loads(template)
    assert fields[0] is fields[1]
    assert fields[2] == {"f:data": {"f:b": {}}}


def test_namespaces_must_not_be_empty() -> None:
    """An empty namespace list is refused, naming the parameter (None means all)."""
    with pytest.raises(ValueError, match="namespaces"):
        WatchCache(Kube.__new__(Kube), namespaces=[])


async def test_serves_labelled_objects_stripped_and_by_owner(kube: Kube, ns: str) -> None:
    """Labelled objects are served from memory, stripped; unlabelled ones are not; by-owner lookup works."""
    await put(kube, configmap("mine", ns, owner="ops.one"))
    await put(kube, configmap("other", ns, owner="ops.two"))
    await put(kube, configmap("plain", ns, owner=None))
    await kube.patch(CONFIGMAPS.path(ns, "mine"), {"data": {"edited": "yes"}}, field_manager="kubectl-edit")
    cache = WatchCache(kube, label=LABEL, field_manager="gitopsd")
    try:
        assert await cache.wait_synced(CONFIGMAPS, ns, timeout=30)
        before = kube.stats.total
        mine = cache.get(CONFIGMAPS, ns, "mine")
        assert mine is not None and mine["data"]["edited"] == "yes"
        entries = {e["manager"]: e for e in mine["metadata"]["managedFields"]}
        assert "fieldsV1" in entries["gitopsd"] and "fieldsV1" not in entries["kubectl-edit"]
        assert cache.get(CONFIGMAPS, ns, "plain") is None
        assert [o["metadata"]["name"] for o in cache.owned(CONFIGMAPS, "ops.two")] == ["other"]
        assert kube.stats.total == before, "reads from the cache make no request"
        assert cache.synced(CONFIGMAPS) and cache.failure(CONFIGMAPS) is None
    finally:
        await cache.close()


async def test_changes_reach_subscribers_once_in_order(kube: Kube, ns: str) -> None:
    """A create, an edit and a delete reach a subscriber as ADDED, MODIFIED, DELETED, each once."""
    cache = WatchCache(kube, label=LABEL)
    seen: list[tuple[str, str]] = []
    cache.subscribe(
        lambda c: (
            seen.append((c.type, c.object["metadata"]["name"])) if c.object["metadata"]["namespace"] == ns else None
        )
    )
    try:
        assert await cache.wait_synced(CONFIGMAPS, ns, timeout=30)
        await put(kube, configmap("a", ns))
        await put(kube, configmap("a", ns, k="changed"))
        await kube.delete(CONFIGMAPS.path(ns, "a"))
        await eventually("three changes", lambda: len(seen) >= 3)
        await asyncio.sleep(0.5)
        assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
        assert cache.get(CONFIGMAPS, ns, "a") is None
    finally:
        await cache.close()


async def test_resumes_after_a_dropped_connection_without_relisting(
    cluster_ipv4: ClusterInfo, kube: Kube, ns: str
) -> None:
    """The connection drops and comes back: the watch resumes from its resourceVersion and misses nothing."""
    host, port = cluster_ipv4.api_url.removeprefix("https://").rsplit(":", 1)
    proxy = TcpProxy(host.strip("[]"), int(port), host=host.strip("[]")).up()
    direct = kube.connection
    proxied = Kube(replace(direct, server=f"https://{proxy.address}"))
    cache = WatchCache(proxied, namespaces=[ns], label=LABEL)
    seen: list[tuple[str, str]] = []
    cache.subscribe(lambda c: seen.append((c.type, c.object["metadata"]["name"])))
    try:
        assert await cache.wait_synced(CONFIGMAPS, ns, timeout=30)
        proxy.down()
        await asyncio.sleep(1.0)
        await put(kube, configmap("during", ns))
        await put(kube, configmap("during", ns, k="again"))
        proxy.up()
        await eventually("the change made during the outage", lambda: cache.get(CONFIGMAPS, ns, "during"))
        await eventually("the edit made during the outage", lambda: ("MODIFIED", "during") in seen)
        assert seen == [("ADDED", "during"), ("MODIFIED", "during")]
        figures = [f for f in cache.figures() if f.kind == "configmaps"]
        assert figures[0].restarts >= 1 and figures[0].relists == 0
    finally:
        await cache.close()
        await proxied.close()
        proxy.down()


async def test_relists_on_gone_and_emits_only_what_changed(kube: Kube, ns: str) -> None:
    """Watching from a compacted resourceVersion (410) relists; the diff emits each missed change once."""
    for name in ("kept", "edited", "removed"):
        await put(kube, configmap(name, ns))
    seen: list[tuple[str, str]] = []

    def record(change: Change) -> None:
        seen.append((change.type, change.object["metadata"]["name"]))

    reflector = Reflector(kube, CONFIGMAPS, ns, record, label_selector=LABEL)
    task = asyncio.create_task(reflector.run())
    assert await reflector.wait_synced(30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    seen.clear()
    await put(kube, configmap("edited", ns, k="new"))
    await kube.delete(CONFIGMAPS.path(ns, "removed"))
    await put(kube, configmap("added", ns))
    reflector.resource_version = "1"  # long compacted: the API server answers 410 Gone
    task = asyncio.create_task(reflector.run())
    try:
        await eventually("the relist", lambda: reflector.relists >= 1 and len(seen) >= 3)
        await asyncio.sleep(0.5)
        assert sorted(seen) == [("ADDED", "added"), ("DELETED", "removed"), ("MODIFIED", "edited")]
        assert reflector.relists == 1
        assert sorted(k[1] for k in reflector.store) == ["added", "edited", "kept"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


CRD_TEMPLATE = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"""


async def test_a_deleted_crd_fails_its_kind_alone(cluster_ipv4: ClusterInfo, kube: Kube, ns: str) -> None:
    """Deleting a watched kind's CRD marks that kind failed with a reason; ConfigMaps stay served."""
    group = f"w{uuid.uuid4().hex[:6]}.example.com"
    out = kubectl(cluster_ipv4, "apply", "-f", "-", input=CRD_TEMPLATE.format(group=group))
    assert out.returncode == 0, out.stderr
    out = kubectl(cluster_ipv4, "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
    assert out.returncode == 0, out.stderr
    widgets = Resource(group, "v1", "Widget", "widgets", True)
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": ns, "labels": {LABEL: "ops.app"}},
    }
    for _ in range(50):
        try:
            await kube.apply(widgets.path(ns, "w"), widget, field_manager="gitopsd")
            break
        except KubeError:  # served a moment after Established
            await asyncio.sleep(0.2)
    cache = WatchCache(kube, label=LABEL, retry_failed=3600)
    deleted: list[str] = []
    cache.subscribe(lambda c: deleted.append(c.object["metadata"]["name"]) if c.type == "DELETED" else None)
    try:
        assert await cache.wait_synced(widgets, ns, timeout=30)
        assert await cache.wait_synced(CONFIGMAPS, ns, timeout=30)
        assert cache.get(widgets, ns, "w") is not None
        out = kubectl(cluster_ipv4, "delete", f"crd/widgets.{group}", "--wait=true", timeout=120)
        assert out.returncode == 0, out.stderr
        reason = await eventually("the kind marked failed", lambda: cache.failure(widgets), timeout=60)
        assert "widgets." + group in reason and "no longer served" in reason
        assert not cache.covers(widgets, ns) and "w" in deleted
        await put(kube, configmap("after", ns))
        await eventually("ConfigMaps still served", lambda: cache.get(CONFIGMAPS, ns, "after"))
        assert cache.failure(CONFIGMAPS) is None
    finally:
        await cache.close()


async def test_a_forbidden_kind_fails_alone(cluster_ipv4: ClusterInfo, kube: Kube, ns: str, tmp_path: Path) -> None:
    """An identity that may not list Secrets: that kind fails naming Forbidden; its ConfigMaps are served."""
    await put(kube, configmap("visible", ns))
    async with Kube.from_kubeconfig(
        role_kubeconfig(cluster_ipv4, ns, "watcher", "get,list,watch", "configmaps", tmp_path)
    ) as limited:
        cache = WatchCache(limited, namespaces=[ns], label=LABEL, retry_failed=3600)
        try:
            assert not await cache.wait_synced(SECRETS, ns, timeout=5)
            reason = await eventually("Secrets marked failed", lambda: cache.failure(SECRETS))
            assert reason.startswith(f"secrets.core in namespace {ns} may not be listed")
            assert not cache.covers(SECRETS, ns)
            assert await cache.wait_synced(CONFIGMAPS, ns, timeout=30)
            assert cache.get(CONFIGMAPS, ns, "visible") is not None
            assert cache.failures() == {f"secrets.core in namespace {ns}": reason}
        finally:
            await cache.close()
