"""The README's quick start works as written: a tiny checkpoint served by path, then its first request."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, REPO

pytestmark = pytest.mark.e2e

README = (REPO / "README.md").read_text()


def test_the_first_request_runs_against_the_quick_start_server(
    serve: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from loupe.testing.tiny import build_tiny_checkpoint

    assert ".venv/bin/loupe tiny-model qwen2-vl ./tiny-qwen" in README
    assert ".venv/bin/loupe serve --model ./tiny-qwen" in README
    checkpoint = build_tiny_checkpoint("qwen2-vl", tmp_path_factory.mktemp("quickstart") / "tiny-qwen")
    server = serve("--model", str(checkpoint))
    assert [m["id"] for m in httpx.get(f"{server.api}/models").json()["data"]] == ["tiny-qwen"]
    assert 'href="/playground"' in httpx.get(server.base_url + "/").text  # "Open http://127.0.0.1:8000/"

    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None and "http://127.0.0.1:8000/v1" in block.group(1)
    work = tmp_path_factory.mktemp("reader")
    shutil.copy(PHOTOS / "bus.jpg", work / "photo.jpg")
    script = work / "first.py"
    script.write_text(block.group(1).replace("http://127.0.0.1:8000/v1", server.api))  # only the port differs
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=work)
    assert ran.returncode == 0, ran.stderr
    assert "image_tokens=" in ran.stdout and "prompt_tokens=" in ran.stdout
