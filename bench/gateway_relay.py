"""What one Loupe process spends relaying streamed tokens from an upstream: CPU per token, and so
how many tokens per second of a GPU cluster's output one core of Loupe can carry.

    python -m bench.gateway_relay [--clients 16 64] [--tokens 256] [--rounds 4] [--step-ms 2]

A model server that needs no time to think (`bench.fake_upstream`, in a process of its own) stands
in for the cluster, sending one event on every stream each `step-ms`, as a GPU server's decode
steps do, so the figures are the gateway's own: a `loupe serve` with `engine = "upstream"` in
front of it, on a tiny Qwen2-VL's processor (no weights used), and rounds of `clients` streaming
requests with a short text prompt at once. Loupe's CPU seconds come from /proc (every thread of
the process), over the rounds only; its intake per request (a short text prompt) is included.
The same client reading the stand-in directly shows the load generator's own rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.serving import free_port
from bench.upstream_cpu import cpu_seconds
from bench.upstream_overhead import start_loupe


@dataclass(frozen=True)
class Relayed:
    clients: int
    tokens: int
    wall_s: float
    loupe_cpu_s: float

    @property
    def cpu_ms_per_token(self) -> float:
        return 1e3 * self.loupe_cpu_s / self.tokens


async def one_stream(client: httpx.AsyncClient, api: str, model: str, tokens: int) -> int:
    body = {"model": model, "stream": True, "max_tokens": tokens, "messages": [{"role": "user", "content": "Say something."}]}
    received = 0
    async with client.stream("POST", f"{api}/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            received += line.startswith("data: {") and '"content":" word"' in line
    return received


async def rounds(api: str, model: str, clients: int, tokens: int, count: int, pid: int | None) -> Relayed:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits, trust_env=False) as client:
        await asyncio.gather(*(one_stream(client, api, model, tokens) for _ in range(clients)))  # warm-up
        cpu, start, total = cpu_seconds([pid]) if pid else 0.0, time.perf_counter(), 0
        for _ in range(count):
            total += sum(await asyncio.gather(*(one_stream(client, api, model, tokens) for _ in range(clients))))
        wall = time.perf_counter() - start
        spent = cpu_seconds([pid]) - cpu if pid else 0.0
    if total != clients * tokens * count:
        raise RuntimeError(f"{total} tokens received, {clients * tokens * count} sent")
    return Relayed(clients, total, wall, spent)


def run(clients: tuple[int, ...] = (16, 64), tokens: int = 256, count: int = 4, step_ms: float = 2.0) -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from loupe.testing.tiny import build_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        root = Path(tmp)
        checkpoint = build_tiny_checkpoint("qwen2-vl", root / "tiny-qwen2-vl", hidden_size=64, layers=1)
        upstream_port, port = free_port(), free_port()
        fake = subprocess.Popen([sys.executable, "-m", "bench.fake_upstream", str(upstream_port), str(step_ms / 1e3)], cwd=Path(__file__).parents[1])
        config = root / "gateway.toml"
        config.write_text(
            f'[[models]]\nid = "gw"\nengine = "upstream"\nupstream = ["http://127.0.0.1:{upstream_port}/v1"]\n'
            f'upstream_model = "m"\ncheckpoint = "{checkpoint}"\n'
        )
        try:
            gateway = start_loupe(["--config", str(config)], port, root / "gateway.log")
            try:
                measured = [
                    (
                        asyncio.run(rounds(f"http://127.0.0.1:{upstream_port}/v1", "m", level, tokens, count, None)),
                        asyncio.run(rounds(f"http://127.0.0.1:{port}/v1", "gw", level, tokens, count, gateway.pid)),
                    )
                    for level in clients
                ]
            finally:
                gateway.terminate()
                gateway.wait(timeout=20)
        finally:
            fake.terminate()
            fake.wait(timeout=10)
    lines = [
        f"### Streaming through Loupe from a stand-in upstream that steps every {step_ms:g} ms: {tokens} tokens "
        f"per request, {count} rounds per level",
        "",
        "| clients | stand-in directly, tok/s | through Loupe, tok/s | Loupe CPU per token | tokens/s one core of Loupe relays |",
        "|---:|---:|---:|---:|---:|",
    ]
    for direct, through in measured:
        lines.append(
            f"| {through.clients} | {direct.tokens / direct.wall_s:,.0f} | {through.tokens / through.wall_s:,.0f} | "
            f"{through.cpu_ms_per_token * 1e3:.0f} µs | {1e3 / through.cpu_ms_per_token:,.0f} |"
        )
    lines += [
        "",
        "Everything shares this machine's cores (the stand-in, the load generator and Loupe), so the tok/s "
        "columns are bounded by all three; Loupe's CPU per token is its own (all its threads, from /proc). "
        "The last column is its inverse: the stream a GPU cluster may send through one core of Loupe.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--step-ms", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(run(tuple(args.clients), args.tokens, args.rounds, args.step_ms))


if __name__ == "__main__":
    main()
