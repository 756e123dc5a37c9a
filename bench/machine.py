"""The machine's own limits, measured: matrix-product peaks in bfloat16 and float32, memory bandwidth,
and how fast oneDNN's few-row products stream weights from memory.

    python -m bench.machine

Benchmarks print these beside their figures: a prefill is judged against the matmul peak (how
much of the hardware it uses) and a decode step against the time it takes to read the weights
once (a decode step must read every weight; at small batches that is the floor), and beside that
against the time oneDNN's packed bfloat16 products take to stream the same bytes at 8 rows (the
kernels the engine multiplies with: the floor they leave a decode step). Each figure is
the best of several runs with all of torch's threads, so it is what the machine can do when the
others sharing it leave it alone for a moment.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["Limits", "cpu_name", "cpu_features", "measure", "run"]

GB = 1e9
_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")


@dataclass(frozen=True, slots=True)
class Limits:
    bf16_flops: float  # FLOP/s of the best bfloat16 matrix product
    fp32_flops: float
    read_bandwidth: float  # bytes/s read from memory (a sum over a buffer far larger than the caches)
    threads: int
    product_bandwidth: float = 0.0  # bytes/s of bfloat16 weights streamed by 8-row packed products

    def peak(self, dtype: str) -> float:
        return self.bf16_flops if dtype == "bfloat16" else self.fp32_flops

    def read_time(self, nbytes: float) -> float:
        """Seconds to read `nbytes` from memory once."""
        return nbytes / self.read_bandwidth

    def product_time(self, nbytes: float) -> float:
        """Seconds oneDNN's 8-row bfloat16 products take to stream `nbytes` of weights."""
        return nbytes / self.product_bandwidth if self.product_bandwidth else float("nan")

    def summary(self) -> str:
        streamed = (
            f", weights streamed by 8-row bfloat16 products {self.product_bandwidth / GB:.1f} GB/s"
            if self.product_bandwidth else ""
        )  # fmt: skip
        return (
            f"matmul peak {self.bf16_flops / 1e9:,.0f} GFLOP/s in bfloat16 and {self.fp32_flops / 1e9:,.0f} in "
            f"float32, memory read bandwidth {self.read_bandwidth / GB:.1f} GB/s{streamed} ({self.threads} torch threads)"
        )


def cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_features() -> str:
    """The matrix-relevant flags this CPU reports, as /proc/cpuinfo names them."""
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    found = [f for f in _FEATURES if f in flags]
    return ", ".join(found) if found else "none of " + ", ".join(_FEATURES)


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def _best(work: Callable[[], object], seconds: float) -> float:
    """The shortest of repeated runs of `work`, repeated for about `seconds` (at least 3 runs)."""
    work()
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < seconds:
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
        runs += 1
    return best


def matmul_peak(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of the fastest of a few large products, through oneDNN with a packed weight (as the
    engine multiplies) and through torch's default path."""
    best = 0.0
    for m, k, n in ((1024, 2048, 2048), (512, 4096, 1024)):
        a, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        paths: list[Callable[[], object]] = [lambda: F.linear(a, w)]
        if torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
            packed = torch.ops.mkldnn._reorder_linear_weight(w, m)
            paths.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""))
        for path in paths:
            best = max(best, 2 * m * k * n / _best(path, seconds / 4))
    return best


def read_bandwidth(seconds: float = 2.0, nbytes: int = 1 << 30) -> float:
    """Bytes/s of summing a buffer of `nbytes` (default 1 GiB, beyond any CPU cache)."""
    buffer = torch.ones(nbytes // 4, dtype=torch.float32)
    return nbytes / _best(buffer.sum, seconds)


def product_bandwidth(seconds: float = 2.0, nbytes: int = 1 << 30) -> float:
    """Bytes/s of bfloat16 weights that oneDNN's packed products stream at 8 rows (a decode step
    of 8 sequences), over weights of `nbytes` in all (beyond any CPU cache), one after the other."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return 0.0
    shapes = [(4096, 1024), (1024, 4096)]  # an MLP's up and down products, 8 MiB each
    count = nbytes // sum(2 * n * k for n, k in shapes)
    weights = [
        (torch.randn(8, k, dtype=torch.bfloat16), torch.ops.mkldnn._reorder_linear_weight(torch.randn(n, k, dtype=torch.bfloat16), 64))
        for _ in range(count) for n, k in shapes
    ]  # fmt: skip

    def stream() -> None:
        for x, packed in weights:
            torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")

    return count * sum(2 * n * k for n, k in shapes) / _best(stream, seconds)


def measure(seconds: float = 2.0) -> Limits:
    with torch.inference_mode():
        return Limits(
            bf16_flops=matmul_peak(torch.bfloat16, seconds),
            fp32_flops=matmul_peak(torch.float32, seconds),
            read_bandwidth=read_bandwidth(seconds),
            threads=torch.get_num_threads(),
            product_bandwidth=product_bandwidth(seconds),
        )


def run(quick: bool = False) -> str:
    limits = measure(1.0 if quick else 3.0)
    return "\n".join(
        [
            f"CPU: {cpu_name()}, {torch.get_num_threads()} torch threads; flags: {cpu_features()}.",
            "",
            "| limit | measured |",
            "|---|---:|",
            f"| bfloat16 matmul peak | {limits.bf16_flops / 1e9:,.0f} GFLOP/s |",
            f"| float32 matmul peak | {limits.fp32_flops / 1e9:,.0f} GFLOP/s |",
            f"| memory read bandwidth | {limits.read_bandwidth / GB:.1f} GB/s |",
            f"| weights streamed by 8-row bfloat16 products | {limits.product_bandwidth / GB:.1f} GB/s |",
            "",
            "Best of repeated runs: the largest of a few 1,024 x 2,048 x 2,048-sized products (oneDNN with "
            "a packed weight, and torch's default path), a sum over a 1 GiB buffer, and 8-row bfloat16 products "
            "(oneDNN, packed weights) over 1 GiB of weights.",
        ]
    )


if __name__ == "__main__":
    print(run())
