"""glibc keeps freed activation-sized blocks in its heap once Loupe has tuned it."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Run in a fresh interpreter: the tuning is process-wide and this checks it from a clean start.
_PROBE = """
import ctypes, sys
from loupe.engines.local.cpu_heap import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)

def mapped_while_holding(size):
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblkhd
    libc.free(block)
    return mapped

size = 8 * 1024 * 1024  # one layer's activations for a few hundred tokens
before = mapped_while_holding(size)
tuned = keep_freed_memory()
after = mapped_while_holding(size)
print(tuned, before >= size, after < size)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_activation_sized_blocks_come_from_the_heap_once_tuned() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "True"]  # tuned; mapped alone before; from the heap after



_TRIM_PROBE = """
import ctypes
from loupe.engines.local.cpu_heap import give_back_freed_memory, keep_freed_memory

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)

def resident():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096

keep_freed_memory()
blocks = [libc.malloc(1 << 20) for _ in range(256)]  # a burst's worth of 1 MiB blocks, from the heap
for block in blocks:
    libc.memset(block, 1, 1 << 20)
held = resident()
for block in blocks:
    libc.free(block)
kept = resident()  # freed, but the tuned heap keeps them
given_back = give_back_freed_memory()
print(kept > held - (64 << 20), given_back, resident() < kept - (128 << 20))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_the_tuned_heap_keeps_are_given_back() -> None:
    out = subprocess.run([sys.executable, "-c", _TRIM_PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "True"]  # kept after free; trimmed; resident memory fell


_ARENA_PROBE = """
import ctypes, os, sys, tempfile, threading
from loupe.engines.local.cpu_heap import MAX_ARENAS, keep_freed_memory

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)

def arenas():
    path = os.path.join(tempfile.mkdtemp(), "info.xml")
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    return open(path).read().count("<heap nr=")

if sys.argv[1] == "tuned":
    keep_freed_memory()
started, go = threading.Barrier(12), threading.Event()

def allocate():  # each new thread that allocates may get an arena of its own
    started.wait()
    go.wait()
    libc.free(libc.malloc(4096))

threads = [threading.Thread(target=allocate) for _ in range(12)]
for thread in threads:
    thread.start()
go.set()
for thread in threads:
    thread.join()
print(arenas(), MAX_ARENAS)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_threads_share_a_few_arenas_once_tuned() -> None:
    def arenas(mode: str) -> tuple[int, int]:
        out = subprocess.run([sys.executable, "-c", _ARENA_PROBE, mode], capture_output=True, text=True, check=True)
        used, limit = out.stdout.split()
        return int(used), int(limit)

    untuned, limit = arenas("plain")
    assert untuned > limit  # the probe's threads do make arenas of their own by default
    tuned, _ = arenas("tuned")
    assert tuned <= limit
