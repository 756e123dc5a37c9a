"""A tiny Gemma 3 checkpoint with the image geometry of google/gemma-3-4b-it."""

from __future__ import annotations

from pathlib import Path

from transformers import Gemma3Config, Gemma3TextConfig, GenerationConfig, SiglipVisionConfig

from loupe.testing.tiny.checkpoint import (
    chat_tokenizer,
    prepend_bos,
    save_checkpoint,
    text_dims,
    tower_dims,
)
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
        "<mask>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<image_soft_token>",
    ),
    bos="<bos>",
    eos="<eos>",
    pad="<pad>",
    unk="<unk>",
)

# The names Gemma3Processor reads off the tokenizer, as the published tokenizer_config has them.
NAMED_TOKENS = {
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}

# Behaves as the published template: "<bos>" first; a leading system turn's text becomes a
# prefix of the first user turn, followed by "\n\n"; turns must alternate user/assistant; each
# turn is "<start_of_turn>" + role ("model" for the assistant) + "\n", its parts in order (text
# trimmed, "<start_of_image>" for images), then "<end_of_turn>\n"; "<start_of_turn>model\n" to
# generate.
CHAT_TEMPLATE = """\
{{- bos_token -}}
{%- set prefix = namespace(text='') -%}
{%- set turns = messages -%}
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] -%}
    {%- set prefix.text = (system if system is string else system[0]['text']) + '\n\n' -%}
    {%- set turns = messages[1:] -%}
{%- endif -%}
{%- for message in turns -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
    {%- endif -%}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
    {{- '<start_of_turn>' + role + '\n' + (prefix.text if loop.first else '') -}}
    {%- if message['content'] is string -%}
        {{- message['content'] | trim -}}
    {%- else -%}
        {%- for part in message['content'] -%}
            {%- if part['type'] == 'image' -%}
                {{- '<start_of_image>' -}}
            {%- elif part['type'] == 'text' -%}
                {{- part['text'] | trim -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<start_of_turn>model\n' -}}
{%- endif -%}
"""

# gemma-3-4b-it's preprocessor_config.json, as published: a plain 896 x 896 resize (bilinear);
# pan-and-scan left unset, which the processor turns into off.
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": None,
    "do_normalize": True,
    "do_pan_and_scan": None,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Gemma3ImageProcessor",
    "image_seq_length": 256,
    "image_std": [0.5, 0.5, 0.5],
    "pan_and_scan_max_num_crops": None,
    "pan_and_scan_min_crop_size": None,
    "pan_and_scan_min_ratio_to_activate": None,
    "processor_class": "Gemma3Processor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 896, "width": 896},
}

# SigLIP at 896 px, patch 14: 64 x 64 patches, average-pooled 4 x 4 to 16 x 16 = 256 tokens.
IMAGE_SIZE, PATCH_SIZE, MM_TOKENS_PER_IMAGE = 896, 14, 256


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny SigLIP tower with the real 896 px and pooling."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE, NAMED_TOKENS)
    prepend_bos(tokenizer, "<bos>")  # as published: the template writes one too
    text = Gemma3TextConfig(
        **text_dims(len(tokenizer), size),
        head_dim=size.head_dim,
        query_pre_attn_scalar=size.head_dim,
        max_position_embeddings=131_072,
        sliding_window=1024,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        pad_token_id=ids["<pad>"],
    )
    vision = SiglipVisionConfig(
        **tower_dims(), image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, vision_use_head=False
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    generation = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        pad_token_id=ids["<pad>"],
    )
    processor = {"image_seq_length": MM_TOKENS_PER_IMAGE, "processor_class": "Gemma3Processor"}
    return save_checkpoint(out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, processor)
