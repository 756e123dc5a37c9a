"""The family registry, the model_type mapping, bound counters and the package's public surface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import loupe.models
from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import FAMILIES, MODEL_TYPES, counter_for, family_for_model_type, rules_for

PACKAGE = Path(loupe.models.__file__).parent


@pytest.mark.parametrize(
    ("model_type", "family"),
    [
        ("qwen2_vl", "qwen2-vl"),
        ("qwen2_5_vl", "qwen2.5-vl"),
        ("qwen3_vl", "qwen3-vl"),
        ("qwen3_vl_moe", "qwen3-vl"),
        ("smolvlm", "smolvlm"),
        ("idefics3", "idefics3"),
        ("glm4v", "glm4v"),
        ("llava", "llava"),
        ("llava_onevision", "llava-onevision"),
        ("gemma3", "gemma3"),
        ("internvl", "internvl"),
        ("mistral3", "mistral3"),
        ("llama4", "llama4"),
    ],
)
def test_model_types_map_to_families(model_type: str, family: str) -> None:
    assert family_for_model_type(model_type) == family
    assert rules_for(family).family == family


def test_every_model_type_names_a_registered_family() -> None:
    assert set(MODEL_TYPES.values()) == set(FAMILIES)


def test_unknown_names_fail_at_load() -> None:
    with pytest.raises(ModelLoadError, match="paligemma"):
        family_for_model_type("paligemma")
    with pytest.raises(ModelLoadError):
        rules_for("gpt-4o")


def test_onevision_counts_each_image_of_a_multi_image_prompt_as_its_base() -> None:
    counter = counter_for("llava_onevision", {"num_image_tokens": 729})
    alone = counter.plan_all([(1920, 1080, None)])
    assert alone == [counter.plan(1920, 1080, None)] and alone[0].tokens > 730
    pair = counter.plan_all([(1920, 1080, None), (64, 64, Detail.HIGH)])
    assert [p.tokens for p in pair] == [730, 730]


def test_counter_for_a_qwen_checkpoint() -> None:
    counter = counter_for("qwen2_5_vl", {"min_pixels": 3136, "max_pixels": 12845056})
    assert counter.family == "qwen2.5-vl"
    assert counter.plan(1024, 1024, None).tokens == 1369
    assert counter.plan(1024, 1024, Detail.AUTO).tokens == 1024
    assert counter_for("qwen2_vl", {}, budget=256).plan(1024, 1024, Detail.AUTO).tokens <= 256


def test_counter_for_a_smolvlm_checkpoint_reads_both_files() -> None:
    preprocessor = {"size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}}
    counter = counter_for("smolvlm", preprocessor, {"image_seq_len": 64})
    assert counter.plan(1920, 1080, Detail.HIGH).tokens == 863
    nested = counter_for("idefics3", {}, {"image_seq_len": 64, "image_processor": preprocessor})
    assert nested.plan(1920, 1080, Detail.HIGH).tokens == 863
    merged = counter_for("smolvlm", preprocessor, {"image_seq_len": 64}, double_newline_tokens=1)
    assert merged.plan(1920, 1080, Detail.HIGH).tokens == 862


def test_published_settings_are_what_the_published_files_say() -> None:
    assert rules_for("qwen2-vl").published() == rules_for("qwen2-vl").settings(
        {"min_pixels": 3136, "max_pixels": 12845056}
    )
    smolvlm = {"size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}}
    assert rules_for("smolvlm").published() == rules_for("smolvlm").settings(
        {**smolvlm, "image_seq_len": 64}
    )


def test_a_budget_below_one_fails_at_load() -> None:
    with pytest.raises(ModelLoadError):
        counter_for("qwen2_vl", {}, budget=0)


def test_public_surface_is_pinned() -> None:
    assert sorted(loupe.models.__all__) == [
        "BoundCounter",
        "DEFAULT_IMAGE_TOKEN_BUDGET",
        "FAMILIES",
        "FamilyRules",
        "Idefics3Rules",
        "Idefics3Settings",
        "ImagePlan",
        "MODEL_TYPES",
        "QwenRules",
        "QwenSettings",
        "TokenCounter",
        "counter_for",
        "family_for_model_type",
        "rules_for",
    ]


def test_the_package_is_pure_arithmetic() -> None:
    allowed = {"__future__", "collections", "dataclasses", "math", "types", "typing", "loupe"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
