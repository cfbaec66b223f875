"""A record's bundle bytes, read back with every size bounded before the work it bounds.

A record's Secrets come from the cluster, where anyone who may write Secrets in the namespace
can put anything: a ``data.bundle`` far larger than a part, a gzip stream that inflates a
thousandfold, one cut short or followed by garbage. Each check here runs before the step it
protects: the base64 text's length before decoding it, the compressed bytes' digest against
the record's ``packed`` and their total against its ``size`` before inflating, and the inflation itself
in steps (``zlib.decompressobj`` with ``max_length``) that stop one byte past the limit, so
memory stays within the limit whatever the stream claims.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Sequence

from gitopsd.releases.info import CHUNK

_GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
_STEP = 1024 * 1024  # inflated per call: memory stays within the limit plus one step
#: The longest base64 text a part of ``CHUNK`` bytes encodes to.
MAX_TEXT = 4 * ((CHUNK + 2) // 3)


class PayloadError(ValueError):
    """The bundle bytes fail a bound or a check; the message says which, and the limit."""


def unpack(datas: Sequence[object], *, size: int, packed: str, limit: int) -> bytearray:
    """The bundle's bytes from the parts' ``data.bundle`` texts (head first), checked and inflated.

    ``size`` and ``packed`` are the head's (compressed bytes and their digest; ``packed`` may be
    empty for a record that does not carry it, which then fails its signature instead).
    """
    chunks: list[bytes] = []
    for index, data in enumerate(datas):
        which = "data.bundle" if index == 0 else f"part {index}'s data.bundle"
        if not isinstance(data, str):
            raise PayloadError(f"has no {which}")
        if len(data) > MAX_TEXT:
            raise PayloadError(f"{which} is {len(data)} characters of base64, more than a part holds ({MAX_TEXT})")
        try:
            chunks.append(base64.b64decode(data, validate=True))
        except ValueError:
            raise PayloadError(f"{which} is not base64") from None
    joined = b"".join(chunks)  # at most len(datas) (<= MAX_PARTS) * CHUNK bytes
    if packed:
        actual = "sha256:" + hashlib.sha256(joined).hexdigest()
        if actual != packed:
            raise PayloadError(f"its compressed bundle's digest is {actual[:19]}…, the record says {packed[:19]}…")
    if len(joined) != size:
        raise PayloadError(f"its bundle is {len(joined)} bytes compressed, the record says {size}")
    return inflate(joined, limit)


def inflate(data: bytes, limit: int) -> bytearray:
    """``data`` (one gzip member) inflated; ``PayloadError`` once more than ``limit`` bytes come out."""
    stream = zlib.decompressobj(_GZIP)
    out = bytearray()
    pending = data
    try:
        while True:
            piece = stream.decompress(pending, min(_STEP, limit + 1 - len(out)))
            out += piece
            if len(out) > limit:
                raise PayloadError(
                    f"its bundle inflates to more than {_size(limit)} (the most a record holds); not read further"
                )
            if stream.eof:
                break
            pending = stream.unconsumed_tail
            if not piece and not pending:
                raise PayloadError("its bundle is truncated (the gzip stream ends early)")
    except zlib.error as exc:
        raise PayloadError(f"its bundle is not gzip data ({exc})") from None
    if stream.unused_data:
        raise PayloadError(f"its bundle has {len(stream.unused_data)} bytes after the gzip stream")
    return out  # not copied into bytes: a bundle near the limit would be held twice


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"
