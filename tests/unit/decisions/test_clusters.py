"""Environments deploying into another cluster (``spec.kubeConfig``), on one FakeKube per cluster.

The management fake holds the Environments, their status and Events and the kubeconfig
Secrets; each target fake gets what the Environment deploys and its release records.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gitopsd import environments
from gitopsd.clusters import ClusterUnreachable
from gitopsd.clusters.breaker import Breaker
from gitopsd.clusters.records import TargetStore
from gitopsd.clusters.registry import Built, Registry
from gitopsd.events import EventRecorder
from gitopsd.gates.runner import VERIFY
from gitopsd.kube.config import Connection
from gitopsd.kube.secretwatch import PlainSecretReader
from gitopsd.reconcile import Reconciler
from gitopsd.releases import Owner
from gitopsd.releases import requests as asks
from gitopsd.releases.info import LABEL_ENVIRONMENT
from gitopsd.releases.store import SECRETS
from tests.fakes import FakeKube
from tests.unit.decisions.conftest import NAMESPACE, TARGET, World, deployment_controller
from tests.unit.decisions.ports import app
from tests.unit.decisions.test_verification import INTERVAL, START_DELAY, verification

TOKEN = "s3cr3t-token-value"


def kubeconfig(server: str, token: str = TOKEN) -> str:
    return f"""
apiVersion: v1
kind: Config
current-context: t
contexts: [{{name: t, context: {{cluster: c, user: u}}}}]
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: {token}}}}}]
"""


class Clusters:
    """Target fakes by server URL, and the registry that connects to them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fakes: dict[str, FakeKube] = {}
        self.built: list[str] = []
        self.registry = Registry(PlainSecretReader(world.kube), make=self.make)
        world.reconciler = Reconciler(
            world.kube, None, EventRecorder(world.kube), source=world.source, clock=world.clock, clusters=self.registry
        )
        world.reconciler.services.prometheus = world.prometheus.open

    def cluster(self, server: str, *, namespaces: tuple[str, ...] = (NAMESPACE, TARGET)) -> FakeKube:
        fake = FakeKube(namespaces=("default", *namespaces), server=server)
        fake.react("apps", "Deployment", deployment_controller)
        self.fakes[server] = fake
        return fake

    def make(self, name: str, connection: Connection, breaker: Breaker) -> Built:
        self.built.append(name)

        async def close() -> None:
            return None

        return Built(self.fakes[connection.server], None, close)

    def secret(self, name: str, text: str, key: str = "value") -> None:
        data = {key: base64.b64encode(text.encode()).decode()}
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
                               "data": data}  # fmt: skip
        self.world.kube.seed(obj)


def _secret_ref(name: str) -> Any:
    from gitopsd.model import ObjectRef

    return ObjectRef("", "Secret", NAMESPACE, name)


@pytest.fixture
def clusters(world: World) -> Clusters:
    return Clusters(world)


async def _records(kube: FakeKube, name: str) -> list[str]:
    items = (await kube.list(SECRETS.path(NAMESPACE), label_selector=f"{LABEL_ENVIRONMENT}={name}")).items
    return sorted(i["metadata"]["name"] for i in items)


async def test_a_remote_environment_deploys_and_records_on_its_target_only(world: World, clusters: Clusters) -> None:
    """Objects and release records land on the target fake; the management fake gets only status."""
    prod = clusters.cluster("https://prod.example:6443")
    clusters.secret("prod-kubeconfig", kubeconfig("https://prod.example:6443"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod-kubeconfig"}})
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.release, outcome.verdict) == ("applied", 1, "Healthy"), outcome.error
    assert prod.stored(world.kube_ref("Deployment", "web")) is not None
    assert world.live("Deployment", "web") is None  # nothing applied on the management cluster
    assert await _records(prod, "shop") == ["gitopsd.release.v1.shop.v1"]
    assert await _records(world.kube, "shop") == []
    head = prod.stored(_secret_ref("gitopsd.release.v1.shop.v1"))
    assert head is not None and "ownerReferences" not in head["metadata"]  # no owner on the target
    st = await world.status("shop")
    assert st["cluster"] == "prod-kubeconfig" and st["release"] == 1
    assert world.source.rendered_for == [prod]  # rendered with the target's discovery


async def test_in_cluster_environments_say_so_and_stay_local(world: World, clusters: Clusters) -> None:
    """Without kubeConfig: status.cluster is in-cluster and no target is built."""
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    assert (await world.status("shop"))["cluster"] == "in-cluster"
    assert world.live("Deployment", "web") is not None
    assert clusters.built == []
    assert world.source.rendered_for == [world.kube]


async def test_two_environments_two_targets_each_gets_its_own(world: World, clusters: Clusters) -> None:
    """Each Environment's objects go to the cluster its Secret names, and one target per Secret."""
    a, b = clusters.cluster("https://a.example"), clusters.cluster("https://b.example")
    clusters.secret("a", kubeconfig("https://a.example"))
    clusters.secret("b", kubeconfig("https://b.example"))
    world.source.push("A", app("1"))
    world.create("one", kubeConfig={"secretRef": {"name": "a"}})
    world.create("two", kubeConfig={"secretRef": {"name": "b"}})
    for name in ("one", "two", "one", "two"):
        await world.reconcile(name)
    assert await _records(a, "one") == ["gitopsd.release.v1.one.v1"] and await _records(a, "two") == []
    assert await _records(b, "two") == ["gitopsd.release.v1.two.v1"] and await _records(b, "one") == []
    assert sorted(clusters.built) == [f"{NAMESPACE}/a", f"{NAMESPACE}/b"]


async def test_an_unreachable_cluster_is_ready_false_reconciling_and_names_it(world: World, clusters: Clusters) -> None:
    """ClusterUnreachable: Ready False with that reason naming the cluster, Reconciling, not Stalled."""
    prod = clusters.cluster("https://prod.example")
    clusters.secret("prod", kubeconfig("https://prod.example"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod"}})
    prod.fail_next("GET", "/api/v1/namespaces", ClusterUnreachable(f"{NAMESPACE}/prod", "unreachable: timed out"))
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed" and isinstance(outcome.error, ClusterUnreachable)
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "ClusterUnreachable"
    assert f"cluster {NAMESPACE}/prod" in ready["message"]
    assert await world.condition("shop", "Stalled") is None
    assert (await world.condition("shop", "Reconciling") or {}).get("status") == "True"
    outcome = await world.reconcile("shop")  # it came back: converges by itself
    assert outcome.result == "applied", outcome.error
    assert (await world.condition("shop", "Ready") or {}).get("status") == "True"


async def test_a_missing_kubeconfig_secret_stalls_and_applies_nothing(world: World, clusters: Clusters) -> None:
    """No such Secret: Stalled with KubeConfigInvalid naming it; nothing anywhere (never the management cluster)."""
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "nope"}})
    outcome = await world.reconcile("shop")
    assert outcome.error is not None and outcome.error.reason == "KubeConfigInvalid"
    assert f"Secret {NAMESPACE}/nope not found" in outcome.error.message
    assert (await world.condition("shop", "Stalled") or {}).get("status") == "True"
    assert world.live("Deployment", "web") is None
    assert await _records(world.kube, "shop") == []


async def test_a_missing_records_namespace_on_the_target_is_a_clear_condition(world: World, clusters: Clusters) -> None:
    """The target lacks the namespace the records go to: RecordsNamespaceMissing, nothing applied."""
    prod = clusters.cluster("https://prod.example", namespaces=(TARGET,))
    clusters.secret("prod", kubeconfig("https://prod.example"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod"}})
    outcome = await world.reconcile("shop")
    assert outcome.error is not None and outcome.error.reason == "RecordsNamespaceMissing"
    assert f"cluster {NAMESPACE}/prod has no namespace {NAMESPACE!r}" in outcome.error.message
    assert prod.stored(world.kube_ref("Deployment", "web")) is None


async def test_a_rotated_secret_rebuilds_the_target(world: World, clusters: Clusters) -> None:
    """A changed kubeconfig (another server, a new token) makes a new target; unchanged, the same one."""
    old, new = clusters.cluster("https://old.example"), clusters.cluster("https://new.example")
    clusters.secret("prod", kubeconfig("https://old.example"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod"}})
    await world.reconcile("shop")
    await world.reconcile("shop")
    assert clusters.built == [f"{NAMESPACE}/prod"]
    secret = world.kube.stored(_secret_ref("prod"))
    assert secret is not None
    secret["data"]["value"] = base64.b64encode(kubeconfig("https://new.example", "rotated").encode()).decode()
    await world.kube.replace(SECRETS.path(NAMESPACE, "prod"), secret)
    world.source.push("B", app("2"))
    outcome = await world.reconcile("shop")
    assert clusters.built == [f"{NAMESPACE}/prod", f"{NAMESPACE}/prod"]
    assert outcome.result == "applied", outcome.error
    assert new.stored(world.kube_ref("Deployment", "web")) is not None
    assert old.stored(world.kube_ref("Deployment", "web")) is not None  # the old cluster is left as it was


async def test_promotion_reads_the_named_environments_records_from_its_own_cluster(
    world: World, clusters: Clusters
) -> None:
    """prod (cluster B) takes only what staging (cluster A) ran Healthy: staging's records are read on A."""
    clusters.cluster("https://a.example")
    clusters.cluster("https://b.example")
    clusters.secret("a", kubeconfig("https://a.example"))
    clusters.secret("b", kubeconfig("https://b.example"))
    world.source.push("A", app("1"))
    world.create("staging", kubeConfig={"secretRef": {"name": "a"}})
    world.create("prod", kubeConfig={"secretRef": {"name": "b"}}, promotion={"requireHealthyIn": [{"name": "staging"}]})
    waiting = await world.reconcile("prod")
    assert "waits for promotion" in waiting.message and "staging never deployed" in waiting.message
    await world.reconcile("staging")
    outcome = await world.reconcile("prod")
    assert (outcome.result, outcome.release) == ("applied", 1), outcome.message


async def test_records_on_a_target_survive_a_new_environment_object(world: World, clusters: Clusters) -> None:
    """Records are keyed by namespace/name on the target: a re-created Environment (new uid) reads them."""
    prod = clusters.cluster("https://prod.example")
    clusters.secret("prod", kubeconfig("https://prod.example"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod"}})
    await world.reconcile("shop")
    env = await world.env("shop")
    listing = await TargetStore(prod).scan(Owner(NAMESPACE, "shop", "another-uid"))
    assert sorted(listing.records) == [1] and not listing.invalid, listing.invalid
    assert env.uid != "another-uid"


async def test_gitopsd_verify_of_a_remote_environment_judges_and_rolls_back_on_its_target(
    world: World, clusters: Clusters
) -> None:
    """``gitopsd verify`` (its annotations) on a remote Environment: the gate runs again for the current
    release read from the target's records; the Failed verdict is written there and rolls back there."""
    prod = clusters.cluster("https://prod.example")
    clusters.secret("prod", kubeconfig("https://prod.example"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod"}}, verification=verification())
    for step in (0, START_DELAY + 1, INTERVAL + 1):  # release 1 deployed and verified
        world.clock.advance(step)
        await world.reconcile("shop")
    world.source.push("B", app("2"))
    for step in (0, START_DELAY + 1, INTERVAL + 1):  # release 2 deployed and verified
        world.clock.advance(step)
        await world.reconcile("shop")
    target_records = await TargetStore(prod).scan(Owner(NAMESPACE, "shop", "any"))
    assert {n: r.verification for n, r in target_records.records.items()} == {1: "Passed", 2: "Passed"}
    world.prometheus.value = 0.5  # errors now: `gitopsd verify` should catch it
    token = asks.new_token()
    body = json.dumps({"token": token, "by": "alice", "dryRun": False})
    await world.annotate("shop", {VERIFY: body, environments.REQUESTED_AT: token})
    await world.reconcile("shop")
    assert (await world.status("shop"))["verification"]["request"] == token
    world.clock.advance(START_DELAY + 1)
    for _ in range(2):
        await world.reconcile("shop")
    listing = await TargetStore(prod).scan(Owner(NAMESPACE, "shop", "any"))
    assert listing.records[2].verification == "Failed"
    assert max(listing.records) == 3 and listing.records[3].revision == listing.records[1].revision  # rolled back
    web = prod.stored(world.kube_ref("Deployment", "web"))
    assert web is not None and web["spec"]["template"]["spec"]["containers"][0]["image"] == "shop:1"
    assert await _records(world.kube, "shop") == []  # nothing of it on the management cluster
