"""dtype "auto": bfloat16 where the CPU multiplies it natively, and bfloat16 logits track float32."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from loupe.engines.local import loader, precision
from loupe.engines.local.loader import load_model
from loupe.engines.local.precision import Precision, bf16_units, choose_precision
from loupe.testing.tiny import FAMILIES
from tests.helpers import PHOTOS

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("units", ["AMX", "AVX512-BF16"])
@pytest.mark.parametrize("saved", ["bfloat16", "float32", None])
def test_auto_is_bfloat16_on_a_cpu_that_multiplies_it(units: str, saved: str | None) -> None:
    chosen = choose_precision("auto", CPU, saved, units)
    assert chosen.dtype == torch.bfloat16 and units in chosen.reason


@pytest.mark.parametrize("saved", ["bfloat16", "float32", None])
def test_auto_is_float32_on_a_cpu_without_it(saved: str | None) -> None:
    chosen = choose_precision("auto", CPU, saved, None)
    assert chosen.dtype == torch.float32 and "no native bfloat16" in chosen.reason


@pytest.mark.parametrize("units", ["AMX", None])
def test_auto_keeps_a_float16_checkpoint_in_float32_on_any_cpu(units: str | None) -> None:
    chosen = choose_precision("auto", CPU, "float16", units)
    assert chosen.dtype == torch.float32 and "float16" in chosen.reason


def test_auto_is_bfloat16_on_cuda_and_a_setting_wins_everywhere() -> None:
    assert choose_precision("auto", CUDA, "float32", None).dtype == torch.bfloat16
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        for device, units in ((CPU, "AMX"), (CPU, None), (CUDA, None)):
            assert choose_precision(name, device, "bfloat16", units) == Precision(dtype, "set by engine.dtype")


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(True, True, "AMX"), (False, True, "AVX512-BF16"), (True, False, "AMX"), (False, False, None)],
)
def test_units_are_read_from_torchs_cpu_checks(
    monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, expected: str | None
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert bf16_units() == expected


def test_a_torch_without_the_checks_means_no_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert bf16_units() is None


@pytest.mark.parametrize(("units", "dtype"), [("AVX512-BF16", torch.bfloat16), (None, torch.float32)])
def test_the_loader_follows_the_cpu_and_logs_its_choice(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tiny_checkpoint: Callable[[str], Path],
    units: str | None,
    dtype: torch.dtype,
) -> None:
    monkeypatch.setattr(loader, "bf16_units", lambda: units)
    with caplog.at_level(logging.INFO, logger=loader.__name__):
        loaded = load_model(str(tiny_checkpoint("smolvlm")), device="cpu", dtype="auto")
    assert loaded.model.dtype == dtype == loaded.precision.dtype
    assert f"computing in {precision.Precision(dtype, '').name} on cpu" in caplog.text
    assert loaded.precision.reason in caplog.text


# bfloat16 keeps 8 bits of mantissa, float32 24: every product and sum of a forward pass rounds
# about 400 times coarser. On the tiny checkpoints (random weights, logits spread with a standard
# deviation near 0.16) the largest difference measured was 0.0103 (LLaVA-OneVision), 6.5% of that
# spread, and every position's logits pointed the same way to within a cosine of 0.9998.
MAX_DIFF_OF_SPREAD = 0.1
MIN_COSINE = 0.999
# Mixture-of-experts families route each token to its top-k experts: where two router scores lie
# within bfloat16's rounding, a token can take another expert and its logits move further (on
# the tiny Llama 4 and Qwen3-VL-MoE up to 22% of the spread, cosine down to 0.998), while the
# positions' logits still point the same way.
MOE_MAX_DIFF_OF_SPREAD = 0.3
MOE_MIN_COSINE = 0.995
MOE_FAMILIES = {"llama4", "qwen3-vl-moe"}
TURN = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this photo in detail."}]}]


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_logits_track_float32_on_a_photo(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    path = str(tiny_checkpoint(family))
    logits = {}
    for dtype in ("float32", "bfloat16"):
        loaded = load_model(path, device="cpu", dtype=dtype)
        processor = loaded.processor
        with Image.open(PHOTOS / "bus.jpg") as photo:
            prompt = processor.apply_chat_template(TURN, add_generation_prompt=True)
            inputs = processor(text=[prompt], images=[photo.convert("RGB")], return_tensors="pt")
        inputs = {k: v.to(loaded.model.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
        with torch.inference_mode():
            logits[dtype] = loaded.model(**inputs).logits[0].float()
    ours, exact = logits["bfloat16"], logits["float32"]
    assert ours.shape == exact.shape and ours.shape[0] > 100  # every position of a prompt with an image
    spread, cosine = (MOE_MAX_DIFF_OF_SPREAD, MOE_MIN_COSINE) if family in MOE_FAMILIES else (MAX_DIFF_OF_SPREAD, MIN_COSINE)
    assert (ours - exact).abs().max() <= spread * exact.std()
    assert torch.nn.functional.cosine_similarity(ours, exact, dim=-1).min() >= cosine
