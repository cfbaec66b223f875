"""Answers kept as JSON bytes while what they were built from is unchanged.

A provider builds an answer from values and object lists that each carry a version; the tuple
of those versions is the answer's fingerprint. While it matches, the bytes are served again
without building or encoding anything (the hot path of every HPA poll). Bounded: past ``limit``
entries all are dropped at once and rebuilt on demand, which is cheap next to keeping an order.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any


class Bodies:
    __slots__ = ("_data", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data: dict[Hashable, tuple[Hashable, bytes]] = {}

    def get(self, key: Hashable, fingerprint: Hashable) -> bytes | None:
        """The answer kept for ``key`` if it was built from ``fingerprint``, else None."""
        kept = self._data.get(key)
        return kept[1] if kept is not None and kept[0] == fingerprint else None

    def remember(self, key: Hashable, fingerprint: Hashable, body: dict[str, Any]) -> bytes:
        """``body`` encoded, and kept for ``key`` until the fingerprint changes."""
        data = json.dumps(body, separators=(",", ":")).encode()
        if len(self._data) > self.limit:
            self._data.clear()
        self._data[key] = (fingerprint, data)
        return data

    def __len__(self) -> int:
        return len(self._data)
