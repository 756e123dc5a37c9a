"""A tiny Mistral 3 checkpoint with the image geometry of Mistral-Small-3.1-24B-Instruct-2503."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import GenerationConfig, Mistral3Config, MistralConfig, PixtralVisionConfig

from loupe.testing.tiny.checkpoint import (
    chat_tokenizer,
    prepend_bos,
    save_checkpoint,
    text_dims,
    tower_dims,
)
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "PROCESSOR_CONFIG", "SPECIAL_TOKENS", "build"]

# The published control tokens, in their id order ([IMG] is 10).
SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<unk>",
        "<s>",
        "</s>",
        "[INST]",
        "[/INST]",
        "[AVAILABLE_TOOLS]",
        "[/AVAILABLE_TOOLS]",
        "[TOOL_RESULTS]",
        "[/TOOL_RESULTS]",
        "[TOOL_CALLS]",
        "[IMG]",
        "<pad>",
        "[IMG_BREAK]",
        "[IMG_END]",
        "[PREFIX]",
        "[MIDDLE]",
        "[SUFFIX]",
        "[SYSTEM_PROMPT]",
        "[/SYSTEM_PROMPT]",
        "[TOOL_CONTENT]",
    ),
    bos="<s>",
    eos="</s>",
    pad="<pad>",
    unk="<unk>",
)

# Behaves as the published template: "<s>", then the system prompt (the first message's if it
# is a system one, else a default: the published one's first sentence here, without its date
# and guidance) in "[SYSTEM_PROMPT]...[/SYSTEM_PROMPT]"; a user turn "[INST]" + its parts
# ("[IMG]" for an image) + "[/INST]"; an assistant turn its text + "</s>"; nothing more to
# generate (the answer follows "[/INST]").
CHAT_TEMPLATE = """\
{%- set default_system_message = 'You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup headquartered in Paris.' -%}
{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] -%}
    {%- set system_message = system if system is string else system[0]['text'] -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set system_message = default_system_message -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' -}}
{%- for message in loop_messages -%}
    {%- if message['role'] == 'user' -%}
        {%- if message['content'] is string -%}
            {{- '[INST]' + message['content'] + '[/INST]' -}}
        {%- else -%}
            {{- '[INST]' -}}
            {%- for block in message['content'] -%}
                {%- if block['type'] == 'text' -%}
                    {{- block['text'] -}}
                {%- elif block['type'] in ['image', 'image_url'] -%}
                    {{- '[IMG]' -}}
                {%- else -%}
                    {{- raise_exception('Only text and image blocks are supported in message content!') -}}
                {%- endif -%}
            {%- endfor -%}
            {{- '[/INST]' -}}
        {%- endif -%}
    {%- elif message['role'] == 'system' -%}
        {%- set system = message['content'] -%}
        {{- '[SYSTEM_PROMPT]' + (system if system is string else system[0]['text']) + '[/SYSTEM_PROMPT]' -}}
    {%- elif message['role'] == 'assistant' -%}
        {%- set answer = message['content'] -%}
        {{- (answer if answer is string else answer[0]['text']) + eos_token -}}
    {%- else -%}
        {{- raise_exception('Only user, system and assistant roles are supported!') -}}
    {%- endif -%}
{%- endfor -%}
"""

# Mistral-Small-3.1-24B-Instruct-2503's preprocessor_config.json, as published: the longer side
# at most 1,540 (55 tokens of 28 px), bicubic.
PREPROCESSOR_CONFIG = {
    "crop_size": None,
    "data_format": "channels_first",
    "default_to_square": True,
    "do_center_crop": None,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "PixtralImageProcessorFast",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "patch_size": 14,
    "processor_class": "PixtralProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 1540},
}

# Its processor_config.json: patches of 14 merged 2 x 2, so one token is 28 x 28 pixels.
PATCH_SIZE, SPATIAL_MERGE_SIZE, IMAGE_SIZE = 14, 2, 1540
PROCESSOR_CONFIG = {
    "image_break_token": "[IMG_BREAK]",
    "image_end_token": "[IMG_END]",
    "image_token": "[IMG]",
    "patch_size": PATCH_SIZE,
    "processor_class": "PixtralProcessor",
    "spatial_merge_size": SPATIAL_MERGE_SIZE,
}


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny Pixtral tower with the real patches and merge."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    prepend_bos(tokenizer, "<s>")  # as published: the template writes one too
    roles: dict[str, Any] = {
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "pad_token_id": ids["<pad>"],
    }
    text = MistralConfig(
        **text_dims(len(tokenizer), size),
        head_dim=size.head_dim,
        max_position_embeddings=131_072,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000_000.0},
        sliding_window=None,
        **roles,
    )
    vision = PixtralVisionConfig(
        **tower_dims(), image_size=IMAGE_SIZE, patch_size=PATCH_SIZE
    )
    config = Mistral3Config(
        text_config=text,
        vision_config=vision,
        image_token_index=ids["[IMG]"],
        spatial_merge_size=SPATIAL_MERGE_SIZE,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        multimodal_projector_bias=False,
        tie_word_embeddings=False,
    )
    generation = GenerationConfig(**roles)  # type: ignore[no-untyped-call]
    return save_checkpoint(
        out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, PROCESSOR_CONFIG
    )
