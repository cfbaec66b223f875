"""Helpers shared by the queue reader tests: an HTTP session, one-entry configs, bounded polling."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from metrics_adapter.queues import QueueConfig, QueueError, QueueReader, parse_queues


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The aiohttp session readers share, as the server would give them."""
    async with aiohttp.ClientSession() as session:
        yield session


def entry(kind: str, spec: dict[str, Any], **fields: Any) -> QueueConfig:
    """One validated entry of ``kind`` with ``spec``, as parse_queues makes it."""
    (config,) = parse_queues([{"name": "backlog", **fields, kind: spec}])
    return config


async def wait_for_value(reader: QueueReader, expected: float, timeout: float = 30.0) -> float:
    """Read until the backlog is ``expected`` (brokers publish counters on an interval); the value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = (await reader.read()).value
        except QueueError as exc:
            last = exc
        if last == expected:
            return expected
        await asyncio.sleep(0.25)
    raise AssertionError(f"{reader.config.upstream}: expected {expected}, last read {last!r}")


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port where nothing listens (bound without listen, so nobody takes it meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """An AWS environment with nothing in it: no AWS_* variables, empty config files, no instance metadata."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    # Never let botocore's chain reach for instance metadata (169.254.169.254) from a test.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return monkeypatch
