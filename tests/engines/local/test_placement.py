"""Where the engine computes, told without torch: the same answers torch and the loader give."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from loupe.engines.local.precision import bf16_units, choose_precision
from loupe.engines.local.placement import cpu_dtype, cpu_extensions, gpu_build


def test_the_build_is_read_from_torchs_version_file() -> None:
    assert gpu_build() is (torch.version.cuda is not None or torch.version.hip is not None)


@pytest.mark.parametrize("requested", ["auto", "float32", "bfloat16", "float16"])
def test_the_cpu_dtype_is_the_loaders(requested: str) -> None:
    assert cpu_dtype(requested) == choose_precision(requested, torch.device("cpu"), None, bf16_units()).name


@pytest.mark.parametrize(
    "extensions, expected",
    [(("avx2", "fma"), "float32"), (("avx2", "avx512f", "avx512_bf16"), "bfloat16"), (("avx512f", "amx_tile", "amx_bf16"), "bfloat16")],
)
def test_auto_is_bfloat16_where_the_cpu_multiplies_it(extensions: tuple[str, ...], expected: str) -> None:
    assert cpu_dtype("auto", extensions) == expected
    assert cpu_dtype("float32", extensions) == "float32"


def test_the_extensions_agree_with_torchs_view_of_this_cpu() -> None:
    capability, found = torch.backends.cpu.get_cpu_capability(), cpu_extensions()
    if capability.startswith("AVX512"):
        assert "avx512f" in found and "avx2" in found
    elif capability == "AVX2":
        assert "avx2" in found and "avx512f" not in found


def test_the_extensions_are_read_from_the_kernels_flags(tmp_path: Path) -> None:
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16 avx512_bf16\n\nflags : x\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm sve bf16\n")
    assert cpu_extensions(x86) == ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    assert cpu_extensions(arm) == ("asimd", "sve", "bf16")
    assert cpu_extensions(tmp_path / "none") == ()
