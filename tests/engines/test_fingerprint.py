"""`system_fingerprint`: the same for the same files and settings, different when either changes."""

from __future__ import annotations

import json
from pathlib import Path

from loupe.engines.fingerprint import fingerprint

BIG = 20 * 1024 * 1024  # over the size read in full: sampled


def _checkpoint(root: Path, weights: bytes) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (root / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + weights)
    return root


def test_same_files_and_settings_same_fingerprint(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a", bytes(BIG))
    b = _checkpoint(tmp_path / "b", bytes(BIG))
    assert fingerprint(a, {"dtype": "float32"}) == fingerprint(b, {"dtype": "float32"})
    assert fingerprint(a, {"dtype": "float32"}).startswith("fp_")


def test_changed_weights_config_or_settings_change_it(tmp_path: Path) -> None:
    base = _checkpoint(tmp_path / "base", bytes(BIG))
    changed = bytearray(BIG)
    changed[-1] = 1  # the last block is always sampled
    retrained = _checkpoint(tmp_path / "retrained", bytes(changed))
    reconfigured = _checkpoint(tmp_path / "reconfigured", bytes(BIG))
    (reconfigured / "config.json").write_text(json.dumps({"model_type": "qwen2_vl", "x": 1}))
    prints = {
        fingerprint(base, {"dtype": "float32"}),
        fingerprint(retrained, {"dtype": "float32"}),
        fingerprint(reconfigured, {"dtype": "float32"}),
        fingerprint(base, {"dtype": "bfloat16"}),
    }
    assert len(prints) == 4
