"""A tiny Idefics3 checkpoint with the image geometry of HuggingFaceM4/Idefics3-8B-Llama3."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, Idefics3Config, Idefics3VisionConfig, LlamaConfig

from loupe.testing.tiny.checkpoint import (
    chat_tokenizer,
    prepend_bos,
    save_checkpoint,
    text_dims,
    tower_dims,
)
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.smolvlm import CHAT_TEMPLATE as SMOLVLM_CHAT_TEMPLATE
from loupe.testing.tiny.tokenizer import SpecialTokens

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "SPECIAL_TOKENS", "build"]

# Tiles go up to 4x4 at the published sizes (1456 / 364); the published vocabulary has 6x6.
_TILE_TOKENS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))

SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<fake_token_around_image>",
        "<image>",
        "<end_of_utterance>",
        "<global-img>",
        *_TILE_TOKENS,
    ),
    bos="<|begin_of_text|>",
    eos="<end_of_utterance>",
    pad="<|reserved_special_token_0|>",
)

# SmolVLM inherited Idefics3's template: the same turns ("User:<image>...<end_of_utterance>\n",
# "Assistant:" to generate), opened with Llama 3's "<|begin_of_text|>" instead of "<|im_start|>".
CHAT_TEMPLATE = SMOLVLM_CHAT_TEMPLATE.replace("<|im_start|>", "<|begin_of_text|>", 1)

# Idefics3-8B-Llama3's preprocessor_config.json, as published (resample 1 is LANCZOS): the
# longer side to 4 x 364, tiles of 364.
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True,
    "do_image_splitting": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Idefics3ImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "max_image_size": {"longest_edge": 364},
    "processor_class": "Idefics3Processor",
    "resample": 1,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 1456},
}

# 364 / 14 = 26 patches a side, 676 per tile; pixel shuffle by 2 leaves 676 / 4 = 169 tokens.
IMAGE_SIZE, PATCH_SIZE, SCALE_FACTOR = 364, 14, 2
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny vision tower with the real tiles and tokens."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    prepend_bos(tokenizer, "<|begin_of_text|>")  # as published: the template writes one too
    pad = ids["<|reserved_special_token_0|>"]
    text = LlamaConfig(
        **text_dims(len(tokenizer), size),
        max_position_embeddings=10240,
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
        rms_norm_eps=1e-5,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=ids["<end_of_utterance>"],
        pad_token_id=pad,
    )
    vision = Idefics3VisionConfig(**tower_dims(), image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    config = Idefics3Config(
        text_config=text,
        vision_config=vision,
        scale_factor=SCALE_FACTOR,
        image_token_id=ids["<image>"],
        # Not in Idefics3Config's signature, but still accepted and written to config.json.
        pad_token_id=pad,  # type: ignore[call-arg]
    )
    generation = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<end_of_utterance>"]],
        pad_token_id=pad,
    )
    processor = {"image_seq_len": IMAGE_SEQ_LEN, "processor_class": "Idefics3Processor"}
    return save_checkpoint(out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, processor)
