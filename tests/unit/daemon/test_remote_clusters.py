"""The daemon's wake-ups of remote-cluster Environments on the in-memory cluster: a rotated
kubeconfig Secret queues the Environments that name it (through the daemon's own Secret watch),
a recovered cluster queues its own, and an unreachable one backs off."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from gitopsd.clusters import ClusterUnreachable
from gitopsd.daemon import Daemon, Settings
from gitopsd.daemon.clusters import RemoteClusters
from gitopsd.errors import GitopsdError
from gitopsd.kube import Kube
from gitopsd.kube.secretwatch import SecretWatch
from gitopsd.kube.watchcache import WatchCache
from gitopsd.spec import parse_environment
from tests.fakes import FakeKube

ENVIRONMENTS = "/apis/gitopsd.dev/v1alpha1/namespaces/{}/environments"


def kubeconfig(server: str) -> str:
    return base64.b64encode(
        f"""
current-context: t
contexts: [{{name: t, context: {{cluster: c, user: u}}}}]
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: abc}}}}]
""".encode()
    ).decode()


def secret(namespace: str, name: str, server: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": {"value": kubeconfig(server)}}  # fmt: skip


def environment(namespace: str, name: str, kube_config: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"url": "https://git.example.com/x.git", "branch": "main"}, "interval": "1h"}
    if kube_config is not None:
        spec["kubeConfig"] = {"secretRef": {"name": kube_config}}
    return {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": name, "namespace": namespace, "uid": f"{namespace}-{name}", "generation": 1},
            "spec": spec}  # fmt: skip


ALL = [
    environment("apps", "shop", "prod"),  # names the rotated Secret
    environment("apps", "cart", "prod"),  # too
    environment("apps", "blog", "staging"),  # another Secret
    environment("apps", "home", None),  # in-cluster
    environment("other", "shop", "prod"),  # a Secret of the same name in another namespace
]


async def eventually(what: str, check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never saw {what}")


@pytest.fixture
def fake() -> FakeKube:
    fake = FakeKube(namespaces=("apps", "other"))
    for namespace in ("apps", "other"):
        fake.seed(secret(namespace, "prod", "https://prod.example"))
    fake.seed(secret("apps", "staging", "https://staging.example"))
    return fake


@pytest.fixture
async def daemon(fake: FakeKube, tmp_path: Path) -> AsyncIterator[Daemon]:
    """The daemon on the fake cluster, its informer running (no workers: what is queued stays queued)."""
    made = Daemon(
        cast(Kube, fake),  # the fake speaks KubeAPI, not Kube
        Settings(cache_dir=tmp_path),
        cache=WatchCache(cast(Kube, fake)),
    )
    stop = asyncio.Event()
    informer = asyncio.create_task(made.informer.run(stop))
    await eventually("the Environments listed", lambda: len(made.informer) == len(ALL))
    yield made
    stop.set()
    informer.cancel()
    await asyncio.gather(informer, return_exceptions=True)
    await made.secrets.close()
    await made.cache.close()


async def queued(daemon: Daemon) -> set[str]:
    """What the daemon queued since the last look (each taken and finished, as a worker would)."""
    work = daemon._work  # what the daemon queued is what this test checks
    found = set()
    while work.depth:
        key = await work.get()
        work.done(key)
        found.add(key)
    return found


@pytest.fixture(autouse=True)
def seeded(fake: FakeKube) -> None:
    for obj in ALL:
        fake.seed(obj)


async def test_a_rotated_kubeconfig_secret_queues_the_environments_that_name_it(fake: FakeKube, daemon: Daemon) -> None:
    """The daemon's Secret watch sees the change: only apps/shop and apps/cart run again, at once."""
    await queued(daemon)  # the informer's first list queued every Environment: a run each, as usual
    for namespace, name in (("apps", "prod"), ("apps", "staging"), ("other", "prod")):
        await daemon.secrets.read(namespace, name)  # their runs read them: watched from now on
    await asyncio.sleep(0.05)
    assert await queued(daemon) == set()  # reading (the watch's first list) queues nothing
    await fake.patch("/api/v1/namespaces/apps/secrets/prod", {"metadata": {"labels": {"team": "a"}}})
    await asyncio.sleep(0.05)
    assert await queued(daemon) == set()  # labels alone: the kubeconfig is the same
    await fake.patch("/api/v1/namespaces/apps/secrets/prod", {"data": {"value": kubeconfig("https://new.example")}})
    await eventually("the rotation queued", lambda: daemon._work.depth > 0)
    await asyncio.sleep(0.05)
    assert await queued(daemon) == {"apps/shop", "apps/cart"}


async def test_a_deleted_then_created_kubeconfig_secret_queues_its_environments(fake: FakeKube, daemon: Daemon) -> None:
    """Deleted (its Environments go Stalled at once) and created again (they recover at once)."""
    await queued(daemon)
    await daemon.secrets.read("apps", "staging")
    await fake.delete("/api/v1/namespaces/apps/secrets/staging")
    await eventually("the deletion queued", lambda: daemon._work.depth > 0)
    assert await queued(daemon) == {"apps/blog"}
    fake.seed(secret("apps", "staging", "https://staging.example"))
    await eventually("the creation queued", lambda: daemon._work.depth > 0)
    assert await queued(daemon) == {"apps/blog"}


async def test_a_secret_watch_tells_subscribers_of_data_changes_only(fake: FakeKube) -> None:
    """SecretWatch.subscribe: a data change is news; the first list and a label edit are not."""
    watch = SecretWatch(cast(Kube, fake))
    told: list[tuple[str, str]] = []
    watch.subscribe(lambda namespace, name: told.append((namespace, name)))

    def broken(namespace: str, name: str) -> None:
        raise RuntimeError("a subscriber's bug")

    watch.subscribe(broken)  # stops nobody
    try:
        await watch.read("apps", "prod")
        await fake.patch("/api/v1/namespaces/apps/secrets/prod", {"metadata": {"annotations": {"a": "b"}}})
        await fake.patch("/api/v1/namespaces/apps/secrets/prod", {"data": {"value": kubeconfig("https://x.example")}})
        await eventually("the change told", lambda: told == [("apps", "prod")])
        await asyncio.sleep(0.05)
        assert told == [("apps", "prod")]
    finally:
        await watch.close()


def test_an_unreachable_cluster_backs_off_and_a_reached_one_starts_over() -> None:
    """2, 4, 8 … s capped at the interval while the cluster does not answer; None (the interval) once it does."""
    remote = RemoteClusters(lambda: [], lambda key: None)
    env = parse_environment({**environment("apps", "shop", "prod"), "spec": {
        **environment("apps", "shop", "prod")["spec"], "interval": "10s"}})  # fmt: skip
    down = ClusterUnreachable("apps/prod", "connection refused")
    assert [remote.backoff("apps/shop", env, down) for _ in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert remote.backoff("apps/shop", env, None) is None
    assert remote.backoff("apps/shop", env, down) == 2.0
    bad_ca = ClusterUnreachable("apps/prod", "wrong CA", reason="ClusterCertificateInvalid", transient=False)
    assert remote.backoff("apps/shop", env, bad_ca) is None
    assert remote.backoff("apps/shop", env, GitopsdError("other")) is None


def test_a_recovered_cluster_queues_its_own_environments_only() -> None:
    """Breaker closed for apps/prod: apps/shop and apps/cart run now, not other/shop (other/prod) or apps/blog."""
    woken: list[str] = []
    items = [(f"{o['metadata']['namespace']}/{o['metadata']['name']}", o) for o in ALL]
    remote = RemoteClusters(lambda: items, woken.append)
    remote.recovered("apps/prod")
    assert sorted(woken) == ["apps/cart", "apps/shop"]
