"""transformers classes that it offers only with torchvision, made available without it.

Loupe's venv never has torchvision (see processor.py). `PixtralProcessor` (Mistral 3) is marked
as needing it only because its module imports one arithmetic function from the torchvision image
processor's module; the PIL image processor's module defines the same function, so the module
is imported with that one in its place. Llama 4's image processor exists only as a torchvision
one: Loupe's `Llama4ImageProcessorTorch` stands in for it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from transformers import BaseImageProcessor, ProcessorMixin
from transformers.utils.import_utils import is_torchvision_available

from loupe.engines.local.llama4_images import Llama4ImageProcessorTorch

# Processor class name -> (its module, the torchvision module it imports, the PIL module that
# defines what it imports from there).
_BORROWED = {
    "PixtralProcessor": (
        "transformers.models.pixtral.processing_pixtral",
        "transformers.models.pixtral.image_processing_pixtral",
        "transformers.models.pixtral.image_processing_pil_pixtral",
    ),
}


def processor_class(name: str) -> type[ProcessorMixin] | None:
    """The real transformers processor class `name`, where only torchvision kept it from
    loading; None for any other name."""
    if name not in _BORROWED:
        return None
    module_name, torchvision_module, pil_module = _BORROWED[name]
    module = _imported(module_name, torchvision_module, pil_module)
    found = getattr(module, name)
    assert isinstance(found, type) and issubclass(found, ProcessorMixin)
    return found


# `image_processor_type` values of checkpoints whose image processor transformers has only with
# torchvision, and Loupe's stand-in for each.
_STAND_INS: dict[str, type[BaseImageProcessor]] = {
    "Llama4ImageProcessor": Llama4ImageProcessorTorch,
    "Llama4ImageProcessorFast": Llama4ImageProcessorTorch,
}


def image_processor(path_or_id: str, **hub_kwargs: Any) -> BaseImageProcessor | None:
    """Loupe's stand-in for the checkpoint's image processor, where transformers has it only
    with torchvision; None for any other."""
    config, _ = BaseImageProcessor.get_image_processor_dict(path_or_id, **hub_kwargs)
    stand_in = _STAND_INS.get(str(config.get("image_processor_type")))
    if stand_in is None:
        return None
    loaded: BaseImageProcessor = stand_in.from_pretrained(path_or_id, **hub_kwargs)
    return loaded


def _imported(module_name: str, torchvision_module: str, pil_module: str) -> ModuleType:
    if module_name in sys.modules or is_torchvision_available():
        return importlib.import_module(module_name)
    # Only for the import: anything else asking for the torchvision module must still fail.
    sys.modules[torchvision_module] = importlib.import_module(pil_module)
    try:
        return importlib.import_module(module_name)
    finally:
        del sys.modules[torchvision_module]
