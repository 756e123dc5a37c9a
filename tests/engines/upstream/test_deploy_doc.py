"""docs/deploy.md shows what the tests run: its vLLM command is the one the vLLM tests start, every
TOML block in it loads, and the container setup passes vLLM the flags Loupe relies on."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from loupe.settings import load_settings
from tests.engines.upstream.conftest import TEST_ARGS
from tests.helpers import REPO

DEPLOY = (REPO / "docs" / "deploy.md").read_text()
# The flags that change what vLLM does for Loupe (the others size a server).
RELIED_ON = (
    "--enable-prompt-tokens-details",
    "--trust-request-mm-kwargs",
    "--limit-mm-per-prompt",
    "--enable-auto-tool-choice",
    "--structured-outputs-config",
)


def commands(text: str) -> list[list[str]]:
    """Each command of the doc's shell blocks, line continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def flags(argv: list[str], skip: frozenset[str] = frozenset()) -> dict[str, str | None]:
    """`--flag value` and bare `--flag` pairs of a command line."""
    out: dict[str, str | None] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--") and arg not in skip:
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
            out[arg] = value
    return out


def test_the_cpu_command_is_what_the_tests_start() -> None:
    [command] = [c for c in commands(DEPLOY) if "vllm.entrypoints.openai.api_server" in c]
    per_test = frozenset({"--model", "--served-model-name", "--host", "--port"})
    assert flags(command, per_test) == flags(list(TEST_ARGS))


def test_every_vllm_command_passes_the_flags_loupe_relies_on() -> None:
    serving = [c for c in commands(DEPLOY) if c[:2] == ["vllm", "serve"] or "vllm.entrypoints.openai.api_server" in c]
    assert len(serving) == 3  # one node, Ray, the CPU one
    for command in serving:
        assert set(RELIED_ON) <= set(command), command
    compose = (REPO / "deploy" / "compose.yaml").read_text()
    assert all(flag in compose for flag in RELIED_ON)


@pytest.mark.parametrize("index", range(len(re.findall(r"```toml\n", DEPLOY))))
def test_every_configuration_block_loads(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-doc")  # the variable the doc's api_key_env names
    block = re.findall(r"```toml\n(.*?)```", DEPLOY, re.S)[index]
    config = tmp_path / "loupe.toml"
    config.write_text(block)
    settings = load_settings(config)
    assert all(m.engine == "upstream" for m in settings.models)
