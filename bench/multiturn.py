"""Time to first token of turns 2 and 3 of a conversation that keeps its image, against turn 1.

    python -m bench.multiturn [--conversations 4] [--device cpu]

Serves the tiny Qwen2-VL of bench.serving with `loupe serve` on loopback. Each conversation
opens with its own 448x448 photo crop and a question, then asks two follow-ups with the whole
history (image included) resent, as chat clients do. With the prefix cache, a follow-up
prefills only the new tokens and skips the vision encoder. Conversations run one after another
so the figures are per-request latency, not queueing. Prints a markdown section; `run()`
returns it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import httpx

from bench.serving import build_checkpoint, crops, free_port, image_message, loupe_command, server, stream_chat

FOLLOW_UPS = ("What colours stand out?", "Is anything moving in it?")


async def conversation(client: httpx.AsyncClient, api: str, model: str, url: str, tokens: int) -> list[float]:
    messages = image_message(url)
    ttfts = []
    for follow_up in (None, *FOLLOW_UPS):
        if follow_up is not None:
            messages.append({"role": "user", "content": follow_up})
        sample, text = await stream_chat(client, api, model, messages, tokens)
        ttfts.append(sample.ttft)
        messages.append({"role": "assistant", "content": text})
    return ttfts


async def measure(api: str, model: str, conversations: int, tokens: int) -> list[list[float]]:
    urls = crops(conversations + 1)
    async with httpx.AsyncClient(timeout=600) as client:
        await conversation(client, api, model, urls[-1], 4)  # warm-up
        return [await conversation(client, api, model, url, tokens) for url in urls[:conversations]]


def table(results: list[list[float]], tokens: int) -> str:
    turns = list(zip(*results, strict=True))
    first = statistics.median(turns[0])
    lines = [
        f"### Multi-turn TTFT, tiny Qwen2-VL (hidden 512, 4 layers), one 448x448 image kept in the history, "
        f"{len(results)} conversations, {tokens} tokens per answer",
        "",
        "| turn | TTFT median | TTFT max | vs turn 1 |",
        "|---:|---:|---:|---:|",
    ]
    for number, ttfts in enumerate(turns, start=1):
        median = statistics.median(ttfts)
        lines.append(f"| {number} | {median * 1000:.1f} ms | {max(ttfts) * 1000:.1f} ms | {median / first:.2f}x |")
    return "\n".join(lines)


def run(conversations: int = 4, tokens: int = 16, device: str = "cpu") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = build_checkpoint(work / "tiny-qwen2-vl-512")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with server(loupe_command(checkpoint, port, device), f"{base}/health", work / "loupe.log"):
            results = asyncio.run(measure(f"{base}/v1", checkpoint.name, conversations, tokens))
        return table(results, tokens)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(run(args.conversations, args.tokens, args.device))


if __name__ == "__main__":
    main()
