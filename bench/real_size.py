"""Real-size models on the CPU: Loupe against vLLM's CPU engine and `transformers serve`.

    python -m bench.real_size [--quick] [--models SmolVLM-256M-Instruct ...] [--concurrency 1 8]

Random-weight checkpoints with the published dimensions (`loupe real-size-model`, built once
and kept in LOUPE_BENCH_MODELS, default ~/.cache/loupe/bench-models) are served on loopback by
each server in turn, at its best dtype and at float32. For each concurrency level that many
streaming clients each send their own 448x448 photo crop (never sent before: no cache helps)
and ask for a fixed number of tokens at temperature 0. Images are sized alike on every server
(Loupe's `detail`, vLLM's `--mm-processor-kwargs`, transformers serve's image processor) and
the prompt tokens each server reports must agree. Beside the figures, the machine's own limits
(bench.machine, measured in the same run): a request's prefill as FLOP/s against the matmul
peak (from the time to first token of a lone client), and a decode step (the median gap between
tokens) against the time it takes to read the weights once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import machine, peers, serving
from bench.costs import ModelCosts, costs_of
from bench.peers import Peer
from bench.serving import crops, free_port, percentile, server

MODELS_DIR = Path(os.environ.get("LOUPE_BENCH_MODELS", Path.home() / ".cache" / "loupe" / "bench-models"))


@dataclass(frozen=True, slots=True)
class Spec:
    """One benchmarked model, and how every server is made to see a 448x448 crop alike."""

    name: str
    label: str
    detail: str  # what Loupe is sent
    vllm_processor: dict[str, object]
    hf_image_processor: dict[str, object]
    patches: int  # vision-tower rows per image at that size
    image_tokens: int  # what they become in the text model
    levels: tuple[int, ...]
    quick_levels: tuple[int, ...]
    rounds: int
    float32: bool = True  # whether each server also runs in float32 (a full run only)


SPECS = {
    spec.name: spec
    for spec in (
        Spec(
            "SmolVLM-256M-Instruct",
            "SmolVLM-256M-size",
            detail="low",  # one 512x512 tile, no splitting: 64 image tokens with their markers
            vllm_processor={"do_image_splitting": False},
            hf_image_processor={"do_image_splitting": False},
            patches=(512 // 16) ** 2,
            image_tokens=(512 // 16) ** 2 // 4**2,  # pixel shuffle by 4
            levels=(1, 4, 8, 16),
            quick_levels=(1, 8),
            rounds=2,
        ),
        Spec(
            "Qwen2-VL-2B-Instruct",
            "Qwen2-VL-2B-size",
            detail="low",  # 448x448, the crop's own size: 256 image tokens
            vllm_processor={},
            hf_image_processor={},
            patches=(448 // 14) ** 2,
            image_tokens=(448 // 14) ** 2 // 2**2,  # 2 x 2 patches merged
            levels=(1, 8),
            quick_levels=(1, 8),
            rounds=1,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Sample(serving.Sample):
    prompt_tokens: int | None
    gaps: tuple[float, ...]  # between successive streamed chunks


class Level(serving.Level[Sample]):
    """bench.serving's level, whose samples carry the gaps between their tokens."""

    __slots__ = ()

    @property
    def step(self) -> float:
        """The median gap between tokens: a decode step, where nothing else runs between them."""
        return percentile([g for s in self.samples for g in s.gaps], 0.5)


@dataclass(slots=True)
class Result:
    peer: Peer
    dtype: str  # what the server reported computing in
    levels: list[Level] = field(default_factory=list)
    failure: str | None = None

    @property
    def prompt_tokens(self) -> set[int]:
        return {s.prompt_tokens for lv in self.levels for s in lv.samples if s.prompt_tokens is not None}


def checkpoint(name: str) -> Path:
    """The real-size checkpoint of `name`, built the first time (minutes for the larger ones)."""
    from loupe.testing.tiny.real_size import build_real_size_checkpoint

    path = MODELS_DIR / name
    done = path / ".complete"
    if not done.exists():
        build_real_size_checkpoint(name, path)
        done.touch()
    return path


async def stream(client: httpx.AsyncClient, api: str, peer: Peer, url: str, tokens: int) -> Sample:
    image = {"url": url, **peer.image}
    content = [{"type": "image_url", "image_url": image}, {"type": "text", "text": "Describe this photo in detail."}]
    body = {
        "model": peer.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    arrivals: list[float] = []
    usage: dict[str, int] = {}
    async with client.stream("POST", f"{api}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            usage = data.get("usage") or usage
            if any((c.get("delta") or {}).get("content") for c in data.get("choices") or []):
                arrivals.append(time.perf_counter())
    end = time.perf_counter()
    gaps = tuple(b - a for a, b in zip(arrivals, arrivals[1:]))
    count = usage.get("completion_tokens") or len(arrivals)
    return Sample((arrivals[0] if arrivals else end) - start, end - start, count, usage.get("prompt_tokens"), gaps)


async def level(api: str, peer: Peer, concurrency: int, rounds: int, tokens: int, urls: list[str], warm: str) -> Level:
    async with httpx.AsyncClient(timeout=1800) as client:
        await stream(client, api, peer, warm, 4)
        samples: list[Sample] = []
        start = time.perf_counter()
        for r in range(rounds):
            mine = urls[r * concurrency : (r + 1) * concurrency]
            samples += await asyncio.gather(*(stream(client, api, peer, u, tokens) for u in mine))
        return Level(concurrency, samples, time.perf_counter() - start)


def measure(peer: Peer, levels: tuple[int, ...], rounds: int, tokens: int, urls: list[str], log: Path) -> Result:
    """Every level and round gets crops no earlier request of this server sent."""
    port = int(peer.command[peer.command.index("--port") + 1])
    base = f"http://127.0.0.1:{port}"
    result = Result(peer, peer.dtype)
    try:
        with server(peer.command, f"{base}{peer.health_path}", log, env=peer.env):
            if peer.server == "Loupe":
                computes = httpx.get(f"{base}/health").json()["compute"]
                result.dtype = next(iter(computes.values()))["dtype"]
            used = 0
            for concurrency in levels:
                mine = urls[used : used + concurrency * rounds]
                used += concurrency * rounds
                result.levels.append(asyncio.run(level(f"{base}/v1", peer, concurrency, rounds, tokens, mine, urls[-1])))
    except (RuntimeError, httpx.HTTPError) as exc:
        result.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return result


def servers(spec: Spec, path: Path, workdir: Path, full: bool) -> list[Peer]:
    """Each server at its best dtype (Loupe: its default), then, in a full run, at float32."""
    chosen = [peers.loupe(path, free_port(), workdir, spec.detail)]
    if peers.vllm_python() is not None:
        chosen.append(peers.vllm(path, free_port(), "bfloat16", spec.vllm_processor))
    chosen.append(peers.transformers_serve(path, free_port(), "bfloat16", spec.hf_image_processor))
    if full and spec.float32:
        chosen.append(peers.loupe(path, free_port(), workdir, spec.detail, "float32"))
        if peers.vllm_python() is not None:
            chosen.append(peers.vllm(path, free_port(), "float32", spec.vllm_processor))
        chosen.append(peers.transformers_serve(path, free_port(), "float32", spec.hf_image_processor))
    return chosen


def bench_model(spec: Spec, limits: machine.Limits, tokens: int, levels: tuple[int, ...], full: bool) -> str:
    path = checkpoint(spec.name)
    costs = costs_of(path)
    rounds = spec.rounds if full else 1
    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        work = Path(tmp)
        chosen = servers(spec, path, work, full)
        urls = crops(sum(levels) * rounds + 1)
        results = [measure(p, levels, rounds, tokens, urls, work / f"server-{i}.log") for i, p in enumerate(chosen)]
    return table(spec, costs, limits, results, tokens, rounds)


def table(spec: Spec, costs: ModelCosts, limits: machine.Limits, results: list[Result], tokens: int, rounds: int) -> str:
    prompts = set().union(*(r.prompt_tokens for r in results))
    agree = f"{prompts.pop()} prompt tokens on every server" if len(prompts) == 1 else f"PROMPT TOKENS DIFFER: {sorted(prompts)}"
    lines = [
        f"### {spec.label} ({costs.parameters / 1e6:,.1f} M parameters, random weights), 448x448 crops at "
        f"detail {spec.detail} ({agree}), {tokens} tokens at temperature 0, streaming, {rounds} round(s) per level",
        "",
        "| clients | server | output tok/s | TTFT p50 | TTFT p95 | decode step | step / weight read | prefill, % of peak |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, concurrency in enumerate(sorted({lv.concurrency for r in results for lv in r.levels})):
        for r in results:
            if r.failure is not None or i >= len(r.levels):
                continue
            lv = r.levels[i]
            read = limits.read_time(costs.decode_bytes(r.dtype))
            flops = costs.prefill_flops(next(iter(r.prompt_tokens), 0), 1, spec.patches, spec.image_tokens)
            prefill = f"{flops / lv.p('ttft', .5) / limits.peak(r.dtype):.0%}" if concurrency == 1 else ""
            lines.append(
                f"| {concurrency} | {r.peer.server} ({r.dtype}{', default' if r.peer.note == 'default' else ''}) "
                f"| {lv.tokens_per_s:.1f} | {lv.p('ttft', .5):.2f} s | {lv.p('ttft', .95):.2f} s "
                f"| {lv.step * 1e3:.0f} ms | {lv.step / read:.1f}x | {prefill} |"
            )
        lines += _ratios(results, i, concurrency)
    for r in results:
        if r.failure is not None:
            lines.append(f"\n{r.peer.label} did not complete: {r.failure}")
    read16, read32 = (limits.read_time(costs.decode_bytes(d)) * 1e3 for d in ("bfloat16", "float32"))
    lines += [
        "",
        f"Machine: {limits.summary()}. A decode step reads {costs.decode_bytes('bfloat16') / 1e6:,.0f} MB of weights "
        f"in bfloat16 ({read16:.0f} ms at that bandwidth), {costs.decode_bytes('float32') / 1e6:,.0f} MB in float32 "
        f"({read32:.0f} ms). Prefill: the FLOPs of one request ({costs.prefill_flops(1, 1, spec.patches, spec.image_tokens) / 1e9:,.0f} "
        "GFLOP, almost all in the vision tower) over a lone client's TTFT p50, against the peak of the server's dtype.",
    ]
    return "\n".join(lines)


def _ratios(results: list[Result], i: int, concurrency: int) -> list[str]:
    """Loupe's best against each other server's best, at this level."""
    best: dict[str, Level] = {}
    for r in results:
        if r.failure is None and i < len(r.levels):
            lv = r.levels[i]
            if r.peer.server not in best or lv.tokens_per_s > best[r.peer.server].tokens_per_s:
                best[r.peer.server] = lv
    ours = best.get("Loupe")
    rows = []
    for name, theirs in best.items():
        if name == "Loupe" or ours is None:
            continue
        rows.append(
            f"| {concurrency} | **Loupe / {name}** (best dtype of each) | **{ours.tokens_per_s / theirs.tokens_per_s:.2f}x** "
            f"| {ours.p('ttft', .5) / theirs.p('ttft', .5):.2f}x | {ours.p('ttft', .95) / theirs.p('ttft', .95):.2f}x "
            f"| {ours.step / theirs.step:.2f}x | | |"
        )
    return rows


def run(quick: bool = False, models: list[str] | None = None, levels: list[int] | None = None, tokens: int = 64) -> str:
    limits = machine.measure(1.0 if quick else 2.0)
    sections = [f"CPU: {machine.cpu_name()}; flags: {machine.cpu_features()}."]
    for name in models or list(SPECS):
        spec = SPECS[name]
        chosen = tuple(levels) if levels else (spec.quick_levels if quick else spec.levels)
        if chosen:
            sections.append(bench_model(spec, limits, tokens, chosen, full=not quick))
    sections.append(
        "Ratios above 1 are better for Loupe in throughput; time ratios below 1 are better for Loupe. "
        "`--quick` runs each model at 1 and 8 clients, best dtypes only (one round)."
    )
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="+", choices=list(SPECS))
    parser.add_argument("--concurrency", type=int, nargs="+")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)
    print(run(args.quick, args.models, args.concurrency, args.tokens))


if __name__ == "__main__":
    main()
