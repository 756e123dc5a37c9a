"""`make bench`: run the benchmarks side by side and rewrite docs/benchmarks.md.

    python -m bench                 # every benchmark
    python -m bench estimate serving  # only these; the other sections of the file are kept
    python -m bench --quick         # fewer models, levels and rounds (a few minutes)

Each benchmark module has `run() -> str` returning its markdown section (`run(quick=True)` where it
has a quick mode). Figures are ratios measured in the same run, since this kind of machine is noisy.
"""

from __future__ import annotations

import importlib
import inspect
import platform
import re
import sys
import time
import traceback
from pathlib import Path

import torch

BENCHMARKS = {
    "machine": "The machine's limits: matmul peaks and memory bandwidth (issue 17)",
    "estimate": "Pre-flight estimate vs the HF processor (issue 4)",
    "preprocess": "Image preprocessing: Loupe's image path vs the HF processor (issue 6)",
    "serving": "Serving under concurrency: Loupe vs transformers serve (issue 6)",
    "multiturn": "Multi-turn: time to first token of later turns with the same image (issue 6)",
    "upstream_overhead": "Loupe in front of vLLM: latency added and throughput kept (issue 18)",
    "gateway_relay": "Loupe as a gateway: CPU per relayed token (issue 18)",
    "video": "Video: plan and sample a 60 s 1080p clip vs decoding it whole (issue 20)",
    "grammar": "Constrained decoding: structured outputs in the batched decode step (issue 16)",
    "memory": "Memory under bursts of large requests, and after them (issue 21)",
    "step": "Real-size models in Loupe's engine: prefill and decode against the machine's limits (issue 17)",
    "real_size": "Real-size models on the CPU: Loupe vs vLLM's CPU engine and transformers serve (issue 17)",
}
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Produced by `make bench` (`python -m bench [NAME ...]`), which rewrites the sections it runs.
Every comparison is measured side by side in one run and reported as a ratio: the machines this
is developed on are shared and noisy, so absolute times drift between runs.
"""


def section(name: str, body: str, quick: bool = False) -> str:
    from bench.machine import cpu_features, cpu_name

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = (
        f"{cpu_name()} ({platform.machine()}; {cpu_features()}), {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )
    command = f"python -m bench{' --quick' if quick else ''} {name}"
    return (
        f"<!-- bench:{name} -->\n## {BENCHMARKS[name]}\n\n"
        f"Command: `{command}` ({stamp}; {machine})\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )


def run_one(name: str, quick: bool = False) -> str:
    try:
        module = importlib.import_module(f"bench.{name}")
        takes_quick = "quick" in inspect.signature(module.run).parameters
        return section(name, module.run(quick=True) if quick and takes_quick else module.run(), quick and takes_quick)
    except Exception:  # noqa: BLE001 - a failing benchmark is reported in the document, not hidden
        return section(name, "Not measured in this run: it failed with\n\n```\n" + traceback.format_exc() + "```")


def merge(existing: str, sections: dict[str, str]) -> str:
    text = existing if existing.startswith("# Benchmarks") else HEADER
    for name, body in sections.items():
        pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
        text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    return text


def main(args: list[str]) -> None:
    quick = "--quick" in args
    names = [a for a in args if a != "--quick"]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    sections = {}
    for name in names or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        sections[name] = run_one(name, quick)
        print(sections[name], flush=True)
    DOC.write_text(merge(DOC.read_text() if DOC.exists() else "", sections))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main(sys.argv[1:])
