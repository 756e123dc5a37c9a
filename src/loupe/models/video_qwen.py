"""Video rules of the families whose frames become merged-patch grids: Qwen2-VL and Qwen2.5-VL
(`Qwen2VLVideoProcessor`), Qwen3-VL (`Qwen3VLVideoProcessor`) and GLM-4.1V (`Glm4vVideoProcessor`).

Each samples frames its own way, resizes every frame alike to multiples of
`factor = patch_size * merge_size` (Qwen3-VL and GLM-4V count the pixel bounds over all the
frames), pads the frames to a multiple of `temporal_patch_size` by repeating the last, and
makes (frames / temporal_patch_size) x (h / factor) x (w / factor) placeholders. `detail` sizes
each frame as it would an image (`low`: at most 16 x 16 tokens; `auto`: within the per-frame
budget), settled to a size the processor keeps.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import InvalidImageSize, InvalidRequest, InvalidVideoFormat
from loupe.models import config as cfg
from loupe.models.resize import check_aspect_ratio, planned, round_to_grid, settle
from loupe.models.video import Sampling, VideoPlan, VideoShape

SampleFn = Callable[["GridSettings", VideoShape, Sampling], list[int]]


@dataclass(frozen=True, slots=True)
class GridSettings:
    """A video processor's settings that decide frames and geometry (class defaults per family)."""

    min_pixels: int
    max_pixels: int
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_frames: int = 4
    max_frames: int = 768
    fps: float | None = None
    frames_in_bounds: bool = False  # Qwen3-VL, GLM-4V: pixel bounds count every frame
    grows_small_sides: bool = False  # Qwen3-VL, GLM-4V: a side under one factor grows first
    cap_pixels_per_frame: bool = False
    max_video_tokens: int = 128000
    max_duration: int = 300  # GLM-4V

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size


def _read(config: Mapping[str, Any], defaults: GridSettings) -> GridSettings:
    """As the video processor's init reads its config: `min_pixels`/`max_pixels` override `size`."""
    low = cfg.edge(config, "size", "shortest_edge", defaults.min_pixels)
    high = cfg.edge(config, "size", "longest_edge", defaults.max_pixels)
    fps = config.get("fps", defaults.fps)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0):
        fps = defaults.fps
    return GridSettings(
        min_pixels=cfg.positive_int(config, "min_pixels", low),
        max_pixels=cfg.positive_int(config, "max_pixels", high),
        patch_size=cfg.positive_int(config, "patch_size", defaults.patch_size),
        merge_size=cfg.positive_int(config, "merge_size", defaults.merge_size),
        temporal_patch_size=cfg.positive_int(config, "temporal_patch_size", defaults.temporal_patch_size),
        min_frames=cfg.positive_int(config, "min_frames", defaults.min_frames),
        max_frames=cfg.positive_int(config, "max_frames", defaults.max_frames),
        fps=float(fps) if fps is not None else None,
        frames_in_bounds=defaults.frames_in_bounds,
        grows_small_sides=defaults.grows_small_sides,
        cap_pixels_per_frame=cfg.flag(config, "cap_pixels_per_frame", False),
        max_video_tokens=cfg.positive_int(config, "max_video_tokens", defaults.max_video_tokens),
        max_duration=cfg.positive_int(config, "max_duration", defaults.max_duration),
    )


QWEN2_VL_VIDEO = GridSettings(128 * 28 * 28, 28 * 28 * 768, 14, 2, 2)
QWEN3_VL_VIDEO = GridSettings(
    128 * 32 * 32, 32 * 32 * 768, 16, 2, 2, fps=2.0, frames_in_bounds=True, grows_small_sides=True, max_video_tokens=768
)
GLM4V_VIDEO = GridSettings(112 * 112, 28 * 28 * 2 * 30000, 14, 2, 2, fps=2.0, frames_in_bounds=True, grows_small_sides=True)


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def qwen2_indices(settings: GridSettings, shape: VideoShape, sampling: Sampling) -> list[int]:
    """`Qwen2VLVideoProcessor.sample_frames` with `fps`: a multiple of the temporal patch, evenly
    spaced (`torch.arange(0, total, total / n).int()`, in float32)."""
    total, patch = shape.frame_count, settings.temporal_patch_size
    most = math.floor(min(sampling.max_frames, settings.max_frames, total) / patch) * patch
    wanted = min(max(total / shape.fps * sampling.fps, settings.min_frames), most, total)
    n = math.floor(wanted / patch) * patch
    if n < 1:
        raise InvalidVideoFormat(f"The video has {total} frames; this model needs at least {patch}.")
    step = total / n
    return [int(_float32(i * step)) for i in range(math.ceil(total / step))]


def qwen3_indices(settings: GridSettings, shape: VideoShape, sampling: Sampling) -> list[int]:
    """`Qwen3VLVideoProcessor.sample_frames`: `linspace(0, total - 1, n)` rounded."""
    total = shape.frame_count
    most = min(sampling.max_frames, settings.max_frames)
    n = min(max(int(total / shape.fps * sampling.fps), settings.min_frames), most, total)
    return _linspace_rounded(total - 1, n)


def glm4v_indices(settings: GridSettings, shape: VideoShape, sampling: Sampling) -> list[int]:
    """`Glm4vVideoProcessor.sample_frames`: `fps` frames a second up to `max_duration` seconds
    (evenly spread over longer videos), duplicates dropped, the last repeated to an even count.
    A request's `max_frames` lowers the rate so that at most that many (plus one) are taken."""
    last, duration = shape.frame_count - 1, shape.duration_s
    fps = sampling.fps
    if math.floor(min(duration, settings.max_duration) * fps) > sampling.max_frames:
        fps = sampling.max_frames / min(duration, settings.max_duration)
    if duration <= settings.max_duration:
        n = max(math.floor(duration * fps), 1)
        indices = [min(last, math.ceil(i * shape.fps / fps)) for i in range(n)]
    else:
        n = int(settings.max_duration * fps)
        if n >= shape.frame_count:
            indices = list(range(shape.frame_count))
        else:
            seconds = [duration * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
            indices = [min(last, math.ceil(t * shape.fps)) for t in seconds]
    unique = list(dict.fromkeys(indices))
    return unique + unique[-1:] if len(unique) % 2 else unique


def _linspace_rounded(stop: int, n: int) -> list[int]:
    if n == 1:
        return [0]
    step = stop / (n - 1)
    return [round(i * step) for i in range(n - 1)] + [stop]


def smart_resize(frames: int, height: int, width: int, settings: GridSettings, max_pixels: int) -> tuple[int, int]:
    """The family's `smart_resize` for `frames` frames of `height` x `width`, float for float.

    Qwen3-VL and GLM-4V compare the bounds with the frames rounded to the temporal patch but
    scale by the frames as they are; Qwen2-VL bounds one frame."""
    factor, low = settings.factor, settings.min_pixels
    if not settings.frames_in_bounds:
        check_aspect_ratio(height, width)
        return round_to_grid(height, width, factor, low, max_pixels)
    if settings.grows_small_sides and (height < factor or width < factor):
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    check_aspect_ratio(height, width)
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(frames / settings.temporal_patch_size) * settings.temporal_patch_size
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < low:
        beta = math.sqrt(low / (frames * height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def max_pixels_for(frames: int, settings: GridSettings) -> int:
    """The upper pixel bound the processor's `resize` uses, with `cap_pixels_per_frame` if set."""
    if not settings.cap_pixels_per_frame:
        return settings.max_pixels
    factor, floor = settings.factor, int(settings.min_pixels * 1.05)
    if settings.frames_in_bounds:  # Qwen3-VL: a per-frame cap times the frames
        per_frame = max(min(settings.max_video_tokens * factor * factor, settings.max_pixels // frames), floor)
        return per_frame * frames
    total = int(settings.max_video_tokens * factor * factor * 0.9)
    return max(min(settings.max_pixels, total * settings.temporal_patch_size // frames), floor)


@dataclass(frozen=True, slots=True)
class GridVideoRules:
    """One family's video rules: its sampling, its resize, and the grid's tokens."""

    family: str
    defaults: GridSettings
    sample: SampleFn

    def settings(self, config: Mapping[str, Any]) -> GridSettings:
        return _read(config, self.defaults)

    def default_sampling(self, settings: GridSettings) -> tuple[float | None, int]:
        return settings.fps, settings.max_frames

    def plan(
        self, shape: VideoShape, sampling: Sampling, detail: Detail | None, settings: GridSettings, budget: int
    ) -> VideoPlan:
        indices = self.sample(settings, shape, sampling)
        frames = len(indices)
        if settings.frames_in_bounds and frames < settings.temporal_patch_size:
            raise InvalidVideoFormat(f"The video gives {frames} frame; this model needs at least {settings.temporal_patch_size}.")
        bound = max_pixels_for(frames, settings)

        def settled(height: int, width: int, _: GridSettings) -> tuple[int, int]:
            size = settle(height, width, lambda h, w: smart_resize(frames, h, w, settings, bound))
            if size is None:
                raise InvalidImageSize(f"A frame of {width}x{height} cannot be sized within this model's limits.")
            return size

        try:
            frame = planned(detail, (shape.height, shape.width), settled(shape.height, shape.width, settings), settings, budget, settled)
        except InvalidImageSize as exc:
            raise InvalidRequest(exc.message.replace("An image", "A video frame")) from None
        groups = -(-frames // settings.temporal_patch_size)
        return VideoPlan(tuple(indices), frame.resized_width, frame.resized_height, frame.detail_applied, groups * frame.tokens)
