"""What the servers of the gateway benchmark spend: CPU seconds of their processes (from /proc,
Linux) and vLLM's engine steps (from its /metrics)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of live processes, from /proc (Linux)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def process_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def engine_steps(vllm_base: str) -> float:
    """vLLM's engine steps so far (the count of its `vllm:iteration_tokens_total` histogram)."""
    text = httpx.get(f"{vllm_base}/metrics", timeout=10, trust_env=False).text
    pattern = r"^vllm:iteration_tokens_total_count(?:\{[^}]*\})? ([0-9.e+]+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))


@dataclass
class CpuUse:
    """What each path's rounds cost the servers: CPU seconds of vLLM's processes and of the
    gateway, and vLLM's engine steps."""

    vllm_pgid: int
    gateway_pid: int
    vllm_base: str
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def now(self) -> dict[str, float]:
        return {
            "vLLM": cpu_seconds(process_group(self.vllm_pgid)),
            "Loupe": cpu_seconds([self.gateway_pid]),
            "steps": engine_steps(self.vllm_base),
        }

    def add(self, path: str, before: dict[str, float]) -> None:
        spent = self.seconds.setdefault(path, {})
        for name, value in self.now().items():
            spent[name] = spent.get(name, 0.0) + value - before[name]
