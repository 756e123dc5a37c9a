"""The byte-bounded LRU map the caches share."""

from __future__ import annotations

from loupe.lru import ByteLRU


def test_lru_evicts_least_recently_used_past_capacity() -> None:
    lru: ByteLRU[str, str] = ByteLRU(10)
    lru.put("a", "A", 4)
    lru.put("b", "B", 4)
    assert lru.get("a") == "A"  # now b is the oldest
    lru.put("c", "C", 4)
    assert "b" not in lru and "a" in lru and "c" in lru
    assert lru.size == 8
    lru.put("huge", "H", 11)
    assert "huge" not in lru and lru.size == 8
    assert (lru.hits, lru.misses) == (1, 0)
