"""A stand-in torchvision for child processes that run transformers' own video processors.

Those modules import torchvision at the top; Loupe's venv has none. Importing this module (in a
process of its own, before them) lets them import, and gives transformers' torchvision backend
the one pixel operation Loupe compares against: `normalize`, written as torchvision's tensor
kernel computes it (subtract, then divide, in the tensor's dtype). Resizing is not provided:
callers either skip it (the frames already have their planned size, which torchvision would
return unchanged) or replace the backend's `resize` themselves.
"""

from __future__ import annotations

import enum
import sys
import types
from typing import Any

# transformers decides once, at import, that torchvision is absent; the stand-in comes after,
# for the modules that import it unconditionally.
from transformers.utils import import_utils

assert not import_utils.is_torchvision_available()

import torch  # noqa: E402
from transformers import image_processing_backends  # noqa: E402


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def normalize(image: torch.Tensor, mean: Any, std: Any, inplace: bool = False) -> torch.Tensor:
    mean_t = torch.as_tensor(mean, dtype=image.dtype).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype).view(-1, 1, 1)
    return (image.sub_(mean_t) if inplace else image.sub(mean_t)).div_(std_t)


functional = types.ModuleType("torchvision.transforms.v2.functional")
functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
functional.normalize = normalize  # type: ignore[attr-defined]
for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.v2"):
    sys.modules[name] = types.ModuleType(name)
sys.modules["torchvision.transforms.v2.functional"] = functional
sys.modules["torchvision.transforms.v2"].functional = functional  # type: ignore[attr-defined]
image_processing_backends.tvF = functional  # type: ignore[attr-defined]
