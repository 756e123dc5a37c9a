"""Keep freed activation memory in the process heap (glibc), instead of handing it back each pass.

glibc serves an allocation above its mmap threshold with a fresh mapping and unmaps it when it
is freed. The threshold starts at 128 KiB and only rises after such frees, so a CPU forward pass,
whose activations are megabytes per layer, keeps faulting in fresh pages for them; element-wise
operations on those tensors then run several times slower per element. Fixing the threshold at
glibc's ceiling (32 MiB on 64-bit) and raising the trim threshold lets freed blocks be reused by
the next pass: the server's resident memory would stay at its peak instead of shrinking between requests.
So once the engine has been idle for a moment, `give_back_freed_memory` hands the heap's free
pages back to the system (glibc's `malloc_trim`, every arena): a burst's images, pixel values
and activations are returned after it, and a steady load keeps its blocks.

glibc also gives each new thread an arena of its own, up to eight per core, and the engine starts
a thread per request it prepares. The caches' long-lived entries then end up scattered over a
dozen arenas, and what a burst freed around them could not be handed back: 64 requests with 1 MB
photos left about 360 MB beyond the caches on a 2-core machine, against 5 MB with at most four
arenas (`MAX_ARENAS`). The threads share those few; their allocations are small next to the
model's. Another C library (musl, macOS) is left as it is.
"""

from __future__ import annotations

import ctypes

__all__ = ["give_back_freed_memory", "keep_freed_memory"]

MiB = 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 * MiB  # glibc's ceiling on 64-bit systems
TRIM_THRESHOLD = 512 * MiB
MAX_ARENAS = 4


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for repeated forward passes; False where the C library has no
    `mallopt` or refuses the values (nothing is changed then)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(option, value)
        for option, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_ARENA_MAX, MAX_ARENAS))
    )


def give_back_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the system; False where the C library
    has no `malloc_trim` or nothing could be returned."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))
