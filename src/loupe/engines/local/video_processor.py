"""Loupe's video processor: frames a video plan sampled and sized, as the family's model inputs.

transformers' video processors need torchvision, which Loupe does without. They sample frames,
resize them, rescale and normalise them, and lay them out for the model. Loupe's media layer
already samples and sizes the frames (the family's rules pick the frames and a size the
reference processor keeps), so what is left is the rest, computed here to the same values
(tests compare them with the reference processors' own code):

- grid families (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4.1V): `pixel_values_videos`, the frames
  padded to a multiple of the temporal patch by repeating the last, cut into merged patches,
  and `video_grid_thw`;
- LLaVA-OneVision: `pixel_values_videos` [videos, frames, 3, height, width];
- SmolVLM: frames are images to its model: `pixel_values` [videos, frames, 3, side, side] and
  `pixel_attention_mask`, shorter videos padded with blank frames the model drops.

The processor's own `replace_video_token` then writes each video's placeholders (and the
timestamps of Qwen3-VL, GLM-4V and SmolVLM) from this output and the `video_metadata` it is
handed, so prompts and counts are the HF processor's. Frames given as `stand_in` tensors (no
memory behind them) give the grids and metadata without pixel values: a prompt whose videos the
engine has already encoded needs no pixels, and a count needs none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import numpy as np
import torch
from transformers import ProcessorMixin
from transformers.image_processing_base import BatchFeature
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata, make_batched_videos

from loupe.domain import VideoFrames
from loupe.errors import InvalidRequest, ModelLoadError, VideoCombinationNotSupported
from loupe.models import config as cfg

__all__ = ["LoupeVideoProcessor", "accepting_loupe_video", "metadata_of", "stand_in"]

P = TypeVar("P", bound=ProcessorMixin)

_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True, slots=True)
class _Defaults:
    """A family's video processor class defaults (transformers 5.25)."""

    layout: str  # "grid", "frames" or "smolvlm"
    mean_std: tuple[tuple[float, ...], tuple[float, ...]]
    patch_size: int | None = None
    merge_size: int | None = None
    temporal_patch_size: int | None = None


_FAMILIES: Mapping[str, _Defaults] = {
    "qwen2-vl": _Defaults("grid", _CLIP, 14, 2, 2),
    "qwen2.5-vl": _Defaults("grid", _CLIP, 14, 2, 2),
    "qwen3-vl": _Defaults("grid", _HALF, 16, 2, 2),
    "glm4v": _Defaults("grid", _CLIP, 14, 2, 2),
    "llava-onevision": _Defaults("frames", _CLIP),
    "smolvlm": _Defaults("smolvlm", _HALF),
}


@dataclass(frozen=True, slots=True)
class FrameValues:
    """Rescale and normalisation as transformers' torchvision backend computes them for video:
    fused, `(v - mean / factor) / (std / factor)` in float32 (mean and std as float32 times
    the float32 of 1 / factor), or each alone when the other is off."""

    rescale_factor: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def apply(self, pixels: np.ndarray, out: np.ndarray) -> None:
        """Write uint8 `pixels` [..., 3, values] into float32 `out` of the same shape."""
        np.copyto(out, pixels, casting="unsafe")
        if self.mean is None or self.std is None:
            if self.rescale_factor is not None:
                np.multiply(out, np.float32(self.rescale_factor), out=out)
            return
        mean, std = np.array(self.mean, dtype=np.float32), np.array(self.std, dtype=np.float32)
        if self.rescale_factor is not None:
            scale = np.float32(1.0 / self.rescale_factor)
            mean, std = mean * scale, std * scale
        np.subtract(out, mean[:, None], out=out)
        np.divide(out, std[:, None], out=out)


class LoupeVideoProcessor(VideoProcessorMixin):
    """Fills a processor's `video_processor` slot. `family` None: a family without video,
    whose processor still has the slot (it then refuses any video).

    Carries what processors read of their video processor: `merge_size`,
    `temporal_patch_size` and `patch_size` (Qwen-style placeholders), and `num_frames` and
    `fps` (SmolVLM's `apply_chat_template` forwards them; None, as frames come sampled).
    """

    num_frames: int | None = None
    fps: float | None = None

    def __init__(self, family: str | None, config: Mapping[str, Any], image_processor: Any = None) -> None:
        super().__init__()
        defaults = _FAMILIES.get(family) if family is not None else None
        self.family = family if defaults is not None else None
        self.layout = defaults.layout if defaults is not None else None
        names = ("patch_size", "merge_size", "temporal_patch_size")
        geometry: list[int | None]
        if defaults is None:  # the image processor's, which processors read off this slot
            geometry = [getattr(image_processor, name, None) for name in names]
        else:
            given = (defaults.patch_size, defaults.merge_size, defaults.temporal_patch_size)
            geometry = [None if d is None else cfg.positive_int(config, n, d) for n, d in zip(names, given, strict=True)]
        self.patch_size, self.merge_size, self.temporal_patch_size = geometry
        self.values = _values(config, defaults.mean_std) if defaults is not None else None

    def __call__(self, videos: Any, **kwargs: Any) -> BatchFeature:  # type: ignore[override]
        return self.preprocess(videos, **kwargs)

    def preprocess(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """The family's video inputs for `videos` (uint8 [frames, height, width, 3] arrays or
        tensors, or `stand_in`s), with `video_metadata` (one per video) passed through when
        `return_metadata`. Raises InvalidRequest for a family without video."""
        if self.layout is None:
            self._refuse()
        batch = make_batched_videos(videos)
        if self.layout == "grid":
            data = self._grid(batch)
        elif self.layout == "frames":
            data = {"pixel_values_videos": self._stacked(batch)}
        else:
            data = self._smolvlm(batch)
        metadata = kwargs.get("video_metadata")
        if kwargs.get("return_metadata") and metadata is not None:
            data["video_metadata"] = list(metadata)
        return BatchFeature(data, skip_tensor_conversion=["video_metadata"])

    def to_dict(self) -> dict[str, Any]:
        """What its repr shows (transformers logs processors as JSON)."""
        values = self.values
        return {
            "video_processor_type": type(self).__name__,
            "family": self.family,
            "patch_size": self.patch_size,
            "merge_size": self.merge_size,
            "temporal_patch_size": self.temporal_patch_size,
            "rescale_factor": values.rescale_factor if values else None,
            "image_mean": values.mean if values else None,
            "image_std": values.std if values else None,
        }

    def get_num_of_video_patches(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("Loupe counts video tokens with loupe.models.video_catalog")

    def _grid(self, videos: list[Any]) -> dict[str, Any]:
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        assert p is not None and m is not None and t is not None
        grids = []
        for video in videos:
            frames, height, width = int(video.shape[0]), int(video.shape[1]), int(video.shape[2])
            if height % (p * m) or width % (p * m):
                raise ValueError(f"video frames of {width}x{height} are not a multiple of {p * m} on each side")
            grids.append((-(-frames // t), height // p, width // p))
        data: dict[str, Any] = {"video_grid_thw": torch.tensor(grids, dtype=torch.int64).view(-1, 3)}
        if not any(is_stand_in(v) for v in videos):
            rows = sum(g[0] * g[1] * g[2] for g in grids)
            out = np.empty((rows, 3 * t * p * p), dtype=np.float32)
            start = 0
            for video, (gt, gh, gw) in zip(videos, grids, strict=True):
                self._patches_into(_array(video), out[start : start + gt * gh * gw], gt)
                start += gt * gh * gw
            data["pixel_values_videos"] = torch.from_numpy(out)
        return data

    def _patches_into(self, frames: np.ndarray, out: np.ndarray, grid_t: int) -> None:
        """The processor's layout: temporal groups, then merged groups of patches row-major,
        patches row-major within a group, each flattened as (channel, frame, row, column)."""
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        assert p is not None and m is not None and t is not None and self.values is not None
        if len(frames) < grid_t * t:  # the last frame repeated up to a whole temporal patch
            frames = np.concatenate([frames, np.repeat(frames[-1:], grid_t * t - len(frames), axis=0)])
        _, height, width, _ = frames.shape
        rows, cols = height // (p * m), width // (p * m)
        split = frames.reshape(grid_t, t, rows, m, p, cols, m, p, 3)
        ordered = np.ascontiguousarray(split.transpose(0, 2, 5, 3, 6, 8, 1, 4, 7))
        shape = (-1, 3, t * p * p)
        self.values.apply(ordered.reshape(shape), out.reshape(shape))

    def _normalised(self, video: Any) -> torch.Tensor:
        """[frames, 3, height, width] float32; a stand-in stays one (no memory)."""
        frames, height, width = int(video.shape[0]), int(video.shape[1]), int(video.shape[2])
        if is_stand_in(video):
            return torch.zeros((1, 1, 1, 1)).expand(frames, 3, height, width)
        assert self.values is not None
        chw = np.ascontiguousarray(_array(video).transpose(0, 3, 1, 2))
        out = np.empty(chw.shape, dtype=np.float32)
        self.values.apply(chw.reshape(frames, 3, -1), out.reshape(frames, 3, -1))
        return torch.from_numpy(out)

    def _stacked(self, videos: list[Any]) -> torch.Tensor:
        counts = {int(v.shape[0]) for v in videos}
        if len(counts) > 1:
            raise VideoCombinationNotSupported(
                "this model takes several videos in one request only when each samples as many frames as the "
                f"others (here {', '.join(map(str, sorted(counts)))}); send them in separate requests or set "
                "the same max_frames and fps on videos of the same length",
                param="messages",
            )
        return torch.stack([self._normalised(v) for v in videos])

    def _smolvlm(self, videos: list[Any]) -> dict[str, Any]:
        most = max(int(v.shape[0]) for v in videos)
        rows = []
        for video in videos:
            frames = self._normalised(video)
            if len(frames) < most:  # blank frames: the model drops images that are all zeros
                frames = torch.cat([frames, frames.new_zeros((most - len(frames), *frames.shape[1:]))])
            rows.append(frames)
        pixels = torch.stack(rows)
        mask = torch.ones((1, 1, 1, 1), dtype=torch.int64).expand(len(rows), most, *pixels.shape[-2:])
        return {"pixel_values": pixels, "pixel_attention_mask": mask}

    @staticmethod
    def _refuse() -> NoReturn:
        raise InvalidRequest("this model does not take video input; send the frames as images")


def _values(config: Mapping[str, Any], defaults: tuple[tuple[float, ...], tuple[float, ...]]) -> FrameValues:
    rescale = cfg.flag(config, "do_rescale", True)
    normalise = cfg.flag(config, "do_normalize", True)
    factor = config.get("rescale_factor", 1 / 255)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
        raise ModelLoadError(f"Processor setting 'rescale_factor' must be a positive number, got {factor!r}.")
    return FrameValues(
        rescale_factor=float(factor) if rescale else None,
        mean=_channels(config, "image_mean", defaults[0]) if normalise else None,
        std=_channels(config, "image_std", defaults[1]) if normalise else None,
    )


def _channels(config: Mapping[str, Any], key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    value = config.get(key)
    if value is None:
        return default
    values = [value] * 3 if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(values, list | tuple) or len(values) != 3 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise ModelLoadError(f"Processor setting {key!r} must be a number or three numbers, got {value!r}.")
    if key == "image_std" and not all(values):
        raise ModelLoadError("Processor setting 'image_std' must not be zero.")
    return tuple(float(v) for v in values)


def _array(video: Any) -> np.ndarray:
    frames = video.numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [frames, height, width, 3], got {frames.dtype} {frames.shape}")
    return frames


def stand_in(frames: VideoFrames) -> torch.Tensor:
    """A uint8 [frames, height, width, 3] tensor of a plan's sampled frames, no memory behind it."""
    return torch.zeros((1, 1, 1, 1), dtype=torch.uint8).expand(len(frames.indices), frames.height, frames.width, 3)


def is_stand_in(video: Any) -> bool:
    return isinstance(video, torch.Tensor) and video.dim() == 4 and all(s == 0 for s in video.stride())


def metadata_of(frames: VideoFrames) -> VideoMetadata:
    """The video's metadata as transformers' own decoder reports it, with the sampled frames'
    indices (a fresh object: Qwen3-VL's processor pads the index list in place)."""
    return VideoMetadata(
        total_num_frames=frames.frame_count,
        fps=frames.video_fps,
        width=frames.original_width,
        height=frames.original_height,
        duration=frames.duration_s,
        video_backend="pyav",
        frames_indices=list(frames.indices),
    )


class _AcceptsLoupeVideo:
    """Lets ProcessorMixin's init type check pass Loupe's video processor, before it looks
    anything up: the check resolves "VideoProcessorMixin" through transformers' top-level
    exports, which omit it when torchvision is missing, so the stock check crashes."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> type:
        if isinstance(argument, LoupeVideoProcessor):
            return LoupeVideoProcessor
        checked: type = super().check_argument_for_proper_class(  # type: ignore[misc]
            argument_name, argument
        )
        return checked


def accepting_loupe_video(cls: type[P]) -> type[P]:
    """A subclass of processor class `cls`, under the same name, whose init takes Loupe's video processor."""
    namespace = {"__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (_AcceptsLoupeVideo, cls), namespace)
