"""A bounded memo: the most recently used entries kept, the oldest dropped first.

The server remembers how it parsed a path, a query and a selector, because HPAs repeat the same
few and parsing each once saves a visible share of a cached answer. Such memos are filled only
after a request is authorized (see ``server``), and bounded here, so neither a caller without
credentials nor one asking ever-new questions can make them grow past ``maxsize``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; ``evictions`` counts the ones dropped to stay there."""

    __slots__ = ("_data", "evictions", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"an LRU holds at least one entry (maxsize {maxsize})")
        self.maxsize = maxsize
        self.evictions = 0
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None; never adds anything."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
            self.evictions += 1

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
