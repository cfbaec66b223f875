"""An asyncio client for the Kubernetes API: the one door gitopsd uses to reach a cluster.

Why not the ``kubernetes`` package's client: it is blocking (a thread per call), builds model
objects for every response, and is slow on the hot paths a GitOps applier lives on (thousands
of server-side applies and dry-runs, lists and long watches). Plain JSON over one pooled
aiohttp session does those concurrently on the event loop. The package still reads the
kubeconfig (``config``), where it handles every credential form correctly.

Paths are built by ``discovery.Resource.path``; bodies are plain JSON dicts. Every call is
counted in ``stats`` by verb and resource, so benchmarks and tests can see requests and writes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from gitopsd import __version__
from gitopsd.kube import config as kconfig
from gitopsd.kube.discovery import Discovery
from gitopsd.kube.errors import ApiError, KubeError, TooManyRequests, Unreachable, from_status
from gitopsd.kube.transport import Transport

PatchType = Literal["merge", "json", "strategic", "apply"]
_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    # JSON is YAML, so an apply patch can be sent as JSON.
    "apply": "application/apply-patch+yaml",
}
_RETRYABLE_CODES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True)
class RequestStats:
    """Requests made, by (verb, resource); ``DRYRUN`` marks server-side dry-runs, ``LIST`` a GET of
    a collection (as kube-apiserver counts them: a list filters every object in its scope)."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, method: str, path: str, dry_run: bool) -> None:
        verb = "DRYRUN" if dry_run else "LIST" if method == "GET" and is_collection(path) else method
        self.calls[(verb, resource_of(path))] += 1

    @property
    def writes(self) -> int:
        return sum(n for (verb, _), n in self.calls.items() if verb in {"POST", "PUT", "PATCH", "DELETE"})

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def snapshot(self) -> dict[str, int]:
        return {f"{verb} {res}": n for (verb, res), n in sorted(self.calls.items())}

    def reset(self) -> None:
        self.calls.clear()


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str


class Kube:
    """One cluster connection. Use as ``async with Kube.from_kubeconfig(...) as kube:``."""

    def __init__(
        self,
        connection: kconfig.Connection,
        *,
        max_connections: int = 32,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        user_agent: str = f"gitopsd/{__version__}",
    ) -> None:
        self.connection = connection
        # A whole call, retries included, ends within this (unless the caller gives its own).
        self.timeout = timeout
        self.stats = RequestStats()
        self.transport = Transport(
            connection, user_agent=user_agent, max_connections=max_connections, connect_timeout=connect_timeout
        )
        self.discovery = Discovery(self)
        #: The user every request of this view impersonates (``Impersonate-User``); None: our own.
        self.impersonate: str | None = None

    def impersonating(self, user: str | None) -> Kube:
        """A view of this connection whose requests act as ``user`` (kube-apiserver's RBAC then
        decides as for that user; a ServiceAccount's user name brings its groups with it).

        The view shares the connection pool, discovery and request counts; close the original,
        never a view. ``None`` is this connection itself.
        """
        if user is None or user == self.impersonate:
            return self
        view = copy.copy(self)
        view.impersonate = user
        return view

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None, **kwargs: Any
    ) -> Kube:
        return cls(kconfig.load(kubeconfig, context), **kwargs)

    @property
    def server(self) -> str:
        return self.connection.server

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the one request path --------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool | None] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body (with ``accept="text/plain"``, the
        text); raise an ``ApiError`` subclass on error.

        Idempotent calls are retried on connection errors, 429 and 5xx; all attempts together
        end within ``timeout`` (default ``self.timeout``), else ``Unreachable`` says so.
        """
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        if data is not None and content_type is None:
            content_type = "application/json"
        dry_run = "dryRun" in query
        attempts = 4 if method in _IDEMPOTENT else 2
        limit = timeout or self.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        for attempt in range(attempts):
            self.stats.record(method, path, dry_run)
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                # The API server refuses ``Accept: text/plain`` with 406 even for pods/log, which
                # answers plain text: ask as kubectl does and return the body undecoded.
                wire_accept = "application/json, */*" if accept == "text/plain" else accept
                headers = await self.transport.headers(content_type=content_type, accept=wire_accept)
                if self.impersonate:
                    headers["Impersonate-User"] = self.impersonate
                async with self.transport.send(
                    method, path, params=query, data=data, headers=headers, timeout=self.transport.timeout(remaining)
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 400:
                        if accept == "text/plain":  # pods/log: the text as it is
                            return raw.decode(errors="replace")
                        return json.loads(raw) if raw else None
                    error = from_status(resp.status, _decode(raw))
                    retry_after = resp.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                pause = _backoff(attempt, None)
                if method not in _IDEMPOTENT or attempt == attempts - 1 or loop.time() + pause >= deadline:
                    spent = deadline - loop.time() < pause
                    why = f"no answer within {limit:g}s" if spent else self.transport.describe(exc)
                    raise Unreachable(f"{method} {self.transport.url(path)}: {why}") from exc
                await asyncio.sleep(pause)
                continue
            # POSTs are retried only when the server says it did not process them (429).
            retryable = error.code in _RETRYABLE_CODES if method in _IDEMPOTENT else isinstance(error, TooManyRequests)
            pause = _backoff(attempt, retry_after)
            if not retryable or attempt == attempts - 1 or loop.time() + pause >= deadline:
                raise error
            await asyncio.sleep(pause)
        raise KubeError(f"{method} {path}: gave up")  # not reached: the loop raises or returns

    # -- verbs -----------------------------------------------------------------------------

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", path, params=params)
        return result

    async def list(
        self,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ListResult:
        """Every item of a collection (paginated), with the list's resourceVersion for a watch."""
        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            page = await self.get(
                path,
                labelSelector=label_selector,
                fieldSelector=field_selector,
                limit=page_size,
                **{"continue": cont},
            )
            # A list's items lack apiVersion/kind; restore them so callers see whole objects.
            kind = str(page.get("kind", "")).removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("apiVersion", page.get("apiVersion"))
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return ListResult(items, str(meta.get("resourceVersion", "")))

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Stream changes after ``resource_version`` until the server ends the watch.

        Raises ``Gone`` when the version is too old (the caller lists again).
        """
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        self.stats.record("WATCH", path, False)
        try:
            headers = await self.transport.headers()
            if self.impersonate:
                headers["Impersonate-User"] = self.impersonate
            async with self.transport.send(
                "GET", path, params=params, headers=headers, timeout=self.transport.stream_timeout(timeout_seconds + 30)
            ) as resp:
                if resp.status >= 400:
                    raise from_status(resp.status, _decode(await resp.read()))
                buffer = b""
                # Read chunks, not lines: aiohttp's line reader refuses lines over 64 KiB, and a
                # watch event carries a whole object (a CRD can be far larger).
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            raise from_status(int(status.get("code") or 500), status)
                        yield WatchEvent(str(event.get("type")), event.get("object") or {})
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"watch {self.transport.url(path)}: {self.transport.describe(exc)}") from exc

    async def apply(
        self,
        path: str,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = False,
        dry_run: bool = False,
        strict: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` at ``path`` (the object's own URL); ``strict``: unknown or
        duplicate fields are an error instead of dropped (``fieldValidation=Strict``)."""
        params = {
            "fieldManager": field_manager,
            "force": force or None,
            "dryRun": "All" if dry_run else None,
            "fieldValidation": "Strict" if strict else None,
        }
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            params=params,
            body=obj,
            content_type=_CONTENT_TYPES["apply"],
        )
        return result

    async def patch(
        self,
        path: str,
        patch: Any,
        *,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            params={"fieldManager": field_manager, "dryRun": "All" if dry_run else None},
            body=patch,
            content_type=_CONTENT_TYPES[patch_type],
        )
        return result

    async def create(self, path: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", path, params={"dryRun": "All" if dry_run else None}, body=obj
        )
        return result

    async def replace(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PUT", path, body=obj)
        return result

    async def delete(
        self,
        path: str,
        *,
        propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any] | None:
        """Delete the object at ``path``; preconditions make sure it is the object we mean."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        if dry_run:
            body["dryRun"] = ["All"]
        result: dict[str, Any] | None = await self.request("DELETE", path, body=body)
        return result


def _resource_parts(path: str) -> list[str] | None:
    """A resource path's segments after group/version and ``namespaces/<ns>``; None outside /api(s)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest


def is_collection(path: str) -> bool:
    """Whether ``path`` addresses a collection (``.../configmaps``), not one object."""
    rest = _resource_parts(path)
    return rest is not None and len(rest) == 1


def resource_of(path: str) -> str:
    """The resource a path addresses (``deployments``, ``namespaces``, ``events``...), for stats."""
    rest = _resource_parts(path)
    if rest is None:
        return "/" + "/".join([p for p in path.split("?")[0].split("/") if p][:2])
    resource = rest[0] if rest else "discovery"
    if len(rest) >= 3:  # a subresource: deployments/status
        resource += "/" + rest[2]
    return resource


def _param(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), 5.0)
        except ValueError:
            pass
    return float(min(0.1 * 2**attempt, 2.0) * (0.5 + random.random()))  # noqa: S311 (jitter, not crypto)


__all__ = ["ApiError", "Kube", "ListResult", "RequestStats", "WatchEvent", "resource_of"]
