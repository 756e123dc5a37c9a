"""The size rule of a tiny checkpoint's text model; no torch, so callers validate cheaply."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HIDDEN_SIZE = 64
DEFAULT_LAYERS = 2


@dataclass(frozen=True, slots=True)
class TextSize:
    """Dimensions of a tiny checkpoint's language model (the vision tower stays fixed and small).

    Heads are `max(4, hidden_size // 64)`: 4 heads of 16 at the default 64, heads of 64 from
    256 up, as in the published models. Key/value heads are half the heads (grouped-query
    attention, like both families), and the MLP is 4x wide.
    """

    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    intermediate_size: int

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.heads

    @classmethod
    def choose(cls, hidden_size: int | None = None, layers: int | None = None) -> TextSize:
        """Apply the size rule; raise ValueError for sizes that give no valid attention shape."""
        hidden = DEFAULT_HIDDEN_SIZE if hidden_size is None else hidden_size
        depth = DEFAULT_LAYERS if layers is None else layers
        if depth < 1:
            raise ValueError(f"layers must be at least 1, got {depth}")
        heads = max(4, hidden // 64)
        # Qwen2-VL's multimodal rope splits half the head dimension into three sections.
        if hidden < 32 or hidden % heads or (hidden // heads) % 8:
            raise ValueError(
                f"hidden_size {hidden} splits into {heads} heads of {hidden / heads:g}; choose one "
                "whose head size is a multiple of 8 (any multiple of 64 is)"
            )
        return cls(hidden, depth, heads, heads // 2, 4 * hidden)
