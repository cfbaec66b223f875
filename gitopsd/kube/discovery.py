"""Which resource types the cluster serves, and how to address them.

Asked once through aggregated discovery (two requests: ``/api`` and ``/apis``, GA since
Kubernetes 1.30) and cached; a type the cache does not know triggers one refresh, at most every
few seconds, so a CRD established a moment ago is found without hammering the server.
Older servers get the per-group documents instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from gitopsd.kube.errors import ApiError, UnknownKind


class _Client(Protocol):
    """The two calls discovery makes (``Kube``, ``KubeAPI`` and their fakes have them); declared
    here so that this module imports neither the client nor the port, which both hold a Discovery."""

    async def request(self, method: str, path: str, *, accept: str | None = None) -> Any: ...

    async def get(self, path: str) -> dict[str, Any]: ...


_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
_MIN_REFRESH_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Resource:
    """One served resource type (a group/version/kind and its URL segment)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, or of one object (and its subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def object_path(self, obj: Mapping[str, Any], subresource: str | None = None) -> str:
        meta = obj.get("metadata") or {}
        return self.path(meta.get("namespace") if self.namespaced else None, str(meta.get("name", "")), subresource)


@dataclass(frozen=True, slots=True)
class KnownScopes:
    """Namespaced-ness of the types a cluster served at one moment (implements ``model.Scopes``)."""

    namespaced: Mapping[tuple[str, str], bool]

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        return self.namespaced.get((api_version, kind))


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class Discovery:
    """A cached map of (apiVersion, kind) → ``Resource`` for one cluster."""

    def __init__(self, kube: _Client) -> None:
        self._kube = kube
        self._by_gvk: dict[tuple[str, str, str], Resource] = {}
        self._preferred: dict[str, str] = {}  # group → preferred version
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()

    async def refresh(self, *, force: bool = True) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < _MIN_REFRESH_SECONDS:
                return
            by_gvk: dict[tuple[str, str, str], Resource] = {}
            preferred: dict[str, str] = {}
            for root in ("/api", "/apis"):
                doc = await self._kube.request("GET", root, accept=_AGGREGATED)
                if isinstance(doc, dict) and doc.get("kind") == "APIGroupDiscoveryList":
                    _read_aggregated(doc, by_gvk, preferred)
                else:
                    await self._read_legacy(root, doc, by_gvk, preferred)
            self._by_gvk, self._preferred = by_gvk, preferred
            self._fetched_at = time.monotonic()

    async def ensure(self) -> None:
        """Fetch discovery once if it never was (later misses refresh it by themselves)."""
        if not self._by_gvk:
            await self.refresh(force=False)

    async def resource(self, api_version: str, kind: str) -> Resource:
        """The resource for ``kind`` in ``api_version``; raises ``UnknownKind``."""
        group, version = split_api_version(api_version)
        key = (group, version, kind)
        if key not in self._by_gvk:
            await self.refresh(force=False)
        try:
            return self._by_gvk[key]
        except KeyError:
            raise UnknownKind(api_version, kind) from None

    async def resource_for(self, obj: Mapping[str, Any]) -> Resource:
        return await self.resource(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))

    async def preferred(self, group: str, kind: str) -> Resource:
        """The resource for ``group`` + ``kind`` at the group's preferred version that serves it."""
        if not any(g == group and k == kind for g, _, k in self._by_gvk):
            await self.refresh(force=False)
        pref = self._preferred.get(group)
        if pref and (group, pref, kind) in self._by_gvk:
            return self._by_gvk[(group, pref, kind)]
        for (g, _, k), res in self._by_gvk.items():
            if g == group and k == kind:
                return res
        raise UnknownKind(group, kind)

    async def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        """True/False when the type is known; None when the server does not serve it."""
        try:
            return (await self.resource(api_version, kind)).namespaced
        except UnknownKind:
            return None

    def scopes(self) -> KnownScopes:
        """A synchronous view of what is cached now (for code running in a worker thread)."""
        return KnownScopes({(r.api_version, r.kind): r.namespaced for r in self._by_gvk.values()})

    async def _read_legacy(
        self,
        root: str,
        doc: Any,
        by_gvk: dict[tuple[str, str, str], Resource],
        preferred: dict[str, str],
    ) -> None:
        if root == "/api":
            versions = [("", v) for v in (doc or {}).get("versions", [])]
            preferred[""] = "v1"
        else:
            versions = []
            for group in (doc or {}).get("groups", []):
                name = group.get("name", "")
                preferred[name] = (group.get("preferredVersion") or {}).get("version", "")
                versions += [(name, v.get("version", "")) for v in group.get("versions", [])]
        for group, version in versions:
            path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            try:
                listing = await self._kube.get(path)
            except ApiError:
                continue  # an unavailable aggregated API must not hide the rest
            for res in listing.get("resources", []):
                if "/" in res.get("name", ""):
                    continue
                r = Resource(
                    group,
                    version,
                    res["kind"],
                    res["name"],
                    bool(res.get("namespaced")),
                    frozenset(res.get("verbs", [])),
                )
                by_gvk[(group, version, r.kind)] = r


def _read_aggregated(
    doc: dict[str, Any], by_gvk: dict[tuple[str, str, str], Resource], preferred: dict[str, str]
) -> None:
    for group_doc in doc.get("items") or []:
        group = (group_doc.get("metadata") or {}).get("name", "") or ""
        versions = group_doc.get("versions") or []
        if versions:
            preferred[group] = versions[0].get("version", "")  # listed in preference order
        for version_doc in versions:
            version = version_doc.get("version", "")
            for res in version_doc.get("resources") or []:
                kind = (res.get("responseKind") or {}).get("kind") or ""
                if not kind:
                    continue
                by_gvk[(group, version, kind)] = Resource(
                    group,
                    version,
                    kind,
                    res.get("resource", ""),
                    res.get("scope") == "Namespaced",
                    frozenset(res.get("verbs") or []),
                )
