"""Every ```python block of docs/vision-guide.md runs, unchanged, against a real `loupe serve`.

The examples take the server, model and images from LOUPE_* environment variables (with defaults
for readers); here those point at a tiny Qwen2-VL checkpoint, local photos, and a loopback image host.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, REPO
from tests.video_clips import clip

GUIDE = REPO / "docs" / "vision-guide.md"
PLACEHOLDERS = (
    "LOUPE_BASE_URL", "LOUPE_MODEL", "LOUPE_API_KEY", "LOUPE_IMAGE", "LOUPE_IMAGE_2", "LOUPE_IMAGE_URL", "LOUPE_VIDEO"
)
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)

pytestmark = pytest.mark.e2e


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each ```python block."""
    text = GUIDE.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks()


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    """The shared photos over HTTP on loopback, standing in for an image on the web."""
    handler = functools.partial(_QuietHandler, directory=str(PHOTOS))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def guide_env(
    serve: Callable[..., RunningServer],
    tiny_checkpoint: Callable[[str], Path],
    image_host: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    server = serve("--model", str(tiny_checkpoint("qwen2-vl")), "--allow-media-host", "127.0.0.1")
    (model,) = httpx.get(f"{server.api}/models", timeout=30).json()["data"]
    video = tmp_path_factory.mktemp("guide") / "clip.mp4"
    video.write_bytes(clip("mp4").data)
    return {
        **os.environ,
        "LOUPE_BASE_URL": server.api,
        "LOUPE_MODEL": model["id"],
        "LOUPE_API_KEY": "unused",
        "LOUPE_IMAGE": str(PHOTOS / "extreme_ironing.jpg"),
        "LOUPE_IMAGE_2": str(PHOTOS / "boats.jpg"),
        "LOUPE_IMAGE_URL": f"{image_host}/bus.jpg",
        "LOUPE_VIDEO": str(video),
    }


def test_the_guide_has_its_examples() -> None:
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_example_runs(line: int, code: str, guide_env: dict[str, str], tmp_path: Path) -> None:
    if "openai" in code or "httpx" in code:
        assert "LOUPE_BASE_URL" in code, "an example that calls the server must read LOUPE_BASE_URL"
    hard_coded = [name for name in re.findall(r"\bLOUPE_[A-Z0-9_]+", code) if name not in PLACEHOLDERS]
    assert not hard_coded, f"unknown placeholders {hard_coded}"
    script = tmp_path / f"guide_line_{line}.py"
    script.write_text(code)
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=guide_env, cwd=tmp_path, timeout=240
    )
    assert ran.returncode == 0, f"the example at docs/vision-guide.md:{line} failed:\n{ran.stdout}\n{ran.stderr}"
