"""Incremental detokenization and stop strings, driven without a model."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loupe.engines.local.text_stream import IncrementalDecoder, StopMatcher, TextStream

# A toy vocabulary in which a multi-byte character is split over two ids, as byte-level BPE does.
VOCAB = {
    1: b"Hel", 2: b"lo", 3: b" w", 4: b"orld", 5: "é".encode()[:1], 6: "é".encode()[1:], 7: b"!",
    8: b"\xf1",  # a lead byte of a 4-byte character: alone, or before another lead, never one
    9: "€".encode()[:2], 10: "€".encode()[2:], 11: "\ufffd".encode(),
}


def decode(ids: Sequence[int]) -> str:
    return b"".join(VOCAB[i] for i in ids).decode("utf-8", errors="replace")


def feed(stream: TextStream, ids: Sequence[int]) -> str:
    return "".join(stream.push(i) for i in ids) + stream.finish()


def test_decoder_emits_each_piece_once() -> None:
    decoder = IncrementalDecoder(decode)
    assert [decoder.push(i) for i in (1, 2, 3, 4)] == ["Hel", "lo", " w", "orld"]


def test_decoder_holds_a_split_character_until_complete() -> None:
    decoder = IncrementalDecoder(decode)
    assert decoder.push(1) == "Hel"
    assert decoder.push(5) == ""
    assert decoder.push(6) == "é"


def test_bytes_that_never_make_a_character_are_given_out_once_that_is_certain() -> None:
    decoder = IncrementalDecoder(decode)
    assert decoder.push(8) == ""  # may still become a character
    assert decoder.push(8) == "\ufffd"  # the first can no longer: the second is held
    assert decoder.push(1) == "\ufffdHel"
    assert decoder.push(8) == ""
    assert decoder.finish() == "\ufffd"  # nothing more comes: given out as the whole decodes


def test_an_unfinished_character_after_settled_junk_still_completes() -> None:
    decoder = IncrementalDecoder(decode)
    shown = [decoder.push(i) for i in (8, 9, 10)]
    assert shown == ["", "\ufffd", "€"]
    assert decoder.finish() == ""


def test_a_long_run_of_stray_bytes_keeps_the_decoded_window_short() -> None:
    windows: list[int] = []

    def counting(ids: Sequence[int]) -> str:
        windows.append(len(ids))
        return decode(ids)

    decoder = IncrementalDecoder(counting)
    shown = [decoder.push(8) for _ in range(200)]
    assert shown == ["", *["\ufffd"] * 199]
    assert decoder.finish() == "\ufffd"
    assert max(windows) <= 4  # not the whole run, re-decoded at every step


def test_a_generated_replacement_character_is_text_like_any_other() -> None:
    assert feed(TextStream(decode, []), [1, 11, 2]) == "Hel\ufffdlo"


def test_the_stream_adds_up_to_the_decoded_ids_and_never_takes_back_text() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        ids = [rng.choice(list(VOCAB)) for _ in range(rng.randint(1, 30))]
        decoder = IncrementalDecoder(decode)
        shown = ""
        for n, token in enumerate(ids, start=1):
            shown += decoder.push(token)
            assert decode(ids[:n]).startswith(shown), ids
        assert shown + decoder.finish() == decode(ids), ids


def test_stop_string_inside_one_token_cuts_there() -> None:
    assert feed(TextStream(decode, ["lo w"]), [1, 2, 3, 4]) == "Hel"


def test_stop_string_across_tokens_is_never_shown() -> None:
    stream = TextStream(decode, [" wor"])
    shown = [stream.push(i) for i in (1, 2, 3)]
    assert "".join(shown) == "Hello"  # " w" is held back: it may start " wor"
    assert stream.push(4) == ""
    assert stream.stopped


def test_held_text_is_released_when_it_was_not_a_stop() -> None:
    stream = TextStream(decode, [" wx"])
    assert feed(stream, [1, 2, 3, 4, 7]) == "Hello world!"
    assert not stream.stopped


def test_held_text_is_released_at_the_end() -> None:
    assert feed(TextStream(decode, [" wx"]), [1, 2, 3]) == "Hello w"
    assert feed(TextStream(decode, [" wx"]), [1, 2, 5]) == "Hello\ufffd"  # the cut-off character too


def test_counts_every_token_including_those_after_the_cut() -> None:
    stream = TextStream(decode, ["lo"])
    feed(stream, [1, 2])
    assert stream.tokens == 2


def test_matcher_earliest_of_several_stops_wins() -> None:
    matcher = StopMatcher(["world", "lo"])
    assert matcher.feed("Hello world") == "Hel"


def test_matcher_without_stops_passes_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("abc") == "abc"
    assert matcher.flush() == ""
