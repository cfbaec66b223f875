"""One bounded HTTP exchange for the HTTP-speaking brokers (RabbitMQ management API, SQS).

Turns aiohttp's exceptions into the queue error tree, caps what is read from a body, and
keeps credentials out of every message.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from metrics_adapter.queues.errors import QueueBadResponse, QueueTimeout, QueueUnreachable, scrub

MAX_BODY = 1 << 20  # a queue's attributes are a few hundred bytes; anything near 1 MiB is not ours


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    upstream: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
    secrets: Iterable[str] = (),
) -> Response:
    """Send one request and read its whole (bounded) body; raise a ``QueueError`` when there is none."""
    secrets = list(secrets)
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout=aiohttp.ClientTimeout(total=timeout),
            ssl=ssl_context if ssl_context is not None else True,
            allow_redirects=False,
        ) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY:
                    raise QueueBadResponse(upstream, f"HTTP {resp.status} answer larger than {MAX_BODY} bytes")
                chunks.append(chunk)
            return Response(resp.status, resp.headers, b"".join(chunks))
    except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
        raise QueueUnreachable(upstream, f"TLS failed: {scrub(str(exc), secrets)}") from exc
    except aiohttp.ClientConnectorError as exc:
        raise QueueUnreachable(upstream, f"cannot connect: {scrub(os_reason(exc.os_error), secrets)}") from exc
    except TimeoutError as exc:  # aiohttp's timeouts are TimeoutError subclasses
        raise QueueTimeout(upstream, f"no answer within {timeout:g}s") from exc
    except aiohttp.ClientError as exc:
        detail = scrub(str(exc) or type(exc).__name__, secrets)
        raise QueueUnreachable(upstream, f"connection failed: {detail}") from exc


def load_ca(path: str) -> ssl.SSLContext:
    """A client TLS context trusting the CA bundle at ``path`` (raises OSError / ssl.SSLError)."""
    return ssl.create_default_context(cafile=path)


def os_reason(error: OSError) -> str:
    """The reason a connection failed, e.g. "Connection refused" (not asyncio's "Connect call failed (...)")."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):  # its errno is OpenSSL's, not an OS one
        return f"TLS: {error.reason or error}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host: {error.strerror or error}"
    if error.errno and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__
