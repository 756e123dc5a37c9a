"""What a prompt's prefill costs, in the scheduler's unit: prompt tokens, images weighed by their work.

The scheduler admits prefills against a budget of prompt tokens per step, so that a burst of new
requests is prefilled a few at a time, each group's first tokens sent before the next group
starts (rather than every request waiting for the whole burst), and so that running streams are
not stalled for long. An image placeholder is one token of the prompt, but behind it lies the
vision tower's work on its patches: on SmolVLM-256M about 15 times a text token's, on
Qwen2-VL-2B about twice, on LLaVA-1.5 a twentieth. So each placeholder of an image the vision
cache counts as `image_weight` tokens more: the seconds the tower spent per placeholder over the
seconds the language model spent per prompt token, both measured on the prefills this engine ran
(moving averages; 0 until both have been measured). Plain Python: no torch.
"""

from __future__ import annotations

__all__ = ["PrefillCost"]

_SMOOTHING = 0.25  # weight of the latest measurement in the moving averages


class PrefillCost:
    def __init__(self) -> None:
        self._vision: float | None = None  # seconds per image placeholder encoded
        self._text: float | None = None  # seconds per prompt token through the language model

    @property
    def image_weight(self) -> float:
        """How many prompt tokens' work one image placeholder's encoding is."""
        if self._vision is None or self._text is None or self._text <= 0:
            return 0.0
        return self._vision / self._text

    def tokens(self, prompt_tokens: int, encoded_placeholders: int) -> int:
        """The cost of a prefill of `prompt_tokens`, `encoded_placeholders` of them image
        placeholders whose features must be computed."""
        return prompt_tokens + round(encoded_placeholders * self.image_weight)

    def observe_vision(self, seconds: float, placeholders: int) -> None:
        if placeholders > 0:
            self._vision = _averaged(self._vision, seconds / placeholders)

    def observe_text(self, seconds: float, tokens: int) -> None:
        if tokens > 0:
            self._text = _averaged(self._text, seconds / tokens)


def _averaged(mean: float | None, value: float) -> float:
    return value if mean is None else (1 - _SMOOTHING) * mean + _SMOOTHING * value
