"""The HTTP side: routes of the two metrics APIs, authentication and authorization, health, /metrics.

One handler parses every path itself instead of using a router, because the APIs' paths are
data: ``%2A`` is ``*``, resources may be group-qualified (``deployments.apps``), and a segment
decoding to ``..`` or containing ``/`` must be refused rather than normalised away. Answers are
always JSON (the HPA asks for protobuf first and accepts JSON); every error is a metav1.Status
with the right code. ``/healthz``, ``/livez`` and ``/readyz`` are open; everything else is
authenticated and authorized (``auth.py``) unless ``--insecure-skip-auth``.

A caller without credentials costs a bounded, transient amount: a request line over
``MAX_REQUEST_LINE`` or a header over ``MAX_HEADER_FIELD`` is refused by the HTTP parser (400),
a path over ``MAX_PATH`` or a query over ``MAX_QUERY`` with 414, headers over ``MAX_HEADERS``
bytes in all with 431, all before anything else. The path is split uncached until the request
is authorized; only then are its parse, its query's and its selectors' remembered (bounded LRUs,
``lru.py``), so nothing an unauthenticated request sends stays in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.parse
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from metrics_adapter import api, openapi
from metrics_adapter.auth import Auth, attributes_for
from metrics_adapter.errors import AdapterError, BadRequest, NotFound
from metrics_adapter.federation.router import Federation
from metrics_adapter.lru import LRU
from metrics_adapter.metrics import AdapterMetrics
from metrics_adapter.provider import CustomRequest, ExternalRequest, Provider
from metrics_adapter.resourcemetrics import routes as resource_routes
from metrics_adapter.resourcemetrics import wire as resource_wire
from metrics_adapter.resourcemetrics.provider import ResourceMetrics
from metrics_adapter.selectors import EVERYTHING, Selector, SelectorError
from metrics_adapter.selectors import parse as parse_selector

log = structlog.get_logger("metrics_adapter.server")

MAX_PATH = 4096  # the longest real path (namespace, resource, name, metric) is well under 1 KiB
MAX_QUERY = 16384  # two selectors of 8 KiB (selectors.py's limit)
MAX_REQUEST_LINE = MAX_PATH + MAX_QUERY + 64  # method, '?', version: longer lines get aiohttp's 400
MAX_HEADER_FIELD = 16384  # one header (a bearer token, a long group list); aiohttp answers 400 beyond
MAX_HEADERS = 65536  # all headers together: 431 beyond
MAX_HEADER_COUNT = 256  # X-Remote-Group is repeated once per group
MEMO_SIZE = 4096  # parsed paths, queries and selectors remembered for authorized requests
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# An object name, a resource or a metric as a path segment: printable, no whitespace (a
# trailing newline must not pass), within the length the API allows.
_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,253}")
_SEGMENT = re.compile(r"[^\s\x00-\x1f\x7f]{1,512}")
_HEALTH = ("healthz", "livez", "readyz")
_JSON = "application/json"


@dataclass(slots=True)
class State:
    provider: Provider
    metrics: AdapterMetrics
    auth: Auth | None  # None: --insecure-skip-auth
    ready: Callable[[], tuple[bool, list[str]]]
    always_allow: frozenset[str] = frozenset()
    federation: Federation | None = None  # externalProviders: names forwarded to other servers
    paths: LRU[str, tuple[str, ...]] = field(default_factory=lambda: LRU(MEMO_SIZE))
    queries: LRU[str, dict[str, str]] = field(default_factory=lambda: LRU(MEMO_SIZE))
    selectors: LRU[tuple[str, str], Selector] = field(default_factory=lambda: LRU(MEMO_SIZE))
    openapi_v2: tuple[bytes, str] = field(default_factory=openapi.v2)
    openapi_v3: dict[str, tuple[bytes, str]] = field(default_factory=openapi.v3_groups)
    _children: dict[tuple[str, int], Any] = field(default_factory=dict)
    resource_metrics: ResourceMetrics | None = None  # metrics.k8s.io, when the config has resourceRules

    def observe(self, route: str, status: int, seconds: float) -> None:
        child = self._children.get((route, status))
        if child is None:  # binding label values costs a lock and a lookup: do it once per pair
            child = self._children[(route, status)] = self.metrics.request_seconds.labels(route, str(status))
        child.observe(seconds)

    def track_sizes(self) -> None:
        """Report the memos' sizes on /metrics (``metrics_adapter_memory_entries``)."""
        for name, memo in (("paths", self.paths), ("queries", self.queries), ("selectors", self.selectors)):
            self.metrics.track_size(name, memo.__len__)

    def selector(self, text: str, where: str) -> Selector:
        """A selector parameter, parsed once (only authorized requests get here)."""
        if not text:
            return EVERYTHING
        key = (text, where)
        parsed = self.selectors.get(key)
        if parsed is None:
            try:
                parsed = parse_selector(text, where=where)
            except SelectorError as exc:
                raise BadRequest(str(exc)) from exc
            self.selectors.put(key, parsed)
        return parsed


class _ParserLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, minus a traceback per request its HTTP parser refuses.

    A request line or header over the limits is answered 400 by aiohttp, which logs the error
    with its traceback. That traceback reaches the parser's frame, which holds the bytes
    received and a reference back to the error: a cycle only a full garbage collection frees,
    so a flood of such requests would grow memory by their whole size. One debug line instead,
    and the traceback dropped, so they are freed at once.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            log.debug("request refused by the HTTP parser", status=exc_info.code, error=str(exc_info.message)[:200])
            exc_info.__traceback__ = None
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


_PARSER_LOG = _ParserLog(logging.getLogger("aiohttp.server"))


def build_server(state: State, **kwargs: Any) -> web.Server:
    """A low-level aiohttp server: every path goes to one handler, so no router or middleware runs.

    The HTTP parser's limits are set here (``kwargs`` may override them, for tests).
    """

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return await _dispatch(state, request)

    limits: dict[str, Any] = {
        "max_line_size": MAX_REQUEST_LINE,
        "max_field_size": MAX_HEADER_FIELD,
        "max_headers": MAX_HEADER_COUNT,
        "logger": _PARSER_LOG,
    }
    return web.Server(handler, **{**limits, **kwargs})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=data, status=status, content_type=_JSON, headers=headers)


def _segments(path: str) -> list[str]:
    parts = path.split("/")[1:]
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()  # one trailing slash, as kube-apiserver tolerates
    out = []
    for raw in parts:
        if "%" not in raw:
            if raw in (".", ".."):
                raise BadRequest(f"invalid path segment {raw!r}")
            out.append(raw)
            continue
        try:
            seg = urllib.parse.unquote(raw, errors="strict")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"path segment {raw!r} is not valid percent-encoded UTF-8") from exc
        if seg in (".", "..") or "/" in seg or "\x00" in seg:
            raise BadRequest(f"invalid path segment {raw!r}")
        out.append(seg)
    return out


# Per connection: the identity its client certificate proves (decoding the certificate on
# every request would cost more than the rest of a cached answer).
_PEERS: weakref.WeakKeyDictionary[asyncio.BaseTransport, Any] = weakref.WeakKeyDictionary()


def _peercert(request: web.BaseRequest) -> Any:
    transport = request.transport
    if transport is None:
        return None
    try:
        return _PEERS[transport]
    except KeyError:
        cert = _PEERS[transport] = transport.get_extra_info("peercert")
        return cert


async def _dispatch(state: State, request: web.BaseRequest) -> web.StreamResponse:
    started = time.perf_counter()
    route = "other"
    try:
        raw_path, _, query = request.raw_path.partition("?")
        _check_sizes(request, raw_path, query)
        known = state.paths.get(raw_path)  # a lookup adds nothing: only authorized paths are remembered
        segs = list(known if known is not None else _segments(raw_path))
        route = _route_name(segs)
        if segs and segs[0] in _HEALTH:
            return _health(state, segs)
        if request.method not in ("GET", "HEAD"):
            raise _MethodNotAllowed(f"{request.method} is not allowed: these APIs are read-only")
        if state.auth is not None and raw_path not in state.always_allow:
            headers = request.headers
            user = await state.auth.authenticate(headers, lambda h: headers.getall(h, []), _peercert(request))
            await state.auth.authorize(user, attributes_for(segs, request.method, raw_path))
        params = state.queries.get(query)
        parsed = params is None
        if params is None:
            params = _query(query)
        resp = await _route(state, request, segs, params)
        if resp.status < 400:  # authorized and answered: worth remembering how it parsed
            if known is None:
                state.paths.put(raw_path, tuple(segs))
            if parsed:
                state.queries.put(query, params)
    except AdapterError as exc:
        if exc.status >= 500:
            log.warning("request failed", path=request.path, status=exc.status, error=exc.message)
        resp = _json(api.status(exc.status, exc.message), exc.status)
    except Exception:  # a bug: answer like an API server, keep serving
        log.exception("internal error", path=request.path)
        resp = _json(api.status(500, "internal error in metrics-adapter; see its log"), 500)
    state.observe(route, resp.status, time.perf_counter() - started)
    return resp


class _TooLong(AdapterError):
    status = 414


class _HeadersTooLarge(AdapterError):
    status = 431


def _check_sizes(request: web.BaseRequest, raw_path: str, query: str) -> None:
    if len(raw_path) > MAX_PATH:
        raise _TooLong(f"request path is {len(raw_path)} bytes; at most {MAX_PATH} are accepted")
    if len(query) > MAX_QUERY:
        raise _TooLong(f"query string is {len(query)} bytes; at most {MAX_QUERY} are accepted")
    size = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    if size > MAX_HEADERS:
        raise _HeadersTooLarge(f"request headers are {size} bytes in all; at most {MAX_HEADERS} are accepted")


class _MethodNotAllowed(AdapterError):
    status = 405


def _route_name(segs: list[str]) -> str:
    """A low-cardinality route label for the latency histogram."""
    if not segs or segs == [""]:
        return "root"
    if segs[0] in (*_HEALTH, "metrics", "openapi"):
        return segs[0]
    if len(segs) <= 3:
        return "discovery"
    if segs[1] == api.EXTERNAL_GROUP:
        return "external"
    if segs[1] == resource_wire.GROUP:
        return "resource"
    if segs[1] == api.CUSTOM_GROUP:
        if len(segs) >= 5 and segs[3] == "namespaces" and segs[5:6] == ["metrics"]:
            return "custom-namespace"
        if len(segs) >= 8 and segs[3] == "namespaces":
            return "custom-namespaced-selector" if segs[6] == "*" else "custom-namespaced-object"
        return "custom-cluster"
    return "other"


def _health(state: State, segs: list[str]) -> web.Response:
    if segs[0] != "readyz":
        return web.Response(text="ok")
    ok, details = state.ready()
    text = "\n".join(details) + ("\nreadyz check passed" if ok else "\nreadyz check failed")
    return web.Response(text=text.strip() + "\n", status=200 if ok else 503)


def _query(query: str) -> dict[str, str]:
    """Query parameters, first value of each (as kube-apiserver reads list options)."""
    params: dict[str, str] = {}
    if query:
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
            params.setdefault(k, v)
    return params


async def _route(state: State, request: web.BaseRequest, segs: list[str], params: dict[str, str]) -> web.StreamResponse:
    p = state.provider
    if not segs or segs == [""]:
        return _json(
            {
                "paths": [
                    "/apis",
                    f"/apis/{api.CUSTOM_GROUP}",
                    f"/apis/{api.EXTERNAL_GROUP}",
                    "/healthz",
                    "/livez",
                    "/metrics",
                    "/openapi/v2",
                    "/openapi/v3",
                    "/readyz",
                ]
            }
        )
    if segs == ["metrics"]:
        return web.Response(body=state.metrics.exposition(), content_type="text/plain", charset="utf-8")
    if segs[0] == "openapi":
        return _openapi(state, request, segs)
    if segs[0] != "apis":
        raise NotFound(f"the server could not find the requested resource {request.path!r}")
    groups = {api.CUSTOM_GROUP: api.CUSTOM_VERSIONS, api.EXTERNAL_GROUP: api.EXTERNAL_VERSIONS}
    if state.resource_metrics is not None:
        groups[resource_wire.GROUP] = (resource_wire.VERSION,)
    if len(segs) == 1:
        return _json(api.api_group_list(groups))
    group = segs[1]
    if group not in groups:
        raise NotFound(f"the server could not find the requested resource: API group {group!r} is not served here")
    if len(segs) == 2:
        return _json(api.api_group(group, groups[group]))
    version = segs[2]
    if version not in groups[group]:
        raise NotFound(f"the server could not find the requested resource: {group}/{version} is not served here")
    rest = segs[3:]
    if group == resource_wire.GROUP and state.resource_metrics is not None:
        if not rest:
            return _json(api.resource_list(group, version, resource_wire.resources()))
        return _json(await resource_routes.handle(state.resource_metrics, rest, params, state.selector))
    if not rest:
        resources = p.custom_resources() if group == api.CUSTOM_GROUP else p.external_resources()
        if group == api.EXTERNAL_GROUP and state.federation is not None:
            resources = state.federation.merge(resources, p)
        return _json(api.resource_list(group, version, resources))
    for seg in rest:
        if not seg or len(seg) > 512:
            raise BadRequest(f"invalid path segment {seg[:40]!r}: empty or longer than 512 characters")
    if not _SEGMENT.fullmatch(rest[-1]):
        raise BadRequest(f"invalid metric name {rest[-1][:80]!r}: no whitespace or control characters")
    if group == api.EXTERNAL_GROUP:
        if len(rest) != 3 or rest[0] != "namespaces":
            raise NotFound(
                f"the server could not find the requested resource: external metrics are at "
                f"/apis/{group}/{version}/namespaces/NAMESPACE/METRIC"
            )
        ns = _namespace(rest[1])
        selector = state.selector(params.get("labelSelector", ""), "labelSelector")
        mls = params.get("metricLabelSelector")
        if mls:
            extra = state.selector(mls, "metricLabelSelector")
            selector = Selector(tuple(sorted((*selector.requirements, *extra.requirements), key=lambda r: r.key)))
        upstream = state.federation.route(rest[2], p) if state.federation is not None else None
        if upstream is not None:  # the caller is authorized already; the selector was checked above
            return _json(await upstream.external(ns, rest[2], params.get("labelSelector", "")))
        return _json(await p.external(ExternalRequest(ns, rest[2], selector)))
    label_sel = state.selector(params.get("labelSelector", ""), "labelSelector")
    metric_sel = state.selector(params.get("metricLabelSelector", ""), "metricLabelSelector")
    v: api.CustomVersion = "v1beta2" if version == "v1beta2" else "v1beta1"
    if len(rest) == 4 and rest[0] == "namespaces" and rest[2] == "metrics":
        # metrics describing a namespace itself
        ns = _namespace(rest[1])
        req = CustomRequest(v, None, "namespaces", ns, rest[3], label_sel, metric_sel)
    elif len(rest) == 5 and rest[0] == "namespaces":
        ns = _namespace(rest[1])
        req = CustomRequest(v, ns, _resource(rest[2]), _name(rest[3]), rest[4], label_sel, metric_sel)
    elif len(rest) == 3:
        req = CustomRequest(v, None, _resource(rest[0]), _name(rest[1]), rest[2], label_sel, metric_sel)
    else:
        raise NotFound(
            "the server could not find the requested resource: custom metrics are at "
            ".../namespaces/NS/RESOURCE/NAME/METRIC, .../RESOURCE/NAME/METRIC or .../namespaces/NS/metrics/METRIC"
        )
    return _json(await p.custom(req))


def _namespace(ns: str) -> str:
    if not _DNS_LABEL.fullmatch(ns):
        raise BadRequest(f"invalid namespace {ns[:80]!r}: a DNS label (lower-case alphanumerics and '-', at most 63)")
    return ns


def _name(name: str) -> str:
    if name != "*" and len(name) > 253:
        raise BadRequest(f"invalid object name {name[:40]!r}…: longer than 253 characters")
    if not _NAME.fullmatch(name):
        raise BadRequest(f"invalid object name {name[:80]!r}: no whitespace or control characters")
    return name


def _resource(resource: str) -> str:
    if not _SEGMENT.fullmatch(resource):
        raise BadRequest(f"invalid resource {resource[:80]!r}: no whitespace or control characters")
    return resource


def _openapi(state: State, request: web.BaseRequest, segs: list[str]) -> web.Response:
    if segs == ["openapi", "v2"]:
        data, etag = state.openapi_v2
    elif segs == ["openapi", "v3"]:
        return _json(openapi.v3_index(state.openapi_v3))
    elif len(segs) >= 3 and segs[:2] == ["openapi", "v3"] and "/".join(segs[2:]) in state.openapi_v3:
        data, etag = state.openapi_v3["/".join(segs[2:])]
    else:
        raise NotFound(f"no OpenAPI document at {request.path}")
    quoted = f'"{etag}"'
    headers = {"ETag": quoted, "Cache-Control": "no-cache, private"}
    if request.headers.get("If-None-Match") == quoted:
        return web.Response(status=304, headers=headers)
    return _json(data, headers=headers)
