"""The checkpoint's own processor, with its image step replaced by Loupe's fast image path.

The processor still writes the prompt's placeholder text itself (`replace_image_token` on the
fast path's output), so token counts and replacement spans are untouched; only the pixels are
computed faster, to the same values (tests compare them with the HF image processor).

Inside `without_pixels`, a layout that can (the Qwen-VL grids) computes only what the prompt's
text needs and no pixel values: for images whose embeddings the engine already holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from transformers.image_utils import make_flat_list_of_images

from loupe.engines.local import fast_images

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Keyword arguments the processor passes its image step that say nothing about the pixels.
_NEUTRAL = frozenset({"return_tensors", "return_row_col_info"})
# Per-request overrides the fast path understands (Loupe's detail plans use these).
_UNDERSTOOD = frozenset({"do_image_splitting", "size"})
_SKIPPING = threading.local()  # set by `without_pixels`, per preprocessing thread


def with_fast_images(processor: Any, family: str) -> Any:
    """`processor`, switched to the fast image path when its family has one; else as it was."""
    if family not in fast_images.FAMILIES:
        return processor
    base = type(processor)
    fast = type(base.__name__, (_FastImages, base), {"_loupe_family": family, "_loupe_settings": {}})
    processor.__class__ = fast
    return processor


def skips_pixels(processor: Any) -> bool:
    """Whether `without_pixels` leaves the pixel values out for this processor."""
    return isinstance(processor, _FastImages) and processor._loupe_family in fast_images.QWEN_LAYOUT


@contextmanager
def without_pixels() -> Iterator[None]:
    """Processor calls in this block, on this thread, leave out the pixel values where the
    layout allows it (`skips_pixels`); the images given may then be any of the right size."""
    _SKIPPING.active = True
    try:
        yield
    finally:
        _SKIPPING.active = False


class _FastImages:
    """Mixed in before the processor class: `_process_images` computes pixels with numpy."""

    _loupe_family: str
    _loupe_settings: dict[tuple[tuple[str, Any], ...], Any]

    def _process_images(self, images: Any, **kwargs: Any) -> tuple[Any, list[str]]:
        overrides = {k: v for k, v in kwargs.items() if v is not None and k not in _NEUTRAL}
        if not set(overrides) <= _UNDERSTOOD:
            return super()._process_images(images, **kwargs)  # type: ignore[misc, no-any-return]
        # A flat list for the images a processor passes (Pillow images or 3-D tensors).
        flat = cast("list[Image.Image | torch.Tensor]", make_flat_list_of_images(images))
        settings = self._settings(overrides)
        try:
            skipped = fast_images.geometry(flat, settings) if getattr(_SKIPPING, "active", False) else None
            processed = skipped if skipped is not None else fast_images.preprocess(flat, settings)
        except ValueError:  # not sized by Loupe's planner (a direct caller): the processor sizes it
            return super()._process_images(images, **kwargs)  # type: ignore[misc, no-any-return]
        replace = self.replace_image_token  # type: ignore[attr-defined]
        return processed, [replace(processed, image_idx=i) for i in range(len(flat))]

    def _settings(self, overrides: Mapping[str, Any]) -> Any:
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        if key not in self._loupe_settings:
            self._loupe_settings[key] = fast_images.settings_for(
                self._loupe_family, self.image_processor, overrides or None  # type: ignore[attr-defined]
            )
        return self._loupe_settings[key]
