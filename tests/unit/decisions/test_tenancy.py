"""An Environment's writes act as its ServiceAccount (impersonated); gitopsd's bookkeeping stays its own."""

from __future__ import annotations

import pytest

from gitopsd import environments
from gitopsd.spec import API_VERSION, KIND, Environment, parse_environment
from gitopsd.tenancy import Tenancy
from tests.unit.decisions.conftest import NAMESPACE, TARGET, World, spec
from tests.unit.decisions.ports import app, configmap

DEPLOYER = f"system:serviceaccount:{NAMESPACE}:deployer"
FALLBACK = f"system:serviceaccount:{NAMESPACE}:tenant"
TARGET_PATHS = (f"/api/v1/namespaces/{TARGET}/", f"/apis/apps/v1/namespaces/{TARGET}/")


def writes_by_user(world: World) -> dict[str | None, set[str]]:
    """Who made each write, and to which paths (without query)."""
    seen: dict[str | None, set[str]] = {}
    for user, method, path in world.kube.access.requests:
        if method in {"POST", "PUT", "PATCH", "DELETE"}:
            seen.setdefault(user, set()).add(path.split("?")[0])
    return seen


async def test_service_account_applies_and_prunes_while_status_and_records_stay_gitopsds(world: World) -> None:
    """Dry-runs, applies and prunes into the target impersonate spec.serviceAccountName; the status,
    release record and Event writes are gitopsd's own."""
    world.source.push("A", app("1"))
    world.create("shop", serviceAccountName="deployer")
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.verdict) == ("applied", "Healthy")
    by_user = writes_by_user(world)
    assert by_user[DEPLOYER] and all(p.startswith(TARGET_PATHS) for p in by_user[DEPLOYER]), by_user
    ours = by_user[None]
    assert not any(p.startswith(TARGET_PATHS) for p in ours), ours
    assert any("/secrets" in p for p in ours) and any(p.endswith("/status") for p in ours)

    world.kube.access.requests.clear()
    world.source.push("B", app("2")[1:])  # the ConfigMap leaves: pruned
    await world.reconcile("shop")
    deletes = {(u, p) for u, m, p in world.kube.access.requests if m == "DELETE" and p.startswith(TARGET_PATHS)}
    assert deletes and {u for u, _ in deletes} == {DEPLOYER}, deletes


async def test_the_default_service_account_serves_environments_naming_none(world: World) -> None:
    world.reconciler.services.tenancy = Tenancy(default_service_account="tenant")
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    assert FALLBACK in writes_by_user(world)
    assert world.image() == "shop:1"


async def test_without_either_gitopsd_acts_as_itself(world: World) -> None:
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    assert world.kube.access.users() == {None}


async def test_a_refused_write_applies_nothing_and_names_the_object_and_the_reason(world: World) -> None:
    """RBAC refuses the Deployment to the ServiceAccount: the dry-run fails, nothing is written (not
    even the Service it may write), Ready False names the object and the refusal; no release is Healthy."""
    world.kube.access.deny(DEPLOYER, f"/apis/apps/v1/namespaces/{TARGET}/deployments")
    world.source.push("A", app("1"))
    world.create("shop", serviceAccountName="deployer")
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed"
    assert world.live("Deployment", "web") is None
    assert world.live("ConfigMap", "settings") is None
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["status"] == "False"
    assert "Deployment" in ready["message"] and "web" in ready["message"], ready
    assert "forbidden" in ready["message"] and DEPLOYER in ready["message"], ready
    assert "Healthy" not in (await world.results("shop")).values()


async def test_a_refused_sync_keeps_the_inventory_it_had(world: World) -> None:
    """The inventory written before an apply covers what it may create; refused whole, nothing was
    created, so the old inventory comes back (an object never applied is never tracked or pruned)."""
    world.source.push("A", app("1"))
    world.create("shop", serviceAccountName="deployer")
    await world.reconcile("shop")
    before = (await world.status("shop"))["inventory"]
    world.kube.access.deny(DEPLOYER, "/api/v1/namespaces/staging/")
    world.source.push("B", [*app("2"), configmap("planted", "x", "staging")])
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed" and "staging" in str(outcome.error)
    assert (await world.status("shop"))["inventory"] == before


async def test_an_object_the_account_cannot_read_fails_its_prune_by_name_and_stays_tracked(world: World) -> None:
    """Once applied, its account loses the right to read a ConfigMap, and Git drops it: the prune
    names it and keeps it in the inventory; the rest of the sync is done, nothing raises."""
    world.source.push("A", app("1"))
    world.create("shop", serviceAccountName="deployer")
    await world.reconcile("shop")
    world.reconciler.services.applier.cache = None  # no watch cache here: reads are requests
    world.kube.access.deny(DEPLOYER, f"/api/v1/namespaces/{TARGET}/configmaps")
    world.source.push("B", app("2")[1:])
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed" and outcome.error is not None
    assert outcome.error.reason == "PruneFailed" and "cannot read it to delete it" in str(outcome.error)
    assert "ConfigMap/shop/settings" in str(outcome.error)
    assert world.live("ConfigMap", "settings") is not None and world.image() == "shop:2"
    entries = (await world.status("shop"))["inventory"]["entries"]
    assert "shop_settings__ConfigMap" in {e["id"] for e in entries}, entries


async def test_a_new_account_is_asked_again_not_trusted_from_the_last_ones_memo(world: World) -> None:
    """Switching spec.serviceAccountName: what the old account wrote proves nothing for the new one,
    which is dry-run again and refused here."""
    world.source.push("A", app("1"))
    world.create("shop", serviceAccountName="deployer")
    assert (await world.reconcile("shop")).result == "applied"
    weak = f"system:serviceaccount:{NAMESPACE}:weak"
    world.kube.access.deny(weak, f"/api/v1/namespaces/{TARGET}/")
    world.kube.access.deny(weak, f"/apis/apps/v1/namespaces/{TARGET}/")
    await world.kube.patch(environments.RESOURCE.path(NAMESPACE, "shop"), {"spec": {"serviceAccountName": "weak"}})
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed", outcome
    assert weak in world.kube.access.users()


def _env(account: str) -> Environment:
    return parse_environment(
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "x", "namespace": NAMESPACE, "uid": "u"},
         "spec": spec(serviceAccountName=account)}
    )  # fmt: skip


def test_appliers_for_accounts_are_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitopsd.clusters import target

    monkeypatch.setattr(target, "MAX_IDENTITIES", 2)
    services = world.reconciler.services
    made = [services.applier_for(_env(name)) for name in ("a", "b", "c", "a")]
    assert len(services.appliers) == 2
    assert made[0] is not made[3]  # "a" was dropped, then made again
    assert services.applier_for(_env("a")) is made[3]
