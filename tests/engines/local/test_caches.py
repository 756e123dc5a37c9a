"""The byte-bounded LRU and the prefix cache (plain Python), and the batch cache's growing layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from loupe.engines.local.lru import ByteLRU
from loupe.engines.local.prefix_cache import PrefixCache
from loupe.engines.local.runner import _RoomyLayer


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


def test_prefix_cache_finds_the_longest_common_prefix() -> None:
    cache: PrefixCache[str] = PrefixCache(100)
    cache.store([1, 2, 3], "short", 1)
    cache.store([1, 2, 3, 4, 5], "long", 1)
    assert cache.lookup([1, 2, 3, 4, 9]) == ("long", 4)
    assert cache.lookup([1, 2, 7]) in (("short", 2), ("long", 2))
    assert cache.lookup([8]) == (None, 0)


def test_image_placeholders_match_by_image_not_by_id() -> None:
    cache: PrefixCache[str] = PrefixCache(100)
    cache.store([1, "cat.jpg", "cat.jpg", 2], "cat", 1)
    assert cache.lookup([1, "dog.jpg", "dog.jpg", 2]) == ("cat", 1)
    assert cache.lookup([1, "cat.jpg", "cat.jpg", 2, 3]) == ("cat", 4)


def test_batch_cache_layer_left_pads_rows_and_grows_like_concatenation() -> None:
    short, long = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    layer = _RoomyLayer.of_rows([(short, short + 1), (long, long + 1)], width=5)
    expected = torch.cat([F.pad(short, (0, 0, 2, 0)), long])
    for _ in range(100):  # past the margin: the buffer is reallocated on the way
        step = torch.randn(2, 2, 1, 4)
        keys, values = layer.update(step, step + 1)
        expected = torch.cat([expected, step], dim=-2)
    assert torch.equal(keys, expected)
    assert torch.equal(values[:, :, 2:], expected[:, :, 2:] + 1) and not values[0, :, :2].any()
    assert layer.get_seq_length() == 105
