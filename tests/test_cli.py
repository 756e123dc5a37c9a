"""The `loupe` command fails fast and readably where it cannot serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

LOUPE = [sys.executable, "-m", "loupe"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*LOUPE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_default_model_unavailable_offline_fails_within_seconds_with_advice() -> None:
    started = time.monotonic()
    done = run("serve", "--port", "0")
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "HuggingFaceTB/SmolVLM-256M-Instruct" in output
    assert "--model PATH" in output
    assert "Traceback" not in output
    assert elapsed < 30


def test_missing_local_checkpoint_is_reported(tmp_path: Path) -> None:
    done = run("serve", "--model", str(tmp_path / "nothing-here"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "nothing-here" in done.stderr


def test_invalid_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text('[[models]]\nid = "m"\ncheckpoint = "x"\ncontext_size = "big"\n')
    done = run("serve", "--config", str(config))
    assert done.returncode != 0
    assert "context_size" in done.stderr and "Traceback" not in done.stderr


def test_tiny_model_refuses_an_unknown_family(tmp_path: Path) -> None:
    done = run("tiny-model", "not-a-family", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "qwen2-vl" in done.stderr and "smolvlm" in done.stderr


def test_tiny_model_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    done = run("tiny-model", "qwen2-vl", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
