"""The Kubernetes API as the engine uses it: one ``Protocol`` for the aiohttp ``Kube`` and its fakes.

Engine parts (apply, releases, environments, events, health waits, leader election) need a
handful of verbs, request counting and discovery, not a connection. Typing them against
``KubeAPI`` lets one run be pointed at another cluster or identity (another ``Kube``) and lets
unit tests run the real engine on an in-memory fake (``tests/fakes``). The signatures are
``client.Kube``'s, which says what each verb sends; ``_conforms`` makes mypy prove that
``Kube`` still satisfies the protocol whenever either changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, Protocol

from gitopsd.kube.client import Kube, ListResult, PatchType, RequestStats, WatchEvent
from gitopsd.kube.discovery import Discovery

Params = Mapping[str, str | int | bool | None]
Propagation = Literal["Background", "Foreground", "Orphan"]


class KubeAPI(Protocol):
    """One cluster, as one identity. Errors are ``gitopsd.kube.errors`` classes (``ApiError`` by
    status code, ``Unreachable`` when nothing answered)."""

    #: Requests made, by verb and resource (``RequestStats``): benches and tests count with it.
    stats: RequestStats
    #: Which kinds the cluster serves, and their URL paths.
    discovery: Discovery

    @property
    def server(self) -> str:
        """The API server's URL, for messages."""
        ...

    def impersonating(self, user: str | None) -> KubeAPI:
        """The same cluster, every request acting as ``user`` (None: this identity)."""
        ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One request; the decoded JSON body (for what the verbs below do not cover: metadata-only
        lists, apply with chosen parameters, discovery documents)."""
        ...

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]: ...

    async def list(
        self,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ListResult:
        """Every item of a collection (all pages), each with apiVersion and kind."""
        ...

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after ``resource_version``; raises ``Gone`` when that version is too old."""
        ...

    async def apply(
        self,
        path: str,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = False,
        dry_run: bool = False,
        strict: bool = False,
    ) -> dict[str, Any]: ...

    async def patch(
        self,
        path: str,
        patch: Any,
        *,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...

    async def create(self, path: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    async def replace(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete(
        self,
        path: str,
        *,
        propagation: Propagation = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any] | None: ...


def _conforms(kube: Kube) -> KubeAPI:
    """Never called: mypy checks here that the real client satisfies the protocol."""
    return kube


__all__ = ["KubeAPI", "Params", "Propagation"]
