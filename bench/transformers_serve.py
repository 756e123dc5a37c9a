"""Run Hugging Face `transformers serve` on loopback for one checkpoint, without torchvision.

    python -m bench.transformers_serve PATH [--port 8001] [--device cpu]

transformers serve builds processors with `AutoProcessor`, which cannot build a VLM's video
processor without torchvision; here it gets Loupe's image-only processor instead (same PIL image
path as Loupe's own counting). It also lists `/v1/models` by scanning the Hugging Face cache,
which fails (500) where the cache does not exist; here it lists the one model it serves, so
health checks against `/v1/models` work. The model name to send is PATH exactly as given.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "patch_transformers_serve"]


def patch_transformers_serve(model: str) -> None:
    """Load processors through Loupe's `load_processor` and list only `model` in `/v1/models`."""
    from transformers.cli.serving.model_manager import ModelManager

    from loupe.engines.local.processor import load_processor

    def load(self: ModelManager, model_id_and_revision: str, gguf_file: str | None = None) -> Any:
        model_id, _, revision = model_id_and_revision.partition("@")
        # A local directory has no revisions; a hub id keeps the one asked for.
        return load_processor(model_id) if revision in ("", "main") else load_processor(model_id, revision=revision)

    def models(cache_dir: str | None = None) -> list[dict[str, Any]]:
        return [{"id": model, "object": "model", "created": int(time.time()), "owned_by": "transformers"}]

    ModelManager._load_processor = load  # type: ignore[method-assign]
    ModelManager.get_gen_models = staticmethod(models)  # type: ignore[method-assign,assignment]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint directory (or hub id) to preload and serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda', 'auto' (needs accelerate)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    from transformers.cli.serve import Serve

    patch_transformers_serve(args.model)
    # Serve's typer options have plain defaults, so it can be called as a function; it blocks in uvicorn.
    Serve(
        force_model=args.model,
        host=args.host,
        port=args.port,
        device=args.device,
        dtype=args.dtype,
        log_level=args.log_level,
        model_timeout=-1,
    )


if __name__ == "__main__":
    main()
