"""Where a real-size model's time goes in Loupe's engine, against the machine's limits.

    python -m bench.step [--quick] [--models SmolVLM-256M-Instruct ...]

In process, without HTTP: the model loaded as `loupe serve` loads it (dtype "auto"), one
448x448 crop sized as in bench.real_size. Times are the best of several runs, so they show what
the code costs when the machine is not taken by others:
- the vision tower on one image and the language model's prefill of the prompt, as FLOP/s
  against the matmul peak of the model's dtype;
- a decode step at batch 1, 8 and 16 over a 100-token context, against the time it takes to
  read the weights once at the measured bandwidth;
- a profile of the batch-8 step: matrix products, attention, other operators, and what is left
  (Python and dispatch between operators).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from transformers import DynamicCache
from transformers.cache_utils import Cache

from bench import machine
from bench.costs import ModelCosts, costs_of
from bench.real_size import SPECS, Spec, checkpoint
from bench.serving import PHOTOS
from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local.batch_cache import RoomyLayer, layer_states
from loupe.engines.local.families import family_for
from loupe.engines.local.lean_decode import LeanDecoder
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.prompt import build_prompt

CONTEXT = 100
_MATMUL = ("linear", "mkldnn", "addmm", "aten::mm", "bmm", "matmul", "conv")


def best(work: Callable[[], object], runs: int) -> float:
    work()
    fastest = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def prompt_inputs(loaded: LoadedModel, spec: Spec) -> dict[str, torch.Tensor]:
    with Image.open(PHOTOS / "bus.jpg") as photo:
        crop = photo.convert("RGB").crop((0, 0, 448, 448))
    overrides = tuple((k, v) for k, v in spec.hf_image_processor.items() if isinstance(v, (bool, int)))
    image = PreparedImage(crop, 448, 448, 448, 448, Detail.LOW, "step", processor_overrides=overrides)
    message = PromptMessage(Role.USER, (image, TextPart("Describe this photo in detail.")))
    inputs: dict[str, torch.Tensor] = build_prompt(loaded.processor, [message]).inputs
    return inputs


def prefill_times(loaded: LoadedModel, inputs: dict[str, torch.Tensor], runs: int) -> tuple[float, float]:
    """Seconds of the vision tower on the image, and of the language model on the prompt."""
    family = family_for(loaded.checkpoint.model_type)
    assert family is not None
    model = loaded.model
    groups = family.groups(model, inputs, ("image",))
    vision = best(lambda: [family.encode(model, g) for g in groups], runs)
    features = torch.cat([family.encode(model, g).rows for g in groups])
    ids = inputs["input_ids"]
    embeds = model.get_input_embeddings()(ids)
    embeds = embeds.masked_scatter((ids == model.config.image_token_id)[..., None], features.to(embeds.dtype))
    positions, _ = family.positions(model, inputs)
    text = best(lambda: model(inputs_embeds=embeds, position_ids=positions, cache=DynamicCache(), logits_to_keep=1), runs)
    return vision, text


def decode_step(loaded: LoadedModel, batch: int) -> Callable[[], Any]:
    """One decode step of `batch` sequences over a 100-token context, as the runner runs it
    (with the lean decoder where it covers the model)."""
    model = loaded.model
    lean = LeanDecoder.of(model)
    cache = DynamicCache()
    model(input_ids=torch.randint(10, 1000, (batch, CONTEXT)), cache=cache, use_cache=True, logits_to_keep=1)
    rows = [[(k[i : i + 1], v[i : i + 1]) for k, v in map(layer_states, cache.layers)] for i in range(batch)]
    family = family_for(loaded.checkpoint.model_type)
    mrope = family is not None and family.mrope
    state: dict[str, Any] = {}

    def step() -> Any:
        if not state or state["n"] >= 16:  # start again from the 100-token context every 16 steps
            state["cache"] = Cache(layers=[RoomyLayer.of_rows([r[i] for r in rows], CONTEXT) for i in range(len(rows[0]))])
            state["n"] = 0
        n = state["n"]
        positions = torch.full((batch, 1), CONTEXT + n)
        mask = torch.ones(batch, CONTEXT + n + 1, dtype=torch.long)
        state["n"] = n + 1
        ids, places = torch.full((batch, 1), 7), positions[None].expand(3, -1, -1) if mrope else positions
        if lean is not None:
            return lean(ids, mask, places, state["cache"])
        return model(input_ids=ids, attention_mask=mask, position_ids=places, cache=state["cache"], use_cache=True)

    return step


def profile(step: Callable[[], Any], steps: int = 4) -> dict[str, float]:
    """Shares of a step's wall time: matrix products, attention, other operators, the rest."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
    shares = {"matrix products": 0.0, "attention": 0.0, "other operators": 0.0}
    for event in prof.key_averages():
        name = event.key
        part = "attention" if "attention" in name else "matrix products" if any(m in name for m in _MATMUL) else "other operators"
        shares[part] += event.self_cpu_time_total / 1e6
    total = sum(shares.values())
    scale = min(1.0, wall / total) if total else 1.0  # the profiler's own cost inflates op times
    result = {k: v * scale / wall for k, v in shares.items()}
    result["between operators (Python, dispatch)"] = max(0.0, 1 - sum(result.values()))
    return result


def bench_model(spec: Spec, limits: machine.Limits, quick: bool) -> str:
    path = checkpoint(spec.name)
    costs: ModelCosts = costs_of(path)
    loaded = load_model(str(path), device="cpu")
    dtype = loaded.precision.name
    runs = 2 if quick else 4
    peak, read = limits.peak(dtype), limits.read_time(costs.decode_bytes(dtype))
    streamed = limits.product_time(costs.decode_bytes(dtype)) if dtype == "bfloat16" else None
    with torch.inference_mode():
        inputs = prompt_inputs(loaded, spec)
        prompt = int(inputs["input_ids"].shape[1])
        vision, text = prefill_times(loaded, inputs, runs)
        vision_flops = costs.vision_flops(1, spec.patches, spec.image_tokens)
        text_flops = costs.text_flops(prompt)
        steps = {b: best(decode_step(loaded, b), 8 if quick else 16) for b in (1, 8, 16)}
        shares = profile(decode_step(loaded, 8))
    lines = [
        f"### {spec.label}, {dtype} (Loupe's default on this CPU: {loaded.precision.reason})",
        "",
        "| part | best time | work | rate | against the machine |",
        "|---|---:|---:|---:|---:|",
        f"| vision tower, one {spec.patches}-patch image | {vision * 1e3:,.0f} ms | {vision_flops / 1e9:,.0f} GFLOP "
        f"| {vision_flops / vision / 1e9:,.0f} GFLOP/s | {vision_flops / vision / peak:.0%} of the {dtype} peak |",
        f"| language model, prefill of the {prompt}-token prompt | {text * 1e3:,.0f} ms | {text_flops / 1e9:,.1f} GFLOP "
        f"| {text_flops / text / 1e9:,.0f} GFLOP/s | {text_flops / text / peak:.0%} of the {dtype} peak |",
    ]
    for batch, seconds in steps.items():
        lines.append(
            f"| decode step, batch {batch} | {seconds * 1e3:,.1f} ms | reads {costs.decode_bytes(dtype) / 1e6:,.0f} MB "
            f"| {batch / seconds:,.0f} tok/s | {seconds / read:.1f}x the {read * 1e3:.0f} ms to read the weights"
            + (f"; {seconds / streamed:.1f}x the {streamed * 1e3:.0f} ms 8-row products take to stream them |" if streamed else " |")
        )
    lines += ["", "Batch-8 decode step, where its wall time goes (torch profiler): " + ", ".join(
        f"{name} {share:.0%}" for name, share in shares.items()
    ) + "."]
    return "\n".join(lines)


def run(quick: bool = False, models: list[str] | None = None) -> str:
    limits = machine.measure(1.0 if quick else 2.0)
    chosen = models or ([next(iter(SPECS))] if quick else list(SPECS))
    sections = [f"Machine: {machine.cpu_name()}; {limits.summary()}."]
    sections += [bench_model(SPECS[name], limits, quick) for name in chosen]
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="+", choices=list(SPECS))
    args = parser.parse_args(argv)
    print(run(args.quick, args.models))


if __name__ == "__main__":
    main()
