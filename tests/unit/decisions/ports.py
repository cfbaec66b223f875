"""In-memory stand-ins for the reconciler's other ports: the Source (Git and the renderer),
Prometheus (through ``Services.prometheus``) and the clock, plus the objects tests push."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gitopsd.context import Resolved
from gitopsd.gates.evaluate import Reading
from gitopsd.gates.prometheus import Connection, PrometheusUnreachable, QueryRejected
from gitopsd.model import Manifest, Revision
from gitopsd.releases import digest_of
from gitopsd.spec import Environment

Objects = Sequence[dict[str, Any]]


class Crash(BaseException):
    """The process dies here (a ``BaseException``: no ``except Exception`` in the engine stops it)."""


def commit_of(label: str) -> str:
    """A 40-hex commit id named after ``label`` (``A``, ``B``...), stable across runs."""
    return hashlib.sha1(label.encode()).hexdigest()  # noqa: S324 - an id, not security


def _name(obj: dict[str, Any]) -> str:
    """The object's name, or its generateName (a hook's), for the file it is said to come from."""
    return str(obj["metadata"].get("name") or obj["metadata"]["generateName"])


def _meta(name: str, namespace: str | None) -> dict[str, str]:
    return {"name": name, "namespace": namespace} if namespace else {"name": name}


def configmap(name: str, value: str, namespace: str | None = "shop") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace), "data": {"version": value}}


def deployment(name: str, image: str, namespace: str | None = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def app(version: str, image: str | None = None, namespace: str | None = "shop") -> list[dict[str, Any]]:
    """The shop at ``version``: a ConfigMap saying it and a Deployment (``image`` defaults to shop:<version>).

    ``namespace`` None: the objects name none and land in each Environment's ``targetNamespace``.
    """
    return [configmap("settings", version, namespace), deployment("web", image or f"shop:{version}", namespace)]


class FakeSource:
    """The ``Source`` port in memory: each branch of each URL points at a commit the test pushed."""

    def __init__(self) -> None:
        self.heads: dict[tuple[str, str], str] = {}
        self.trees: dict[str, tuple[Manifest, ...]] = {}
        #: Raised by ``resolve`` while set (a Git server down, a URL that cannot work...).
        self.error: BaseException | None = None
        self.resolves = 0
        self.renders = 0
        #: The cluster each render was asked to render for (the run's target's client).
        self.rendered_for: list[object] = []

    def push(
        self, label: str, objects: Objects, *, branch: str = "main", url: str = "https://git.example.com/shop.git"
    ) -> Revision:
        """Commit ``objects`` as commit ``label`` on ``branch`` (the branch moves to it)."""
        commit = commit_of(label)
        self.trees[commit] = tuple(Manifest(dict(obj), f"deploy/{_name(obj)}.yaml") for obj in objects)
        self.heads[(url, branch)] = commit
        return Revision(branch, commit)

    async def resolve(self, env: Environment, *, fresh: bool) -> Resolved:
        self.resolves += 1
        if self.error is not None:
            raise self.error
        source = env.spec.source
        commit = self.heads.get((source.url, source.ref))
        assert commit is not None, f"nothing pushed to {source.url} {source.ref}"
        return Resolved(Revision(source.ref, commit))

    async def render(
        self, env: Environment, resolved: Resolved, *, cluster: object = None
    ) -> tuple[Sequence[Manifest], str]:
        self.renders += 1
        self.rendered_for.append(cluster)
        manifests = tuple(_placed(m, env.spec.target_namespace) for m in self.trees[resolved.revision.commit])
        return manifests, digest_of(manifests)

    def forget(self, uid: str) -> None:
        return None


def _placed(manifest: Manifest, namespace: str | None) -> Manifest:
    """As the renderer does: a namespaced object naming no namespace goes to ``targetNamespace``."""
    meta = manifest.obj["metadata"]
    if meta.get("namespace") or not namespace:
        return manifest
    return Manifest({**manifest.obj, "metadata": {**meta, "namespace": namespace}}, manifest.origin)


@dataclass(slots=True)
class FakePrometheus:
    """Answers every instant query with ``value`` (or what ``answer`` says); counts what it was asked."""

    value: float | None = 0.0
    answer: Callable[[str], Reading] | None = None
    rejected: set[str] = field(default_factory=set)
    unreachable: bool = False
    queries: list[str] = field(default_factory=list)
    opened: list[Connection] = field(default_factory=list)

    @asynccontextmanager
    async def open(self, connection: Connection) -> AsyncIterator[FakePrometheus]:
        self.opened.append(connection)
        yield self

    async def query(self, promql: str, not_before: datetime | None = None) -> Reading:
        self.queries.append(promql)
        if self.unreachable:
            raise PrometheusUnreachable(f"{self.opened[-1].url}: connection refused")
        if self.answer is not None:
            return self.answer(promql)
        return Reading.empty() if self.value is None else Reading.of(self.value)

    async def check(self, promql: str) -> None:
        if promql in self.rejected:
            raise QueryRejected(f"bad_data: parse error in {promql!r}")


@dataclass(slots=True)
class Clock:
    """The reconciler's clock (freeze windows, verification times); moves only when told."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
