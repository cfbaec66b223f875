"""Waiting on an ``asyncio.Event`` with a timeout, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returns normally when the task is
cancelled in the same loop iteration as the event is set: the cancellation is lost and the task
runs on (a sync preempted during its health wait finishes anyway, a watch never stops on
close). ``asyncio.timeout`` has no such gap (and is what ``wait_for`` became in 3.12).
"""

from __future__ import annotations

import asyncio
from asyncio import sslproto


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds have passed; True when it is set."""
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


#: What ``trim_tls_buffers`` sets: two TLS records (at most 16 KiB of plaintext each) per read.
TLS_READ_BUFFER = 32 * 1024


def trim_tls_buffers() -> None:
    """Make asyncio's TLS connections allocate a 32 KiB read buffer instead of 256 KiB.

    Python's ``asyncio.sslproto.SSLProtocol`` allocates (and zero-fills) ``max_size`` bytes per
    connection when it is made. Every Kubernetes watch is a connection of its own (HTTP/1.1), so
    a daemon watching each managed kind in each target namespace paid ~300 KiB per watch:
    measured on 160 watches, 297 KiB each with the default and 79 KiB with 32 KiB. Reads of
    large lists take more, smaller socket reads; nothing else changes. Called once at start by
    both daemons; a class attribute of the standard library is the only handle there is.
    """
    sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
