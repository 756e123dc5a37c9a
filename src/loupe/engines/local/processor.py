"""Loads a checkpoint's processor: PIL image backend, tokenizer, and Loupe's video processor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import transformers
from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, ProcessorMixin
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES  # type: ignore[attr-defined]

from loupe.engines.local.torchvision_free import image_processor as stand_in_image_processor
from loupe.engines.local.torchvision_free import processor_class
from loupe.engines.local.video_processor import LoupeVideoProcessor, accepting_loupe_video
from loupe.errors import ModelLoadError

__all__ = ["load_processor"]

_SUPPORTED_PARTS = frozenset({"image_processor", "tokenizer", "video_processor"})


def load_processor(
    path_or_id: str, *, family: str | None = None, video_config: Mapping[str, Any] | None = None, **hub_kwargs: Any
) -> ProcessorMixin:
    """Build the checkpoint's processor class from its parts, the same with or without torchvision.

    The image processor is always the PIL backend and a `video_processor` slot always holds a
    `LoupeVideoProcessor` for `family` with the settings of `video_config` (a family without
    video gets one that refuses video), so pixels and token counts never depend on torchvision
    (without it, transformers cannot build these processors at all). The chat template comes from
    `chat_template.jinja` or the processor config, as `from_pretrained` would find it.
    `hub_kwargs` (revision, token, cache_dir, local_files_only, ...) go to every file lookup.

    Raises ModelLoadError when the checkpoint's processor is unknown to transformers or needs a
    part other than an image processor, a tokenizer and a video processor; the transformers
    loaders' own OSError/ValueError pass through for missing or malformed files.
    """
    processor_dict, _ = ProcessorMixin.get_processor_dict(path_or_id, **hub_kwargs)
    cls = _processor_class(path_or_id, processor_dict, hub_kwargs)
    attributes: list[str] = cls.get_attributes()  # type: ignore[no-untyped-call]
    if "image_processor" not in attributes or not _SUPPORTED_PARTS.issuperset(attributes):
        raise ModelLoadError(
            f"{cls.__name__} needs {', '.join(attributes)}; Loupe loads processors made of an "
            "image processor, a tokenizer and optionally a video processor"
        )
    try:
        image_processor = AutoImageProcessor.from_pretrained(path_or_id, backend="pil", **hub_kwargs)
    except ImportError:  # one transformers has only with torchvision
        image_processor = stand_in_image_processor(path_or_id, **hub_kwargs)
        if image_processor is None:
            raise
    parts = {
        "image_processor": image_processor,
        "tokenizer": AutoTokenizer.from_pretrained(path_or_id, **hub_kwargs),
        "video_processor": LoupeVideoProcessor(family, video_config or {}, image_processor),
    }
    processor: ProcessorMixin = accepting_loupe_video(_with_list_rows(cls)).from_dict(
        processor_dict, **{name: parts[name] for name in attributes}
    )
    return processor


class _ListRows:
    """Hands `create_mm_token_type_ids` the lists its contract names, never tensor rows.

    GLM-4V's override (transformers 5.23) calls `np.array` on each row, which for a torch tensor
    (`return_tensors="pt"`) is NumPy 2's deprecated `__array__` call without `copy`: a warning
    now (an error under pytest), an error in a later NumPy. The base class converts rows itself.
    """

    def create_mm_token_type_ids(self, input_ids: Any) -> list[list[int]]:
        rows = [row if isinstance(row, list) else row.tolist() for row in input_ids]
        found: list[list[int]] = super().create_mm_token_type_ids(rows)  # type: ignore[misc]
        return found


def _with_list_rows(cls: type[ProcessorMixin]) -> type[ProcessorMixin]:
    namespace = {"__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (_ListRows, cls), namespace)


def _processor_class(
    path_or_id: str, processor_dict: dict[str, Any], hub_kwargs: dict[str, Any]
) -> type[ProcessorMixin]:
    """The class processor_config.json names, else the one transformers maps the model type to."""
    name = processor_dict.get("processor_class")
    if name is None:
        model_type = AutoConfig.from_pretrained(path_or_id, **hub_kwargs).model_type
        name = PROCESSOR_MAPPING_NAMES.get(model_type)
        if name is None:
            raise ModelLoadError(f"{path_or_id}: model type {model_type!r} has no processor")
    found = getattr(transformers, name, None)
    if not (isinstance(found, type) and issubclass(found, ProcessorMixin)):
        found = processor_class(name)  # a placeholder where transformers wants torchvision
    if not (isinstance(found, type) and issubclass(found, ProcessorMixin)):
        raise ModelLoadError(f"{path_or_id}: processor class {name!r} is not in transformers")
    return found
