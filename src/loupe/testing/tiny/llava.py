"""A tiny LLaVA-1.5 checkpoint with the image geometry of llava-hf/llava-1.5-7b-hf."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    PreTrainedTokenizerFast,
)

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
    tokens=("<unk>", "<s>", "</s>", "<image>", "<pad>"),
    bos="<s>",
    eos="</s>",
    pad="<pad>",
    unk="<unk>",
)

# Behaves as the published template: "USER: " / "ASSISTANT: " before each turn (nothing before
# a system turn), a turn's images first as "<image>\n" each, then each text part followed by a
# space, and "ASSISTANT:" to generate. Unlike the published one it also accepts plain-string
# content as a single text part.
CHAT_TEMPLATE = """\
{%- for message in messages -%}
    {%- if message['role'] != 'system' -%}
        {{- message['role'] | upper + ': ' -}}
    {%- endif -%}
    {%- if message['content'] is string -%}
        {{- message['content'] + ' ' -}}
    {%- else -%}
        {%- for part in message['content'] if part['type'] == 'image' -%}
            {{- '<image>\n' -}}
        {%- endfor -%}
        {%- for part in message['content'] if part['type'] == 'text' -%}
            {{- part['text'] + ' ' -}}
        {%- endfor -%}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'ASSISTANT:' -}}
{%- endif -%}
"""

# llava-1.5-7b-hf's preprocessor_config.json, as published: CLIP's shortest edge 336, then a
# 336 x 336 centre crop.
PREPROCESSOR_CONFIG = {
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "processor_class": "LlavaProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 336},
}

# 336 / 14 = 24 patches a side, 576 plus CLIP's class token; the "default" strategy drops it.
IMAGE_SIZE, PATCH_SIZE = 336, 14
PROCESSOR_CONFIG = {
    "image_token": "<image>",
    "num_additional_image_tokens": 1,
    "patch_size": PATCH_SIZE,
    "processor_class": "LlavaProcessor",
    "vision_feature_select_strategy": "default",
}


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny CLIP tower with the real 336 px, patch 14."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    prepend_bos(tokenizer, "<s>")
    text = LlamaConfig(
        **text_dims(len(tokenizer), size),
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
    )
    vision = CLIPVisionConfig(
        **tower_dims(), projection_dim=32, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE
    )
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=ids["<image>"],
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        # Not in LlavaConfig's signature, but still accepted and written to config.json.
        pad_token_id=ids["<pad>"],  # type: ignore[call-arg]
        tie_word_embeddings=False,
    )
    generation = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"]
    )
    return save_checkpoint(
        out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, PROCESSOR_CONFIG
    )
