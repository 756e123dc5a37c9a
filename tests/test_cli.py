"""The `loupe` command fails fast and readably where it cannot serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RunningServer

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


def test_offline_estimate_matches_the_server(qwen_server: RunningServer, tiny_checkpoint: Callable[[str], Path]) -> None:
    import re

    import httpx

    from tests.helpers import PHOTOS, data_url, image_part

    photos = [PHOTOS / "boats.jpg", PHOTOS / "bus.jpg"]
    done = run(
        "estimate", "--model", str(tiny_checkpoint("qwen2-vl")), *map(str, photos),
        "--detail", "auto", "--text", "Compare them.", "--max-tokens", "50",
    )
    assert done.returncode == 0, done.stderr
    offline = dict(re.findall(r"(\w+_tokens)=(\d+)", done.stdout))
    model = httpx.get(f"{qwen_server.api}/models").json()["data"][0]["id"]
    content = [*(image_part(data_url(p), "auto") for p in photos), {"type": "text", "text": "Compare them."}]
    online = httpx.post(
        f"{qwen_server.api}/estimate",
        json={"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 50},
    ).json()
    for key in ("prompt_tokens", "image_tokens", "text_tokens", "max_completion_tokens"):
        assert int(offline[key]) == online[key], key
    assert "1176x672" in done.stdout


def test_offline_estimate_refuses_a_broken_file(tiny_checkpoint: Callable[[str], Path]) -> None:
    from tests.helpers import PILLOW

    done = run("estimate", "--model", str(tiny_checkpoint("qwen2-vl")), str(PILLOW / "hopper.tif"))
    assert done.returncode == 1
    assert "TIFF" in done.stderr.upper() and "Traceback" not in done.stderr


def test_real_size_model_refuses_an_unknown_name(tmp_path: Path) -> None:
    done = run("real-size-model", "SmolVLM-1T", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "SmolVLM-256M-Instruct" in done.stderr and "Qwen2-VL-2B-Instruct" in done.stderr
    assert not (tmp_path / "out").exists()
