"""Who is calling and may they: front-proxy request headers, bearer tokens, SubjectAccessReview.

Authentication, as a Kubernetes aggregated API server does it:

- A client certificate verified against the requestheader CA (from
  ``kube-system/extension-apiserver-authentication``, watched and reloaded) whose CN is in
  ``requestheader-allowed-names`` (any CN when that list is empty) is the aggregator: the user
  is taken from the username headers (``X-Remote-User``), groups from the group headers, extra
  from ``X-Remote-Extra-<key>``. Such a certificate without a user header is refused.
- Otherwise ``Authorization: Bearer`` is checked with a TokenReview (cached briefly).
- Otherwise the request is refused (401). Direct client certificates from the cluster CA are
  not accepted: only the front-proxy CA is trusted, so no other certificate can assert headers.

Authorization: a SubjectAccessReview with the request's attributes, worked out from the path
the way kube-apiserver's RequestInfoFactory does; decisions are cached for a few seconds,
identical concurrent reviews share one call, and an allowed decision still in use is reviewed
again in the background shortly before it expires, so requests do not wait for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from gitopsd.aio import wait_set
from metrics_adapter.errors import Forbidden, Unauthorized, Unavailable
from metrics_adapter.kube.client import KubeClient, KubeError
from metrics_adapter.metrics import AdapterMetrics

log = structlog.get_logger("metrics_adapter.auth")

AUTH_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    uid: str = ""


@dataclass(frozen=True, slots=True)
class RequestHeaderConfig:
    """The aggregator's identity settings from extension-apiserver-authentication."""

    ca_pem: str | None = None
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> RequestHeaderConfig:
        def lst(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = data.get(key)
            if not raw:
                return default
            try:
                value = json.loads(raw)
            except ValueError:
                return default
            return tuple(str(v) for v in value) if isinstance(value, list) else default

        return cls(
            ca_pem=data.get("requestheader-client-ca-file") or None,
            allowed_names=lst("requestheader-allowed-names", ()),
            username_headers=lst("requestheader-username-headers", ("X-Remote-User",)),
            group_headers=lst("requestheader-group-headers", ("X-Remote-Group",)),
            extra_prefixes=lst("requestheader-extra-headers-prefix", ("X-Remote-Extra-",)),
        )


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does, in SubjectAccessReview terms."""

    verb: str
    path: str = ""  # non-resource requests
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    def describe(self) -> str:
        if not self.is_resource:
            return f'{self.verb} on path "{self.path}"'
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f' in namespace "{self.namespace}"' if self.namespace else " at the cluster scope"
        return f'{self.verb} {what} "{self.name or "*"}" in API group "{self.group}"{where}'


def attributes_for(segments: Sequence[str], method: str, raw_path: str) -> Attributes:
    """Request attributes for a decoded path, following kube-apiserver's RequestInfoFactory."""
    verb = "get" if method in ("GET", "HEAD") else method.lower()
    if len(segments) < 3 or segments[0] != "apis":
        return Attributes(verb=verb, path=raw_path)
    group, version, parts = segments[1], segments[2], list(segments[3:])
    if not parts:
        return Attributes(verb=verb, path=raw_path)
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in ("status", "finalize"):
            parts = parts[2:]
    name = parts[1] if len(parts) >= 2 else ""
    sub = parts[2] if len(parts) >= 3 else ""
    if verb == "get" and not name:
        verb = "list"
    return Attributes(verb, "", group, version, parts[0], sub, name, namespace)


def _with_authenticated(groups: tuple[str, ...]) -> tuple[str, ...]:
    """Every authenticated user is in system:authenticated, as kube-apiserver's authenticator chain adds it.

    RBAC's default discovery and OpenAPI rules are granted to that group; the aggregator fetches
    /openapi/v2 as ``system:aggregator`` without sending it.
    """
    return groups if "system:authenticated" in groups else (*groups, "system:authenticated")


def _cn(peercert: Mapping[str, Any] | None) -> str | None:
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return str(v)
    return None


@dataclass(slots=True)
class _Cached:
    expires: float
    value: Any


@dataclass(slots=True)
class Auth:
    """Authenticate and authorize requests (see the module docstring)."""

    kube: KubeClient
    metrics: AdapterMetrics
    allow_ttl: float = 10.0
    deny_ttl: float = 5.0
    token_ttl: float = 10.0
    clock: Callable[[], float] = time.monotonic
    requestheader: RequestHeaderConfig = field(default_factory=RequestHeaderConfig)
    _decisions: dict[tuple[UserInfo, Attributes], _Cached] = field(default_factory=dict)
    _tokens: dict[str, _Cached] = field(default_factory=dict)
    _inflight: dict[Any, asyncio.Future[Any]] = field(default_factory=dict)
    # Past this share of allow_ttl, an allowed decision in use is reviewed again in the
    # background (see _review_ahead); 1.0 turns that off.
    review_ahead_at: float = 0.8
    _ahead: set[tuple[UserInfo, Attributes]] = field(default_factory=set)
    _ahead_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    loaded: bool = False

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(
        self, headers: Mapping[str, str], getall: Callable[[str], list[str]], peercert: Any
    ) -> UserInfo:
        rh = self.requestheader
        if peercert:
            cn = _cn(peercert)
            if rh.allowed_names and cn not in rh.allowed_names:
                raise Unauthorized(
                    f"client certificate CN {cn!r} is not one of the allowed front-proxy names "
                    f"({', '.join(rh.allowed_names)})"
                )
            user = next((headers[h] for h in rh.username_headers if headers.get(h)), "")
            if not user:
                raise Unauthorized(
                    "front-proxy client certificate without a user header (" + ", ".join(rh.username_headers) + ")"
                )
            groups = tuple(g for h in rh.group_headers for g in getall(h))
            extra: dict[str, list[str]] = {}
            for name in headers:
                for prefix in rh.extra_prefixes:
                    if name.lower().startswith(prefix.lower()):
                        key = urllib.parse.unquote(name[len(prefix) :]).lower()
                        extra.setdefault(key, []).extend(getall(name))
            return UserInfo(user, _with_authenticated(groups), tuple(sorted((k, tuple(v)) for k, v in extra.items())))
        authz = headers.get("Authorization", "")
        if authz[:7].lower() == "bearer " and authz[7:].strip():
            return await self._token(authz[7:].strip())
        raise Unauthorized("no credentials: present the front-proxy client certificate or a bearer token")

    async def _token(self, token: str) -> UserInfo:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        hit = self._tokens.get(digest)
        if hit is not None and hit.expires > now:
            if hit.value is None:
                raise Unauthorized("the bearer token was not accepted by the API server (TokenReview)")
            user: UserInfo = hit.value
            return user
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            review = await self._shared(
                ("token", digest), lambda: self.kube.post("/apis/authentication.k8s.io/v1/tokenreviews", body)
            )
        except KubeError as exc:
            raise Unavailable(self.kube.source, f"cannot check the bearer token (TokenReview): {exc.message}") from exc
        st = (review or {}).get("status") or {}
        if not st.get("authenticated"):
            self._tokens[digest] = _Cached(now + self.deny_ttl, None)
            raise Unauthorized("the bearer token was not accepted by the API server (TokenReview)")
        u = st.get("user") or {}
        info = UserInfo(
            u.get("username", ""),
            tuple(u.get("groups") or ()),
            tuple(sorted((k, tuple(v)) for k, v in (u.get("extra") or {}).items())),
            u.get("uid", ""),
        )
        self._tokens[digest] = _Cached(now + self.token_ttl, info)
        if len(self._tokens) > 10000:
            self._tokens.clear()  # a flood of distinct tokens must not grow memory without bound
        return info

    # -- authorization ----------------------------------------------------------------------

    async def authorize(self, user: UserInfo, attrs: Attributes) -> None:
        key = (user, attrs)
        now = self.clock()
        hit = self._decisions.get(key)
        if hit is not None and hit.expires > now:
            self.metrics.authz.labels("allowed" if hit.value is None else "denied", "true").inc()
            if hit.value is not None:
                raise Forbidden(hit.value)
            if hit.expires - now < self.allow_ttl * (1.0 - self.review_ahead_at) and key not in self._ahead:
                self._review_ahead(key)
            return
        try:
            allowed, reason = await self._shared(("sar", key), lambda: self._review(user, attrs))
        except KubeError as exc:
            raise Unavailable(
                self.kube.source, f"cannot authorize the request (SubjectAccessReview): {exc.message}"
            ) from exc
        self.metrics.authz.labels("allowed" if allowed else "denied", "false").inc()
        message = self._decide(key, allowed, reason, now)
        if message is not None:
            raise Forbidden(message)

    def _decide(self, key: tuple[UserInfo, Attributes], allowed: bool, reason: str, asked: float) -> str | None:
        """Remember a review's decision (from when it was asked); the denial message, if denied."""
        if len(self._decisions) > 50000:
            self._decisions.clear()
        if allowed:
            self._decisions[key] = _Cached(asked + self.allow_ttl, None)
            return None
        user, attrs = key
        message = f'user "{user.name}" cannot {attrs.describe()}' + (f": {reason}" if reason else "")
        self._decisions[key] = _Cached(asked + self.deny_ttl, message)
        return message

    def _review_ahead(self, key: tuple[UserInfo, Attributes]) -> None:
        """Review an allowed decision again in the background while it is still served.

        Measured at 700 req/s (bench.adapter_load): when a decision expired, every request
        needing it waited for the new review, 2.5 ms against an idle API server but 37-118 ms
        against a busy one, 30-86 requests each time, every ``allow_ttl``: a tail of its own.
        Reviewed ahead, the decision is renewed before it expires while requests keep using
        it; it is still never used past its TTL, and a failed review just lets it expire.
        """
        self._ahead.add(key)
        user, attrs = key

        async def review() -> None:
            asked = self.clock()
            try:
                allowed, reason = await self._shared(("sar", key), lambda: self._review(user, attrs))
            except KubeError as exc:
                log.info("SubjectAccessReview ahead of expiry failed; the decision expires", error=exc.message)
                return
            finally:
                self._ahead.discard(key)
            self.metrics.authz.labels("allowed" if allowed else "denied", "false").inc()
            self._decide(key, allowed, reason, asked)

        task = asyncio.get_running_loop().create_task(review(), name="subjectaccessreview ahead")
        self._ahead_tasks.add(task)
        task.add_done_callback(self._ahead_tasks.discard)

    async def _review(self, user: UserInfo, attrs: Attributes) -> tuple[bool, str]:
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "extra": {k: list(v) for k, v in user.extra},
        }
        if user.uid:
            spec["uid"] = user.uid
        if attrs.is_resource:
            spec["resourceAttributes"] = {
                k: v
                for k, v in {
                    "namespace": attrs.namespace,
                    "verb": attrs.verb,
                    "group": attrs.group,
                    "version": attrs.version,
                    "resource": attrs.resource,
                    "subresource": attrs.subresource,
                    "name": attrs.name,
                }.items()
                if v
            }
        else:
            spec["nonResourceAttributes"] = {"path": attrs.path, "verb": attrs.verb}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        review = await self.kube.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
        st = (review or {}).get("status") or {}
        return bool(st.get("allowed")) and not st.get("denied"), str(st.get("reason") or "")

    async def _shared(self, key: Any, call: Callable[[], Any]) -> Any:
        """Run ``call`` once for all concurrent callers with the same key."""
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await call()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            self._inflight.pop(key, None)

    # -- the ConfigMap ----------------------------------------------------------------------

    async def load_requestheader(self) -> RequestHeaderConfig:
        cm = await self.kube.get(AUTH_CONFIGMAP)
        return RequestHeaderConfig.from_configmap((cm or {}).get("data") or {})

    async def watch_requestheader(self, on_change: Callable[[RequestHeaderConfig], None], stop: asyncio.Event) -> None:
        """Keep ``requestheader`` current: watch the ConfigMap, re-reading it after any break."""
        backoff = 1.0
        path = "/api/v1/namespaces/kube-system/configmaps"
        params = {"fieldSelector": "metadata.name=extension-apiserver-authentication"}
        while not stop.is_set():
            try:
                fresh = await self.load_requestheader()
                self._apply(fresh, on_change)
                async for event in self.kube.watch(path, params, timeout=300):
                    if stop.is_set():
                        return
                    obj = event.get("object") or {}
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._apply(RequestHeaderConfig.from_configmap(obj.get("data") or {}), on_change)
                backoff = 1.0
            except KubeError as exc:
                log.warning("cannot watch extension-apiserver-authentication; retrying", error=exc.message)
                await wait_set(stop, backoff)
                backoff = min(backoff * 2, 30.0)

    def _apply(self, fresh: RequestHeaderConfig, on_change: Callable[[RequestHeaderConfig], None]) -> None:
        if fresh != self.requestheader or not self.loaded:
            self.loaded = True
            log.info(
                "front-proxy authentication settings loaded",
                allowed_names=list(fresh.allowed_names),
                has_ca=bool(fresh.ca_pem),
            )
            self.requestheader = fresh
            on_change(fresh)
