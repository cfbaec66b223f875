"""The webhook receiver: ``POST /hooks/{github,gitlab,gitea,generic}`` on a port of its own.

Order of work for one request, cheapest refusal first, so an attacker costs us little:

1. the provider must be configured (a secret in the daemon config), else 404;
2. the body is read with a size limit (413) and a read timeout (408: a slow-loris client
   holds one connection of its own, never a worker or the reconcile loop). At most
   ``max_pending_bodies`` bodies are read at once, since none is verified yet: beyond that a
   request gets 503 with ``Retry-After`` at once, unread, so a crowd of stalled connections
   costs at most that many bodies of memory. A client that goes away mid-body is one log
   line (``webhook client disconnected``), not a traceback;
3. the signature is checked on the raw bytes (401, nothing parsed, nothing triggered);
4. the event type: ``ping`` is answered, a push is read, any other event is acknowledged (202)
   and ignored; the JSON must parse (400) and be a push (400 naming the field);
5. the Environments reading that repository and following that ref are triggered (202):
   each gets one reconcile as soon as a worker is free, with a fresh ``ls-remote`` (see
   ``Daemon.trigger``). A burst of pushes coalesces: an Environment already queued stays
   queued once, one being reconciled runs once more afterwards, and each run deploys what the
   ref names at that moment, so the newest commit wins.

Only the leader triggers. A standby forwards the request verbatim (body and signature headers)
to the leader's webhook URL, read from the Lease, and relays the answer; with no leader known,
or when forwarding fails, it answers 503 with ``Retry-After``. A forwarded request is never
forwarded again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from gitopsd.errors import SpecError
from gitopsd.sources import redact_url
from gitopsd.spec import SourceSpec, parse_spec
from gitopsd.webhooks.matching import match
from gitopsd.webhooks.payloads import PayloadError, Push, parse_push
from gitopsd.webhooks.signatures import PROVIDERS, Provider, SignatureError, verify

log = structlog.get_logger("gitopsd.webhooks")

MAX_BODY = 1024 * 1024
# Bodies read at once before their signature is checked: each may hold up to max_body bytes.
MAX_PENDING_BODIES = 16
FORWARDED = "X-Gitopsd-Forwarded"
_EVENT_HEADERS: Mapping[Provider, str] = {
    "github": "X-GitHub-Event",
    "gitlab": "X-Gitlab-Event",
    "gitea": "X-Gitea-Event",
    "generic": "X-Gitopsd-Event",
}
_GITLAB_PUSHES = frozenset({"Push Hook", "Tag Push Hook"})
# Headers a standby passes on to the leader: what proves and describes the event, nothing else.
_FORWARDED_HEADERS = (
    "Content-Type",
    "X-Hub-Signature-256",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-Gitlab-Token",
    "X-Gitlab-Event",
    "X-Gitea-Signature",
    "X-Gitea-Event",
    "X-Gitea-Delivery",
    "X-Signature",
    "X-Gitopsd-Event",
)


class Targets(Protocol):
    """The daemon side (``Daemon``): what can be triggered."""

    def synced(self) -> bool:
        """Whether the Environments have been listed (before that, no answer can be right)."""
        ...

    def environments(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """(``namespace/name``, raw object) of every Environment this daemon reconciles."""
        ...

    def trigger(self, key: str, *, fresh: bool = True) -> bool: ...


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def identity(self) -> str: ...

    @property
    def leader_url(self) -> str | None:
        """The current leader's webhook base URL (``http://host:port``), when known."""
        ...


class AlwaysLeader:
    """Leadership when leader election is off: this process is the only one."""

    is_leader = True
    identity = "single"
    leader_url = None


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    max_body: int = MAX_BODY
    read_timeout: float = 10.0  # the whole body must arrive within this
    max_pending_bodies: int = MAX_PENDING_BODIES
    forward_timeout: float = 10.0


class Receiver:
    def __init__(
        self,
        targets: Targets,
        secrets: Callable[[Provider], Sequence[bytes] | None],
        *,
        leadership: Leadership | None = None,
        settings: ReceiverSettings | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.targets = targets
        self.secrets = secrets
        self.leadership = leadership or AlwaysLeader()
        self.settings = settings or ReceiverSettings()
        registry = registry or CollectorRegistry()
        self.requests = Counter(
            "gitopsd_webhook_requests_total",
            "Webhook requests by provider and result (triggered, ignored, unknown_repository, unauthorized, "
            "bad_request, too_large, timeout, busy, disconnected, forwarded, unavailable, not_configured).",
            ["provider", "result"],
            registry=registry,
        )
        self.seconds = Histogram(
            "gitopsd_webhook_request_duration_seconds",
            "Time to answer a webhook request (verify, match, queue; or forward to the leader), by provider.",
            ["provider"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self._session: aiohttp.ClientSession | None = None
        self.pending_bodies = 0  # bodies being read now, not yet verified
        self._sources: dict[str, tuple[Any, SourceSpec | None]] = {}  # key -> (generation, parsed source)

    def sources(self) -> list[tuple[str, SourceSpec]]:
        """The source of every Environment, parsed once per generation (invalid specs left out)."""
        found: list[tuple[str, SourceSpec]] = []
        seen = set()
        for key, obj in self.targets.environments():
            seen.add(key)
            generation = (obj.get("metadata") or {}).get("generation")
            cached = self._sources.get(key)
            if cached is None or cached[0] != generation:
                try:
                    cached = (generation, parse_spec(obj.get("spec")).source)
                except SpecError:
                    cached = (generation, None)
                self._sources[key] = cached
            if cached[1] is not None:
                found.append((key, cached[1]))
        for gone in set(self._sources) - seen:
            del self._sources[gone]
        return found

    def app(self) -> web.Application:
        application = web.Application(client_max_size=self.settings.max_body)
        application.router.add_post("/hooks/{provider}", self.handle)
        application.on_cleanup.append(self._close)
        return application

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    # -- one request -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["provider"]
        if name not in PROVIDERS:
            return _answer(404, "not_found", f"no such hook: /hooks/{name[:40]} (github, gitlab, gitea, generic)")
        provider: Provider = name
        started = time.monotonic()
        response = await self._handle(provider, request)
        result = response.headers.get("X-Gitopsd-Result", "error")
        self.requests.labels(provider, result).inc()
        self.seconds.labels(provider).observe(time.monotonic() - started)
        if result == "disconnected":
            return response  # already said in one line; nobody reads this answer
        log.info(
            "webhook",
            provider=provider,
            status=response.status,
            result=result,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            remote=request.remote,
        )
        return response

    async def _handle(self, provider: Provider, request: web.Request) -> web.Response:
        secrets = self.secrets(provider)
        if not secrets:
            why = "no secret for it in the daemon config"
            return _answer(404, "not_configured", f"/hooks/{provider} is not configured ({why})")
        try:
            body = await self._read(request)
        except _Refused as refused:
            return refused.response
        if not self.leadership.is_leader:
            return await self._forward(request, body)
        try:
            verify(provider, request.headers, body, secrets)
        except SignatureError as exc:
            log.warning("webhook refused", provider=provider, reason=str(exc), remote=request.remote)
            return _answer(401, "unauthorized", str(exc))
        event = _event(provider, request.headers)
        if provider == "github" and event == "ping":
            return _answer(200, "ping", "pong")
        if provider != "generic" and event is None:
            return _answer(400, "bad_request", f"missing {_EVENT_HEADERS[provider]} header")
        try:
            payload = await _decode(body)
        except ValueError as exc:
            return _answer(400, "bad_request", str(exc))
        if provider == "generic":
            event = str(payload.get("event", "push")) if isinstance(payload, dict) else "push"
            if event == "ping":
                return _answer(200, "ping", "pong")
        elif provider == "gitlab" and event == "System Hook" and isinstance(payload, dict):
            event = {"push": "Push Hook", "tag_push": "Tag Push Hook"}.get(str(payload.get("object_kind")), event)
        if not _is_push(provider, event):
            return _answer(202, "ignored", f"event {str(event)[:60]!r} ignored (only pushes deploy)")
        try:
            push = parse_push(provider, payload)
        except PayloadError as exc:
            return _answer(400, "bad_request", str(exc))
        return self._trigger(provider, push)

    def _trigger(self, provider: Provider, push: Push) -> web.Response:
        if not self.targets.synced():
            return _answer(503, "unavailable", "Environments not listed yet; retry", retry_after=2)
        found = match(push, self.sources())
        where = f"{redact_url(push.repositories[0])} {push.ref}"
        if not found.repository_known:
            return _answer(202, "unknown_repository", f"no Environment reads {redact_url(push.repositories[0])}")
        triggered = [key for key in found.triggered if self.targets.trigger(key, fresh=True)]
        log.info(
            "push",
            provider=provider,
            repository=redact_url(push.repositories[0]),
            ref=push.ref,
            after=push.after,
            deleted=push.deleted,
            triggered=triggered,
        )
        if not triggered:
            return _answer(202, "ignored", f"no Environment follows {where}", triggered=[])
        return _answer(202, "triggered", f"{len(triggered)} Environment(s) triggered by {where}", triggered=triggered)

    async def _read(self, request: web.Request) -> bytes:
        limit = self.settings.max_body
        if request.content_length is not None and request.content_length > limit:
            raise _Refused(_answer(413, "too_large", f"body of {request.content_length} bytes is over {limit}"))
        cap = self.settings.max_pending_bodies
        if self.pending_bodies >= cap:
            raise _Refused(_answer(503, "busy", f"{cap} webhook bodies are already being read; retry", retry_after=1))
        received = 0
        # Emptied whatever happens: an error's traceback (a cycle through the wait_for task) can
        # keep the reading frames alive until a full garbage collection, and with them this list.
        chunks: list[bytes] = []

        async def read_all() -> bytes:
            nonlocal received
            while True:
                chunk = await request.content.read(65536)
                if not chunk:
                    return b"".join(chunks)
                received += len(chunk)
                if received > limit:
                    raise _Refused(_answer(413, "too_large", f"body is over {limit} bytes"))
                chunks.append(chunk)

        self.pending_bodies += 1
        try:
            return await asyncio.wait_for(read_all(), timeout=self.settings.read_timeout)
        except TimeoutError:
            timeout = self.settings.read_timeout
            raise _Refused(_answer(408, "timeout", f"the body did not arrive within {timeout:g}s")) from None
        except (ConnectionError, aiohttp.ClientPayloadError) as exc:
            # Nobody is left to answer: one line says so (aiohttp would log a traceback).
            log.info(
                "webhook client disconnected",
                path=request.path,
                remote=request.remote,
                received=received,
                error=str(exc) or type(exc).__name__,
            )
            raise _Refused(_answer(499, "disconnected", "the client went away before its body arrived")) from None
        finally:
            self.pending_bodies -= 1
            chunks.clear()

    # -- standby ---------------------------------------------------------------------------

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        leader = self.leadership.leader_url
        if request.headers.get(FORWARDED) or not leader:
            why = "no leader elected yet" if not leader else "forwarded to a replica that is not the leader"
            return _answer(503, "unavailable", f"{why}; retry", retry_after=5)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {h: request.headers[h] for h in _FORWARDED_HEADERS if h in request.headers}
        headers[FORWARDED] = self.leadership.identity
        try:
            async with self._session.post(
                leader.rstrip("/") + request.path,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.settings.forward_timeout),
            ) as resp:
                text = await resp.text()
                result = resp.headers.get("X-Gitopsd-Result", "error")
                return web.Response(
                    status=resp.status,
                    text=text,
                    content_type="application/json",
                    headers={"X-Gitopsd-Result": "forwarded", "X-Gitopsd-Leader-Result": result},
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("forwarding to the leader failed", leader=leader, error=str(exc) or type(exc).__name__)
            return _answer(503, "unavailable", "the leader did not answer; retry", retry_after=5)


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _event(provider: Provider, headers: Mapping[str, str]) -> str | None:
    value = headers.get(_EVENT_HEADERS[provider])
    return value.strip() if value else None


def _is_push(provider: Provider, event: str | None) -> bool:
    if provider == "gitlab":
        return event in _GITLAB_PUSHES
    return event == "push"


async def _decode(body: bytes) -> Any:
    def parse() -> Any:
        try:
            return json.loads(body)
        except RecursionError:
            raise ValueError("the JSON body is nested too deeply") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the body is not JSON ({exc}); set the hook's content type to application/json") from None

    # A large body is parsed off the event loop, so reconciles never wait for it.
    return parse() if len(body) < 65536 else await asyncio.to_thread(parse)


def _answer(status: int, result: str, message: str, *, retry_after: int | None = None, **extra: Any) -> web.Response:
    headers = {"X-Gitopsd-Result": result}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.json_response({"result": result, "message": message, **extra}, status=status, headers=headers)
