"""What the counters' property tests share: blank-image processor runs, sizes, checkpoint copies."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from PIL import Image

# Geometry does not depend on pixel values: skip the arithmetic that does, to keep runs cheap.
FAST: dict[str, Any] = {"do_rescale": False, "do_normalize": False, "resample": 0}

SIDES = st.integers(min_value=1, max_value=20000)


def sample_sizes(
    seed: int, count: int, *, decades: float = 3.5, max_aspect: int | None = None
) -> list[tuple[int, int]]:
    """(width, height) pairs spread log-uniformly from 1 to 10 ** `decades` a side (3.5: about
    3000), drawn until `count` have an aspect ratio of at most `max_aspect` (None: any)."""
    rng = random.Random(seed)
    sizes: list[tuple[int, int]] = []
    while len(sizes) < count:
        width, height = (round(10 ** rng.uniform(0, decades)) for _ in range(2))
        if max_aspect is None or max(width, height) <= max_aspect * min(width, height):
            sizes.append((width, height))
    return sizes


def grid_processed(proc: Any, width: int, height: int) -> tuple[int, int, int]:
    """(tokens, resized height, resized width) as a Qwen-VL-style image processor (one that
    reports `image_grid_thw`) makes them of a blank image."""
    grid = proc(Image.new("RGB", (width, height)), **FAST)["image_grid_thw"][0].tolist()
    patch = proc.patch_size
    return grid[0] * grid[1] * grid[2] // proc.merge_size**2, grid[1] * patch, grid[2] * patch


def image_token_count(processor: Any, width: int, height: int) -> int:
    """`<image>` tokens the processor inserts for a prompt's only image, a blank one."""
    image = Image.new("RGB", (width, height))
    out = processor(text=["<image>"], images=[[image]], **FAST)
    return list(out["input_ids"][0]).count(processor.image_token_id)


def changed_copy(
    checkpoint: Path, parent: Path, changes: tuple[dict[str, Any], dict[str, Any]]
) -> tuple[Path, list[dict[str, Any]]]:
    """A copy of `checkpoint` under `parent` whose preprocessor and processor configs take
    `changes` (one dict for each), and the two configs as written."""
    copy = parent / "checkpoint"
    shutil.copytree(checkpoint, copy)
    files = []
    for file, changed in zip(("preprocessor", "processor"), changes, strict=True):
        path = copy / f"{file}_config.json"
        files.append({**json.loads(path.read_text()), **changed})
        path.write_text(json.dumps(files[-1]))
    return copy, files
