"""Run Hugging Face `transformers serve` on loopback for one checkpoint, without torchvision.

    python -m bench.transformers_serve PATH [--port 8001] [--device cpu] [--dtype auto]
        [--image-processor '{"do_image_splitting": false}']

transformers serve builds processors with `AutoProcessor`, which cannot build a VLM's video
processor without torchvision; here it gets Loupe's image-only processor instead (same PIL image
path as Loupe's own counting). Since transformers 5.25 the server runs each model in a process of
its own, started with `spawn` and handed the server's `ModelLoader` by pickling: so the loader is
replaced by a subclass defined in this module, which the model's process imports by name, rather
than patched in this process alone. The model name to send is PATH exactly as given; the server
lists it alone in `/v1/models`, which health checks use. `--image-processor` sets attributes of
the image processor (so that it sizes images as Loupe does at a given `detail`); it reaches the
model's process through the environment, which `spawn` passes on.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from transformers.cli.serving import model_manager
from transformers.cli.serving.utils import parse_model_id

__all__ = ["ImageOnlyLoader", "main"]

_IMAGE_PROCESSOR = "LOUPE_BENCH_IMAGE_PROCESSOR"


class ImageOnlyLoader(model_manager.ModelLoader):
    """transformers serve's loader, with processors from Loupe's `load_processor`."""

    def load_processor(self, model_id: str) -> Any:
        from loupe.engines.local.processor import load_processor

        repo, revision, gguf_file = parse_model_id(model_id)
        if gguf_file is not None:
            raise ValueError("GGUF checkpoints are not served by this launcher")
        processor = load_processor(repo) if revision in (None, "main") else load_processor(repo, revision=revision)
        for name, value in json.loads(os.environ.get(_IMAGE_PROCESSOR, "{}")).items():
            setattr(processor.image_processor, name, value)
        return processor


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint directory (or hub id) to preload and serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda', 'auto' (needs accelerate)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--image-processor", default="{}", help="JSON object of image processor settings")
    args = parser.parse_args(argv)
    os.environ[_IMAGE_PROCESSOR] = args.image_processor

    from transformers.cli.serve import Serve

    # Serve imports the loader class from model_manager when it is built.
    model_manager.ModelLoader = ImageOnlyLoader  # type: ignore[misc]
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
