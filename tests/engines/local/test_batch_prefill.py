"""How a step's prompts are grouped into batched prefills: like sizes together, padding bounded."""

from __future__ import annotations

from loupe.engines.local.batch_prefill import grouped


def test_prompts_of_like_sizes_share_one_forward_pass() -> None:
    assert grouped([(0, 288), (0, 290), (12, 280), (0, 287)]) == [[3, 0, 1, 2]]


def test_a_short_prompt_is_not_padded_to_a_long_one() -> None:
    sizes = [(0, 4000), *[(0, 10)] * 9]
    assert grouped(sizes) == [list(range(1, 10)), [0]]


def test_a_long_reused_prefix_is_not_padding_for_prompts_without_one() -> None:
    assert grouped([(3000, 20), (0, 20), (0, 25)]) == [[1, 2], [0]]
