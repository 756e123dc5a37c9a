"""Several prompts' prefills as one forward pass: padded into one batch, split back after.

Row i holds one prompt's reused states, left-padded to the longest reused prefix (as the decode
batch cache pads), then its new tokens, right-padded to the longest: so no query row is fully
masked (a padded query still sees its row's real tokens) and no real token sees padding. The
2-D attention mask hides the padding, positions are explicit per row, and each row's logits are
taken at its last real token. Larger matrix products can make this cheaper per token than one
forward pass per prompt (a few percent on a 2-core CPU), but only while the padding stays small
and the activations stay small: so prompts are grouped by size, up to a token count per pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import Cache

from loupe.engines.local.batch_cache import Layers, layer_states
from loupe.engines.local.families import Prefill


# Padded positions a group may add per real one: padding costs what real tokens cost, so a
# short prompt beside a long one (a step may admit one of 4,000 tokens and several of 10)
# prefills alone rather than multiply the work.
PADDING = 0.25
# Padded tokens per forward pass. Past this, a pass gains nothing from larger products and its
# activations (tokens x the MLP's width, float32) outgrow the CPU caches and the allocator's
# reusable heap: element-wise operations then run up to 5x slower per token (measured with 16
# prompts of 290 tokens: one pass of 16 prefilled 7-10% slower than passes of 2 to 4).
GROUP_TOKENS = 1024


def grouped(sizes: list[tuple[int, int]]) -> list[list[int]]:
    """Indices of the prompts to prefill together, given each one's (reused, new) token counts."""
    groups: list[list[int]] = []
    for i in sorted(range(len(sizes)), key=lambda i: sum(sizes[i])):
        trial = [*groups[-1], i] if groups else [i]
        real = sum(sum(sizes[j]) for j in trial)
        padded = len(trial) * (max(sizes[j][0] for j in trial) + max(sizes[j][1] for j in trial))
        if groups and padded <= (1 + PADDING) * real and padded <= GROUP_TOKENS:
            groups[-1] = trial
        else:
            groups.append([i])
    return groups


def stacked(prefills: list[Prefill], pasts: list[Layers], reused: list[int]) -> tuple[Prefill, Cache]:
    """One batched prefill of these single-row prefills, and a cache of their reused states."""
    new = [p.embeds.shape[1] for p in prefills]
    width, past = max(new), max(reused)
    embeds = torch.cat([F.pad(p.embeds, (0, 0, 0, width - n)) for p, n in zip(prefills, new, strict=True)])
    positions = torch.cat([F.pad(p.positions, (0, width - n)) for p, n in zip(prefills, new, strict=True)], dim=-2)
    images = torch.zeros(len(prefills), width, dtype=torch.bool, device=embeds.device)
    for row, (p, n) in enumerate(zip(prefills, new, strict=True)):
        images[row, :n] = p.images[0]
    mask = torch.tensor(
        [[0] * (past - r) + [1] * (r + n) + [0] * (width - n) for r, n in zip(reused, new, strict=True)],
        dtype=torch.long,
        device=embeds.device,
    )
    last = torch.tensor([[n - 1] for n in new], device=embeds.device)
    return Prefill({}, embeds, positions, images, _deepstack(prefills), mask, last), _past(pasts, reused, past)


def _deepstack(prefills: list[Prefill]) -> tuple[torch.Tensor, ...]:
    """Per layer, the prompts' deepstack rows one prompt after another: the row-major order of
    the batch's placeholder mask (a prompt with no new placeholders has none)."""
    depth = max(len(p.deepstack) for p in prefills)
    return tuple(torch.cat([p.deepstack[i] for p in prefills if p.deepstack]) for i in range(depth))


def split(cache: Cache, reused: list[int], new: list[int]) -> list[Layers]:
    """Each row's states, without padding: what a prefill of that prompt alone leaves."""
    past = max(reused)
    rows = [(i, slice(past - r, past + n)) for i, (r, n) in enumerate(zip(reused, new, strict=True))]
    return [
        [(keys[i : i + 1, :, at], values[i : i + 1, :, at]) for keys, values in map(layer_states, cache.layers)]
        for i, at in rows
    ]


def _past(pasts: list[Layers], reused: list[int], width: int) -> Cache:
    if width == 0:
        return DynamicCache()
    template = next(p for p in pasts if p)
    layers: Layers = []
    for i, (keys, values) in enumerate(template):
        shape = (len(pasts), keys.shape[1], width, keys.shape[-1])
        padded = (keys.new_zeros(shape), values.new_zeros(shape))
        for row, (states, n) in enumerate(zip(pasts, reused, strict=True)):
            if n:
                padded[0][row, :, width - n :] = states[i][0][0]
                padded[1][row, :, width - n :] = states[i][1][0]
        layers.append(padded)
    return DynamicCache(ddp_cache_data=layers)
