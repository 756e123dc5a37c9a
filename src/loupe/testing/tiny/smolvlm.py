"""A tiny SmolVLM checkpoint with the image geometry of HuggingFaceTB/SmolVLM-256M-Instruct."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, LlamaConfig, SmolVLMConfig, SmolVLMVisionConfig

from loupe.testing.tiny.checkpoint import Parts, chat_tokenizer, save_checkpoint, text_dims, tower_dims
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

# Tiles go up to 4x4 at the published sizes (2048 / 512); the published vocabulary has 6x6.
_TILE_TOKENS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))

SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        "<end_of_utterance>",
        *_TILE_TOKENS,
    ),
    bos="<|im_start|>",
    eos="<end_of_utterance>",
    pad="<|im_end|>",
    unk="<|endoftext|>",
)

# Behaves as the published template: one "<|im_start|>" for the whole conversation, each turn
# "Role:" (no space when the turn opens with an image, else ": "), the parts in order with
# "<image>" for images, "<end_of_utterance>\n" after each turn, and "Assistant:" to generate.
# Unlike the published one it also accepts plain-string content as a single text part.
CHAT_TEMPLATE = """\
{{- '<|im_start|>' -}}
{%- for message in messages -%}
    {{- message['role'] | capitalize -}}
    {%- if message['content'] is string -%}
        {{- ': ' + message['content'] -}}
    {%- else -%}
        {{- ':' if message['content'][0]['type'] == 'image' else ': ' -}}
        {%- for part in message['content'] -%}
            {%- if part['type'] == 'text' -%}
                {{- part['text'] -}}
            {%- elif part['type'] == 'image' -%}
                {{- '<image>' -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<end_of_utterance>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'Assistant:' -}}
{%- endif -%}
"""

# SmolVLM-256M-Instruct's preprocessor_config.json, as published (resample 1 is LANCZOS).
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True,
    "do_image_splitting": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "SmolVLMImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "max_image_size": {"longest_edge": 512},
    "processor_class": "SmolVLMProcessor",
    "resample": 1,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 2048},
}

# 512 / 16 = 32 patches a side, 1024 per tile; pixel shuffle by 4 leaves 1024 / 16 = 64 tokens.
IMAGE_SIZE, PATCH_SIZE, SCALE_FACTOR = 512, 16, 4
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny vision tower with the real tiles and tokens."""
    return save_checkpoint(out_dir, *parts(size))


def parts(size: TextSize) -> Parts:
    """What `build` writes, before the weights exist."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    text = LlamaConfig(
        **text_dims(len(tokenizer), size),
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 100_000.0},
        rms_norm_eps=1e-5,
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=ids["<end_of_utterance>"],
        pad_token_id=ids["<|im_end|>"],
    )
    vision = SmolVLMVisionConfig(**tower_dims(), image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    config = SmolVLMConfig(
        text_config=text,
        vision_config=vision,
        scale_factor=SCALE_FACTOR,
        image_token_id=ids["<image>"],
        # Not in SmolVLMConfig's signature, but still accepted and written to config.json.
        pad_token_id=ids["<|im_end|>"],  # type: ignore[call-arg]
    )
    generation = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<end_of_utterance>"]],
        pad_token_id=ids["<|im_end|>"],
    )
    processor = {"image_seq_len": IMAGE_SEQ_LEN, "processor_class": "SmolVLMProcessor"}
    return Parts(config, tokenizer, generation, PREPROCESSOR_CONFIG, processor)
