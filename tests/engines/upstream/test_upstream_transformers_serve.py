"""End to end: an UpstreamEngine in front of Hugging Face `transformers serve` (bench launcher).

transformers serve ignores `detail` and resizes with its own processor settings; Loupe sends
images it already sized, so the counts agree wherever the processor leaves such an image as is
(Qwen2-VL at every detail). It reports no image-token detail, so only prompt tokens are
cross-checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from loupe.engines.upstream import UpstreamEngine, load_upstream_model
from loupe.models import TokenCounter
from tests.conftest import free_port
from tests.engines.upstream.upstream_support import ask, completed, gateway, streamed
from tests.helpers import REPO, photo_url

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Callable[[str], Path]) -> Path:
    return tiny_checkpoint("qwen2-vl")


@pytest.fixture(scope="module")
def transformers_serve(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.transformers_serve", str(checkpoint), "--port", str(port)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(base):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "transformers serve did not become healthy"
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@pytest_asyncio.fixture
async def engine(transformers_serve: str, checkpoint: Path) -> AsyncIterator[tuple[UpstreamEngine, TokenCounter]]:
    engine, counter = load_upstream_model(
        "gw", str(checkpoint), [transformers_serve], str(checkpoint), context_size=None, max_images=4, budget=1024
    )
    await engine.start()
    yield engine, counter
    await engine.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("detail", ["low", "high"])
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_requests_succeed_and_usage_agrees(engine: tuple[UpstreamEngine, TokenCounter], detail: str, stream: bool) -> None:
    gw, counter = engine
    assert not any(r.ejected for r in gw.pool.replicas)  # /v1/models answers through the launcher
    request = ask("gw", "What is in the picture?", (photo_url("bus.jpg"), detail), max_tokens=6)
    _, usage = await (streamed if stream else completed)(gateway(gw, counter), request)
    assert usage.completion_tokens == 6
    assert usage.image_tokens > 0
    assert gw.usage_mismatches == 0


@pytest.mark.asyncio
async def test_several_choices_from_a_server_without_n(engine: tuple[UpstreamEngine, TokenCounter]) -> None:
    gw, counter = engine
    chat = gateway(gw, counter)
    done = await chat.complete(await chat.start(ask("gw", "Hi", max_tokens=4, n=2)))
    assert len(done.texts) == 2 and done.usage.completion_tokens == 8
