"""Each family's video rules equal its reference processor's algorithm (transformers' own code,
run in a child process: see video_reference) for many lengths, rates, sizes and settings."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from typing import Any

import pytest

from loupe.domain import Detail
from loupe.errors import InvalidRequest, LoupeError, TooManyVideoFrames, VideoNotSupported
from loupe.models.video import VideoShape
from loupe.models.video_catalog import VIDEO_FAMILIES, refuse_video, video_counter_for

SHAPES = [
    (1, 30.0, 320, 240),
    (7, 25.0, 64, 48),
    (48, 24.0, 640, 360),
    (100, 25.0, 320, 240),
    (151, 29.97, 1280, 720),
    (300, 30.0, 1920, 1080),
    (601, 59.94, 1080, 1920),
    (1800, 30.0, 1920, 1080),
    (9000, 25.0, 854, 480),
    (12, 12.0, 20, 900),
]
RATES = [(0.5, 8), (1.0, 32), (2.0, 256), (4.0, 64)]

# Each family: the video processor settings of its reference checkpoint, as its config says them,
# and Loupe's reading of the same config.
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "qwen2-vl": [
        {"size": {"shortest_edge": 100352, "longest_edge": 602112}, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2, "min_frames": 4, "max_frames": 768},
        {"size": {"shortest_edge": 3136, "longest_edge": 12845056}, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2, "min_frames": 4, "max_frames": 768, "cap_pixels_per_frame": True, "max_video_tokens": 128000},
    ],
    "qwen3-vl": [
        {"size": {"shortest_edge": 131072, "longest_edge": 786432}, "patch_size": 16, "merge_size": 2, "temporal_patch_size": 2, "min_frames": 4, "max_frames": 768, "fps": 2},
        {"size": {"shortest_edge": 4096, "longest_edge": 25165824}, "patch_size": 16, "merge_size": 2, "temporal_patch_size": 2, "min_frames": 4, "max_frames": 768, "fps": 2, "cap_pixels_per_frame": True, "max_video_tokens": 768},
    ],
    "glm4v": [
        {"size": {"shortest_edge": 12544, "longest_edge": 47040000}, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2, "fps": 2, "max_duration": 300},
    ],
}


def cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (frames, video_fps, width, height), (fps, max_frames) in itertools.product(SHAPES, RATES):
        base = {"frames": frames, "video_fps": video_fps, "width": width, "height": height, "fps": fps, "max_frames": max_frames}
        for family, configs in CONFIGS.items():
            for config in configs:
                if family == "glm4v" and (frames / video_fps) * fps > max_frames:
                    continue  # GLM-4V takes no frame cap; Loupe lowers the rate (tested below)
                reference = {**config, "max_frames": min(max_frames, config.get("max_frames", 768))}
                out.append({**base, "family": family, "config": reference, "loupe": config})
        out.append({**base, "family": "llava-onevision", "num_image_tokens": 729, "loupe": {}})
        smol = {"max_frames": max_frames, "fps": fps, "max_image_size": {"longest_edge": 512}, "video_size": 2048, "image_seq_len": 64}
        out.append({**base, "family": "smolvlm", "config": smol, "loupe": {"video_sampling": {"fps": fps, "max_frames": max_frames}, "max_image_size": {"longest_edge": 512}, "image_seq_len": 64}})
    return out


@pytest.fixture(scope="module")
def references() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    made = cases()
    ran = subprocess.run(
        [sys.executable, "-m", "tests.models.video_reference"],
        input=json.dumps(made), capture_output=True, text=True, check=True, timeout=120,
    )
    return list(zip(made, json.loads(ran.stdout), strict=True))


def loupe_plan(case: dict[str, Any]) -> dict[str, Any] | str:
    counter = video_counter_for(case["family"], case["loupe"], budget=1024, max_frames=768)
    assert counter is not None
    shape = VideoShape(case["frames"], case["video_fps"], case["width"], case["height"])
    plan = counter.plan(shape, case["fps"], case["max_frames"], None)
    return {"indices": list(plan.indices), "size": [plan.height, plan.width], "tokens": plan.tokens}


def test_every_family_equals_its_reference(references: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    checked = refused = 0
    for case, expected in references:
        if "error" in expected:
            with pytest.raises(LoupeError):
                loupe_plan(case)
            refused += 1
            continue
        assert loupe_plan(case) == expected, case
        checked += 1
    assert checked > 240 and refused < 30


def test_glm4v_max_frames_lowers_the_rate() -> None:
    counter = video_counter_for("glm4v", {}, budget=1024, max_frames=768)
    assert counter is not None
    plan = counter.plan(VideoShape(1800, 30.0, 640, 360), 2.0, 16, None)
    assert len(plan.indices) <= 17 and len(plan.indices) % 2 == 0
    assert plan.indices[0] == 0 and plan.indices[-1] > 1600


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "glm4v"])
def test_detail_applies_per_frame(family: str) -> None:
    counter = video_counter_for(family, {}, budget=300, max_frames=768)
    assert counter is not None
    shape = VideoShape(300, 30.0, 1920, 1080)
    high = counter.plan(shape, 2.0, 32, Detail.HIGH)
    low = counter.plan(shape, 2.0, 32, Detail.LOW)
    auto = counter.plan(shape, 2.0, 32, Detail.AUTO)
    assert high.indices == low.indices == auto.indices
    groups = -(-len(high.indices) // 2)
    assert low.tokens <= groups * 256 and low.tokens <= high.tokens
    assert auto.tokens <= max(groups * 300, high.tokens) and auto.tokens <= high.tokens


def test_families_without_video_and_bad_requests() -> None:
    assert video_counter_for("llava", {}, budget=1024, max_frames=64) is None
    assert set(VIDEO_FAMILIES) == {"qwen2-vl", "qwen2.5-vl", "qwen3-vl", "glm4v", "llava-onevision", "smolvlm"}
    refusal = refuse_video("my-llava", "llava")
    assert isinstance(refusal, VideoNotSupported) and "my-llava" in refusal.message
    counter = video_counter_for("qwen2-vl", {}, budget=1024, max_frames=64)
    assert counter is not None
    with pytest.raises(TooManyVideoFrames):
        counter.plan(VideoShape(100, 25.0, 320, 240), None, 65, None)
    with pytest.raises(InvalidRequest):
        counter.plan(VideoShape(100, 25.0, 320, 240), 0.0, None, None)
