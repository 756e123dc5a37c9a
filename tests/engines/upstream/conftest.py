"""Real vLLM servers (the CPU build `make vllm` installs) for the upstream tests.

Each server starts once per session and one is shared at a time (a start takes 30 s to
2 minutes on two cores, and each holds about 1.5 GB): tests of one family share it, and asking
for another family stops the one before. The failover test starts a second one of its own. Tiny checkpoints for vLLM are 128 wide: its CPU
attention kernels start at a head size of 32, and the suite's default 64-wide ones have 16.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.upstream_vllm import DEFAULT_ARGS, VLLM_PYTHON, VllmServer, vllm_python
from tests.conftest import free_port

VLLM_WIDTH = 128
VLLM_MAX_MODEL_LEN = 4096  # DEFAULT_ARGS' --max-model-len; the tiny checkpoints' own is larger
VLLM_MAX_IMAGES = 2
# The configuration docs/deploy.md gives, with a per-prompt image limit below Loupe's default.
TEST_ARGS = (
    *DEFAULT_ARGS,
    "--trust-request-mm-kwargs",
    "--limit-mm-per-prompt", f'{{"image": {VLLM_MAX_IMAGES}}}',
    "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    "--structured-outputs-config", '{"backend": "guidance", "disable_any_whitespace": true}',
)  # fmt: skip


@pytest.fixture(scope="session")
def vllm_interpreter() -> Path:
    """vLLM's interpreter; skipped only when run outside make without LOUPE_VLLM_PYTHON."""
    python = vllm_python()
    if python is None:
        pytest.skip(f"vLLM's CPU build is not configured: run through `make test` (it installs it), or set {VLLM_PYTHON}")
    assert python.exists(), f"{VLLM_PYTHON}={python} does not exist: run `make vllm`"
    return python


@pytest.fixture(scope="session")
def vllm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A tiny checkpoint of a family, wide enough for vLLM's CPU attention; built once."""
    from loupe.testing.tiny import build_tiny_checkpoint

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_checkpoint(family, tmp_path_factory.mktemp(f"vllm-{family}"), hidden_size=VLLM_WIDTH)
        return built[family]

    return get


class VllmServers:
    """Started on demand and kept while asked for again; one at a time."""

    def __init__(self, python: Path, checkpoint: Callable[[str], Path], logs: pytest.TempPathFactory) -> None:
        self._python, self._checkpoint, self._logs = python, checkpoint, logs
        self._running: tuple[str, VllmServer] | None = None

    def get(self, family: str) -> VllmServer:
        if self._running is not None and self._running[0] == family and self._running[1].alive():
            return self._running[1]
        self.stop()
        server = self.new(family)
        self._running = (family, server)
        return server

    def new(self, family: str, api_key: str | None = None) -> VllmServer:
        """A started server the caller owns (and stops)."""
        log = self._logs.mktemp(f"vllm-{family}") / "vllm.log"
        server = VllmServer(self._python, self._checkpoint(family), free_port(), log, args=TEST_ARGS, api_key=api_key)
        server.start()
        return server

    def stop(self) -> None:
        if self._running is not None:
            self._running[1].stop()
            self._running = None


@pytest.fixture(scope="session")
def vllm(
    vllm_interpreter: Path, vllm_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServers]:
    servers = VllmServers(vllm_interpreter, vllm_checkpoint, tmp_path_factory)
    yield servers
    servers.stop()
