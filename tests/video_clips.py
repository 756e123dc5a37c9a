"""Test videos made with PyAV from the shared photos: pans and zooms of known length, rate and
size, and broken ones made from them. Made once per session (`clips` fixture in conftest)."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "photos"


@dataclass(frozen=True, slots=True)
class Clip:
    """A made video and what it was made as."""

    data: bytes
    width: int
    height: int
    fps: int
    frames: int


def frame_of(photo: Image.Image, index: int, frames: int, width: int, height: int, motion: str) -> np.ndarray:
    """Frame `index`: a window panning left to right over the photo, or zooming into it."""
    pw, ph = photo.size
    if motion == "pan":
        box_w = pw * 0.6
        left = (pw - box_w) * index / max(frames - 1, 1)
        box: tuple[float, float, float, float] = (left, 0, left + box_w, ph)
    else:
        scale = 1 - 0.5 * index / max(frames - 1, 1)
        w, h = pw * scale, ph * scale
        box = ((pw - w) / 2, (ph - h) / 2, (pw + w) / 2, (ph + h) / 2)
    return np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR, box=box))


def encode(
    width: int,
    height: int,
    fps: int,
    seconds: float,
    *,
    container: str = "mp4",
    codec: str = "libx264",
    photo: str = "boats.jpg",
    motion: str = "pan",
    options: dict[str, str] | None = None,
    rotation: int = 0,
) -> Clip:
    """A clip of `seconds` at `fps`, `width` x `height`; MP4s have their index first (faststart)
    so a truncation cuts frames, not the index. `rotation` is a display matrix's turn (degrees
    counterclockwise), as a phone writes for a portrait clip."""
    source = _small(Image.open(PHOTOS / photo).convert("RGB"), width, height)
    frames = round(fps * seconds)
    mux_options = {"movflags": "faststart"} if container == "mp4" else {}
    # A file, not a buffer: faststart moves the index by rewriting the file.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container}"
        _write(path, container, codec, source, width, height, fps, frames, motion, mux_options, options or {}, rotation)
        data = path.read_bytes()
    return Clip(data, width, height, fps, frames)


def _write(
    path: Path,
    container: str,
    codec: str,
    source: Image.Image,
    width: int,
    height: int,
    fps: int,
    frames: int,
    motion: str,
    mux_options: dict[str, str],
    options: dict[str, str],
    rotation: int = 0,
) -> None:
    with av.open(str(path), "w", format=container, options=mux_options) as out:
        stream = cast(av.VideoStream, out.add_stream(codec, rate=fps))
        stream.width, stream.height = width, height
        if rotation:
            stream.set_display_rotation(rotation)
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        preset = {"preset": "veryfast"} if codec == "libx264" else {}  # B-frames still, in less time
        stream.options = {"g": str(2 * fps), **preset, **options}  # a keyframe every 2 s
        for i in range(frames):
            rgb = frame_of(source, i, frames, width, height, motion)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def animated_webp(width: int, height: int, frames: int, interval_ms: int) -> Clip:
    source = _small(Image.open(PHOTOS / "zidane.jpg").convert("RGB"), width, height)
    images = [Image.fromarray(frame_of(source, i, frames, width, height, "zoom")) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "WEBP", save_all=True, append_images=images[1:], duration=interval_ms, loop=0, lossless=True)
    return Clip(buffer.getvalue(), width, height, 1000 // interval_ms, frames)


def _small(photo: Image.Image, width: int, height: int) -> Image.Image:
    """The photo at twice the frame size: framing it per frame then costs little."""
    scale = max(2 * width / photo.width, 2 * height / photo.height)
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BILINEAR)


@cache
def clip(name: str) -> Clip:
    """The session's named clips, each made once."""
    made = {
        "mp4": lambda: encode(320, 240, 25, 4.0),
        "zoom": lambda: encode(256, 192, 10, 3.0, motion="zoom", photo="zidane.jpg"),
        "webm": lambda: encode(160, 96, 10, 2.0, container="webm", codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"}),
        "gif": lambda: encode(96, 64, 10, 1.5, container="gif", codec="gif"),
        "mov": lambda: encode(128, 96, 12, 1.0, container="mov"),
        "webp": lambda: animated_webp(96, 64, 6, 100),
        "long": lambda: encode(64, 48, 30, 20.0),
        "portrait": lambda: encode(160, 96, 10, 1.0, rotation=90),  # shown 96 x 160, as a phone's
    }
    return made[name]()
