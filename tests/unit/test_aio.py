"""``wait_set`` never swallows a cancellation; ``trim_tls_buffers`` keeps TLS whole with less memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from asyncio import sslproto
from pathlib import Path

from e2e import pki
from gitopsd.aio import TLS_READ_BUFFER, trim_tls_buffers, wait_set


async def test_true_when_set_false_on_timeout() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 5) is True


async def test_a_cancel_arriving_as_the_event_is_set_is_not_lost() -> None:
    """asyncio.wait_for on 3.11 returns normally here and the loop below would run on for ever."""
    event = asyncio.Event()
    woken = 0

    async def loop() -> None:
        nonlocal woken
        while True:
            event.clear()
            await wait_set(event, 100)
            woken += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task} and task.cancelled(), "the cancellation was lost"
    assert woken == 0


async def test_tls_with_trimmed_buffers_carries_a_large_body_intact(tmp_path: Path) -> None:
    """After ``trim_tls_buffers`` a TLS connection reads in 32 KiB steps and still carries 4 MiB whole."""
    ca, ca_key = pki.new_ca("test-ca")
    cert, key = pki.issue(ca, ca_key, "localhost", server=True, ips=("127.0.0.1",))
    crt_path, key_path = pki.write_pair(tmp_path, "server", cert, key)
    ca_path, _ = pki.write_pair(tmp_path, "ca", ca, ca_key)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt_path, key_path)
    client_ctx = ssl.create_default_context(cafile=str(ca_path))
    body = os.urandom(4 * 1024 * 1024)

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(body)
        await writer.drain()
        writer.close()

    default = sslproto.SSLProtocol.max_size
    try:
        trim_tls_buffers()
        assert sslproto.SSLProtocol.max_size == TLS_READ_BUFFER  # (another test may have trimmed it already)
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            received = await reader.read(-1)
            writer.close()
        assert hashlib.sha256(received).digest() == hashlib.sha256(body).digest()
    finally:
        sslproto.SSLProtocol.max_size = default
