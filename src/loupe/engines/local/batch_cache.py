"""The batch cache's layer: running sequences' states, left-padded into a buffer with room to grow."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import CacheLayerMixin, DynamicLayer

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1 or B, heads, length, dim]


class RoomyLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer of the batch cache, with room to grow: a decode step writes its column in place
    (DynamicLayer concatenates, copying the whole cache of every layer at every step)."""

    keys: torch.Tensor
    values: torch.Tensor

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._room, self._length = (keys, values), length
        self.keys, self.values = keys[..., :length, :], values[..., :length, :]

    @classmethod
    def of_rows(cls, rows: Layers, width: int) -> RoomyLayer:
        """Each row's states left-padded (with zeros, which the mask hides) to `width` positions."""
        return cls(_padded([k for k, _ in rows], width), _padded([v for _, v in rows], width), width)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self._length, self._length + key_states.shape[-2]
        if end > self._room[0].shape[-2]:
            self._room = (_padded([self.keys], end, start), _padded([self.values], end, start))
        self._room[0][..., start:end, :] = key_states
        self._room[1][..., start:end, :] = value_states
        self._length = end
        self.keys, self.values = self._room[0][..., :end, :], self._room[1][..., :end, :]
        return self.keys, self.values


def layer_states(layer: object) -> tuple[torch.Tensor, torch.Tensor]:
    """A filled attention layer's keys and values: what every layer of Loupe's caches is."""
    assert isinstance(layer, CacheLayerMixin) and layer.keys is not None and layer.values is not None
    return layer.keys, layer.values


def _padded(rows: list[torch.Tensor], width: int, end: int | None = None) -> torch.Tensor:
    """The rows stacked into a buffer that ends each at `end` (default `width`), then has room to
    grow past `width` by a margin, so that a reallocation is rare."""
    end = width if end is None else end
    first = rows[0]
    capacity = width + max(64, width // 2)
    room = first.new_zeros(sum(r.shape[0] for r in rows), first.shape[1], capacity, first.shape[-1])
    at = 0
    for row in rows:
        room[at : at + row.shape[0], :, end - row.shape[-2] : end] = row
        at += row.shape[0]
    return room
