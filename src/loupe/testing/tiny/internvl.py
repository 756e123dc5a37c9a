"""A tiny InternVL checkpoint with the image geometry of OpenGVLab/InternVL3-1B-hf."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, InternVLConfig, InternVLVisionConfig

from loupe.testing.tiny import qwen2
from loupe.testing.tiny.checkpoint import chat_tokenizer, save_checkpoint, tower_dims
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<img>",
        "</img>",
        "<IMG_CONTEXT>",
        "<quad>",
        "</quad>",
        "<ref>",
        "</ref>",
        "<box>",
        "</box>",
        "<video>",
    ),
    eos="<|im_end|>",
    pad="<|endoftext|>",
)

# The names InternVLProcessor reads off the tokenizer, as the published tokenizer_config has them.
NAMED_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}

# Behaves as the published template: no default system turn; each turn
# "<|im_start|>" + role + "\n", its parts in order ("<IMG_CONTEXT>\n" for an image,
# "<video>\n" for a video, text as is), then "<|im_end|>\n"; "<|im_start|>assistant\n" to
# generate.
CHAT_TEMPLATE = """\
{%- for message in messages -%}
    {{- '<|im_start|>' + message['role'] + '\n' -}}
    {%- if message['content'] is string -%}
        {{- message['content'] -}}
    {%- else -%}
        {%- for part in message['content'] -%}
            {%- if part['type'] == 'image' -%}
                {{- '<IMG_CONTEXT>\n' -}}
            {%- elif part['type'] == 'video' -%}
                {{- '<video>\n' -}}
            {%- elif part['type'] == 'text' -%}
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

# InternVL3-1B-hf's preprocessor_config.json, as published. Its `crop_to_patches: false` is
# overridden by InternVLProcessor, which always asks for tiles.
PREPROCESSOR_CONFIG = {
    "crop_size": None,
    "crop_to_patches": False,
    "data_format": "channels_first",
    "default_to_square": True,
    "do_center_crop": None,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "GotOcr2ImageProcessorFast",
    "image_std": [0.229, 0.224, 0.225],
    "max_patches": 12,
    "min_patches": 1,
    "processor_class": "InternVLProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 448, "width": 448},
}

# 448 / 14 = 32 patches a side; pixel shuffle at ratio 0.5 leaves 16 x 16 = 256 tokens a tile.
IMAGE_SIZE, PATCH_SIZE, DOWNSAMPLE_RATIO = 448, 14, 0.5
IMAGE_SEQ_LENGTH = int((IMAGE_SIZE // PATCH_SIZE) ** 2 * DOWNSAMPLE_RATIO**2)


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny InternViT with the real tiles and shuffle."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE, NAMED_TOKENS)
    vision = InternVLVisionConfig(
        **tower_dims(),
        image_size=[IMAGE_SIZE, IMAGE_SIZE],
        patch_size=[PATCH_SIZE, PATCH_SIZE],
    )
    config = InternVLConfig(
        text_config=qwen2.text_config(len(tokenizer), size, ids),
        vision_config=vision,
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=IMAGE_SEQ_LENGTH,
        downsample_ratio=DOWNSAMPLE_RATIO,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    generation = GenerationConfig(**qwen2.text_token_ids(ids))  # type: ignore[no-untyped-call]
    processor = {"image_seq_length": IMAGE_SEQ_LENGTH, "processor_class": "InternVLProcessor"}
    return save_checkpoint(out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, processor)
