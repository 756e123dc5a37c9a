"""Keep freed activation memory in the process heap (glibc), instead of handing it back each pass.

glibc serves an allocation above its mmap threshold with a fresh mapping and unmaps it when it
is freed. The threshold starts at 128 KiB and only rises after such frees, so a CPU forward pass,
whose activations are megabytes per layer, keeps faulting in fresh pages for them; element-wise
operations on those tensors then run several times slower per element. Fixing the threshold at
glibc's ceiling (32 MiB on 64-bit) and raising the trim threshold lets freed blocks be reused by
the next pass: the server's resident memory stays at its peak instead of shrinking between
requests. Another C library (musl, macOS) is left as it is.
"""

from __future__ import annotations

import ctypes

__all__ = ["keep_freed_memory"]

MiB = 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * MiB  # glibc's ceiling on 64-bit systems
TRIM_THRESHOLD = 512 * MiB


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for repeated forward passes; False where the C library has no
    `mallopt` or refuses the values (nothing is changed then)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
