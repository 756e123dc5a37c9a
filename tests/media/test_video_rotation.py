"""Phone videos: the display matrix of an MP4/MOV track turns the frames upright, read from the
track header without decoding, and the plan and the sampled frames follow it."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from loupe.media.video_limits import VideoLimits
from loupe.media.video_probe import probe_video
from loupe.media.video_rotation import mp4_rotation, upright
from loupe.media.video_sample import sample_video
from tests.video_clips import clip, encode


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_the_header_gives_the_turn_that_ffmpeg_applies(rotation: int, container: str) -> None:
    data = encode(64, 48, 10, 0.3, container=container, rotation=rotation).data
    assert mp4_rotation(data) == rotation
    with av.open(io.BytesIO(data)) as opened:
        assert next(opened.decode(video=0)).rotation % 360 == rotation  # FFmpeg's own reading


def test_a_portrait_clip_is_planned_and_sampled_upright() -> None:
    portrait = clip("portrait")
    header = probe_video(portrait.data, VideoLimits())
    assert (header.width, header.height, header.rotation) == (96, 160, 90)
    frames = sample_video(portrait.data, header, [0, 5], (96, 160), VideoLimits())
    assert frames.shape == (2, 160, 96, 3)
    with av.open(io.BytesIO(portrait.data)) as opened:
        stored = next(opened.decode(video=0)).to_ndarray(format="rgb24")
    assert stored.shape == (96, 160, 3)
    assert np.array_equal(frames[0], np.rot90(stored))  # at its own size, no resize: the turn alone


def test_what_is_not_a_quarter_turn_or_not_readable_is_none() -> None:
    assert mp4_rotation(clip("webm").data) == 0
    assert mp4_rotation(clip("mp4").data) == 0
    assert mp4_rotation(b"") == mp4_rotation(b"\x00\x00\x00\x01moov") == 0
    data = bytearray(encode(64, 48, 10, 0.3, rotation=90).data)
    at = data.index(b"tkhd") + 4 + 4 + 20 + 16  # the matrix of a version-0 track header
    struct.pack_into(">ii", data, at, -65536, 0)  # a: -1, b: 0, c: 0, d: 1: a mirror, not a turn
    struct.pack_into(">ii", data, at + 12, 0, 65536)
    assert mp4_rotation(bytes(data)) == 0
    struct.pack_into(">ii", data, at + 12, 0, -65536)  # d: -1 too: a half turn
    assert mp4_rotation(bytes(data)) == 180
    assert upright(90, 160, 96) == (96, 160) and upright(180, 160, 96) == (160, 96)
