"""Latency Loupe adds in front of an upstream: one ~1 MB image per request, p50 and p95.

    python -m bench.upstream_overhead [--requests 30] [--checkpoint PATH] [--detail high]

Starts a `loupe serve` on loopback (a tiny Qwen2-VL checkpoint unless --checkpoint is given) as
the upstream, and a second `loupe serve` in front of it with `engine = "upstream"` (the gateway:
decode, detail, resize, PNG re-encode, exact count, routing). Each request carries a photo
neither server has seen (their caches would otherwise hide the cost) and goes to each over
HTTP, interleaved. Requests run one at a time with `max_tokens=1` and `detail: low` by
default, so the figures are the fixed cost per request rather than the model's prefill. Note
that the gateway sends the upstream the image already sized for the detail applied, so the
upstream decodes a small PNG instead of the original JPEG: part of the gateway's cost comes back.
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
from pathlib import Path

import httpx
from PIL import Image

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "photos" / "boats.jpg"
TARGET_BYTES = 1_000_000


def image_data_urls(count: int) -> list[str]:
    """`count` distinct photos of about 1 MB as JPEG data URLs: a real photo, upscaled until it
    weighs that, each with its own mark in a corner (so no cache on either side knows it)."""
    source = Image.open(PHOTO).convert("RGB") if PHOTO.exists() else Image.effect_noise((1024, 768), 64).convert("RGB")
    scale, data = 1.0, b""
    while len(data) < TARGET_BYTES and scale < 8:
        big = source.resize((int(source.width * scale), int(source.height * scale)))
        buf = io.BytesIO()
        big.save(buf, format="JPEG", quality=95)
        data, scale = buf.getvalue(), scale * 1.15
    urls = []
    for i in range(count):
        marked = big.copy()
        marked.paste((i * 37 % 256, i * 91 % 256, i * 53 % 256), (0, 0, 16 + i, 16))
        buf = io.BytesIO()
        marked.save(buf, format="JPEG", quality=95)
        urls.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
    return urls


def start_upstream(args: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`loupe serve ARGS` on a loopback port, in the log's directory (its own database)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loupe", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=log.parent,
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


async def measure(api: str, gateway: str, model: str, urls: list[str], detail: str | None) -> dict[str, list[float]]:
    """Each image once to the upstream directly and once through a Loupe gateway in front of it
    (HTTP both), one request at a time, interleaved so drift on a noisy machine hits both alike.
    The first image warms both paths up (connections, first-call allocations) and is not timed."""

    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:

        async def call(base: str, name: str, url: str) -> float:
            image_url: dict[str, object] = {"url": url} | ({"detail": detail} if detail else {})
            content = [{"type": "image_url", "image_url": image_url}, {"type": "text", "text": "Hi"}]
            body = {"model": name, "messages": [{"role": "user", "content": content}], "max_tokens": 1, "temperature": 0}
            start = time.perf_counter()
            (await http.post(f"{base}/chat/completions", json=body)).raise_for_status()
            return (time.perf_counter() - start) * 1000

        results: dict[str, list[float]] = {"direct": [], "through Loupe": []}
        for index, url in enumerate(urls):
            direct, through = await call(api, model, url), await call(gateway, "gw", url)
            if index:
                results["direct"].append(direct)
                results["through Loupe"].append(through)
        return results


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def table(results: dict[str, list[float]], image_bytes: int, requests: int, detail: str | None) -> str:
    lines = [
        f"Upstream overhead: {requests} sequential requests, each a {image_bytes / 1e6:.2f} MB JPEG neither server "
        f"has seen before, detail {detail or 'omitted'}, max_tokens=1",
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


def run(requests: int = 30, detail: str | None = "low", checkpoint: Path | None = None) -> str:
    """Start an upstream Loupe and a gateway Loupe (engine = "upstream") on loopback; time both."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        root = Path(tmp)
        if checkpoint is None:
            from loupe.testing.tiny import build_tiny_checkpoint

            checkpoint = build_tiny_checkpoint("qwen2-vl", root / "tiny-qwen2-vl")
        port, gateway_port = _free_port(), _free_port()
        upstream = start_upstream(["--model", str(checkpoint)], port, root / "upstream.log")
        try:
            model = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"][0]["id"]
            config = root / "gateway.toml"
            config.write_text(
                f'[[models]]\nid = "gw"\nengine = "upstream"\nupstream = ["http://127.0.0.1:{port}/v1"]\n'
                f'upstream_model = "{model}"\ncheckpoint = "{checkpoint}"\n'
            )
            gateway = start_upstream(["--config", str(config)], gateway_port, root / "gateway.log")
            try:
                urls = image_data_urls(requests + 1)
                results = asyncio.run(
                    measure(f"http://127.0.0.1:{port}/v1", f"http://127.0.0.1:{gateway_port}/v1", model, urls, detail)
                )
            finally:
                gateway.terminate()
                gateway.wait(timeout=20)
        finally:
            upstream.terminate()
            upstream.wait(timeout=20)
    image_bytes = len(base64.b64decode(urls[0].partition(",")[2]))
    return table(results, image_bytes, requests, detail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--checkpoint", type=Path, help="default: a tiny random Qwen2-VL built in a temporary directory")
    parser.add_argument("--detail", choices=["low", "high", "auto"], default="low")
    args = parser.parse_args(argv)
    print(run(args.requests, args.detail, args.checkpoint))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
