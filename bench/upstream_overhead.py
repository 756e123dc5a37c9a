"""Latency Loupe adds in front of an upstream: one ~1 MB image per request, p50 and p95.

    python -m bench.upstream_overhead [--requests 30] [--checkpoint PATH] [--detail high]

Starts a `loupe serve` on loopback (a tiny Qwen2-VL checkpoint unless --checkpoint is given) as
the upstream, then times the same request sent to it directly and sent through an
UpstreamEngine with Loupe's intake in front (decode, detail, resize, PNG re-encode, exact
count), in process. Requests run one at a time with `max_tokens=1` and `detail: low` by default,
so the figures are the fixed cost per request rather than the model's prefill (on a CPU, a
tiny model's prefill of a high-detail image takes seconds and drowns the difference). Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import httpx
from PIL import Image

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "photos" / "boats.jpg"
TARGET_BYTES = 1_000_000


def image_data_url() -> str:
    """A real photo, upscaled and saved as JPEG until it weighs about 1 MB."""
    source = Image.open(PHOTO).convert("RGB") if PHOTO.exists() else Image.effect_noise((1024, 768), 64).convert("RGB")
    scale, data = 1.0, b""
    while len(data) < TARGET_BYTES and scale < 8:
        buf = io.BytesIO()
        source.resize((int(source.width * scale), int(source.height * scale))).save(buf, format="JPEG", quality=95)
        data, scale = buf.getvalue(), scale * 1.15
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def start_upstream(checkpoint: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loupe", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(checkpoint)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace"))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the upstream did not become healthy")


async def timed(call: Callable[[], Awaitable[object]], requests: int) -> list[float]:
    await call()  # warm-up: connections, caches, first-call allocations
    out = []
    for _ in range(requests):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(checkpoint: Path, api: str, model: str, url: str, detail: str | None, requests: int) -> dict[str, list[float]]:
    from loupe.domain import ChatRequest, Detail, ImageRef, Message, Role, SamplingParams, TextPart
    from loupe.engines.upstream import load_upstream_model
    from loupe.media import ImageLimits, MediaIntake
    from loupe.service.chat import ChatService
    from loupe.service.images import ImageService

    image_url: dict[str, object] = {"url": url} | ({"detail": detail} if detail else {})
    body = {
        "model": model,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": image_url}, {"type": "text", "text": "Hi"}]}],
        "max_tokens": 1,
        "temperature": 0,
    }
    engine, counter = load_upstream_model("gw", str(checkpoint), [api], model, context_size=None, max_images=1, budget=1024)
    chat = ChatService({"gw": engine}, ImageService({"gw": MediaIntake(ImageLimits())}, {"gw": counter}))
    part = ImageRef(url=url, detail=Detail(detail) if detail else None, param="messages[0].content[0].image_url")
    request = ChatRequest(
        model="gw",
        messages=(Message(Role.USER, (part, TextPart("Hi"))),),
        sampling=SamplingParams(max_tokens=1, temperature=0.0),
    )

    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:

        async def direct() -> None:
            (await http.post(f"{api}/chat/completions", json=body)).raise_for_status()

        async def through_loupe() -> None:
            run = await chat.start(request)
            async with aclosing(run.events()) as events:
                async for _ in events:
                    pass

        await engine.start()
        try:
            return {"direct": await timed(direct, requests), "through Loupe": await timed(through_loupe, requests)}
        finally:
            await engine.close()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def table(results: dict[str, list[float]], image_bytes: int, requests: int, detail: str | None) -> str:
    lines = [
        f"Upstream overhead: {requests} sequential requests, one {image_bytes / 1e6:.2f} MB JPEG each, "
        f"detail {detail or 'omitted'}, max_tokens=1",
        "",
        "| path | p50 ms | p95 ms | mean ms |",
        "|---|---:|---:|---:|",
    ]
    for name, values in results.items():
        lines.append(f"| {name} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} | {statistics.fmean(values):.1f} |")
    direct, loupe = results["direct"], results["through Loupe"]
    lines.append(
        f"| **added by Loupe** | {percentile(loupe, 50) - percentile(direct, 50):.1f} | "
        f"{percentile(loupe, 95) - percentile(direct, 95):.1f} | {statistics.fmean(loupe) - statistics.fmean(direct):.1f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--checkpoint", type=Path, help="default: a tiny random Qwen2-VL built in a temporary directory")
    parser.add_argument("--detail", choices=["low", "high", "auto"], default="low")
    parser.add_argument("--port", type=int, default=0, help="the upstream's loopback port (default: a free one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from loupe.testing.tiny import build_tiny_checkpoint

            checkpoint = build_tiny_checkpoint("qwen2-vl", Path(tmp) / "tiny-qwen2-vl")
        port = args.port or _free_port()
        upstream = start_upstream(checkpoint, port, Path(tmp) / "upstream.log")
        try:
            model = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"][0]["id"]
            url = image_data_url()
            results = asyncio.run(measure(checkpoint, f"http://127.0.0.1:{port}/v1", model, url, args.detail, args.requests))
        finally:
            upstream.terminate()
            upstream.wait(timeout=20)
    image_bytes = len(base64.b64decode(url.partition(",")[2]))
    print(table(results, image_bytes, args.requests, args.detail))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
