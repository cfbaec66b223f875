"""The reconcile decision tree on in-memory ports: a ``FakeKube``, a ``FakeSource`` the test pushes
commits to, a ``FakePrometheus`` that answers what the test sets, and a clock the test moves.

``world`` bundles them with a ``Reconciler`` and does what the daemon and the CLI do around a
reconcile: read the Environment, pass a new ``gitopsd.dev/requestedAt`` as ``requested_at``,
write the request annotations ``gitopsd rollback`` / ``resume`` / ``sync --force-freeze`` write.
``world.restart()`` is a new process: a new ``Reconciler`` with no memory of the last one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from gitopsd import environments
from gitopsd.events import EVENTS, EventRecorder
from gitopsd.model import ObjectRef
from gitopsd.outcome import Outcome
from gitopsd.reconcile import Reconciler
from gitopsd.releases import Owner, ReleaseInfo, ReleaseStore
from gitopsd.releases import requests as asks
from gitopsd.spec import API_VERSION, KIND, Environment, parse_environment
from gitopsd.status import condition
from tests.fakes import FakeKube, failed, rolled_out
from tests.unit.decisions.ports import Clock, Crash, FakePrometheus, FakeSource

if TYPE_CHECKING:
    pass

NAMESPACE = "gitopsd-system"
TARGET = "shop"
#: More target namespaces, for tests with several Environments.
EXTRA_TARGETS = ("staging", "prod")
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
#: A Deployment whose image ends with this never becomes available (its controller says so).
BAD = ":bad"
#: ...and one whose image ends with this stays in progress until the test sets its status.
SLOW = ":slow"


def deployment_controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Rolls a Deployment out at once, fails it (image ending ``BAD``) or leaves it (``SLOW``)."""
    images = [str(c.get("image", "")) for c in obj["spec"]["template"]["spec"]["containers"]]
    if any(image.endswith(SLOW) for image in images):
        return None
    if any(image.endswith(BAD) for image in images):
        return failed(obj)
    return rolled_out(obj)


def spec(**fields: Any) -> dict[str, Any]:
    """An Environment spec with a short health gate; ``fields`` replace or add top-level fields."""
    base: dict[str, Any] = {
        "source": {"url": "https://git.example.com/shop.git", "branch": "main", "path": "deploy"},
        "targetNamespace": TARGET,
        "interval": "1m",
        "wait": {"timeout": "5s"},
    }
    base.update(fields)
    return base


class World:
    """The ports, one Reconciler at a time, and what the daemon and the CLI do around it."""

    def __init__(self) -> None:
        self.kube = FakeKube(namespaces=("default", NAMESPACE, TARGET, *EXTRA_TARGETS))
        self.kube.react("apps", "Deployment", deployment_controller)
        self.source = FakeSource()
        self.prometheus = FakePrometheus()
        self.clock = Clock(START)
        self.reconciler = self.restart()

    def restart(self) -> Reconciler:
        """A new process: a Reconciler that remembers nothing (records, renders, applied objects)."""
        self.reconciler = Reconciler(self.kube, None, EventRecorder(self.kube), source=self.source, clock=self.clock)
        self.reconciler.services.prometheus = self.prometheus.open
        return self.reconciler

    # -- Environments ------------------------------------------------------------------------

    def create(self, name: str, **fields: Any) -> None:
        obj = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": NAMESPACE},
               "spec": spec(**fields)}  # fmt: skip
        parse_environment(obj)  # a bad spec fails the test here, not inside the reconcile
        self.kube.seed(obj)

    async def env(self, name: str) -> Environment:
        return parse_environment(await environments.get(self.kube, NAMESPACE, name))

    async def reconcile(self, name: str, *, fresh: bool = False) -> Outcome:
        """One reconcile as the daemon runs it (``requested_at``: a sync request not handled yet)."""
        env = await self.env(name)
        requested = env.annotations.get(environments.REQUESTED_AT)
        if requested == env.status.get("lastHandledReconcileAt"):
            requested = None
        return await self.reconciler.reconcile(env, requested_at=requested, fresh=fresh)

    async def status(self, name: str) -> dict[str, Any]:
        return dict((await environments.get(self.kube, NAMESPACE, name)).get("status") or {})

    async def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        found = condition(await self.status(name), type_)
        return dict(found) if found is not None else None

    async def records(self, name: str) -> dict[int, ReleaseInfo]:
        """The release records as the Secrets in the fake hold them (read afresh)."""
        env = await self.env(name)
        listing = await ReleaseStore(self.kube).scan(Owner(NAMESPACE, name, env.uid))
        assert not listing.invalid, listing.invalid
        return dict(listing.records)

    async def results(self, name: str) -> dict[int, str]:
        return {n: str(r.result) for n, r in sorted((await self.records(name)).items())}

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events posted about Environment ``name``, oldest first."""
        items = (await self.kube.list(EVENTS.path(NAMESPACE))).items
        mine = [e for e in items if e["involvedObject"].get("name") == name]
        return [(e["type"], e["reason"], e["message"]) for e in mine]

    async def reasons(self, name: str) -> list[str]:
        return [reason for _, reason, _ in await self.events(name)]

    def kube_ref(self, kind: str, name: str, namespace: str = TARGET) -> ObjectRef:
        return ObjectRef("apps" if kind == "Deployment" else "", kind, namespace, name)

    def live(self, kind: str, name: str, namespace: str = TARGET) -> dict[str, Any] | None:
        return self.kube.stored(self.kube_ref(kind, name, namespace))

    def image(self, name: str = "web", namespace: str = TARGET) -> str | None:
        live = self.live("Deployment", name, namespace)
        return None if live is None else str(live["spec"]["template"]["spec"]["containers"][0]["image"])

    # -- what the CLI writes -------------------------------------------------------------------

    async def annotate(self, name: str, annotations: Mapping[str, str | None]) -> None:
        await environments.annotate(self.kube, NAMESPACE, name, annotations)

    async def ask_rollback(self, name: str, to: int | None = None) -> str:
        """``gitopsd rollback NAME [--to N]``: the request annotation; returns its token."""
        request = asks.Request(asks.new_token(), "alice", to, asks.now())
        await self.annotate(name, {asks.ROLLBACK: request.to_annotation()})
        return request.token

    async def ask_resume(self, name: str) -> str:
        """``gitopsd resume NAME``: a sync request and a resume request with the same token."""
        token = asks.new_token()
        body = asks.Request(token, "alice").to_annotation()
        await self.annotate(name, {environments.REQUESTED_AT: token, asks.RESUME: body})
        return token

    async def ask_sync(self, name: str, *, force_freeze: bool = False) -> str:
        """``gitopsd sync NAME [--force-freeze]``."""
        token = asks.new_token()
        annotations = {environments.REQUESTED_AT: token}
        if force_freeze:
            annotations[asks.FORCE_FREEZE] = asks.Request(token, "alice").to_annotation()
        await self.annotate(name, annotations)
        return token


async def crash(world: World, name: str = "shop") -> None:
    """Reconcile until the injected ``Crash``; let what else was in flight land, as on a real server; restart."""
    with pytest.raises(Crash):
        await world.reconcile(name)
    for _ in range(20):
        await asyncio.sleep(0)
    world.restart()


@pytest.fixture
def world() -> World:
    return World()
