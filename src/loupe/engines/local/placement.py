"""Where the embedded engine would compute, told without importing torch where that is certain.

`loupe doctor` should answer in a second, and importing torch (let alone transformers) takes
several on a loaded machine. The installed torch says in its version file whether it was built
for a GPU, and Linux lists the CPU's vector extensions in /proc/cpuinfo, so a CPU-only install
needs neither. Where torch could see a GPU, only torch can say whether one is there: the caller
asks it then. Plain Python: no torch here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

__all__ = ["cpu_dtype", "cpu_extensions", "gpu_build"]

_BUILD = re.compile(r"^(cuda|hip)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.M)
# The extensions that decide the engine's kernels and dtype (x86: AVX2, AVX-512, its bfloat16
# and fp16 forms, AMX; Arm: NEON, SVE and bfloat16), in this order.
_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "asimd", "sve", "bf16")


def gpu_build() -> bool | None:
    """Whether the installed torch was built for CUDA or ROCm, read from `torch/version.py`
    without importing torch; None where that file cannot be found or read."""
    spec = importlib.util.find_spec("torch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = (Path(folder) / "version.py").read_text()
        except OSError:
            continue
        built = dict(_BUILD.findall(text))
        if built:
            return any(value not in ("None", "''", '""') for value in built.values())
    return None


def cpu_extensions(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...]:
    """The CPU's vector extensions the engine cares about, as the kernel lists them (Linux);
    empty where it lists none or there is no such file."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return ()
    found = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.M)
    flags = set(found.group(1).split()) if found else set()
    return tuple(name for name in _EXTENSIONS if name in flags)


def cpu_dtype(requested: str, extensions: tuple[str, ...] | None = None) -> str:
    """The dtype `loupe serve` loads a model in on a CPU for `engine.dtype`, by the loader's rule
    (`precision.choose_precision`, for a checkpoint saved in bfloat16 or float32): bfloat16 on
    "auto" where the CPU multiplies it natively (AMX or AVX512-BF16), float32 elsewhere."""
    if requested != "auto":
        return requested
    found = cpu_extensions() if extensions is None else extensions
    return "bfloat16" if {"amx_bf16", "avx512_bf16"} & set(found) else "float32"
