"""OpenAI's `system_fingerprint`: a short digest of a model's files and the engine's configuration.

A client that sends `seed` compares fingerprints to tell when the backend changed. The digest
covers every file of the checkpoint, the small ones read in full; of a large (weight) file, its
name, size, header and 16 blocks of 64 KiB spread over it (hashing gigabytes at start-up would
cost seconds for no practical gain: retrained or re-quantised weights differ in every block).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["fingerprint"]

_BLOCK = 64 * 1024
_SAMPLES = 16
_SMALL_FILE = 16 * 1024 * 1024


def fingerprint(checkpoint: Path, engine: Mapping[str, str]) -> str:
    """`fp_` and 12 hex digits of the files under `checkpoint` and the `engine` settings that
    change what it generates (dtype, device, library versions, an upstream's model name)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(dict(sorted(engine.items()))).encode())
    files = sorted(p for p in checkpoint.rglob("*") if p.is_file()) if checkpoint.is_dir() else []
    for path in files:
        digest.update(str(path.relative_to(checkpoint)).encode() + b"\0")
        _file(digest, path)
    return "fp_" + digest.hexdigest()[:12]


def _file(digest: hashlib.blake2b, path: Path) -> None:
    size = path.stat().st_size
    digest.update(size.to_bytes(8, "little"))
    with path.open("rb") as f:
        if size <= _SMALL_FILE:
            while block := f.read(1 << 20):
                digest.update(block)
            return
        digest.update(f.read(_header_size(f.read(8))))
        for i in range(_SAMPLES):
            f.seek(i * (size - _BLOCK) // (_SAMPLES - 1))
            digest.update(f.read(_BLOCK))


def _header_size(first: bytes) -> int:
    """A safetensors file opens with its JSON header's length; other formats get one block."""
    size = int.from_bytes(first, "little") if len(first) == 8 else 0
    return size if 0 < size <= _SMALL_FILE else _BLOCK
