"""Linear layers of a model on the CPU, multiplied by oneDNN with weights packed once.

PyTorch multiplies an `nn.Linear` with MKL's sgemm, which re-packs the weight at every call and,
on the AMD EPYC (AVX2) machines Loupe was last measured on, runs the products of a batched decode
step or a next turn's prefill (a few to a few dozen rows) at a third of the machine's peak.
oneDNN's matmul, given the weight reordered once into its own blocked layout (as Intel's
extension for PyTorch and vLLM's CPU backend do), measured there 1.2-2.4x faster per product
from 4 to 290 rows and 1.1-1.3x at 1,024; on the benchmark's model a batch-16 decode step took
24 ms instead of 30 and a 3 x 290-token prefill 15% less time; a single row is a wash (the step
is bound by reading the weights). Results agree with MKL's to float32 rounding.

bfloat16 weights go the same way: without a packed weight, oneDNN reorders the weight at every
call. Measured on an AMD EPYC with AVX512-BF16 (one thread, interleaved minimums), packing made
the products of a decode step 1.5-1.7x faster (8 or 16 rows by 576 x 1,536: 0.097 ms instead
of 0.150; a 49,280-row head at 8 rows: 12.7 ms instead of 28.7) and a 512-row prefill product
1.5x faster; from 1,024 rows it is a wash. Packed bfloat16 ran 1.6-2x faster than packed float32
at every shape there.

oneDNN compiles a kernel for each input shape it meets (about 1 ms) and keeps it in a cache; a
prompt of a length it has not seen would pay that for every weight shape of the model. Inputs of
up to `ROW_EXACT_LIMIT` rows (decode batches, each size compiled once) keep their size; inputs of
up to `ROW_BUCKET_LIMIT` rows are padded with zero rows to the next multiple of `ROW_BUCKET`, so a
few dozen kernels serve every short prefill; longer inputs keep their size (compiling costs a few
percent of one product there, once per length).

A language-model head tied to the input embeddings (whose lookup reads the weight's rows) is packed
as well, into a copy: the model then holds that weight twice (467 MB more for Qwen2-VL-2B in
bfloat16, 57 MB for a tied SmolVLM-256M), which buys the largest single product of a decode step
its packed speed (measured at 8 rows: 16.4 ms instead of 29.2 on Qwen2-VL-2B-size, 2.4 instead
of 4.4 on SmolVLM-256M-size; a batch-8 step of Qwen2-VL-2B-size 15 ms faster). Any other weight
two modules share is left to MKL rather than held twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

__all__ = ["PackedLinear", "ROW_BUCKET", "ROW_BUCKET_LIMIT", "ROW_EXACT_LIMIT", "packed_linears", "padded_rows"]

ROW_EXACT_LIMIT = 32
ROW_BUCKET = 8
ROW_BUCKET_LIMIT = 256
# The row count oneDNN lays the weight out for; measured within noise of the best from 16 to 1,024.
_PACKING_ROWS = 64


def padded_rows(rows: int) -> int:
    """The row count an input of `rows` rows is multiplied at."""
    if rows <= ROW_EXACT_LIMIT or rows > ROW_BUCKET_LIMIT:
        return rows
    return -(-rows // ROW_BUCKET) * ROW_BUCKET


class PackedLinear(nn.Module):
    """`nn.Linear`'s forward with the weight in oneDNN's layout. `weight` is that packed tensor
    (same shape and dtype as the original, readable only by oneDNN); it is not in the state dict."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), _PACKING_ROWS)
        self.register_buffer("weight", packed, persistent=False)
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        rows = flat.shape[0]
        padded = padded_rows(rows)
        if padded != rows:
            flat = F.pad(flat, (0, 0, 0, padded - rows))
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, "none", [], "")
        return out[:rows].view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def packed_linears(model: nn.Module) -> int:
    """Replace every `nn.Linear` of `model` that owns its weight, and its language-model head
    (tied or not), by a `PackedLinear`; returns how many were replaced (0 where this PyTorch has
    no oneDNN). For a float32 or bfloat16 model on the CPU, in eval mode."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return 0
    head = model.get_output_embeddings() if isinstance(model, PreTrainedModel) else None  # type: ignore[no-untyped-call]
    uses: dict[int, int] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            uses[id(param)] = uses.get(id(param), 0) + 1
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and (uses[id(child.weight)] == 1 or child is head):
                setattr(parent, name, PackedLinear(child))
                replaced += 1
    return replaced
