"""A tiny LLaVA-OneVision checkpoint with the image geometry of
llava-hf/llava-onevision-qwen2-0.5b-ov-hf."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, LlavaOnevisionConfig, SiglipVisionConfig

from loupe.testing.tiny import qwen2
from loupe.testing.tiny.checkpoint import chat_tokenizer, save_checkpoint, tower_dims
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

SPECIAL_TOKENS = SpecialTokens(
    tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
    eos="<|im_end|>",
    pad="<|endoftext|>",
)

# Behaves as the published template: "<|im_start|>" + role + " " opens each turn, then all its
# images as "<image>", all its videos as "<video>", each text part after a "\n", and
# "<|im_end|>" (no newline after it); "<|im_start|>assistant\n" to generate. Unlike the
# published one it also accepts plain-string content as a single text part.
CHAT_TEMPLATE = """\
{%- for message in messages -%}
    {{- '<|im_start|>' + message['role'] + ' ' -}}
    {%- if message['content'] is string -%}
        {{- '\n' + message['content'] -}}
    {%- else -%}
        {%- for part in message['content'] if part['type'] == 'image' -%}
            {{- '<image>' -}}
        {%- endfor -%}
        {%- for part in message['content'] if part['type'] == 'video' -%}
            {{- '<video>' -}}
        {%- endfor -%}
        {%- for part in message['content'] if part['type'] == 'text' -%}
            {{- '\n' + part['text'] -}}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|im_end|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""

# Every (height, width) multiple of 384 up to 6 x 6 tiles, as published.
GRID_PINPOINTS = [[384 * rows, 384 * cols] for rows in range(1, 7) for cols in range(1, 7)]

# llava-onevision-qwen2-0.5b-ov-hf's preprocessor_config.json, as published.
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_grid_pinpoints": GRID_PINPOINTS,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "LlavaOnevisionImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "LlavaOnevisionProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 384, "width": 384},
}

# SigLIP at 384 px, patch 14: 27 x 27 = 729 features a tile, all kept ("full" strategy).
IMAGE_SIZE, PATCH_SIZE = 384, 14
PROCESSOR_CONFIG = {
    "image_token": "<image>",
    "num_image_tokens": (IMAGE_SIZE // PATCH_SIZE) ** 2,
    "processor_class": "LlavaOnevisionProcessor",
    "video_token": "<video>",
    "vision_aspect_ratio": "anyres_max_9",
    "vision_feature_select_strategy": "full",
}


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny SigLIP tower with the real tiles and grid."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    vision = SiglipVisionConfig(
        **tower_dims(), image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, vision_use_head=False
    )
    config = LlavaOnevisionConfig(
        text_config=qwen2.text_config(len(tokenizer), size, ids),
        vision_config=vision,
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=GRID_PINPOINTS,
        vision_aspect_ratio="anyres_max_9",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=True,
    )
    generation = GenerationConfig(**qwen2.text_token_ids(ids))  # type: ignore[no-untyped-call]
    return save_checkpoint(
        out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, PROCESSOR_CONFIG
    )
