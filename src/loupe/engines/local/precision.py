"""Which dtype the embedded engine computes in, and why: bfloat16 where the hardware multiplies it.

On a CPU, bfloat16 pays only where the cores have instructions for it: Intel's AMX tiles
(Sapphire Rapids and later) or AVX512-BF16 (Cooper Lake, AMD Zen 4 and later). There a matrix
product runs at about twice (AVX512-BF16) to several times (AMX) the float32 rate, and the
weights a decode step reads are half the bytes. Without them bfloat16 is converted in software
and is slower than float32. The choice is read from torch's own checks of the CPU's features,
at start, never from a list of CPU models. A checkpoint published in float16 stays in float32
on a CPU: its values need not fit bfloat16's shorter mantissa, and CPUs multiply float16 slowly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Precision", "bf16_units", "choose_precision"]

_BY_NAME = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, slots=True)
class Precision:
    """The dtype a model is loaded in, and the reason, for the start-up log and /health."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def bf16_units() -> str | None:
    """The CPU's native bfloat16 matrix instructions ("AMX", "AVX512-BF16"), or None."""
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return None


def choose_precision(requested: str, device: torch.device, checkpoint_dtype: str | None, units: str | None) -> Precision:
    """The dtype for `requested` ("auto" or a dtype name) on `device`, for a checkpoint saved in
    `checkpoint_dtype` (its config's name; None where it states none), on a CPU whose native
    bfloat16 instructions are `units` (what `bf16_units()` says)."""
    if requested != "auto":
        return Precision(_BY_NAME[requested], "set by engine.dtype")
    if device.type == "cuda":
        return Precision(torch.bfloat16, "auto: a CUDA device")
    if checkpoint_dtype == "float16":
        return Precision(torch.float32, "auto: the checkpoint is float16, which a CPU computes in float32")
    if units is None:
        return Precision(torch.float32, "auto: this CPU has no native bfloat16 (neither AMX nor AVX512-BF16)")
    return Precision(torch.bfloat16, f"auto: this CPU multiplies bfloat16 natively ({units})")
