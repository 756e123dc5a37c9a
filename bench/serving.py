"""Streaming throughput and latency of Loupe against Hugging Face `transformers serve`.

    python -m bench.serving [--concurrency 1 4 16] [--rounds 3] [--tokens 64] [--device cpu]

Builds a tiny Qwen2-VL (hidden size 512, 4 layers) with `loupe tiny-model`, serves it on
loopback with `loupe serve` and with `transformers serve` (through bench.transformers_serve),
then for each concurrency level runs that many streaming clients at once, each sending its own
448x448 crop of a real photo (never sent before, so no cache helps) and asking for a fixed number
of tokens at temperature 0. Reports
output tokens per second, time to first token and total latency (p50/p95), and Loupe's ratio to
transformers serve. Prints a markdown section; `run()` returns it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "images" / "photos"
CROP = 448


@dataclass(frozen=True, slots=True)
class Sample:
    ttft: float
    latency: float
    tokens: int


S = TypeVar("S", bound=Sample)


@dataclass(frozen=True, slots=True)
class Level(Generic[S]):
    """One concurrency level's samples and its wall time."""

    concurrency: int
    samples: list[S]
    wall: float

    @property
    def tokens_per_s(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall

    def p(self, field: str, q: float) -> float:
        return percentile([getattr(s, field) for s in self.samples], q)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def crops(count: int) -> list[str]:
    """`count` distinct 448x448 crops of the shared photos, as PNG data URLs. Each pass over the
    photos moves the crop; a photo too small for that is first enlarged, a little more each pass."""
    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))
    urls: list[str] = []
    for i in range(count):
        with Image.open(photos[i % len(photos)]) as img:
            rgb = img.convert("RGB")
        step = i // len(photos)
        shortest = CROP + 8 * step
        if min(rgb.size) < shortest:
            scale = shortest / min(rgb.size)
            rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BICUBIC)
        x = (step * 37) % (rgb.width - CROP + 1)
        y = (step * 23) % (rgb.height - CROP + 1)
        buf = io.BytesIO()
        rgb.crop((x, y, x + CROP, y + CROP)).save(buf, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    if len(set(urls)) != count:
        raise RuntimeError("the crops are not all distinct")
    return urls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_checkpoint(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "loupe", "tiny-model", "qwen2-vl", str(out), "--hidden-size", "512", "--layers", "4"],
        check=True,
        capture_output=True,
    )
    return out


@contextmanager
def server(
    command: list[str], health: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process (with `env` added to the environment) until the block ends; wait
    until `health` answers 200."""
    with log.open("wb") as out:
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + 900  # vLLM on a busy 2-core machine: minutes
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{command[2]} exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(health, timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"{command[2]} did not become healthy")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def loupe_command(checkpoint: Path, port: int, device: str) -> list[str]:
    return [sys.executable, "-m", "loupe", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(checkpoint), "--device", device]


def hf_command(checkpoint: Path, port: int, device: str) -> list[str]:
    return [sys.executable, "-m", "bench.transformers_serve", str(checkpoint), "--port", str(port), "--device", device]


async def stream_chat(client: httpx.AsyncClient, api: str, model: str, messages: list[dict[str, object]], tokens: int) -> tuple[Sample, str]:
    """One streaming request: its timings and the text it produced."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    chunks, usage_tokens, text = 0, None, []
    async with client.stream("POST", f"{api}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage_tokens = data["usage"].get("completion_tokens")
            for choice in data.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    first = first or time.perf_counter()
                    chunks += 1
                    text.append(content)
    end = time.perf_counter()
    return Sample(ttft=(first or end) - start, latency=end - start, tokens=usage_tokens or chunks), "".join(text)


def image_message(url: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Describe this photo in detail."}]}]


async def level(api: str, model: str, concurrency: int, rounds: int, tokens: int, urls: list[str]) -> Level[Sample]:
    async with httpx.AsyncClient(timeout=600) as client:
        await stream_chat(client, api, model, image_message(urls[-1]), 4)  # warm-up
        samples: list[Sample] = []
        start = time.perf_counter()
        for round_ in range(rounds):
            mine = urls[round_ * concurrency : (round_ + 1) * concurrency]
            results = await asyncio.gather(*(stream_chat(client, api, model, image_message(u), tokens) for u in mine))
            samples.extend(sample for sample, _ in results)
        return Level(concurrency, samples, time.perf_counter() - start)


def measure(command: list[str], health: str, api: str, model: str, levels: list[int], rounds: int, tokens: int, log: Path) -> list[Level[Sample]]:
    """Every request of every level and round gets a crop no earlier request sent (the warm-up's
    is last): a server's caches see every measured image for the first time."""
    sizes = [c * rounds for c in levels]
    urls = crops(sum(sizes) + 1)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    with server(command, health, log):
        return [
            asyncio.run(level(api, model, c, rounds, tokens, urls[start : start + size] + urls[-1:]))
            for c, start, size in zip(levels, starts, sizes, strict=True)
        ]


def table(loupe: list[Level[Sample]], hf: list[Level[Sample]] | None, tokens: int, rounds: int) -> str:
    lines = [
        f"### Streaming, tiny Qwen2-VL (hidden 512, 4 layers), 448x448 photo crops (each request its own, never sent "
        f"before), {tokens} tokens at temperature 0, {rounds} rounds per level",
        "",
        "| clients | server | output tok/s | TTFT p50 | TTFT p95 | latency p50 | latency p95 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for i, ours in enumerate(loupe):
        rows = [("Loupe", ours)] + ([("transformers serve", hf[i])] if hf else [])
        for name, lv in rows:
            lines.append(
                f"| {lv.concurrency} | {name} | {lv.tokens_per_s:.1f} | {lv.p('ttft', .5):.3f} s | {lv.p('ttft', .95):.3f} s "
                f"| {lv.p('latency', .5):.3f} s | {lv.p('latency', .95):.3f} s |"
            )
        if hf:
            theirs = hf[i]
            lines.append(
                f"| {ours.concurrency} | **Loupe / transformers serve** | **{ours.tokens_per_s / theirs.tokens_per_s:.2f}x** "
                f"| {ours.p('ttft', .5) / theirs.p('ttft', .5):.2f}x | {ours.p('ttft', .95) / theirs.p('ttft', .95):.2f}x "
                f"| {ours.p('latency', .5) / theirs.p('latency', .5):.2f}x | {ours.p('latency', .95) / theirs.p('latency', .95):.2f}x |"
            )
    lines.append("")
    lines.append("Throughput ratio above 1 is better for Loupe; time ratios below 1 are better for Loupe.")
    return "\n".join(lines)


def run(levels: list[int] | None = None, rounds: int = 3, tokens: int = 64, device: str = "cpu", with_hf: bool = True) -> str:
    levels = levels or [1, 4, 16]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = build_checkpoint(work / "tiny-qwen2-vl-512")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        loupe = measure(loupe_command(checkpoint, port, device), f"{base}/health", f"{base}/v1", checkpoint.name, levels, rounds, tokens, work / "loupe.log")
        hf = None
        if with_hf:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            hf = measure(hf_command(checkpoint, port, device), f"{base}/v1/models", f"{base}/v1", str(checkpoint), levels, rounds, tokens, work / "hf.log")
        return table(loupe, hf, tokens, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="batches of concurrent requests per level")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loupe-only", action="store_true")
    args = parser.parse_args(argv)
    print(run(args.concurrency, args.rounds, args.tokens, args.device, not args.loupe_only))


if __name__ == "__main__":
    main()
