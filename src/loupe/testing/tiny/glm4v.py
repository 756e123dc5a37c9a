"""A tiny GLM-4.1V checkpoint (`glm4v`) with the image geometry of zai-org/GLM-4.1V-9B-Thinking."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, Glm4vConfig, Glm4vTextConfig, Glm4vVisionConfig

from loupe.testing.tiny.checkpoint import (
    chat_tokenizer,
    merger_tower_dims,
    save_checkpoint,
    text_dims,
)
from loupe.testing.tiny.qwen2_vl import mrope_section
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "SPECIAL_TOKENS", "build"]

SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<|endoftext|>",
        "[MASK]",
        "[gMASK]",
        "[sMASK]",
        "<sop>",
        "<eop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
        "<|begin_of_image|>",
        "<|end_of_image|>",
        "<|begin_of_video|>",
        "<|end_of_video|>",
        "<|image|>",
        "<|video|>",
    ),
    eos="<|endoftext|>",
    pad="<|endoftext|>",
)

# Behaves as the published template: "[gMASK]<sop>" once, then each turn "<|role|>\n" and its
# parts in order (an image is "<|begin_of_image|><|image|><|end_of_image|>"), no separator after
# a turn, and "<|assistant|>\n" to generate. Earlier assistant turns are replayed without their
# reasoning: only what follows the last "</think>". Like the published one, it loops over
# `message['content']` itself: vLLM looks for that loop to pass the parts as they are; without it
# vLLM joins them into one string, a newline after each image (one token more than Hugging Face).
CHAT_TEMPLATE = """\
{{- '[gMASK]<sop>' -}}
{%- for message in messages -%}
    {{- '<|' + message['role'] + '|>\n' -}}
    {%- if message['content'] is string -%}
        {%- if message['role'] == 'assistant' -%}
            {{- message['content'].split('</think>')[-1].strip() -}}
        {%- else -%}
            {{- message['content'] -}}
        {%- endif -%}
    {%- else -%}
        {%- for part in message['content'] -%}
            {%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}
                {{- '<|begin_of_image|><|image|><|end_of_image|>' -}}
            {%- elif part['type'] == 'video' or 'video' in part -%}
                {{- '<|begin_of_video|><|video|><|end_of_video|>' -}}
            {%- elif 'text' in part and message['role'] == 'assistant' -%}
                {{- part['text'].split('</think>')[-1].strip() -}}
            {%- elif 'text' in part -%}
                {{- part['text'] -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|assistant|>\n' -}}
{%- endif -%}
"""

# GLM-4.1V-9B-Thinking's preprocessor_config.json, as published. Its bounds are counted over two
# frames (an image is its own temporal pair): 2 * h * w lies within [12544, 9633792].
PREPROCESSOR_CONFIG = {
    "do_rescale": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "Glm4vImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "merge_size": 2,
    "patch_size": 14,
    "processor_class": "Glm4vProcessor",
    "size": {"longest_edge": 9633792, "shortest_edge": 12544},
    "temporal_patch_size": 2,
}

# The text model rotates half of each head (the published 128 -> 64), in three mrope sections.
PARTIAL_ROTARY_FACTOR = 0.5


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny vision tower with the real patches and merge."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    rotary_dim = int(size.head_dim * PARTIAL_ROTARY_FACTOR)
    text = Glm4vTextConfig(
        **text_dims(len(tokenizer), size),
        max_position_embeddings=65536,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10_000.0,
            "partial_rotary_factor": PARTIAL_ROTARY_FACTOR,
            "mrope_section": mrope_section(rotary_dim),
        },
        pad_token_id=ids["<|endoftext|>"],
    )
    # The published 336-pixel grid of learned position embeddings, interpolated per image.
    vision = Glm4vVisionConfig(**merger_tower_dims(size, patch_size=14), image_size=336)
    config = Glm4vConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
        tie_word_embeddings=False,
    )
    # As published: a turn ends at end of text, or where the model starts the next user or
    # observation turn itself.
    generation = GenerationConfig(  # type: ignore[no-untyped-call]
        eos_token_id=[ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    processor = {"processor_class": "Glm4vProcessor"}
    return save_checkpoint(out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, processor)
