"""The outage proxy itself: forwards, refuses when down, accepts and never answers when black-holed."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from e2e.tcpproxy import TcpProxy

#: How long "no answer" is watched for: the echo answers in microseconds on loopback.
SILENCE = 0.5


@pytest.fixture
def echo() -> Iterator[int]:
    """A loopback server answering every chunk with ``echo:`` + the chunk; its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(1024):
                conn.sendall(b"echo:" + data)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def ask(conn: socket.socket, text: bytes) -> bytes:
    conn.sendall(text)
    return conn.recv(1024)


def test_blackhole_accepts_and_never_answers_until_forward(echo: int) -> None:
    """Black-holed: an open connection stalls and a new one is accepted but silent; forward() lets both through."""
    proxy = TcpProxy("127.0.0.1", echo).up()
    try:
        before = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert ask(before, b"a") == b"echo:a"
        proxy.blackhole()
        assert proxy.blackholed
        after = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)  # accepted: no refusal
        for conn, text in ((before, b"b"), (after, b"c")):
            conn.settimeout(SILENCE)
            with pytest.raises(TimeoutError):
                ask(conn, text)
            conn.settimeout(5)
        proxy.forward()
        assert before.recv(1024) == b"echo:b"
        assert after.recv(1024) == b"echo:c"
        before.close()
        after.close()
    finally:
        proxy.down()


def test_down_refuses_and_up_listens_on_the_same_port_again(echo: int) -> None:
    """down(): connection refused, even after a black hole; up(): the same address forwards again."""
    proxy = TcpProxy("127.0.0.1", echo).up()
    proxy.blackhole()
    proxy.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    proxy.up()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
            assert ask(conn, b"x") == b"echo:x"
    finally:
        proxy.down()
