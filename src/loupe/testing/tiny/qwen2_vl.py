"""A tiny Qwen2-VL checkpoint with the image geometry of Qwen/Qwen2-VL-2B-Instruct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLTextConfig, Qwen2VLVisionConfig

from loupe.testing.tiny import qwen2
from loupe.testing.tiny.checkpoint import Parts, chat_tokenizer, save_checkpoint, text_dims
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|object_ref_start|>",
        "<|object_ref_end|>",
        "<|box_start|>",
        "<|box_end|>",
        "<|quad_start|>",
        "<|quad_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ),
    eos="<|im_end|>",
    pad="<|endoftext|>",
)

# Behaves as the published template: a default system turn when the first message is not one,
# one vision span per image (or video) part, optional "Picture n: " labels, and the assistant
# header when a generation prompt is asked for.
CHAT_TEMPLATE = """\
{%- set seen = namespace(images=0, videos=0) -%}
{%- for message in messages -%}
    {%- if loop.first and message['role'] != 'system' -%}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
    {%- endif -%}
    {{- '<|im_start|>' + message['role'] + '\n' -}}
    {%- if message['content'] is string -%}
        {{- message['content'] -}}
    {%- else -%}
        {%- for part in message['content'] -%}
            {%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}
                {%- set seen.images = seen.images + 1 -%}
                {%- if add_vision_id -%}{{- 'Picture ' ~ seen.images ~ ': ' -}}{%- endif -%}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
            {%- elif part['type'] == 'video' or 'video' in part -%}
                {%- set seen.videos = seen.videos + 1 -%}
                {%- if add_vision_id -%}{{- 'Video ' ~ seen.videos ~ ': ' -}}{%- endif -%}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
            {%- elif 'text' in part -%}
                {{- part['text'] -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""

# Qwen2-VL-2B-Instruct's preprocessor_config.json, as published.
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "Qwen2VLImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "max_pixels": 12845056,
    "merge_size": 2,
    "min_pixels": 3136,
    "patch_size": 14,
    "processor_class": "Qwen2VLProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "temporal_patch_size": 2,
}


def mrope_section(head_dim: int) -> list[int]:
    """Split half the head dimension into (temporal, height, width) like the published 16/24/24."""
    half = head_dim // 2
    temporal = half // 4
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def span_token_ids(ids: dict[str, int]) -> dict[str, Any]:
    """The vision span tokens a Qwen-VL config names: the pads and the span's two ends."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def generation_config(ids: dict[str, int]) -> GenerationConfig:
    """As the Qwen-VL Instruct models publish it: stop at the end of a turn or of the text."""
    return GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )


def text_kwargs(
    vocab_size: int, size: TextSize, ids: dict[str, int], max_positions: int
) -> dict[str, Any]:
    """The Qwen2-VL text model's settings, which Qwen2.5-VL keeps but for a longer context."""
    return {
        **text_dims(vocab_size, size),
        "max_position_embeddings": max_positions,
        "max_window_layers": size.layers,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": mrope_section(size.head_dim),
        },
        **qwen2.text_token_ids(ids),
    }


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny vision tower with the real patches and merge."""
    return save_checkpoint(out_dir, *parts(size))


def parts(size: TextSize) -> Parts:
    """What `build` writes, before the weights exist."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    text = Qwen2VLTextConfig(**text_kwargs(len(tokenizer), size, ids, max_positions=32768))
    vision = Qwen2VLVisionConfig(
        depth=2,
        embed_dim=32,
        num_heads=2,
        mlp_ratio=4,
        hidden_size=size.hidden_size,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = Qwen2VLConfig(
        text_config=text, vision_config=vision, **span_token_ids(ids), tie_word_embeddings=True
    )
    processor = {"processor_class": "Qwen2VLProcessor"}
    return Parts(config, tokenizer, generation_config(ids), PREPROCESSOR_CONFIG, processor)
