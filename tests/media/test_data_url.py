from __future__ import annotations

import base64

import pytest

from loupe.errors import ImageFileExceedsMaxSize, InvalidImageFormat
from loupe.media.data_url import decode_data_url, is_data_url

PAYLOAD = b"\x89PNG\r\n\x1a\nnot really"
ENCODED = base64.b64encode(PAYLOAD).decode()


def test_is_data_url() -> None:
    assert is_data_url("DATA:image/png;base64,AAAA")
    assert not is_data_url("https://example.com/x.png")


@pytest.mark.parametrize(
    "url",
    [
        f"data:image/png;base64,{ENCODED}",
        f"data:IMAGE/JPEG;BASE64,{ENCODED}",  # declared type need not match the bytes
        f"data:image/png;charset=utf-8;base64,{ENCODED}",
        f"data:image/png;base64,{ENCODED[:8]}\n{ENCODED[8:]}",
    ],
)
def test_payload_is_decoded(url: str) -> None:
    assert decode_data_url(url, max_bytes=1000) == PAYLOAD


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"data:text/plain;base64,{ENCODED}", "not an image"),
        (f"data:;base64,{ENCODED}", "not an image"),
        (f"data:image/png,{ENCODED}", "not base64-encoded"),
        ("data:image/png;base64", "no `,`"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("data:image/png;base64,AAA", "not valid base64"),
        ("data:image/png;base64,Zm9v\u00e9", "not valid base64"),
        ("data:image/png;base64,Zm9v====", "not valid base64"),  # padding where none belongs
        ("data:image/png;base64,Zg==Zm9v", "not valid base64"),  # data after the padding
        ("data:image/png;base64,Zm9v-_8=", "not valid base64"),  # the URL-safe alphabet
        ("data:image/png;base64,Zm9v\n@@@@", "not valid base64"),  # whitespace and garbage
        ("data:image/png;base64,", "empty"),
    ],
)
def test_bad_data_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidImageFormat, match=message):
        decode_data_url(url, max_bytes=1000)


def test_too_large_before_decoding() -> None:
    url = "data:image/png;base64," + "A" * 4_000_000
    with pytest.raises(ImageFileExceedsMaxSize):
        decode_data_url(url, max_bytes=1000)


def test_line_breaks_do_not_count_against_the_limit() -> None:
    wrapped = "\n".join(ENCODED[i : i + 2] for i in range(0, len(ENCODED), 2))
    assert decode_data_url(f"data:image/png;base64,{wrapped}", max_bytes=len(PAYLOAD)) == PAYLOAD


def test_limit_is_exact() -> None:
    url = f"data:image/png;base64,{ENCODED}"
    assert decode_data_url(url, max_bytes=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(ImageFileExceedsMaxSize):
        decode_data_url(url, max_bytes=len(PAYLOAD) - 1)
