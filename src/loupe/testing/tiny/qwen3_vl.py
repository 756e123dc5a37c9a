"""A tiny Qwen3-VL checkpoint with the image geometry of Qwen/Qwen3-VL-2B-Instruct."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLTextConfig, Qwen3VLVisionConfig

from loupe.testing.tiny.checkpoint import save_checkpoint, token_id
from loupe.testing.tiny.qwen2_vl import SPECIAL_TOKENS
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import train_tokenizer

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "SPECIAL_TOKENS", "build"]

# Behaves as the published Instruct template: unlike Qwen2-VL no default system turn (a system
# message may be a string or text parts), one vision span per image (or video) part, optional
# "Picture n: " labels, and the assistant header when a generation prompt is asked for.
CHAT_TEMPLATE = """\
{%- set seen = namespace(images=0, videos=0) -%}
{%- for message in messages -%}
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

# Qwen3-VL-2B-Instruct's preprocessor_config.json, as published: patches of 16, merged 2 x 2,
# so one token is 32 x 32 pixels, and the pixel bounds given as `size`.
PREPROCESSOR_CONFIG = {
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "image_std": [0.5, 0.5, 0.5],
    "merge_size": 2,
    "patch_size": 16,
    "processor_class": "Qwen3VLProcessor",
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "temporal_patch_size": 2,
}


def interleaved_mrope_section(head_dim: int) -> list[int]:
    """(temporal, height, width) in the published 24/20/20 proportion of half the head dimension.

    Qwen3-VL interleaves the sections (height and width take every third frequency from 1 and
    2), so each spatial section may be at most a third of half the head dimension.
    """
    half = head_dim // 2
    spatial = half * 20 // 64
    return [half - 2 * spatial, spatial, spatial]


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny deepstack vision tower, the real patches."""
    tokenizer = train_tokenizer(SPECIAL_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {token: token_id(tokenizer, token) for token in SPECIAL_TOKENS.tokens}
    text = Qwen3VLTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        head_dim=size.head_dim,
        max_position_embeddings=262144,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": interleaved_mrope_section(size.head_dim),
            "mrope_interleaved": True,
        },
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    # The published 48 x 48 grid of learned position embeddings; one deepstack layer, as the
    # text model may have a single layer (the published towers feed three).
    vision = Qwen3VLVisionConfig(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=size.hidden_size,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        num_position_embeddings=2304,
        deepstack_visual_indexes=[1],
    )
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    generation = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    json_files = {
        "preprocessor_config.json": PREPROCESSOR_CONFIG,
        "processor_config.json": {"processor_class": "Qwen3VLProcessor"},
    }
    return save_checkpoint(out_dir, config, tokenizer, generation, json_files)
