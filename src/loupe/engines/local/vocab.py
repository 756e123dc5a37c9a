"""What each token id of a checkpoint's tokenizer stands for, as OpenAI's logprobs show it.

A token's `bytes` are what it adds to the output: byte-level BPE vocabularies (GPT-2, Qwen,
Llama 3) spell bytes as printable characters, SentencePiece ones (Gemma, LLaVA's Llama 2)
write a space as U+2581 and odd bytes as `<0xAB>`. A token that is part of a character shows
as its bytes' escapes in `token` ("\\xe4"), as OpenAI does.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from loupe.domain import TopLogprob

_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class Vocabulary:
    """Token ids to (text, bytes), built once from a tokenizer (a few hundred ms for 150k ids)."""

    def __init__(self, tokenizer: Any) -> None:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = {str(t) for t in tokenizer.all_special_tokens} | {
            str(t.content) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
        }
        spell = _byte_level if _is_byte_level(tokenizer) else _sentencepiece
        self._bytes = [b"" if p is None else p.encode() if p in special else spell(p) for p in pieces]

    def __len__(self) -> int:
        return len(self._bytes)

    def bytes_of(self, token_id: int) -> bytes:
        """The token's bytes; empty for an id past the tokenizer (a model's padded vocabulary)."""
        return self._bytes[token_id] if 0 <= token_id < len(self._bytes) else b""

    def candidate(self, token_id: int, logprob: float) -> TopLogprob:
        raw = self.bytes_of(token_id)
        return TopLogprob(token=raw.decode("utf-8", errors="backslashreplace"), logprob=logprob, bytes=tuple(raw))


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    decoder = json.loads(backend.to_str()).get("decoder")
    return '"ByteLevel"' in json.dumps(decoder)


@cache
def _unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's printable spelling of the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _byte_level(piece: str) -> bytes:
    table = _unicode_to_byte()
    if all(ch in table for ch in piece):
        return bytes(table[ch] for ch in piece)
    return piece.encode()


def _sentencepiece(piece: str) -> bytes:
    match = _SP_BYTE.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace("\u2581", " ").encode()
