"""Loupe's video processor gives each family's video inputs as transformers' own video
processor computes them (run in a child process: see video_pixels_reference), and the prompts
it makes through the checkpoint's processor count as the estimate counts them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from loupe.domain import Detail, PlannedVideo, PromptMessage, Role, TextPart
from loupe.engines.local.loader import Checkpoint, read_checkpoint
from loupe.engines.local.prompt import build_prompt, count_prompt
from loupe.engines.local.video_processor import metadata_of, stand_in
from loupe.errors import InvalidRequest, VideoCombinationNotSupported
from tests.engines.local.test_batching import crop
from tests.engines.local.video_prompts import prepared_video

VIDEO_FAMILIES = ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "glm4v", "llava-onevision", "smolvlm"]


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoint: Callable[[str], Path]) -> dict[str, Checkpoint]:
    return {family: read_checkpoint(str(tiny_checkpoint(family))) for family in VIDEO_FAMILIES}


def test_pixel_values_equal_the_reference_processors(checkpoints: dict[str, Checkpoint], tmp_path: Path) -> None:
    """Two videos per family, one with an odd frame count (Qwen layouts pad it to a whole
    temporal patch; SmolVLM pads the shorter video with blank frames)."""
    cases, ours = [], {}
    for family, checkpoint in checkpoints.items():
        videos = [prepared_video(checkpoint, "zoom", max_frames=5), prepared_video(checkpoint, "mp4", max_frames=4)]
        if family == "llava-onevision":  # several videos stack only at one frame count
            videos = [videos[1], prepared_video(checkpoint, "zoom", max_frames=4)]
        frames = [v.pixels for v in videos]
        np.savez(tmp_path / f"{family}.npz", **{f"v{i}": f for i, f in enumerate(frames)})
        ours[family] = dict(checkpoint.processor.video_processor(frames))
        config = checkpoint.video_config
        cases.append({"family": family, "config": config, "videos": str(tmp_path / f"{family}.npz"), "out": str(tmp_path / f"{family}-ref.npz")})
    subprocess.run(
        [sys.executable, "-m", "tests.engines.local.video_pixels_reference"],
        input=json.dumps(cases), text=True, check=True, timeout=300, capture_output=True,
    )
    for case in cases:
        with np.load(case["out"]) as reference:
            mine = ours[case["family"]]
            assert sorted(reference.files) == sorted(mine), case["family"]
            for name in reference.files:
                assert torch.equal(mine[name], torch.from_numpy(reference[name])), (case["family"], name)


def test_stand_ins_give_the_grids_without_pixels(checkpoints: dict[str, Checkpoint]) -> None:
    checkpoint = checkpoints["qwen3-vl"]
    video = prepared_video(checkpoint, "zoom", max_frames=5)
    full = checkpoint.processor.video_processor([video.pixels])
    bare = checkpoint.processor.video_processor([stand_in(video.frames)])
    assert "pixel_values_videos" not in bare
    assert torch.equal(bare["video_grid_thw"], full["video_grid_thw"])
    assert full["video_grid_thw"].tolist() == [[3, video.frames.height // 16, video.frames.width // 16]]


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_the_estimate_counts_what_the_processor_makes(family: str, checkpoints: dict[str, Checkpoint]) -> None:
    """The count from the plan alone (the timestamps or frame captions between frames written
    by the processor itself) equals the processor's call on the sampled frames."""
    checkpoint = checkpoints[family]
    video = prepared_video(checkpoint, "mp4", fps=1.0, detail=Detail.LOW)
    other = prepared_video(checkpoint, "zoom", max_frames=4)
    turns = [
        PromptMessage(Role.USER, (TextPart("What happens here?"), video)),
        PromptMessage(Role.ASSISTANT, (TextPart("A boat goes by."),)),
        PromptMessage(Role.USER, (other, TextPart("And in this one?"))),
    ]
    if family == "llava-onevision":  # several videos stack only at one frame count
        turns = turns[:1]
    built = build_prompt(checkpoint.processor, turns)
    planned = [
        PromptMessage(m.role, tuple(PlannedVideo(0, p.frames) if hasattr(p, "frames") else p for p in m.content))
        for m in turns
    ]
    assert count_prompt(checkpoint.processor, planned) == built.stats
    assert built.stats.video_tokens >= sum(p.frames.tokens for m in turns for p in m.content if hasattr(p, "frames"))
    assert built.stats.image_tokens == 0


def test_images_and_a_video_in_one_qwen_prompt(checkpoints: dict[str, Checkpoint]) -> None:
    checkpoint = checkpoints["qwen2.5-vl"]
    video = prepared_video(checkpoint, "zoom", max_frames=4)
    image = crop("bus.jpg", (40, 40, 264, 376))
    messages = [PromptMessage(Role.USER, (image, TextPart("then"), video, TextPart("Compare.")))]
    built = build_prompt(checkpoint.processor, messages)
    ids = built.inputs["input_ids"][0]
    assert built.stats.video_tokens == int((ids == checkpoint.processor.video_token_id).sum()) == video.frames.tokens
    assert built.stats.image_tokens == int((ids == checkpoint.processor.image_token_id).sum())
    assert built.inputs["second_per_grid_ts"].tolist() == [2 / (4 / 3.0)]  # 4 frames of a 3 s clip


def test_a_prompt_without_pixels_has_the_same_ids(checkpoints: dict[str, Checkpoint]) -> None:
    checkpoint = checkpoints["glm4v"]
    video = prepared_video(checkpoint, "zoom", max_frames=4)
    messages = [PromptMessage(Role.USER, (TextPart("Describe."), video))]
    full, bare = build_prompt(checkpoint.processor, messages), build_prompt(checkpoint.processor, messages, pixels=False)
    assert full.pixels and not bare.pixels
    assert "pixel_values_videos" in full.inputs and "pixel_values_videos" not in bare.inputs
    assert full.stats == bare.stats
    for name in ("input_ids", "mm_token_type_ids", "video_grid_thw"):
        assert torch.equal(full.inputs[name], bare.inputs[name])


def test_metadata_is_fresh_and_as_the_reference_reader_reports(checkpoints: dict[str, Checkpoint]) -> None:
    frames = prepared_video(checkpoints["qwen3-vl"], "mp4", max_frames=4).frames
    first, second = metadata_of(frames), metadata_of(frames)
    assert first.frames_indices is not second.frames_indices
    assert (first.total_num_frames, first.fps, first.duration) == (100, 25.0, 4.0)
    assert first.timestamps == [i / 25.0 for i in frames.indices]


def test_families_without_video_refuse_it(tiny_checkpoint: Callable[[str], Path]) -> None:
    processor = read_checkpoint(str(tiny_checkpoint("internvl"))).processor
    with pytest.raises(InvalidRequest, match="does not take video"):
        processor.video_processor([np.zeros((2, 32, 32, 3), dtype=np.uint8)])


@pytest.mark.parametrize("family", ["smolvlm", "glm4v"])
def test_families_that_read_both_alike_refuse_images_beside_a_video(family: str, checkpoints: dict[str, Checkpoint]) -> None:
    checkpoint = checkpoints[family]
    video = prepared_video(checkpoint, "zoom", max_frames=4)
    messages = [PromptMessage(Role.USER, (crop("bus.jpg", (40, 40, 264, 376)), video, TextPart("Compare.")))]
    with pytest.raises(VideoCombinationNotSupported):
        build_prompt(checkpoint.processor, messages)
