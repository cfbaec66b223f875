"""The bounded memo behind the parse caches (plain data)."""

from __future__ import annotations

import pytest

from metrics_adapter.lru import LRU


def test_a_lookup_adds_nothing_and_refreshes_recency() -> None:
    """get never inserts; a key read recently survives the next eviction."""
    memo: LRU[str, int] = LRU(2)
    assert memo.get("x") is None and len(memo) == 0
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1
    memo.put("c", 3)
    assert ("a" in memo, "b" in memo, "c" in memo) == (True, False, True)
    assert memo.evictions == 1


def test_size_never_exceeds_maxsize() -> None:
    """10 000 distinct keys into a memo of 100: 100 kept, 9 900 evictions counted."""
    memo: LRU[int, int] = LRU(100)
    for i in range(10_000):
        memo.put(i, i)
    assert (len(memo), memo.evictions) == (100, 9_900)
    assert memo.get(9_999) == 9_999 and memo.get(0) is None


def test_maxsize_below_one_is_refused() -> None:
    """An LRU of size 0 is a programming error, said at construction."""
    with pytest.raises(ValueError, match="at least one entry"):
        LRU(0)
