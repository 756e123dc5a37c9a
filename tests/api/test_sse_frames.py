"""A streamed text delta is written from its choice's frame serialised once: byte for byte what
serialising the whole chunk gives, for any text, with and without the usage field, per choice."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from loupe.api.sse import ChunkWriter, _with_usage_field, frame
from loupe.domain import ChoiceFinished, TextDelta, TokenLogprob

TEXTS = ["Hello", " there", 'quote " and \\ slash', "line\nbreak\ttab", "\x00\x1f control", "é ñ 中文", "😀 emoji", "</script>"]


def writer(include_usage: bool, model: str = "m") -> ChunkWriter:
    run = SimpleNamespace(
        id="chatcmpl-1",
        created=1,
        request=SimpleNamespace(model=model, include_usage=include_usage),
        engine=SimpleNamespace(card=SimpleNamespace(fingerprint="fp_1")),
    )
    return ChunkWriter(run)  # type: ignore[arg-type]


def slow(w: ChunkWriter, event: TextDelta) -> list[bytes]:
    return [frame(_with_usage_field(chunk, w._run)) for chunk in w.on_event(event)]


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("index", [0, 3])
def test_text_frames_equal_the_whole_chunk_serialised(include_usage: bool, index: int) -> None:
    fast, reference = writer(include_usage), writer(include_usage)
    for text in TEXTS:
        assert fast.frames(TextDelta(index, text, 1)) == slow(reference, TextDelta(index, text, 1))
    assert fast._text_frames[index]  # the text frames came from the template
    data = json.loads(fast.frames(TextDelta(index, "é", 1))[0].removeprefix(b"data: "))
    assert data["choices"] == [{"index": index, "delta": {"content": "é"}, "logprobs": None, "finish_reason": None}]
    if include_usage:
        assert "usage" in data and data["usage"] is None
    else:
        assert "usage" not in data


def test_the_first_delta_of_a_choice_still_carries_its_role() -> None:
    frames = writer(False).frames(TextDelta(0, "Hi", 1))
    assert [json.loads(f.removeprefix(b"data: "))["choices"][0]["delta"] for f in frames] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]


def test_deltas_with_logprobs_and_finishes_take_the_whole_path() -> None:
    w = writer(False)
    w.frames(TextDelta(0, "a", 1))
    with_logprobs = TextDelta(0, "b", 1, logprobs=(TokenLogprob("b", -0.5, (98,), ()),))
    assert json.loads(w.frames(with_logprobs)[0].removeprefix(b"data: "))["choices"][0]["logprobs"]["content"][0]["token"] == "b"
    finished = json.loads(w.frames(ChoiceFinished(0, "stop", 2))[0].removeprefix(b"data: "))
    assert finished["choices"][0]["finish_reason"] == "stop"


def test_a_model_id_holding_the_mark_falls_back_to_whole_chunks() -> None:
    w, reference = writer(False, model="\x00loupe content\x00"), writer(False, model="\x00loupe content\x00")
    w.frames(TextDelta(0, "x", 1))
    reference.frames(TextDelta(0, "x", 1))
    assert w.frames(TextDelta(0, "y", 1)) == slow(reference, TextDelta(0, "y", 1))
    assert w._text_frames[0] == ()
