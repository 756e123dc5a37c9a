"""Resident memory of `loupe serve` under bursts of large requests, and after them.

    python -m bench.memory [--clients 64] [--settle 5]

Serves the tiny Qwen2-VL with `loupe serve` on loopback and samples the server's resident set
size (RSS) every 20 ms while it takes, one after the other:

- a burst of `clients` concurrent requests, each with its own JPEG of about 1 MB, at the
  default detail (auto: the picture within the model's token budget for an image);
- a burst of `clients` concurrent requests, each with a JPEG of about 20 MB (the documented
  per-image limit) at detail low;
- one 49 MB body of plain text (under the 50 MiB body limit), timed until it is refused.

Each image is made from the shared photos, resized and re-encoded: the 1 MB ones at quality 97
(about 1.2 megapixels, as a camera saves them; each a different size, so their pixels differ); the 20 MB ones (noise added so they stay that large)
are made once per photo and told apart by a JPEG comment, so no cache knows any of them.
Bodies are streamed from disk with a Content-Length, so the client holds little. For each load
the table gives RSS before it, its peak, and `settle` seconds after the last answer, and how
much of what stays the caches keep on purpose (their growth in `loupe_cache_bytes`, each
bounded by its setting).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from bench.serving import build_checkpoint, free_port, server

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "images" / "photos"
MB = 1_000_000
MiB = 1024 * 1024
SMALL_BYTES = 1 * MB
LARGE_BYTES = 20 * MB  # under max_image_bytes (20 MiB)
TEXT_BYTES = 49 * MB


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    before: float  # bytes
    peak: float
    after: float
    seconds: float
    statuses: dict[int, int]
    cached: dict[str, float]  # growth of the bytes each cache keeps

    @property
    def cached_total(self) -> float:
        return sum(self.cached.values())


class RssSampler:
    """Samples one process's resident set size on a thread; `window()` marks a load."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self._process = psutil.Process(pid)
        self._every = every_s
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def reset_peak(self) -> None:
        self._peak = self.rss()

    @property
    def peak(self) -> int:
        return self._peak

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._peak = max(self._peak, self.rss())


def photos() -> list[Image.Image]:
    out = []
    for path in sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg"):
        with Image.open(path) as img:
            out.append(img.convert("RGB"))
    return out


def encode(image: Image.Image, quality: int, noise: int = 0) -> bytes:
    if noise:
        values = np.asarray(image).astype(np.int16)
        values += np.random.default_rng(0).integers(-noise, noise + 1, values.shape, dtype=np.int16)
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    out = tempfile.SpooledTemporaryFile()
    image.save(out, "JPEG", quality=quality)
    out.seek(0)
    return out.read()


def sized(image: Image.Image, target: int, quality: int, noise: int, widen: int = 0) -> bytes:
    """`image` resized so that its JPEG is about `target` bytes (a guess, then one correction),
    `widen` pixels wider than that (so that pictures of one photo differ)."""
    width = round((target / (0.7 if noise else 0.8) * image.width / image.height) ** 0.5)
    for attempt in range(2):
        final = width + widen if attempt else width
        resized = image.resize((final, round(final * image.height / image.width)), Image.Resampling.BILINEAR)
        data = encode(resized, quality, noise)
        width = round(width * (target / len(data)) ** 0.5 * 0.98)
    return data


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment after SOI: other bytes, the same pixels."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def write_images(folder: Path, count: int) -> tuple[list[Path], list[Path]]:
    """`count` distinct ~1 MB JPEGs and `count` distinct ~20 MB JPEGs, as files."""
    pictures = photos()
    small, large = [], []
    for i in range(count):
        path = folder / f"small-{i}.jpg"
        path.write_bytes(sized(pictures[i % len(pictures)], SMALL_BYTES, 97, 0, widen=i // len(pictures)))
        small.append(path)
    bases = [sized(p, LARGE_BYTES, 98, 16) for p in pictures]
    for i in range(count):
        path = folder / f"large-{i}.jpg"
        path.write_bytes(with_comment(bases[i % len(bases)], f"loupe bench {i}"))
        large.append(path)
    return small, large


def kept_images(folder: Path, count: int) -> tuple[list[Path], list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    small, large = ([folder / f"{kind}-{i}.jpg" for i in range(count)] for kind in ("small", "large"))
    if not all(p.exists() for p in small + large):
        return write_images(folder, count)
    return small, large


def image_body(model: str, path: Path, detail: str | None) -> tuple[int, Iterator[bytes]]:
    """A chat body with the file as a base64 data URL, streamed: its length and its chunks."""
    part: dict[str, object] = {"url": "@"}
    if detail:
        part["detail"] = detail
    body = {
        "model": model, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": part}, {"type": "text", "text": "What is this?"}]}],
    }
    head, tail = json.dumps(body).encode().split(b"@")
    head += b"data:image/jpeg;base64,"
    size = path.stat().st_size
    length = len(head) + 4 * ((size + 2) // 3) + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        with path.open("rb") as fh:
            while block := fh.read(3 * 256 * 1024):
                yield base64.b64encode(block)
        yield tail

    return length, chunks()


async def post(client: httpx.AsyncClient, url: str, length: int, chunks: Iterator[bytes]) -> int:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    headers = {"content-type": "application/json", "content-length": str(length)}
    try:
        response = await client.post(url, content=body(), headers=headers)
    except httpx.TransportError:
        return 0  # the server closed the connection
    return response.status_code


def burst(api: str, model: str, paths: list[Path], detail: str | None) -> dict[int, int]:
    async def all_at_once() -> list[int]:
        limits = httpx.Limits(max_connections=len(paths))
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            return list(await asyncio.gather(*(post(client, f"{api}/chat/completions", *image_body(model, p, detail)) for p in paths)))

    statuses: dict[int, int] = {}
    for status in asyncio.run(all_at_once()):
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def text_body(api: str, model: str, folder: Path) -> dict[int, int]:
    path = folder / "text.json"
    words = (b"lorem ipsum dolor sit amet " * (TEXT_BYTES // 27 + 1))[:TEXT_BYTES]
    path.write_bytes(b'{"model": "' + model.encode() + b'", "max_tokens": 4, "messages": [{"role": "user", "content": "' + words + b'"}]}')
    response = httpx.post(f"{api}/chat/completions", content=path.read_bytes(), headers={"content-type": "application/json"}, timeout=600)
    return {response.status_code: 1}


def cached_bytes(base_url: str) -> dict[str, float]:
    """The bytes each of the server's caches keeps (its /metrics gauge)."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    families = text_string_to_metric_families(text)
    return {s.labels["cache"]: s.value for f in families if f.name == "loupe_cache_bytes" for s in f.samples}


def measure(
    sampler: RssSampler, name: str, settle: float, work: Callable[[], dict[int, int]], caches: Callable[[], dict[str, float]]
) -> Load:
    time.sleep(1.0)
    before, cached = sampler.rss(), caches()
    sampler.reset_peak()
    started = time.perf_counter()
    statuses = work()
    seconds = time.perf_counter() - started
    time.sleep(settle)
    after = sampler.rss()
    grown = {cache: size - cached.get(cache, 0.0) for cache, size in caches().items()}
    return Load(name, before, max(sampler.peak, after), after, seconds, statuses, grown)


def row(load: Load) -> str:
    """One load's line of the table."""
    answers = ", ".join(f"{n} x {s or 'closed'}" for s, n in sorted(load.statuses.items()))
    return (
        f"| {load.name} | {answers} | {load.before / MB:,.0f} MB | {load.peak / MB:,.0f} MB | "
        f"{(load.peak - load.before) / MB:+,.0f} MB | {load.after / MB:,.0f} MB | {(load.after - load.before) / MB:+,.0f} MB | "
        f"{load.cached_total / MB:+,.0f} MB | {load.seconds:.1f} s |"
    )


def table(loads: list[Load], clients: int, settle: float) -> str:
    rows = [
        f"### Resident memory of `loupe serve` (tiny Qwen2-VL), {clients} concurrent requests per burst, "
        f"RSS sampled every 20 ms, 'after' {settle:g} s after the last answer",
        "",
        "| load | answers | RSS before | peak | peak growth | after | after - before | of it, cached | took |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows += [row(load) for load in loads]
    rows += ["", "Growth of each cache in 'of it, cached': " + "; ".join(
        f"{load.name}: " + ", ".join(f"{cache} {size / MB:+,.0f} MB" for cache, size in sorted(load.cached.items()))
        for load in loads
    ) + "."]
    rows += [
        "",
        "Targets (issue 21): the 1 MB burst at most +1,000 MB at its peak and back within 300 MB of "
        "before, beyond what the caches keep on purpose ('of it, cached': the growth of "
        "`loupe_cache_bytes`, each cache bounded by its setting); the 20 MB burst at most +2,500 MB "
        "at its peak. 'took' for the text body is the time until it was refused.",
    ]
    return "\n".join(rows)


def run(clients: int = 64, settle: float = 5.0, images: Path | None = None) -> str:
    """The section; `images` is a folder to keep the generated images in (and reuse them from)."""
    with tempfile.TemporaryDirectory(prefix="loupe-memory-") as tmp:
        folder = Path(tmp)
        checkpoint = build_checkpoint(folder / "tiny-qwen")
        small, large = kept_images(images, clients) if images else write_images(folder, clients)
        port = free_port()
        api = f"http://127.0.0.1:{port}/v1"
        command = [sys.executable, "-m", "loupe", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(checkpoint)]
        with server(command, f"http://127.0.0.1:{port}/health", folder / "server.log") as process, RssSampler(process.pid) as sampler:
            model = httpx.get(f"{api}/models").json()["data"][0]["id"]
            burst(api, model, small[-2:], None)  # warm up: the first requests load lazily built parts
            plan = [
                (f"{clients} x 20 MB JPEG, detail low", lambda: burst(api, model, large, "low")),
                (f"{clients} x 1 MB JPEG, default detail", lambda: burst(api, model, small, None)),
                ("one 49 MB text body", lambda: text_body(api, model, folder)),
            ]
            loads = []
            for name, work in plan:
                loads.append(measure(sampler, name, settle, work, lambda: cached_bytes(f"http://127.0.0.1:{port}")))
                print(row(loads[-1]), flush=True)  # its row, as it comes
    return table(loads, clients, settle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--images", type=Path, help="keep the generated images here and reuse them")
    args = parser.parse_args()
    print(run(args.clients, args.settle, args.images))


if __name__ == "__main__":
    main()
