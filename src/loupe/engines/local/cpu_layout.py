"""Linear weights stored column-major for float32 inference on a CPU.

`nn.Linear` multiplies by the transpose of its [out, in] weight. Stored row-major, as loaded,
that is a transposed operand for MKL's GEMM, whose kernels for a few to a few dozen input rows
are then much slower than for the same product with the weight stored [in, out]: measured on a
2-core Xeon, 2x for 16 rows of a 512x2048 weight, 1.5x for 32, even from 64 rows on, 5% slower
for 1 or 2. Those row counts are a batched decode step and a next turn's prefill. So the weight
is re-laid out once, in place of the original (the parameter becomes a transposed view of a
[in, out] tensor: same values, same shape, no second copy); results agree with the row-major
product to float32 rounding. A weight shared with another module (a language model head tied to
the input embeddings) keeps its layout: the embedding lookup reads its rows.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["column_major_linears"]


def column_major_linears(model: nn.Module) -> int:
    """Store the weight of every `nn.Linear` of `model` that owns it column-major, in place;
    returns how many were changed. For a float32 model on the CPU, in eval mode."""
    uses: dict[int, int] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            uses[id(param)] = uses.get(id(param), 0) + 1
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and uses[id(module.weight)] == 1:
            weight = module.weight.detach()
            module.weight = nn.Parameter(weight.t().contiguous().t(), requires_grad=False)
            changed += 1
    return changed
