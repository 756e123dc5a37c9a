"""What each `detail` value does for a model, shown in `/v1/models`: a worked reference example."""

from __future__ import annotations

from loupe.domain import Detail, DetailRule
from loupe.models.geometry import TokenCounter

REFERENCE_SIZE = (1024, 1024)

_MEANING = {
    Detail.LOW: "a small fixed budget: faster and cheaper",
    Detail.HIGH: "the family's full resolution within the model's limits",
    Detail.AUTO: "high detail, scaled down to fit the model's auto-detail token budget (also when detail is omitted)",
}


def detail_rules(counter: TokenCounter) -> list[DetailRule]:
    """One entry per detail value: its meaning and what it makes of a 1024x1024 image."""
    width, height = REFERENCE_SIZE
    rules: list[DetailRule] = []
    for detail in (Detail.LOW, Detail.HIGH, Detail.AUTO):
        plan = counter.plan(width, height, detail)
        rules.append(
            DetailRule(
                detail=detail.value,
                rule=f"{_MEANING[detail]}; a {width}x{height} image is processed at "
                f"{plan.resized_width}x{plan.resized_height} as {plan.tokens} image tokens",
                tokens=plan.tokens,
            )
        )
    return rules
