"""Time to first token of turns 2 and 3 of a conversation that keeps its image, against turn 1.

    python -m bench.multiturn [--conversations 8] [--device cpu]

Serves the tiny Qwen2-VL of bench.serving with `loupe serve` on loopback. Each conversation
opens with its own image and a question, then asks two follow-ups with the whole history (image
included) resent, as chat clients do. Two kinds of image: a 448x448 crop (256 image tokens, where
fixed per-request costs weigh most) and a whole real photo at `detail: auto` (about 1,000 image
tokens, what a user typically sends). With the prefix cache, a follow-up
prefills only the new tokens and skips the vision encoder. Conversations run one after another
so the figures are per-request latency, not queueing. Prints a markdown section; `run()`
returns it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
from pathlib import Path

import httpx

from bench.serving import PHOTOS, build_checkpoint, crops, free_port, image_message, loupe_command, server, stream_chat

FOLLOW_UPS = ("What colours stand out?", "Is anything moving in it?")


def photos(count: int) -> list[str]:
    """`count` whole photos from the shared set, as JPEG data URLs."""
    files = sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg")
    return ["data:image/jpeg;base64," + base64.b64encode(files[i % len(files)].read_bytes()).decode() for i in range(count)]


def opening(url: str, detail: str | None) -> list[dict[str, object]]:
    messages = image_message(url)
    if detail is not None:
        messages[0]["content"][0]["image_url"]["detail"] = detail  # type: ignore[index]
    return messages


async def conversation(
    client: httpx.AsyncClient, api: str, model: str, url: str, tokens: int, detail: str | None = None
) -> list[float]:
    messages = opening(url, detail)
    ttfts = []
    for follow_up in (None, *FOLLOW_UPS):
        if follow_up is not None:
            messages.append({"role": "user", "content": follow_up})
        sample, text = await stream_chat(client, api, model, messages, tokens)
        ttfts.append(sample.ttft)
        messages.append({"role": "assistant", "content": text})
    return ttfts


async def measure(
    api: str, model: str, conversations: int, tokens: int, urls: list[str], detail: str | None
) -> list[list[float]]:
    async with httpx.AsyncClient(timeout=600) as client:
        await conversation(client, api, model, urls[-1], 4, detail)  # warm-up
        return [await conversation(client, api, model, url, tokens, detail) for url in urls[:conversations]]


def table(results: list[list[float]], tokens: int, image: str) -> str:
    turns = list(zip(*results, strict=True))
    first = statistics.median(turns[0])
    lines = [
        f"### Multi-turn TTFT, tiny Qwen2-VL (hidden 512, 4 layers), {image} kept in the history, "
        f"{len(results)} conversations, {tokens} tokens per answer",
        "",
        "| turn | TTFT median | TTFT max | vs turn 1 |",
        "|---:|---:|---:|---:|",
    ]
    for number, ttfts in enumerate(turns, start=1):
        median = statistics.median(ttfts)
        lines.append(f"| {number} | {median * 1000:.1f} ms | {max(ttfts) * 1000:.1f} ms | {median / first:.2f}x |")
    return "\n".join(lines)


def run(conversations: int = 8, tokens: int = 16, device: str = "cpu") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = build_checkpoint(work / "tiny-qwen2-vl-512")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        sections = []
        with server(loupe_command(checkpoint, port, device), f"{base}/health", work / "loupe.log"):
            for image, urls, detail in (
                ("a 448x448 crop (256 image tokens)", crops(conversations + 1), None),
                ("a whole photo at detail auto (about 1,000 image tokens)", photos(conversations + 1), "auto"),
            ):
                results = asyncio.run(measure(f"{base}/v1", checkpoint.name, conversations, tokens, urls, detail))
                sections.append(table(results, tokens, image))
        return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(run(args.conversations, args.tokens, args.device))


if __name__ == "__main__":
    main()
