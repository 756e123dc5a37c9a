"""What the batched runner needs to know of a model family: positions, image encoding, prefill.

Each family says how to number a prompt's positions (Qwen2-VL's 3-D M-RoPE or plain 1-D), how
to split a prompt's images and videos into groups the vision cache keeps, each with the inputs
that encode it, and how to run a prefill from embeddings (Qwen3-VL adds deepstack rows in its
first decoder layers; Gemma 3 lets an image's placeholders attend both ways). Model types not
listed in `family_for` run on the per-request `generate` path.

A prompt's media come as cache keys in prompt order; a video's key starts with `VIDEO`, so a
family tells its images from its videos, and an image and a video never share a cache entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from transformers.cache_utils import Cache


VIDEO = "video:"
"""The prefix of a video's media key."""


def is_video(key: str) -> bool:
    return key.startswith(VIDEO)


@dataclass(frozen=True, slots=True)
class ImageGroup:
    """Images (or one video) encoded together: their cache key, placeholder count and encoder
    inputs; `video` says which of the model's encoders takes them."""

    key: str
    tokens: int
    inputs: dict[str, torch.Tensor]
    video: bool = False


@dataclass(frozen=True, slots=True)
class Features:
    """An image group's embeddings: one row per placeholder, in order, and for each of the first
    decoder layers that take them, the deepstack rows added to those placeholders' states."""

    rows: torch.Tensor
    deepstack: tuple[torch.Tensor, ...] = ()

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + sum(layer.nbytes for layer in self.deepstack)

    @staticmethod
    def joined(parts: list[Features], skip: int) -> Features:
        """The parts' placeholders end to end, without the first `skip` of them."""
        layers = zip(*(p.deepstack for p in parts), strict=True)
        return Features(torch.cat([p.rows for p in parts])[skip:], tuple(torch.cat(layer)[skip:] for layer in layers))


@dataclass(frozen=True, slots=True)
class Prefill:
    """The part of a prompt a prefill computes: the tokens after the reused prefix."""

    inputs: dict[str, torch.Tensor]  # the processor's inputs for the whole prompt
    embeds: torch.Tensor  # [1, length, hidden], image features in place
    positions: torch.Tensor  # position ids of these tokens
    images: torch.Tensor  # [1, length] bool: the image placeholders among them
    deepstack: tuple[torch.Tensor, ...]  # per layer, one row per placeholder in `images`
    # Set where several prompts are padded into one batch (see batch_prefill): the attention
    # mask over reused and new tokens, and each row's last real token ([rows, 1] indices).
    mask: torch.Tensor | None = None
    last: torch.Tensor | None = None


class Family(Protocol):
    mrope: bool
    batched: bool  # whether `forward` takes several prompts padded into one batch, exactly

    def positions(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Position ids of the whole prompt and the offset that text after it keeps."""
        ...

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        """The prompt's images and videos as the vision cache keeps them, in placeholder order;
        `keys` has one key per image or video, in prompt order. Every placeholder of the prompt
        belongs to one group."""
        ...

    def encode(self, model: Any, group: ImageGroup) -> Features:
        """The group's features through the vision tower: `group.tokens` rows."""
        ...

    def forward(self, model: Any, prefill: Prefill, cache: Cache) -> torch.Tensor:
        """The logits [rows, vocab] after each prompt's last token; `cache` gains the prefill's
        states. Only a family that is `batched` is given more than one row."""
        ...


def forward_embeds(model: Any, prefill: Prefill, cache: Cache, **extra: Any) -> torch.Tensor:
    """A prefill through the model's own forward, as `generate` runs it (less the vision tower)."""
    out = model(
        inputs_embeds=prefill.embeds,
        position_ids=prefill.positions,
        attention_mask=prefill.mask,
        cache=cache,
        use_cache=True,
        logits_to_keep=1 if prefill.last is None else prefill.last,
        **extra,
    )
    logits: torch.Tensor = out.logits[:, -1]
    return logits


class Defaults:
    """What most families share: 1-D positions, the tower's pooled features, the model's forward."""

    mrope = False
    batched = True

    def positions(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids = inputs["input_ids"]
        return torch.arange(ids.shape[1], device=ids.device).view(1, -1), 0

    def encode(self, model: Any, group: ImageGroup) -> Features:
        out = _encoder(model, group)(**group.inputs, return_dict=True)
        return Features(torch.cat(list(out.pooler_output), dim=0))

    def forward(self, model: Any, prefill: Prefill, cache: Cache) -> torch.Tensor:
        return forward_embeds(model, prefill, cache)


class Qwen2VL(Defaults):
    """3-D M-RoPE positions; one group per image and per video: the processor concatenates each
    one's patches, grid by grid."""

    mrope = True

    def positions(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids = inputs["input_ids"]
        grids = {k: inputs[k] for k in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts") if k in inputs}
        if "image_grid_thw" not in grids and "video_grid_thw" not in grids:
            return torch.arange(ids.shape[1], device=ids.device).view(1, 1, -1).expand(3, 1, -1), 0
        positions, deltas = model.model.get_rope_index(ids, mm_token_type_ids=inputs["mm_token_type_ids"], **grids)
        return positions, int(deltas.reshape(-1)[0])

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        merge = model.model.visual.spatial_merge_size
        # Pixels are absent where the prompt was prepared without them.
        kinds = {False: _Grids(inputs, "image"), True: _Grids(inputs, "video")}
        groups = []
        for key in keys:
            video = is_video(key)
            grid, encoder = kinds[video].next()
            groups.append(ImageGroup(key, int(grid.prod()) // merge**2, encoder, video))
        return groups


class _Grids:
    """A prompt's images' (or videos') grids and pixel rows, taken one by one in order."""

    def __init__(self, inputs: dict[str, torch.Tensor], kind: str) -> None:
        suffix = "" if kind == "image" else "_videos"
        self._grid_name, self._pixel_name = f"{kind}_grid_thw", f"pixel_values{suffix}"
        self._grids = inputs.get(self._grid_name)
        self._pixels = inputs.get(self._pixel_name)
        self._taken = self._start = 0

    def next(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert self._grids is not None and self._taken < len(self._grids), "one grid per image or video"
        grid = self._grids[self._taken]
        rows = int(grid.prod())
        encoder = {self._grid_name: grid[None]}
        if self._pixels is not None:
            encoder[self._pixel_name] = self._pixels[self._start : self._start + rows]
        self._taken, self._start = self._taken + 1, self._start + rows
        return grid, encoder


class Qwen3VL(Qwen2VL):
    """Qwen2-VL's positions and groups; the vision tower also gives "deepstack" rows, which the
    language model adds to the placeholders' hidden states after each of its first layers.

    The top-level forward takes them only from its own vision pass, so a prefill calls the
    language model itself, with the rows of the placeholders it computes. In a padded batch the
    model adds them where the placeholder mask is set, in row-major order: each prompt's rows,
    prompt after prompt (see batch_prefill.stacked).
    """

    def encode(self, model: Any, group: ImageGroup) -> Features:
        out = _encoder(model, group)(**group.inputs, return_dict=True)
        deepstack = tuple(torch.cat(list(layer), dim=0) for layer in out.deepstack_features)
        return Features(torch.cat(list(out.pooler_output), dim=0), deepstack)

    def forward(self, model: Any, prefill: Prefill, cache: Cache) -> torch.Tensor:
        hidden = model.model.language_model(
            inputs_embeds=prefill.embeds,
            position_ids=prefill.positions,
            attention_mask=prefill.mask,
            cache=cache,
            use_cache=True,
            visual_pos_masks=prefill.images,
            deepstack_visual_embeds=list(prefill.deepstack),
        ).last_hidden_state
        if prefill.last is None:
            last = hidden[:, -1]
        else:
            last = hidden.gather(1, prefill.last[..., None].expand(-1, -1, hidden.shape[-1]))[:, 0]
        logits: torch.Tensor = model.lm_head(last)
        return logits


@dataclass(frozen=True, slots=True)
class Joined(Defaults):
    """A prompt's images are encoded together, as one group, from these processor inputs: their
    tiles come as one tensor with no count per image (SmolVLM, Idefics3, InternVL), or the tower
    treats an image alone differently from one of several (LLaVA-OneVision's any-resolution).
    SmolVLM's video frames are such images (its requests take images or a video, never both)."""

    vision: tuple[str, ...]

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        if "pixel_values" not in inputs:
            return []
        tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
        return [ImageGroup("|".join(keys), tokens, {k: inputs[k] for k in self.vision if k in inputs})]


@dataclass(frozen=True, slots=True)
class Onevision(Joined):
    """LLaVA-OneVision: images joined as above; each video a group of its own, its frames
    pooled, then one newline row (its requests take images or videos, never both)."""

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        videos = [key for key in keys if is_video(key)]
        if not videos:
            return Joined.groups(self, model, inputs, keys)  # slotted: no zero-argument super()
        pixels = inputs["pixel_values_videos"]  # [videos, frames, 3, height, width]
        tokens = int((inputs["input_ids"] == model.config.video_token_id).sum()) // len(videos)
        return [ImageGroup(key, tokens, {"pixel_values_videos": pixels[i : i + 1]}, True) for i, key in enumerate(videos)]


class PerImage(Defaults):
    """One pixel row per image, encoded alone, with as many placeholders as any other image
    (LLaVA-1.5's centre crop, Gemma 3's square)."""

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        if "pixel_values" not in inputs:
            return []
        pixels = inputs["pixel_values"]
        assert pixels.shape[0] == len(keys), "one pixel row per image"
        tokens = int((inputs["input_ids"] == model.config.image_token_id).sum()) // len(keys)
        return [ImageGroup(key, tokens, {"pixel_values": pixels[i : i + 1]}) for i, key in enumerate(keys)]


class Mistral3(Defaults):
    """One group per image: the processor pads a prompt's images to one size, with each one's
    own in `image_sizes`; an image is encoded alone, from its own pixels (the Pixtral tower
    attends within each image only)."""

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        if "pixel_values" not in inputs:
            return []
        factor = model.config.vision_config.patch_size * model.config.spatial_merge_size
        groups = []
        for i, (key, (height, width)) in enumerate(zip(keys, inputs["image_sizes"].tolist(), strict=True)):
            pixels = inputs["pixel_values"][i : i + 1, :, :height, :width]
            encoder = {"pixel_values": pixels, "image_sizes": inputs["image_sizes"][i : i + 1]}
            groups.append(ImageGroup(key, (height // factor) * (width // factor), encoder))
        return groups


class Llama4(Defaults):
    """One group per image, between its `<|image_start|>` and `<|image_end|>`: its tiles'
    patches, the global tile's last. The processor's pixel values are bfloat16 (as the original
    implementation makes them); the tower gets them in the model's dtype, as a caller of
    `generate` casts them."""

    def groups(self, model: Any, inputs: dict[str, torch.Tensor], keys: tuple[str, ...]) -> list[ImageGroup]:
        if "pixel_values" not in inputs:
            return []
        ids, config = inputs["input_ids"][0], model.config
        vision = config.vision_config
        per_tile = int((vision.image_size // vision.patch_size) ** 2 * vision.pixel_shuffle_ratio**2)
        starts = (ids == config.boi_token_id).nonzero()[:, 0].tolist()
        ends = (ids == config.eoi_token_id).nonzero()[:, 0].tolist()
        groups, at = [], 0
        for key, start, end in zip(keys, starts, ends, strict=True):
            patches = int((ids[start:end] == config.image_token_id).sum())
            tiles = patches // per_tile
            groups.append(ImageGroup(key, patches, {"pixel_values": inputs["pixel_values"][at : at + tiles]}))
            at += tiles
        return groups

    def encode(self, model: Any, group: ImageGroup) -> Features:
        pixels = group.inputs["pixel_values"].to(model.dtype)
        out = model.get_image_features(pixel_values=pixels, return_dict=True)
        return Features(out.pooler_output.reshape(-1, out.pooler_output.shape[-1]))


class Gemma3(PerImage):
    """An image's placeholders attend to each other both ways in a prefill; the mask finds them
    by absolute position in the token types of the whole prompt, reused prefix included."""

    batched = False  # those token types are one prompt's, not a padded batch's

    def forward(self, model: Any, prefill: Prefill, cache: Cache) -> torch.Tensor:
        return forward_embeds(model, prefill, cache, token_type_ids=prefill.inputs["token_type_ids"])


def _encoder(model: Any, group: ImageGroup) -> Any:
    return model.model.get_video_features if group.video else model.model.get_image_features


def family_for(model_type: str) -> Family | None:
    """The batched runner's description of `model_type`, or None: use `generate` per request."""
    # Each model type here is checked against `generate`, logit for logit, on a tiny checkpoint
    # (see the tests). Qwen2.5-VL and GLM-4.1V share Qwen2-VL's M-RoPE and per-image grids;
    # Idefics3 is SmolVLM's design; Qwen3-VL-MoE is Qwen3-VL with expert MLPs.
    families: dict[str, Family] = {
        "qwen2_vl": Qwen2VL(),
        "qwen2_5_vl": Qwen2VL(),
        "glm4v": Qwen2VL(),
        "qwen3_vl": Qwen3VL(),
        "qwen3_vl_moe": Qwen3VL(),
        "smolvlm": Joined(("pixel_values", "pixel_attention_mask")),
        "idefics3": Joined(("pixel_values", "pixel_attention_mask")),
        "internvl": Joined(("pixel_values",)),
        "llava_onevision": Onevision(("pixel_values", "image_sizes", "batch_num_images")),
        "llava": PerImage(),
        "gemma3": Gemma3(),
        "mistral3": Mistral3(),
        "llama4": Llama4(),
    }
    return families.get(model_type)
