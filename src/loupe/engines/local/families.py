"""What the batched runner needs to know of a model family: positions and image encoding.

Each family says how to number a prompt's positions (Qwen2-VL's 3-D M-RoPE or plain 1-D) and
how to split a prompt's images into groups the vision cache keeps, each with the inputs that
encode it. Families not listed here run on the per-request `generate` path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True, slots=True)
class ImageGroup:
    """Images encoded together: their cache key, placeholder count and encoder inputs."""

    key: str
    tokens: int
    inputs: dict[str, torch.Tensor]


class Family(Protocol):
    mrope: bool

    def positions(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Position ids of the whole prompt and the offset that text after it keeps."""
        ...

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]: ...

    def encode(self, model: Any, group: ImageGroup) -> torch.Tensor:
        """One row per image placeholder of the group, in order."""
        ...


class Qwen2VL:
    """One group per image: the processor concatenates each image's patches, grid by grid."""

    mrope = True

    def positions(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids = inputs["input_ids"]
        if "image_grid_thw" not in inputs:
            return torch.arange(ids.shape[1], device=ids.device).view(1, 1, -1).expand(3, 1, -1), 0
        positions, deltas = model.model.get_rope_index(
            ids, mm_token_type_ids=inputs["mm_token_type_ids"], image_grid_thw=inputs["image_grid_thw"]
        )
        return positions, int(deltas.reshape(-1)[0])

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        if "image_grid_thw" not in inputs:
            return []
        grids = inputs["image_grid_thw"]
        merge = model.model.visual.spatial_merge_size
        groups, start = [], 0
        for key, grid in zip(keys, grids, strict=True):
            rows = int(grid.prod())
            pixels = inputs["pixel_values"][start : start + rows]
            groups.append(ImageGroup(key, rows // merge**2, {"pixel_values": pixels, "image_grid_thw": grid[None]}))
            start += rows
        return groups

    def encode(self, model: Any, group: ImageGroup) -> torch.Tensor:
        out = model.model.get_image_features(**group.inputs, return_dict=True)
        return torch.cat(list(out.pooler_output), dim=0)


class SmolVLM:
    """A prompt's tiles are encoded together, so its images form one group."""

    mrope = False

    def positions(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids = inputs["input_ids"]
        return torch.arange(ids.shape[1], device=ids.device).view(1, -1), 0

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        if "pixel_values" not in inputs:
            return []
        tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
        vision = {k: inputs[k] for k in ("pixel_values", "pixel_attention_mask") if k in inputs}
        return [ImageGroup("|".join(keys), tokens, vision)]

    def encode(self, model: Any, group: ImageGroup) -> torch.Tensor:
        out = model.model.get_image_features(**group.inputs, return_dict=True)
        return torch.cat(list(out.pooler_output), dim=0)


def family_for(model_type: str) -> Family | None:
    """The batched runner's description of `model_type`, or None: use `generate` per request."""
    # Qwen2.5-VL and GLM-4.1V share Qwen2-VL's M-RoPE and per-image grids (tests compare their
    # logits with `generate`). Qwen3-VL does not: it injects "deepstack" visual features into
    # early decoder layers, which a prefill from `inputs_embeds` would skip.
    if model_type in ("qwen2_vl", "qwen2_5_vl", "glm4v"):
        return Qwen2VL()
    if model_type == "smolvlm":
        return SmolVLM()
    return None
