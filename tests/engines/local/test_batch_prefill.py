"""How a step's prompts are grouped into batched prefills: like sizes together, padding bounded."""

from __future__ import annotations

from loupe.engines.local.batch_prefill import GROUP_TOKENS, grouped


def test_prompts_of_like_sizes_share_one_forward_pass() -> None:
    assert grouped([(0, 288), (0, 290), (12, 280)]) == [[0, 1, 2]]


def test_a_forward_pass_holds_at_most_its_token_count() -> None:
    sizes = [(0, 290)] * 16
    groups = grouped(sizes)
    assert sorted(i for g in groups for i in g) == list(range(16))
    assert all(len(g) * 290 <= GROUP_TOKENS for g in groups)
    assert [len(g) for g in groups] == [3, 3, 3, 3, 3, 1]


def test_a_prompt_longer_than_a_pass_still_prefills_alone() -> None:
    assert grouped([(0, 5000), (0, 4990)]) == [[1], [0]]


def test_a_short_prompt_is_not_padded_to_a_long_one() -> None:
    sizes = [(0, 4000), *[(0, 10)] * 9]
    assert grouped(sizes) == [list(range(1, 10)), [0]]


def test_a_long_reused_prefix_is_not_padding_for_prompts_without_one() -> None:
    assert grouped([(3000, 20), (0, 20), (0, 25)]) == [[1, 2], [0]]
