"""The checkpoint's own processor, with its image step replaced by Loupe's fast image path.

The processor still writes the prompt's placeholder text itself (`replace_image_token` on the
fast path's output), so token counts and replacement spans are untouched; only the pixels are
computed faster, to the same values (tests compare them with the HF image processor).

A prompt whose images' embeddings the engine already holds (a later turn of a conversation)
needs no pixel values, only its ids and grids: for a layout that can (the Qwen-VL grids),
`placeholder_inputs` puts them together from the pieces the processor's call uses, without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def with_fast_images(processor: Any, family: str) -> Any:
    """`processor`, switched to the fast image path when its family has one; else as it was."""
    if family not in fast_images.FAMILIES:
        return processor
    base = type(processor)
    fast = type(base.__name__, (_FastImages, base), {"_loupe_family": family, "_loupe_settings": {}})
    processor.__class__ = fast
    return processor


def skips_pixels(processor: Any) -> bool:
    """Whether `placeholder_inputs` can build this processor's prompts without pixel values."""
    return isinstance(processor, _FastImages) and processor._loupe_family in fast_images.QWEN_LAYOUT


def placeholder_inputs(
    processor: Any,
    text: str,
    images: Sequence[Image.Image | torch.Tensor],
    pixels: bool = True,
    text_overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], int] | None:
    """What `processor(text=[text], images=[images])` returns (as token lists and tensors), less
    the pixel values unless `pixels`, and how many image placeholder ids it holds, for a
    processor that `skips_pixels`, without its call: a later turn's ids in 0.3 ms rather than
    1.2 ms. Without pixels, the images may be any tensors of the right size (`_stand_in`).

    The ids come from the pieces the call uses: the fast path's grids (and pixels), the processor's own
    placeholder text per image and its tokenizer, with the text arguments its call merges. The
    text is tokenized with one image marker per image, and each marker's id is then repeated as
    often as its placeholder text repeats it: the same ids, since the marker is an added token,
    which the tokenizer splits off before anything else, so text on either side tokenizes alike
    however many markers stand between (the 256 markers of a 448x448 image are most of the
    tokenizer's work otherwise). None where that does not hold, or for images the fast path
    does not take (not sized by Loupe's planner): the call then does it all. `text_overrides`
    are tokenizer arguments the call would be given (`add_special_tokens`). Raises ValueError
    where the call would: marker and image counts differ."""
    assert skips_pixels(processor)
    token, token_id = processor.image_token, processor.image_token_id
    markers = text.count(token)
    if markers != len(images):
        raise ValueError(f"the prompt has {markers} image markers for {len(images)} images")
    text_kwargs, token_types, added = processor._text_call()
    image_outputs = fast_images.preprocess if pixels else fast_images.grids
    try:  # none at all without images, as from the call
        grids = image_outputs(images, processor._settings({})) if images else {}
    except ValueError:
        return None
    replacements = [processor.replace_image_token(grids, image_idx=i) for i in range(len(images))]
    repeats = [len(r) // len(token) for r in replacements]
    if not added or any(r != token * n for r, n in zip(replacements, repeats, strict=True)):
        return None
    encoded = processor.tokenizer(text, **{**text_kwargs, **(text_overrides or {})})
    marks = [i for i, t in enumerate(encoded["input_ids"]) if t == token_id]
    if len(marks) != len(images):
        raise ValueError("the image markers did not tokenize one id each")
    per_token = dict(encoded)
    if token_types:
        per_token["mm_token_type_ids"] = processor.create_mm_token_type_ids([encoded["input_ids"]])[0]
    out: dict[str, Any] = {name: _repeated(values, marks, repeats) for name, values in per_token.items()}
    out.update(grids)
    for name in processor.unused_input_names:
        out.pop(name, None)
    return out, sum(repeats)


def _repeated(values: list[int], marks: list[int], repeats: list[int]) -> list[int]:
    """Per-token `values` with the value at each mark repeated as often as given."""
    out: list[int] = []
    start = 0
    for at, n in zip(marks, repeats, strict=True):
        out += values[start:at]
        out += values[at : at + 1] * n
        start = at + 1
    return out + values[start:]


class _FastImages:
    """Mixed in before the processor class: `_process_images` computes pixels with numpy."""

    _loupe_family: str
    _loupe_settings: dict[tuple[tuple[str, Any], ...], Any]
    _loupe_text: tuple[dict[str, Any], bool, bool] | None = None

    def _text_call(self) -> tuple[dict[str, Any], bool, bool]:
        """The tokenizer's arguments in this processor's call, whether the call adds token
        types (what its argument merging gives, worked out once), and whether the image marker
        is an added token of the tokenizer."""
        if self._loupe_text is None:
            tokenizer = self.tokenizer  # type: ignore[attr-defined]
            merged = self._merge_kwargs(tokenizer_init_kwargs=tokenizer.init_kwargs, return_tensors=None)  # type: ignore[attr-defined]
            text_kwargs = dict(merged["text_kwargs"])
            types = text_kwargs.pop("return_mm_token_type_ids", merged["return_mm_token_type_ids"])
            text_kwargs.pop("return_text_replacement_offsets", None)
            added = self.image_token in tokenizer.get_added_vocab()  # type: ignore[attr-defined]
            self._loupe_text = (text_kwargs, bool(types), added)
        return self._loupe_text

    def _process_images(self, images: Any, **kwargs: Any) -> tuple[Any, list[str]]:
        overrides = {k: v for k, v in kwargs.items() if v is not None and k not in _NEUTRAL}
        if not set(overrides) <= _UNDERSTOOD:
            return super()._process_images(images, **kwargs)  # type: ignore[misc, no-any-return]
        # A flat list for the images a processor passes (Pillow images or 3-D tensors).
        flat = cast("list[Image.Image | torch.Tensor]", make_flat_list_of_images(images))
        settings = self._settings(overrides)
        try:
            processed = fast_images.preprocess(flat, settings)
        except ValueError:  # not sized by Loupe's planner (a direct caller): the processor sizes it
            return super()._process_images(images, **kwargs)  # type: ignore[misc, no-any-return]
        replace = self.replace_image_token  # type: ignore[attr-defined]
        return processed, [replace(processed, image_idx=i) for i in range(len(flat))]

    def _settings(self, overrides: Mapping[str, Any]) -> Any:
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        if key not in self._loupe_settings:
            # Mistral 3's token patch is the processor's (patch times spatial merge).
            merge = int(getattr(self, "spatial_merge_size", None) or 1)
            token_patch = int(getattr(self, "patch_size", None) or 0) * merge
            self._loupe_settings[key] = fast_images.settings_for(
                self._loupe_family, self.image_processor, overrides or None, token_patch  # type: ignore[attr-defined]
            )
        return self._loupe_settings[key]
