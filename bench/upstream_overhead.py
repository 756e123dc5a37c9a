"""Loupe in front of vLLM: the latency it adds to a request with a 1 MB photo, and the streaming
throughput it keeps at 16 clients.

    python -m bench.upstream_overhead [--requests 30] [--clients 16] [--rounds 6] [--tokens 64]

Serves a tiny Qwen2-VL (hidden size 512, 4 layers) with vLLM's CPU build (`make vllm`, found
through LOUPE_VLLM_PYTHON) on loopback, and a `loupe serve` in front of it with
`engine = "upstream"` (the gateway: fetch, decode, detail, exact count, routing, billing).

- Latency: each request carries a JPEG of about 1 MB that neither server has seen (their caches
  would otherwise hide the cost), with `max_tokens=1`, one at a time, sent to vLLM directly and
  through Loupe, interleaved so drift on a noisy machine hits both alike. Through Loupe it asks
  for detail `low`; vLLM, which ignores `detail`, is asked for as many pixels through
  `mm_processor_kwargs`, so both process about the same image tokens (the table shows them). At
  detail `high` the tiny model's vision attention over a 4.8 MP photo takes seconds, and the
  gateway's share drowns in its noise. Loupe's own decode of each photo is timed in this
  process: the target is at most 10 ms plus that decode.
- Throughput: rounds of `clients` streaming requests at once, each with its own 448x448 crop
  never sent before, `tokens` tokens at temperature 0; rounds alternate between vLLM directly
  and through Loupe. Target: at least 0.95x the direct output tok/s. A last round of one-token
  requests through Loupe measures the CPU its intake takes per request, so the section can say
  how much of the gap is Loupe's own CPU (intake, relay) and how much vLLM's extra work.
- Every request, in both parts, sends an image no other request sent: vLLM's caches know an
  image by its file, and Loupe forwards a file its plan keeps as it came.
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
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from bench.serving import Level, Sample, crops, free_port, image_message, stream_chat
from bench.upstream_cpu import CpuUse
from bench.upstream_vllm import DEFAULT_ARGS, VLLM_PYTHON, VllmServer, vllm_python

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "photos" / "boats.jpg"
TARGET_BYTES = 1_000_000
ADDED_MS_TARGET = 10.0
THROUGHPUT_TARGET = 0.95


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


def start_loupe(args: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
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
    raise RuntimeError("the gateway did not become healthy")


@dataclass(frozen=True, slots=True)
class Timed:
    ms: float
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Case:
    """Sequential requests, one image each: what Loupe is asked and what vLLM is asked directly.

    `urls` holds two images per request, the first for vLLM directly and the second through
    Loupe: no file is sent twice, since vLLM's caches know an image by its file, and Loupe
    forwards a file the plan keeps as it came."""

    title: str
    urls: list[str]
    detail: str
    direct_fields: dict[str, object]


# Loupe's `low` for Qwen2-VL is 448 x 448 (256 image tokens); vLLM, which ignores `detail`, is
# asked for as many pixels, so that both process about the same image tokens.
LOW_PIXELS = {"max_pixels": 448 * 448}


async def latencies(direct: str, gateway: str, model: str, case: Case) -> dict[str, list[Timed]]:
    """Requests to vLLM directly and through Loupe, one at a time, interleaved, each with an
    image of its own. The first pair warms both paths up and is not timed."""
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:

        async def call(api: str, name: str, url: str, extra: dict[str, object]) -> Timed:
            content = [{"type": "image_url", "image_url": {"url": url, "detail": case.detail}}, {"type": "text", "text": "Hi"}]
            body = {"model": name, "messages": [{"role": "user", "content": content}], "max_tokens": 1, "temperature": 0}
            start = time.perf_counter()
            response = await http.post(f"{api}/chat/completions", json=body | extra)
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{api} answered {response.status_code}: {response.text[:500]}")
            return Timed(elapsed, response.json()["usage"]["prompt_tokens"])

        results: dict[str, list[Timed]] = {"vLLM directly": [], "through Loupe": []}
        for index, (mine, theirs) in enumerate(zip(case.urls[0::2], case.urls[1::2], strict=True)):
            timed = await call(direct, model, mine, case.direct_fields), await call(gateway, "gw", theirs, {})
            if index:
                for name, one in zip(results, timed, strict=True):
                    results[name].append(one)
        return results


def decode_ms(urls: list[str]) -> list[float]:
    """Loupe's own decode of each photo (validation, EXIF orientation, RGB), in this process."""
    from loupe.media import ImageLimits
    from loupe.media.decode import decode_image

    times = []
    for url in urls:
        data = base64.b64decode(url.partition(",")[2])
        start = time.perf_counter()
        decode_image(data, ImageLimits())
        times.append((time.perf_counter() - start) * 1000)
    return times


async def throughput(
    direct: str, gateway: str, model: str, urls: list[str], clients: int, rounds: int, tokens: int, cpu: CpuUse
) -> tuple[Level[Sample], Level[Sample]]:
    """Rounds of `clients` concurrent streams, alternating between the two paths, then one
    round of `clients` one-token requests through Loupe (its CPU is the gateway's intake);
    `urls` holds (2 x rounds + 1) x clients + 2 images."""
    urls = list(urls)
    samples: dict[str, list[Sample]] = {"direct": [], "gateway": []}
    walls = {"direct": 0.0, "gateway": 0.0}
    paths = {"direct": (direct, model), "gateway": (gateway, "gw")}
    async with httpx.AsyncClient(timeout=600, trust_env=False) as client:
        for name, (api, served) in paths.items():  # warm-up
            await stream_chat(client, api, served, image_message(urls.pop()), 4)
        for _ in range(rounds):
            for name, (api, served) in paths.items():
                mine = [urls.pop() for _ in range(clients)]
                start, before = time.perf_counter(), cpu.now()
                results = await asyncio.gather(*(stream_chat(client, api, served, image_message(u), tokens) for u in mine))
                walls[name] += time.perf_counter() - start
                cpu.add(name, before)
                samples[name].extend(sample for sample, _ in results)
        before = cpu.now()
        await asyncio.gather(*(stream_chat(client, gateway, "gw", image_message(urls.pop()), 1) for _ in range(clients)))
        cpu.add("intake", before)
    return Level(clients, samples["direct"], walls["direct"]), Level(clients, samples["gateway"], walls["gateway"])


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def latency_table(case: Case, timed: dict[str, list[Timed]], decode: list[float] | None) -> list[str]:
    ms = {name: [t.ms for t in values] for name, values in timed.items()}
    direct, through = ms["vLLM directly"], ms["through Loupe"]
    added = {q: percentile(through, q) - percentile(direct, q) for q in (50, 95)}
    lines = [
        f"### {case.title}: {len(direct)} sequential requests, max_tokens=1",
        "",
        "| path | prompt tokens | p50 ms | p95 ms | mean ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in ms.items():
        tokens = statistics.median(t.prompt_tokens for t in timed[name])
        lines.append(
            f"| {name} | {tokens:.0f} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} | {statistics.fmean(values):.1f} |"
        )
    mean_added = statistics.fmean(through) - statistics.fmean(direct)
    # Each pair was sent back to back, so its difference sees the same moment of a shared machine.
    paired = statistics.median(b - a for a, b in zip(direct, through, strict=True))
    lines += [
        f"| **added by Loupe** | | **{added[50]:.1f}** | {added[95]:.1f} | {mean_added:.1f} |",
        f"| added, median of the {len(direct)} paired differences | | {paired:.1f} | | |",
        "",
    ]
    if decode is not None:
        limit = ADDED_MS_TARGET + statistics.median(decode)
        lines += [
            f"Loupe's own decode of the photo: {statistics.median(decode):.1f} ms (median). Target: p50 added at most "
            f"{ADDED_MS_TARGET:.0f} ms + decode = {limit:.1f} ms: **{'met' if added[50] <= limit else 'missed'}**.",
            "",
        ]
    return lines


def throughput_table(direct: Level[Sample], through: Level[Sample], tokens: int, rounds: int, cpu: CpuUse) -> list[str]:
    lines = [
        f"### Throughput: {direct.concurrency} streaming clients, 448x448 crops (each request its own), "
        f"{tokens} tokens at temperature 0, {rounds} rounds per path, alternating",
        "",
        "| path | output tok/s | TTFT p50 | TTFT p95 | latency p50 | latency p95 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, lv in (("vLLM directly", direct), ("through Loupe", through)):
        lines.append(
            f"| {name} | {lv.tokens_per_s:.1f} | {lv.p('ttft', .5):.3f} s | {lv.p('ttft', .95):.3f} s "
            f"| {lv.p('latency', .5):.3f} s | {lv.p('latency', .95):.3f} s |"
        )
    ratio = through.tokens_per_s / direct.tokens_per_s
    lines += [
        f"| **Loupe / direct** | **{ratio:.2f}x** | | | | |",
        "",
        f"Target: at least {THROUGHPUT_TARGET}x: **{'met' if ratio >= THROUGHPUT_TARGET else 'missed'}**.",
        "",
        "What the servers spent (all on this machine's cores, beside the client): CPU seconds per 1,000 streamed "
        "tokens, and vLLM's engine steps per round.",
        "",
        "| path | vLLM CPU | Loupe CPU | vLLM engine steps |",
        "|---|---:|---:|---:|",
    ]
    per_k: dict[str, dict[str, float]] = {}
    for name, level in (("direct", direct), ("gateway", through)):
        per = 1000 / sum(sample.tokens for sample in level.samples)
        spent = cpu.seconds[name]
        per_k[name] = {"vLLM": spent["vLLM"] * per, "Loupe": spent["Loupe"] * per}
        label = "vLLM directly" if name == "direct" else "through Loupe"
        lines.append(f"| {label} | {per_k[name]['vLLM']:.2f} | {per_k[name]['Loupe']:.2f} | {spent['steps'] / rounds:.0f} |")
    return lines + ["", *gap_account(per_k, through, cpu.seconds["intake"]["Loupe"] / direct.concurrency, ratio)]


def gap_account(per_k: dict[str, dict[str, float]], through: Level[Sample], intake_s: float, ratio: float) -> list[str]:
    """Where the extra CPU per 1,000 tokens through Loupe goes: Loupe's own (its intake per
    request, measured in a round of one-token requests, and the rest, its relay per token) and
    vLLM's extra work; with both cores busy, throughput follows the CPU per token."""
    direct, gateway = per_k["direct"], per_k["gateway"]
    loupe, vllm_extra = gateway["Loupe"], gateway["vLLM"] - direct["vLLM"]
    extra = loupe + vllm_extra
    tokens = sum(sample.tokens for sample in through.samples)
    relay_ms = (loupe * tokens / 1000 - intake_s * len(through.samples)) / tokens * 1000
    predicted = direct["vLLM"] / (direct["vLLM"] + extra)
    return [
        f"Through Loupe the servers spent {extra:.2f} CPU seconds more per 1,000 tokens than vLLM alone: Loupe's own "
        f"{loupe:.2f} ({loupe / extra:.0%} of it) and vLLM's extra work {vllm_extra:.2f} ({vllm_extra / extra:.0%}). "
        f"Loupe's own is its intake, {intake_s * 1000:.1f} ms of CPU per request (reading and validating the body, "
        f"decoding the image to validate it, the exact count, sending it on; measured in a round of {through.concurrency} "
        f"one-token requests), and its relay, {relay_ms:.2f} ms per streamed token (reading vLLM's event through aiohttp "
        f"under httpx, writing the chunk through uvicorn: {relay_ms / direct['vLLM']:.0%} of vLLM's own CPU per token). "
        "vLLM's extra work comes "
        "from the requests reaching it over Loupe's intake rather than at once: its CPU engine takes more, smaller steps. "
        f"vLLM, Loupe and the client share this machine's two cores, which vLLM alone keeps busy, so every CPU second "
        f"Loupe or the extra steps take is one vLLM's generation loses: {direct['vLLM']:.2f} / "
        f"({direct['vLLM']:.2f} + {extra:.2f}) = {predicted:.2f}x expected, {ratio:.2f}x measured. In front of a GPU "
        "cluster Loupe runs on CPUs of its own, and neither cost comes out of the model server's.",
    ]


def cases(requests: int, crops: list[str]) -> list[Case]:
    photos = image_data_urls(2 * (requests + 1))
    data = base64.b64decode(photos[0].partition(",")[2])
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return [
        Case(
            f"Latency added to a {len(data) / 1e6:.2f} MB photo ({width}x{height} JPEG, each request its own): detail "
            f"low through Loupe, `mm_processor_kwargs` {LOW_PIXELS} to vLLM directly",
            photos, "low", {"mm_processor_kwargs": LOW_PIXELS},
        ),
        Case(
            "Loupe's fixed cost: a 448x448 crop (each request its own), the same pixels both ways (detail high: no "
            "resize on either side)",
            crops, "high", {},
        ),
    ]  # fmt: skip


def run(requests: int = 30, clients: int = 16, rounds: int = 6, tokens: int = 64) -> str:
    """Start vLLM and a gateway Loupe in front of it on loopback; measure both paths."""
    python = vllm_python()
    if python is None:
        raise RuntimeError(f"vLLM's CPU build is needed: run `make bench`, which installs it and sets {VLLM_PYTHON}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from loupe.testing.tiny import build_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        root = Path(tmp)
        checkpoint = build_tiny_checkpoint("qwen2-vl", root / "tiny-qwen2-vl-512", hidden_size=512, layers=4)
        vllm = VllmServer(
            python, checkpoint, free_port(), root / "vllm.log",
            args=(*DEFAULT_ARGS, "--max-model-len", "8192", "--trust-request-mm-kwargs"), in_process_worker=False,
        )  # fmt: skip
        vllm.start()
        try:
            port = free_port()
            config = root / "gateway.toml"
            config.write_text(
                f'[[models]]\nid = "gw"\nengine = "upstream"\nupstream = ["{vllm.api}"]\n'
                f'upstream_model = "{vllm.name}"\ncheckpoint = "{checkpoint}"\n'
            )
            gateway = start_loupe(["--config", str(config)], port, root / "gateway.log")
            api = f"http://127.0.0.1:{port}/v1"
            try:
                # Every request gets an image no earlier request sent.
                pool = crops(2 * (requests + 1) + (2 * rounds + 1) * clients + 2)
                latency_cases = cases(requests, pool[: 2 * (requests + 1)])
                measured = [(case, asyncio.run(latencies(vllm.api, api, vllm.name, case))) for case in latency_cases]
                streams = pool[2 * (requests + 1) :]
                cpu = CpuUse(os.getpgid(vllm.pid), gateway.pid, vllm.api.removesuffix("/v1"))
                direct, through = asyncio.run(throughput(vllm.api, api, vllm.name, streams, clients, rounds, tokens, cpu))
            finally:
                gateway.terminate()
                gateway.wait(timeout=20)
        finally:
            vllm.stop()
    photo = measured[0][0]
    lines = latency_table(photo, measured[0][1], decode_ms(photo.urls[2:]))
    lines += latency_table(*measured[1], None)
    return "\n".join(lines + throughput_table(direct, through, tokens, rounds, cpu))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)
    print(run(args.requests, args.clients, args.rounds, args.tokens))


if __name__ == "__main__":
    main()
