"""The shared plan value."""

from __future__ import annotations

import dataclasses

import pytest

from loupe.domain import Detail
from loupe.models.geometry import ImagePlan


def test_overrides_become_nested_processor_kwargs() -> None:
    plan = ImagePlan(
        Detail.AUTO, 1536, 1536, 665, (("size.longest_edge", 1536), ("do_image_splitting", True))
    )
    assert plan.processor_kwargs() == {"size": {"longest_edge": 1536}, "do_image_splitting": True}


def test_a_plan_without_overrides_passes_nothing() -> None:
    assert ImagePlan(Detail.LOW, 448, 448, 256).processor_kwargs() == {}


def test_plans_are_frozen_hashable_values() -> None:
    plan = ImagePlan(Detail.HIGH, 28, 28, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.tokens = 2  # type: ignore[misc]
    assert {plan, ImagePlan(Detail.HIGH, 28, 28, 1)} == {plan}
