"""Runs transformers' own video processors' frame sampling, resize decisions and placeholder
counts, in a child process (`python -m tests.models.video_reference < cases.json`).

Those modules import torchvision at the top; Loupe's venv has none. Here, in a process of its
own, a stand-in torchvision (tests.torchvision_stand_in) lets them import, and the torchvision
backend's pixel resize is replaced by one that returns a tensor of the size asked for: every
decision (frames, sizes, grids, token strings) is the reference's own code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import tests.torchvision_stand_in  # noqa: F401  (before the video processor modules)

import torch  # noqa: E402
from transformers.image_processing_backends import TorchvisionBackend  # noqa: E402
from transformers.image_utils import SizeDict  # noqa: E402
from transformers.models.glm4v.processing_glm4v import Glm4vProcessor  # noqa: E402
from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor  # noqa: E402
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor  # noqa: E402
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor  # noqa: E402
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor  # noqa: E402
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # noqa: E402
from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor  # noqa: E402
from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata, default_sample_indices_fn  # noqa: E402


def _blank(*shape: int) -> torch.Tensor:
    """A uint8 tensor of `shape` with no memory behind it (one zero, expanded)."""
    return torch.zeros((1,) * len(shape), dtype=torch.uint8).expand(*shape)


def _shape_only_resize(self: Any, image: torch.Tensor, size: SizeDict, *args: Any, **kwargs: Any) -> torch.Tensor:
    return _blank(*image.shape[:-2], size.height, size.width)


TorchvisionBackend.resize = _shape_only_resize  # type: ignore[method-assign]


def _bare(cls: type, **attributes: Any) -> Any:
    """An instance of a reference processor class without its init (which checks torchvision)."""
    made = object.__new__(cls)
    for name, value in attributes.items():
        setattr(made, name, value)
    return made


def _metadata(case: dict[str, Any]) -> VideoMetadata:
    total, fps = case["frames"], case["video_fps"]
    return VideoMetadata(total_num_frames=total, fps=fps, duration=total / fps, width=case["width"], height=case["height"])


def _grid_family(case: dict[str, Any], cls: type, processor_cls: type) -> dict[str, Any]:
    config = case["config"]
    video = _bare(cls, **{"num_frames": None, **config})
    metadata = _metadata(case)
    indices = [int(i) for i in video.sample_frames(metadata, fps=case["fps"])]
    frames = _blank(1, len(indices), 3, case["height"], case["width"])
    size = SizeDict(**config["size"])
    factor = config["patch_size"] * config["merge_size"]
    resized = video.resize(
        frames,
        size=size,
        resample=None,
        factor=factor,
        temporal_factor=config["temporal_patch_size"],
        cap_pixels_per_frame=config.get("cap_pixels_per_frame"),
        max_video_tokens=None,
    )
    # patchify's grid: frames padded to the temporal patch, sides in patches
    patch, temporal = config["patch_size"], config["temporal_patch_size"]
    grid_t = -(-len(indices) // temporal)
    grid_h, grid_w = resized.shape[-2] // patch, resized.shape[-1] // patch
    metadata.frames_indices = list(indices)  # Qwen3-VL's timestamps pad this list in place
    inputs = {"video_grid_thw": torch.tensor([[grid_t, grid_h, grid_w]]), "video_metadata": [metadata]}
    processor = _bare(
        processor_cls,
        video_processor=video,
        video_token="<V>",
        image_token="<V>",
        vision_start_token="",
        vision_end_token="",
    )
    text = processor.replace_video_token(inputs, 0)
    return {"indices": indices, "size": list(resized.shape[-2:]), "tokens": text.count("<V>")}


def _onevision(case: dict[str, Any]) -> dict[str, Any]:
    metadata = _metadata(case)
    n_fps = max(1, int(case["frames"] / case["video_fps"] * case["fps"]))
    if n_fps <= case["max_frames"]:
        indices = default_sample_indices_fn(metadata, fps=case["fps"])
    else:
        indices = default_sample_indices_fn(metadata, num_frames=case["max_frames"])
    processor = _bare(LlavaOnevisionProcessor, num_image_tokens=case["num_image_tokens"], video_token="<V>")
    pixels = [_blank(len(indices), 3, 384, 384)]
    text = processor.replace_video_token({"pixel_values_videos": pixels}, 0)
    return {"indices": [int(i) for i in indices], "size": [384, 384], "tokens": text.count("<V>")}


def _smolvlm(case: dict[str, Any]) -> dict[str, Any]:
    config = case["config"]
    video = _bare(SmolVLMVideoProcessor, num_frames=config["max_frames"], fps=config["fps"], max_image_size=config["max_image_size"])
    indices = [int(i) for i in video.sample_frames(_metadata(case), num_frames=case["max_frames"], fps=case["fps"])]
    frames = _blank(len(indices), 3, case["height"], case["width"])
    resized = video.resize(frames, size=SizeDict(longest_edge=config["video_size"]))
    metadata = _metadata(case)
    metadata.frames_indices = list(indices)
    marks = {"image_token": "<I>", "fake_image_token": "<F>", "global_image_token": "<G>"}
    processor = _bare(SmolVLMProcessor, image_seq_len=config["image_seq_len"], **marks)
    text = processor.replace_video_token({"video_metadata": [metadata]}, 0)
    tokens = sum(text.count(mark) for mark in marks.values())
    return {"indices": indices, "size": list(resized.shape[-2:]), "tokens": tokens}


def reference(case: dict[str, Any]) -> dict[str, Any]:
    family = case["family"]
    if family in ("qwen2-vl", "qwen2.5-vl"):
        return _grid_family(case, Qwen2VLVideoProcessor, Qwen2VLProcessor)
    if family == "qwen3-vl":
        return _grid_family(case, Qwen3VLVideoProcessor, Qwen3VLProcessor)
    if family == "glm4v":
        return _grid_family(case, Glm4vVideoProcessor, Glm4vProcessor)
    if family == "llava-onevision":
        return _onevision(case)
    if family == "smolvlm":
        return _smolvlm(case)
    raise ValueError(family)


def _glm_tokens(self: Any, timestamp_sec: float, num_image_tokens: int = 1) -> str:
    return self.image_token * num_image_tokens


Glm4vProcessor.replace_frame_token_id = _glm_tokens  # only the frames' placeholders are counted here


def guarded(case: dict[str, Any]) -> dict[str, Any]:
    """The reference's answer, or the error it raises for a video it refuses."""
    try:
        return reference(case)
    except (ValueError, ZeroDivisionError, RuntimeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    json.dump([guarded(case) for case in json.load(sys.stdin)], sys.stdout)
