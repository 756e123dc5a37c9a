"""The servers a benchmark runs side by side: Loupe, vLLM's CPU engine, `transformers serve`.

Each `Peer` says how to start one server for a checkpoint at one dtype, how to tell it is ready,
and what to send so that it processes an image as Loupe does at a given `detail`. vLLM ignores
`detail`, so it gets the same image size through `--mm-processor-kwargs`; transformers serve
gets it through its image processor's settings (bench.transformers_serve). The benchmark checks
that the prompt tokens every server reports agree.

vLLM runs from its own virtual environment, named by LOUPE_VLLM_PYTHON (`make vllm` builds it).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Peer", "loupe", "transformers_serve", "vllm", "vllm_python"]

# vLLM's KV cache (GiB): ample for 16 requests of a few hundred tokens.
VLLM_KV_GIB = 2


@dataclass(frozen=True, slots=True)
class Peer:
    """One server configuration."""

    server: str  # "Loupe", "vLLM CPU", "transformers serve"
    dtype: str  # what it computes in
    command: list[str]
    health_path: str  # answers 200 once the model is loaded
    model: str  # the model name requests carry
    env: dict[str, str] = field(default_factory=dict)
    image: dict[str, object] = field(default_factory=dict)  # extra image_url fields (detail)
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.server} ({self.dtype}{', ' + self.note if self.note else ''})"


def loupe(checkpoint: Path, port: int, workdir: Path, detail: str, dtype: str | None = None) -> Peer:
    """Loupe as a user starts it; `dtype` None is its default ("auto")."""
    command = [sys.executable, "-m", "loupe", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model", str(checkpoint), "--db", f"sqlite:///{workdir / f'loupe-{port}.db'}"]
    if dtype is not None:
        command += ["--dtype", dtype]
    return Peer(
        "Loupe",
        dtype or "auto",
        command,
        "/health",
        checkpoint.name,
        image={"detail": detail},
        note="default" if dtype is None else "",
    )


def vllm_python() -> str | None:
    """vLLM's interpreter, where `make vllm` installed it."""
    python = os.environ.get("LOUPE_VLLM_PYTHON")
    return python if python and Path(python).exists() else None


def vllm(checkpoint: Path, port: int, dtype: str, processor: dict[str, object], threads: str | None = None) -> Peer:
    """vLLM's OpenAI server on the CPU, eager (compiling measured no faster on these machines).
    `threads` binds its compute threads to these cores ("0-1"); by default vLLM computes on all
    cores but one, which it leaves to its API server."""
    python = vllm_python()
    assert python is not None, "LOUPE_VLLM_PYTHON names no interpreter; run `make vllm`"
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model", str(checkpoint), "--dtype", dtype, "--max-model-len", "4096", "--enforce-eager"]
    command += ["--enable-prompt-tokens-details", "--disable-log-stats"]
    if processor:
        command += ["--mm-processor-kwargs", json.dumps(processor)]
    env = {"VLLM_CPU_KVCACHE_SPACE": str(VLLM_KV_GIB)}
    if threads is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = threads
    note = f"threads on cores {threads}" if threads else ""
    return Peer("vLLM CPU", dtype, command, "/v1/models", str(checkpoint), env=env, note=note)


def transformers_serve(checkpoint: Path, port: int, dtype: str, processor: dict[str, object]) -> Peer:
    command = [sys.executable, "-m", "bench.transformers_serve", str(checkpoint), "--port", str(port)]
    command += ["--dtype", dtype]
    if processor:
        command += ["--image-processor", json.dumps(processor)]
    return Peer("transformers serve", dtype, command, "/v1/models", str(checkpoint))
