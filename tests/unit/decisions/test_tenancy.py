"""An Environment's writes act as its ServiceAccount (impersonated); gitopsd's bookkeeping stays its own."""

from __future__ import annotations

from gitopsd.tenancy import Tenancy
from tests.unit.decisions.conftest import NAMESPACE, TARGET, World
from tests.unit.decisions.ports import app

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
