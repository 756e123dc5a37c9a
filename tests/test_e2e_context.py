"""The completion budget is fitted to the context window; a prompt that alone overflows it is a 400."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.conftest import RunningServer
from tests.helpers import photo_url, user

pytestmark = pytest.mark.e2e

CONTEXT = 96


@pytest.fixture(scope="module")
def small_context(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> openai.OpenAI:
    config = tmp_path_factory.mktemp("config") / "loupe.toml"
    config.write_text(
        f'[[models]]\nid = "small"\ncheckpoint = "{tiny_checkpoint("qwen2-vl")}"\ncontext_size = {CONTEXT}\n'
    )
    server = serve("--config", str(config))
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)


def test_max_tokens_is_lowered_to_what_the_context_leaves(small_context: openai.OpenAI) -> None:
    reply = small_context.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Hi"}], max_tokens=100_000, temperature=1.0, seed=3
    )
    room = CONTEXT - reply.usage.prompt_tokens
    assert reply.usage.completion_tokens <= room
    assert reply.choices[0].finish_reason == "length" or reply.usage.completion_tokens < room
    assert small_context.models.retrieve("small").model_extra["context_size"] == CONTEXT


def test_a_prompt_that_overflows_the_context_is_refused(small_context: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        small_context.chat.completions.create(
            model="small", messages=[user("Describe.", photo_url("boats.jpg"))], max_tokens=5
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded"
    assert str(CONTEXT) in error["message"]
