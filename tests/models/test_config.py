"""Reading processor settings from checkpoint configuration dictionaries."""

from __future__ import annotations

import pytest

from loupe.errors import ModelLoadError
from loupe.models import config as cfg


def test_absent_or_null_values_take_the_default() -> None:
    assert cfg.positive_int({}, "patch_size", 14) == 14
    assert cfg.positive_int({"patch_size": None}, "patch_size", 14) == 14
    assert cfg.flag({}, "do_resize", True) is True
    assert cfg.edge({}, "size", "longest_edge", 7) == 7


@pytest.mark.parametrize("value", [0, -3, True, 2.5, "14"])
def test_positive_int_refuses_anything_else(value: object) -> None:
    with pytest.raises(ModelLoadError, match="patch_size"):
        cfg.positive_int({"patch_size": value}, "patch_size", 14)


def test_edge_names_the_nested_key() -> None:
    assert cfg.edge({"size": {"longest_edge": 9}}, "size", "longest_edge", 7) == 9
    with pytest.raises(ModelLoadError, match="size.longest_edge"):
        cfg.edge({"size": {"longest_edge": 0}}, "size", "longest_edge", 7)
    with pytest.raises(ModelLoadError, match="must contain"):
        cfg.edge({"size": {"height": 9}}, "size", "longest_edge", 7)


def test_merged_flattens_both_files_image_processor_first() -> None:
    processor = {"image_seq_len": 64, "image_processor": {"patch_size": 16, "merge_size": 2}}
    merged = cfg.merged({"patch_size": 14}, processor)
    assert merged == {"image_seq_len": 64, "patch_size": 14, "merge_size": 2}
    assert cfg.merged({"a": 1}, None) == {"a": 1}
