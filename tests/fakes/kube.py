"""``FakeKube``: the ``KubeAPI`` port in memory, faithful enough that the real engine runs on it.

Requests go through one ``request`` (as with ``gitopsd.kube.Kube``), are counted in the same
``RequestStats`` and answered by routing the path to the store (``objects``), so code that
builds its own requests (server-side apply in ``apply.ssa``, metadata-only lists in
``releases.store``, discovery) sees what it would see from kube-apiserver:

* reads are deep copies; lists are in key order with ``limit``/``continue`` (a continue token
  older than the compaction point is 410 Gone; later pages read the current state, not a
  snapshot), label and field selectors (``selectors``), metadata-only answers on request;
* writes: create, replace (``resourceVersion`` precondition), merge / strategic / JSON patch
  (``patches``), server-side apply with field managers (``fields`` says what is simplified),
  ``dryRun=All``, delete with uid / resourceVersion preconditions, finalizers and propagation;
* watches replay the change log after a resourceVersion (ADDED / MODIFIED / DELETED, an object
  leaving a selector is DELETED), BOOKMARKs on ``bookmark()``, 410 Gone below ``compact()``;
* discovery: ``/api``, ``/apis`` (aggregated or legacy), ``/api/v1``, ``/apis/<g>/<v>``, ``/version``.

Hooks for tests: ``fail_next`` (an error as the client would raise it, after its retries),
``set_status`` (a controller's status write), ``seed`` (objects not counted as requests),
``register`` (more kinds), ``add_validator`` (a 422 for what a test refuses), ``react`` (a
controller that writes the status of each object of a kind as soon as it is stored).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from gitopsd.kube.client import ListResult, PatchType, RequestStats, WatchEvent
from gitopsd.kube.discovery import Discovery
from gitopsd.kube.errors import ApiError, BadRequest, Forbidden, Gone, Invalid, NotFound
from gitopsd.model import ObjectRef
from tests.fakes import patches, selectors, watching
from tests.fakes.kinds import DEFAULT_KINDS, Kind, Kinds
from tests.fakes.objects import Store, Validator, utc_now
from tests.fakes.selectors import Match
from tests.fakes.workloads import Controller

if TYPE_CHECKING:
    from gitopsd.kube import KubeAPI

_METADATA_ONLY = "as=PartialObjectMetadataList"


@dataclass(slots=True)
class Access:
    """Requests by user, and the RBAC of impersonated users: ``deny(user, prefix)`` makes that
    user's requests to paths under ``prefix`` fail with 403 as kube-apiserver words it."""

    requests: list[tuple[str | None, str, str]] = field(default_factory=list)
    denied: list[tuple[str, str]] = field(default_factory=list)

    def deny(self, user: str, path_prefix: str) -> None:
        self.denied.append((user, path_prefix))

    def check(self, user: str | None, method: str, path: str) -> None:
        self.requests.append((user, method.upper(), path))
        for who, prefix in self.denied:
            if who == user and path.startswith(prefix):
                raise Forbidden(403, "Forbidden", f'{path} is forbidden: User "{user}" cannot {method.lower()} it')

    def users(self, method: str | None = None) -> set[str | None]:
        return {u for u, m, _ in self.requests if method is None or m == method.upper()}


@dataclass(slots=True)
class _Failure:
    method: str
    prefix: str
    error: BaseException
    times: int
    dry_run: bool | None
    skip: int = 0


@dataclass(frozen=True, slots=True)
class _Route:
    kind: Kind
    namespace: str | None
    name: str | None
    sub: str


class FakeKube:
    """An in-memory cluster behind the ``KubeAPI`` protocol (see the module docstring)."""

    def __init__(
        self,
        *,
        kinds: Iterable[Kind] = DEFAULT_KINDS,
        namespaces: Iterable[str] = ("default",),
        server: str = "https://fake-kube.invalid",
        clock: Callable[[], str] = utc_now,
        default_manager: str = "gitopsd",
    ) -> None:
        self.kinds = Kinds(tuple(kinds))
        self.store = Store(self.kinds, clock)
        self.stats = RequestStats()
        # Discovery is typed for the aiohttp client; it only calls ``request`` and ``get``.
        self.discovery = Discovery(self)
        self._server = server
        #: The Update manager of writes without ``fieldManager`` (the real server uses the User-Agent).
        self.default_manager = default_manager
        self._failures: list[_Failure] = []
        self._controllers: dict[tuple[str, str], list[Controller]] = {}
        self.signals = watching.Signals()
        #: Who each view acts as (``impersonating``) and what impersonated users may do; shared by views.
        self.access = Access()
        self.user: str | None = None
        for name in namespaces:
            self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    @property
    def server(self) -> str:
        return self._server

    def impersonating(self, user: str | None) -> FakeKube:
        """A view of the same store whose requests act as ``user`` (see ``Access``)."""
        if user is None or user == self.user:
            return self
        view = copy.copy(self)
        view.user = user
        return view

    # -- hooks for tests -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        error: BaseException,
        *,
        times: int = 1,
        dry_run: bool | None = None,
        skip: int = 0,
    ) -> None:
        """Make the next ``times`` requests of ``method`` (``GET``... ``WATCH``, ``*`` for any) to a
        path starting with ``path_prefix`` raise ``error`` (``dry_run``: only dry-runs, or only not),
        after letting the first ``skip`` of them through."""
        self._failures.append(_Failure(method.upper(), path_prefix, error, times, dry_run, skip))

    def heal(self, method: str, path_prefix: str) -> None:
        """Drop the failures ``fail_next`` set for ``method`` on ``path_prefix``, used up or not."""
        self._failures = [f for f in self._failures if (f.method, f.prefix) != (method.upper(), path_prefix)]

    def react(self, group: str, kind: str, controller: Controller) -> None:
        """After every stored write of ``kind`` (not dry-runs, not ``/status``), set the status
        ``controller`` returns for the object (None: leave it), as its controller would at once."""
        self._controllers.setdefault((group, kind), []).append(controller)

    def register(self, kind: Kind) -> None:
        self.kinds.register(kind)

    def add_validator(self, validator: Validator) -> None:
        self.store.validators.append(validator)

    def seed(self, obj: Mapping[str, Any], manager: str = "kubectl-create") -> dict[str, Any]:
        """Create ``obj`` (and its status, if any) without counting a request."""
        kind = self._kind_of(obj)
        namespace = str((obj.get("metadata") or {}).get("namespace") or "") if kind.namespaced else ""
        created = self.store.create(kind, namespace, obj, manager, False)
        if "status" in obj and kind.status:
            created = self.store.set_status(kind, namespace, created["metadata"]["name"], obj["status"], manager)
        return created

    def set_status(self, ref: ObjectRef, status: Mapping[str, Any], manager: str = "fake-controller") -> dict[str, Any]:
        """Replace the status of ``ref`` as its controller would (a new resourceVersion, a watch event)."""
        kind = self.kinds.by_kind(ref.group, ref.kind)
        if kind is None:
            raise NotFound(404, "NotFound", f"no kind {ref.kind} in group {ref.group!r}")
        return self.store.set_status(kind, ref.namespace, ref.name, status, manager)

    def stored(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The stored object (a copy), or None; not counted as a request."""
        kind = self.kinds.by_kind(ref.group, ref.kind)
        try:
            return None if kind is None else self.store.get(kind, ref.namespace, ref.name)
        except NotFound:
            return None

    def compact(self, resource_version: str | None = None) -> None:
        """Forget changes up to ``resource_version`` (default: now): older watches and continue tokens get 410."""
        self.store.compact(int(resource_version) if resource_version else None)

    def bookmark(self) -> None:
        """Send a BOOKMARK (the current resourceVersion) to every open watch."""
        self.signals.bookmarks += 1
        self.store.wake()

    def end_watches(self) -> None:
        """End every open watch, as the server does at its timeout."""
        self.signals.closed += 1
        self.store.wake()

    def expire_watches(self) -> None:
        """Open watches fail with 410 Gone, and so does any watch from before now."""
        self.signals.expired += 1
        self.store.compact()
        self.store.wake()

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
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        dry_run = "dryRun" in query
        self.stats.record(method, path, dry_run)
        self.access.check(self.user, method, path)
        self._maybe_fail(method, path, dry_run)
        await asyncio.sleep(0)  # let other tasks run, as a real round trip would
        answer = self._serve(method.upper(), path.split("?")[0], query, copy.deepcopy(body), content_type, accept)
        if self._controllers and method.upper() in ("POST", "PUT", "PATCH") and not dry_run:
            self._react(answer, path)
        return copy.deepcopy(answer)

    def _react(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict) or path.split("?")[0].endswith("/status"):
            return
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        meta = obj.get("metadata") or {}
        for controller in self._controllers.get((group, str(obj.get("kind", ""))), []):
            status = controller(obj)
            if status is not None:
                ref = ObjectRef(group, str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))
                obj = self.set_status(ref, status)

    def _maybe_fail(self, method: str, path: str, dry_run: bool) -> None:
        for failure in self._failures:
            if failure.method not in ("*", method.upper()) or not path.startswith(failure.prefix):
                continue
            if failure.dry_run is not None and failure.dry_run != dry_run:
                continue
            if failure.skip > 0:
                failure.skip -= 1
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            raise failure.error

    def _serve(
        self, method: str, path: str, query: dict[str, str], body: Any, content_type: str | None, accept: str | None
    ) -> Any:
        parts = [p for p in path.split("/") if p]
        root = {"api": 2, "apis": 3}.get(parts[0] if parts else "", 0)  # /api/v1, /apis/<group>/<version>
        if path == "/version" or len(parts) <= root:
            served = self._discovery(path, accept) if method == "GET" else None
            if served is None:
                raise NotFound(404, "NotFound", "the server could not find the requested resource")
            return served
        route = self._route(path)
        kind, namespace, name = route.kind, route.namespace or "", route.name
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager") or self.default_manager
        if name is None:
            if method == "GET":
                return self._list(route, query, accept)
            if method == "POST":
                return self.store.create(kind, namespace, body or {}, manager, dry_run)
        elif method == "GET":
            return self.store.get(kind, namespace, name)
        elif method == "PUT":
            return self.store.update(kind, namespace, name, body or {}, manager, route.sub, dry_run)
        elif method == "PATCH":
            return self._patch(route, name, body, content_type or "", query, dry_run)
        elif method == "DELETE":
            options = body or {}
            pre = options.get("preconditions") or {}
            return self.store.delete(
                kind,
                namespace,
                name,
                uid=pre.get("uid"),
                resource_version=pre.get("resourceVersion"),
                propagation=str(options.get("propagationPolicy") or "Background"),
                dry_run="All" in (options.get("dryRun") or []),
            )
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow {method} on {path}")

    def _patch(
        self, route: _Route, name: str, body: Any, content_type: str, query: dict[str, str], dry_run: bool
    ) -> dict[str, Any]:
        kind, namespace = route.kind, route.namespace or ""
        if content_type.startswith("application/apply-patch"):
            if "fieldManager" not in query:
                raise Invalid(422, "Invalid", "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value")
            return self.store.apply(kind, namespace, name, body or {}, manager=query["fieldManager"],
                                    force=query.get("force") == "true", sub=route.sub, dry_run=dry_run)  # fmt: skip
        old = self.store.get(kind, namespace, name)
        if content_type == "application/json-patch+json":
            new = patches.json_patch(old, body)
        elif content_type == "application/strategic-merge-patch+json":
            new = patches.merge_patch(old, body, by_name=True)
        elif content_type in ("application/merge-patch+json", ""):
            new = patches.merge_patch(old, body)
        else:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
            )
        manager = query.get("fieldManager") or self.default_manager
        return self.store.update(kind, namespace, name, new, manager, route.sub, dry_run)

    def _list(self, route: _Route, query: dict[str, str], accept: str | None) -> dict[str, Any]:
        match_labels = selectors.label_selector(query.get("labelSelector"))
        match_fields = selectors.field_selector(query.get("fieldSelector"))
        rows = [
            (key, obj)
            for key, obj in self.store.items(route.kind, route.namespace)
            if match_labels(obj) and match_fields(obj)
        ]
        list_rv = self.store.rv
        token = query.get("continue")
        if token:
            state = json.loads(base64.urlsafe_b64decode(token))
            if state["rv"] < self.store.compacted:
                raise Gone(410, "Expired", "The provided continue parameter is too old to display a consistent "
                           "list result. You can start a new list without the continue parameter.")  # fmt: skip
            list_rv = state["rv"]
            rows = [(key, obj) for key, obj in rows if list(key) > state["after"]]
        limit = int(query.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if limit and len(rows) > limit:
            rows = rows[:limit]
            state = {"rv": list_rv, "after": list(rows[-1][0])}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        if accept and _METADATA_ONLY in accept:
            items = [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]}
                     for _, obj in rows]  # fmt: skip
            return {
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadataList",
                "metadata": meta,
                "items": items,
            }
        # As from kube-apiserver, the items of a typed list carry no apiVersion/kind.
        items = [{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")} for _, obj in rows]
        kind = route.kind
        return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List", "metadata": meta, "items": items}

    def _discovery(self, path: str, accept: str | None) -> dict[str, Any] | None:
        if path == "/version":
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
        if path in ("/api", "/apis"):
            core = path == "/api"
            return self.kinds.aggregated(core) if accept and "apidiscovery" in accept else self.kinds.legacy_root(core)
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api" and len(parts) == 2:
            return self.kinds.resource_list("", parts[1])
        if parts[0] == "apis" and len(parts) == 3:
            return self.kinds.resource_list(parts[1], parts[2])
        return None

    def _route(self, path: str) -> _Route:
        parts = [unquote(p) for p in path.split("/") if p]
        missing = NotFound(404, "NotFound", "the server could not find the requested resource")
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise missing
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise missing
        kind = self.kinds.by_plural(group, version, rest[0])
        if kind is None or (namespace is not None and not kind.namespaced):
            raise missing
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if (kind.namespaced and name is not None and namespace is None) or (
            sub and not (sub == "status" and kind.status)
        ):
            raise missing
        return _Route(kind, namespace, name, sub)

    def _kind_of(self, obj: Mapping[str, Any]) -> Kind:
        group, _, _ = str(obj.get("apiVersion", "")).rpartition("/")
        kind = self.kinds.by_kind(group, str(obj.get("kind", "")))
        if kind is None:
            raise NotFound(404, "NotFound", f"no kind {obj.get('kind')} in {obj.get('apiVersion')}")
        return kind

    # -- verbs, as gitopsd.kube.Kube builds them -------------------------------------------

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", path, params=params)
        return result

    async def list(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None, page_size: int = 500
    ) -> ListResult:
        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            page = await self.get(
                path, labelSelector=label_selector, fieldSelector=field_selector, limit=page_size, **{"continue": cont}
            )
            kind = str(page.get("kind", "")).removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("apiVersion", page.get("apiVersion"))
                item.setdefault("kind", kind)
                items.append(item)
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return ListResult(items, str(page["metadata"]["resourceVersion"]))

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        self.stats.record("WATCH", path, False)
        self.access.check(self.user, "WATCH", path)
        self._maybe_fail("WATCH", path, False)
        route = self._route(path)
        if route.name is not None:
            raise BadRequest(400, "BadRequest", f"watch a collection, not {path}")
        match = _both(selectors.label_selector(label_selector), selectors.field_selector(field_selector))
        scope = watching.Scope(route.kind, route.namespace, match)
        # A generator, as the client's: nothing is sent or raised before the first iteration.
        async for event in watching.stream(self.store, self.signals, scope, resource_version, timeout_seconds):
            yield event

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
        params = {
            "fieldManager": field_manager,
            "force": force or None,
            "dryRun": "All" if dry_run else None,
            "fieldValidation": "Strict" if strict else None,
        }
        result: dict[str, Any] = await self.request(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
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
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "apply": "application/apply-patch+yaml",
        }[patch_type]
        params = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None}
        result: dict[str, Any] = await self.request("PATCH", path, params=params, body=patch, content_type=content_type)
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
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        if dry_run:
            body["dryRun"] = ["All"]
        result: dict[str, Any] | None = await self.request("DELETE", path, body=body)
        return result


def _both(a: Match, b: Match) -> Match:
    return lambda obj: a(obj) and b(obj)


def _param(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _conforms(fake: FakeKube) -> KubeAPI:
    """Never called: mypy checks here that the fake satisfies the port."""
    return fake
