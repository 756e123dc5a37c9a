"""Sampling decodes only the frames it needs, the right ones, and refuses broken files quickly."""

from __future__ import annotations

import io
from dataclasses import replace
from collections.abc import Iterator

import av
from av.container import InputContainer
import numpy as np
import pytest
from PIL import Image

from loupe.errors import InvalidVideoFormat
from loupe.media.video_limits import VideoLimits
from loupe.media.video_probe import probe_video
from loupe.media.video_sample import sample_video
from tests.video_clips import clip

LIMITS = VideoLimits()


def every_frame(data: bytes) -> list[np.ndarray]:
    """The whole stream, decoded in order: what sampling must agree with."""
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("name", ["mp4", "webm", "gif", "mov", "long"])
def test_sampled_frames_are_the_stream_frames_at_those_indices(name: str) -> None:
    data = clip(name).data
    header = probe_video(data, LIMITS)
    reference = every_frame(data)
    assert len(reference) == header.frame_count
    indices = sorted({0, 1, header.frame_count // 3, header.frame_count // 2, header.frame_count - 1})
    indices = indices[::-1] + [indices[0]]  # any order, repeats allowed
    frames = sample_video(data, header, indices, (header.width, header.height), LIMITS)
    assert frames.shape == (len(indices), header.height, header.width, 3)
    for got, index in zip(frames, indices, strict=True):
        np.testing.assert_array_equal(got, reference[index])


def test_animated_webp_frames() -> None:
    data = clip("webp").data
    header = probe_video(data, LIMITS)
    with Image.open(io.BytesIO(data)) as image:
        image.seek(4)
        fifth = np.asarray(image.convert("RGB"))
    frames = sample_video(data, header, [4], (header.width, header.height), LIMITS)
    np.testing.assert_array_equal(frames[0], fifth)


def test_frames_are_resized_to_the_planned_size_with_bicubic() -> None:
    data = clip("zoom").data
    header = probe_video(data, LIMITS)
    frames = sample_video(data, header, [7], (112, 56), LIMITS)
    expected = Image.fromarray(every_frame(data)[7]).resize((112, 56), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(frames[0], np.asarray(expected))


def test_sparse_samples_seek_rather_than_decode_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    data = clip("long").data  # 600 frames, a keyframe every 2 s (60 frames)
    header = probe_video(data, LIMITS)
    seen: list[int] = []
    real_decode = InputContainer.decode

    def counting(self: InputContainer, *args: object, **kwargs: object) -> Iterator[object]:
        for frame in real_decode(self, *args, **kwargs):  # type: ignore[arg-type]
            seen.append(1)
            yield frame

    monkeypatch.setattr(InputContainer, "decode", counting)
    sample_video(data, header, [100, 400, 599], (64, 48), LIMITS)
    assert 0 < len(seen) <= 3 * 60  # each target reached from the keyframe before it


@pytest.mark.parametrize("name", ["mp4", "webm", "long"])
def test_a_truncated_video_is_refused_not_padded(name: str) -> None:
    data = clip(name).data
    header = probe_video(data, LIMITS)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(InvalidVideoFormat):
        sample_video(cut, header, [0, header.frame_count - 1], (32, 32), LIMITS)


@pytest.mark.parametrize("seed", range(6))
def test_corrupt_bytes_give_frames_or_a_refusal_never_a_crash(seed: int) -> None:
    data = bytearray(clip("mp4").data)
    rng = np.random.default_rng(seed)
    for at in rng.integers(len(data) // 10, len(data), size=40):
        data[at] = int(rng.integers(0, 256))
    try:
        header = probe_video(bytes(data), LIMITS)
        frames = sample_video(bytes(data), header, [0, header.frame_count // 2, header.frame_count - 1], (32, 24), LIMITS)
    except InvalidVideoFormat:
        return
    assert frames.shape == (3, 24, 32, 3)


def test_a_video_that_takes_too_long_is_refused() -> None:
    data = clip("long").data
    header = probe_video(data, LIMITS)
    with pytest.raises(InvalidVideoFormat, match="too long"):
        sample_video(data, header, list(range(0, 600, 7)), (64, 48), VideoLimits(decode_timeout_s=1e-6))


def test_metadata_that_promises_more_than_the_stream_holds_is_refused() -> None:
    data = clip("long").data  # 20 s at 30 fps
    header = probe_video(data, LIMITS)
    lying = replace(header, fps=1.0, duration_s=600.0)  # frame 599 would be at 599 s
    with pytest.raises(InvalidVideoFormat, match="truncated"):
        sample_video(data, lying, [0, 599], (64, 48), LIMITS)
