"""Image preprocessing, decode included: Loupe's fast path against the HF image processor.

    python -m bench.preprocess [--repeats 15]

For each photo and setting, three pipelines from the same encoded bytes, timed side by side in
one run (interleaved, medians over the repeats, so a noisy machine shifts all three alike):

- floor: Pillow's full decode to RGB, nothing else;
- hf: full decode, then what Loupe hands the HF image processor today (Qwen-VL: the image
  resized by Loupe to the planned size, bicubic; SmolVLM: the original image), then the PIL-backend
  image processor with the published settings, `return_tensors="pt"`;
- loupe: what `loupe serve` runs: `media.decode_image` for the planned size (a JPEG planned at
  most half its size decodes at a DCT scale, else whole, straight into an array), the embedded
  engine's `fast_images.resized` (torch's uint8 bicubic) to that size, then
  `fast_images.preprocess` (SmolVLM: the full decode as a Pillow image, then the fast path's
  tiles, one resize to the canvas).

Qwen2-VL runs at detail high (the settled size of the original) and low (448 x 448); SmolVLM
with its published splitting. The issue's target: loupe / hf at most 0.5.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

from loupe.engines.local import fast_images
from loupe.media import ImageLimits, as_pillow, decode_image
from loupe.domain import Detail
from loupe.models.qwen2_vl import QWEN2_VL_PUBLISHED, QwenRules
from loupe.testing.tiny.qwen2_vl import PREPROCESSOR_CONFIG as QWEN_CONFIG
from loupe.testing.tiny.smolvlm import PREPROCESSOR_CONFIG as SMOLVLM_CONFIG

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "photos"
NAMES = ("boats.jpg", "bus.jpg", "zidane.jpg")
_CLASS_KEYS = ("image_processor_type", "processor_class")
LIMITS = ImageLimits()


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    hf: Callable[[bytes], Any]
    loupe: Callable[[bytes], Any]


def processor_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """A published preprocessor config as the image processor's keyword arguments."""
    return {k: v for k, v in config.items() if k not in _CLASS_KEYS}


def full_decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def qwen_cases() -> list[Case]:
    processor: Any = Qwen2VLImageProcessorPil(**processor_kwargs(QWEN_CONFIG))
    settings = fast_images.settings_for("qwen2-vl", processor)
    rules = QwenRules("qwen2-vl", QWEN2_VL_PUBLISHED)

    def size(data: bytes, detail: str) -> tuple[int, int]:
        """The size Loupe's planner resizes to for `detail` (no token budget in the way)."""
        width, height = Image.open(io.BytesIO(data)).size
        plan = rules.plan(width, height, Detail(detail), QWEN2_VL_PUBLISHED, budget=1 << 30)
        return plan.resized_width, plan.resized_height

    def hf(detail: str) -> Callable[[bytes], Any]:
        def run(data: bytes) -> Any:
            target = size(data, detail)
            image = full_decode(data)
            image = image if image.size == target else image.resize(target, Image.Resampling.BICUBIC)
            return processor(image, return_tensors="pt")

        return run

    def loupe(detail: str) -> Callable[[bytes], Any]:
        def run(data: bytes) -> Any:
            target = size(data, detail)
            decoded = decode_image(data, LIMITS, target)
            return fast_images.preprocess([fast_images.resized(decoded.pixels, target)], settings)

        return run

    return [Case(f"Qwen2-VL {d}", hf(d), loupe(d)) for d in ("high", "low")]


def smolvlm_case() -> Case:
    processor: Any = SmolVLMImageProcessorPil(**processor_kwargs(SMOLVLM_CONFIG))
    settings = fast_images.settings_for("smolvlm", processor)
    assert isinstance(settings, fast_images.TileSettings)

    def hf(data: bytes) -> Any:
        return processor([[full_decode(data)]], return_tensors="pt", return_row_col_info=True)

    def loupe(data: bytes) -> Any:
        return fast_images.preprocess([as_pillow(decode_image(data, LIMITS).pixels)], settings)

    return Case("SmolVLM", hf, loupe)


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(case: Case, data: bytes, repeats: int) -> tuple[float, float, float]:
    pipelines = (lambda: full_decode(data), lambda: case.hf(data), lambda: case.loupe(data))
    for pipeline in pipelines:
        pipeline()  # warm-up: imports, first allocations
    samples: list[list[float]] = [[], [], []]
    for _ in range(repeats):
        for found, pipeline in zip(samples, pipelines, strict=True):
            found.append(timed(pipeline))
    floor, hf, loupe = (statistics.median(s) for s in samples)
    return floor, hf, loupe


def run(repeats: int = 15) -> str:
    """The markdown section: one row per photo and setting, medians in milliseconds."""
    cases = [*qwen_cases(), smolvlm_case()]
    lines = [
        "### Qwen2-VL and SmolVLM, from the encoded bytes (decode included)",
        "",
        f"Medians of {repeats} interleaved runs, milliseconds; target loupe / hf <= 0.5. hf: full decode, "
        "Pillow resize to Loupe's planned size (Qwen2-VL), the PIL-backend image processor. loupe: what "
        "`loupe serve` runs (draft decode where the plan allows, torch bicubic, the fast path).",
        "",
        "| photo | model / detail | decode only | hf | loupe | loupe / hf |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in NAMES:
        data = (PHOTOS / name).read_bytes()
        size = "x".join(map(str, Image.open(io.BytesIO(data)).size))
        for case in cases:
            floor, hf, loupe = measure(case, data, repeats)
            lines.append(
                f"| {name} ({size}) | {case.label} | {floor:.1f} | {hf:.1f} | {loupe:.1f} | {loupe / hf:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    print(run(parser.parse_args().repeats))


if __name__ == "__main__":
    main()
