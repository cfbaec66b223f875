"""The receiver in-process over real sockets: how many unverified bodies it reads at once, slow and vanishing clients.

Stalled clients are raw connections that send their headers and part of a body, as a
slow-loris attacker would; the receiver's ``pending_bodies`` says how many it is reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from gitopsd.webhooks.receiver import Receiver, ReceiverSettings
from gitopsd.webhooks.signatures import sign
from tests.gitopsd.webhooks.test_receiver import URL, FakeDaemon, _env

SECRET = b"limits-secret"


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeDaemon, Receiver, int]]:
    daemon = FakeDaemon({"ops/staging": _env("main")})
    settings = ReceiverSettings(max_body=65536, read_timeout=1.5, max_pending_bodies=2)
    receiver = Receiver(
        daemon, lambda p: (SECRET,) if p == "generic" else None, settings=settings, registry=CollectorRegistry()
    )
    runner, port = await _serve(receiver)
    yield daemon, receiver, port
    await runner.cleanup()


def _head(port: int, length: int, signature: str = "sha256=" + "0" * 64) -> bytes:
    return (
        f"POST /hooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nX-Signature: {signature}\r\n\r\n"
    ).encode()


async def _stall(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that announced 10 000 bytes and sent 10."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(port, 10_000) + b'{"ref": "r')
    await writer.drain()
    return reader, writer


async def _until(check: object, what: str) -> None:
    for _ in range(400):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict[str, object]]:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, json.loads(body)


async def _signed_push(port: int) -> tuple[int, dict[str, str], dict[str, object]]:
    body = json.dumps({"repository": URL, "ref": "refs/heads/main"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(port, len(body), sign(SECRET, body)) + body)
    try:
        return await _answer(reader)
    finally:
        writer.close()


async def test_bodies_beyond_the_cap_get_503_at_once(served: tuple[FakeDaemon, Receiver, int]) -> None:
    """Two stalled bodies fill the cap: a third request, even signed, gets 503 busy with Retry-After, unread."""
    daemon, receiver, port = served
    stalled = [await _stall(port), await _stall(port)]
    await _until(lambda: receiver.pending_bodies == 2, "two bodies being read")
    status, headers, answer = await _signed_push(port)
    assert (status, headers["retry-after"], headers["x-gitopsd-result"]) == (503, "1", "busy")
    assert answer == {"result": "busy", "message": "2 webhook bodies are already being read; retry"}
    assert daemon.triggered == [] and receiver.pending_bodies == 2
    for _, writer in stalled:
        writer.transport.abort()
    await _until(lambda: receiver.pending_bodies == 0, "the stalled readers released")
    status, _, answer = await _signed_push(port)
    assert (status, answer["result"], daemon.triggered) == (202, "triggered", ["ops/staging"])


async def test_a_body_that_never_completes_still_gets_408(served: tuple[FakeDaemon, Receiver, int]) -> None:
    """The read timeout is unchanged: 408 naming it, nothing triggered, the slot freed."""
    daemon, receiver, port = served
    reader, writer = await _stall(port)
    status, _, answer = await _answer(reader)
    writer.close()
    assert (status, answer) == (408, {"result": "timeout", "message": "the body did not arrive within 1.5s"})
    assert daemon.triggered == [] and receiver.pending_bodies == 0


async def test_a_client_disconnect_is_one_log_line_without_traceback(
    served: tuple[FakeDaemon, Receiver, int], caplog: pytest.LogCaptureFixture
) -> None:
    """A client gone mid-body: one 'webhook client disconnected' event, no traceback from aiohttp, counted."""
    daemon, receiver, port = served
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        _, writer = await _stall(port)
        await _until(lambda: receiver.pending_bodies == 1, "the body being read")
        writer.transport.abort()
        await _until(lambda: receiver.pending_bodies == 0, "the reader released")
        await asyncio.sleep(0.1)  # anything aiohttp would log after the handler returns
    gone = [e for e in events if e["event"] == "webhook client disconnected"]
    assert len(gone) == 1 and gone[0]["received"] == 10 and gone[0]["path"] == "/hooks/generic"
    assert [e for e in events if e["event"] == "webhook"] == []  # the one line is the only one
    assert [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()] == []
    counted = [s for m in receiver.requests.collect() for s in m.samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in counted] == [({"provider": "generic", "result": "disconnected"}, 1.0)]
    assert daemon.triggered == []
