"""The embedded engine's `system_fingerprint`: the checkpoint's files and what computes with them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import torch
import transformers

from loupe.engines.fingerprint import fingerprint
from loupe.engines.local.loader import LoadedModel


def local_fingerprint(loaded: LoadedModel) -> str:
    """Changes with the weights, the dtype and device, the torch and transformers releases and
    the CPU kernels torch picks (AVX2, AVX-512): each can change a seeded answer."""
    return fingerprint(
        loaded.checkpoint.path,
        {
            "engine": "local",
            "loupe": _version("loupe"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "dtype": str(loaded.model.dtype),
            "device": str(loaded.device),
            "cpu": torch.backends.cpu.get_cpu_capability(),
        },
    )


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
