"""The HTTP transport both Kubernetes clients share: credentials per request, user agent, bounded time.

A local aiohttp server stands in for the API server (it only echoes what it received), and a
listening socket that never answers for a silent one: no cluster needed.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from gitopsd.kube.client import Kube
from gitopsd.kube.config import Connection
from gitopsd.kube.errors import Unreachable
from gitopsd.kube.transport import Transport
from metrics_adapter.kube.client import KubeClient, KubeError


def connection(server: str, authorization: Callable[[], str | None], *, refreshes: bool) -> Connection:
    return Connection(
        server=server,
        ca_file=None,
        cert_file=None,
        key_file=None,
        verify=True,
        tls_server_name=None,
        authorization=authorization,
        context="test",
        refreshes=refreshes,
    )


def rotating(prefix: str) -> tuple[Callable[[], str], list[str]]:
    """An authorization callable handing out a new token on each call, and the list of those handed out."""
    handed: list[str] = []

    def authorization() -> str:
        handed.append(f"Bearer {prefix}-{len(handed)}")
        return handed[-1]

    return authorization, handed


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """An HTTP server answering every GET with the headers it received, as JSON."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(
            {"authorization": request.headers.get("Authorization"), "ua": request.headers["User-Agent"]}
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def silent() -> Iterator[str]:
    """An https URL whose port accepts TCP connections (the kernel's backlog) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


async def test_a_rotating_token_is_asked_again_and_sent_by_both_clients(echo: str) -> None:
    """A refreshing credential (exec plugin, projected token) is asked again once stale, by both clients."""
    auth, handed = rotating("kube")
    kube = Kube(connection(echo, auth, refreshes=True))
    kube.transport.refresh_every = 0.0
    async with kube:
        first = await kube.get("/api/v1/namespaces/a")
        second = await kube.get("/api/v1/namespaces/b")
    assert [first["authorization"], second["authorization"]] == handed == ["Bearer kube-0", "Bearer kube-1"]
    assert first["ua"].startswith("gitopsd/")

    auth, handed = rotating("adapter")
    client = KubeClient(connection(echo, auth, refreshes=True))
    client.transport.refresh_every = 0.0
    try:
        answers: list[Any] = [await client.get("/api"), await client.get("/apis")]
    finally:
        await client.close()
    assert [a["authorization"] for a in answers] == handed == ["Bearer adapter-0", "Bearer adapter-1"]
    assert answers[0]["ua"].startswith("metrics-adapter/")


async def test_a_fresh_token_is_reused_within_the_refresh_interval(echo: str) -> None:
    """Within ``refresh_every`` the last value is reused (one thread hop per interval, not per request)."""
    auth, handed = rotating("t")
    async with Transport(connection(echo, auth, refreshes=True), user_agent="x", refresh_every=3600) as transport:
        values = [await transport.authorization() for _ in range(5)]
    assert values == ["Bearer t-0"] * 5 and handed == ["Bearer t-0"]


async def test_a_static_credential_is_read_on_every_request(echo: str) -> None:
    """A connection that never refreshes (static token) is read directly each time, no caching needed."""
    auth, handed = rotating("s")
    async with Transport(connection(echo, auth, refreshes=False), user_agent="x", refresh_every=3600) as transport:
        await transport.authorization()
        await transport.authorization()
    assert handed == ["Bearer s-0", "Bearer s-1"]


async def test_no_token_sends_no_authorization_header(echo: str) -> None:
    """Client certificates alone: no Authorization header at all (not an empty one)."""
    async with Kube(connection(echo, lambda: None, refreshes=False)) as kube:
        answer = await kube.get("/api")
    assert answer["authorization"] is None


async def test_a_silent_server_fails_a_retried_call_within_its_timeout(silent: str) -> None:
    """A server that never answers ends a retried GET at the call's timeout, and the message says so."""
    async with Kube(connection(silent, lambda: None, refreshes=False), timeout=1.5, connect_timeout=0.4) as kube:
        with pytest.raises(Unreachable) as err:
            await kube.get("/api/v1/namespaces")
    assert str(err.value) == f"GET {silent}/api/v1/namespaces: no answer within 1.5s"
    assert kube.stats.calls[("LIST", "namespaces")] >= 2  # retried, yet inside the one bound


async def test_a_silent_server_fails_an_adapter_call_naming_the_timeout(silent: str) -> None:
    """metrics-adapter: one attempt, no retry, ended at its timeout with a message naming it."""
    client = KubeClient(connection(silent, lambda: None, refreshes=False), timeout=0.5)
    try:
        with pytest.raises(KubeError) as err:
            await client.get("/apis")
    finally:
        await client.close()
    # Connect and overall timeout are both 0.5s here: whichever timer fires first names it.
    assert err.value.message in {"GET /apis: no connection within 0.5s", "GET /apis: no answer within 0.5s"}
    assert err.value.outage  # counts towards the circuit breaker, as an unreachable server should
