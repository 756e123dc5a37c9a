"""Reading typed processor settings out of a checkpoint's plain configuration dictionaries.

Checkpoint files are input from outside: a wrong value is reported as `ModelLoadError`, at load
time, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loupe.errors import ModelLoadError


def positive_int(config: Mapping[str, Any], key: str, default: int) -> int:
    """`config[key]` as an int >= 1, or `default` when the key is absent or null."""
    value = config.get(key)
    if value is None:
        return default
    return _checked_int(value, key)


def flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    """`config[key]` as a bool, or `default` when the key is absent or null."""
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ModelLoadError(f"Processor setting {key!r} must be true or false, got {value!r}.")
    return value


def section(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`config[key]` as a mapping (`size`, `max_image_size`), or an empty one when absent."""
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelLoadError(f"Processor setting {key!r} must be an object, got {value!r}.")
    return value


def edge(config: Mapping[str, Any], key: str, edge_key: str, default: int) -> int:
    """`config[key][edge_key]` (`size.longest_edge`), or `default` when `config[key]` is absent."""
    if config.get(key) is None:
        return default
    value = section(config, key).get(edge_key)
    if value is None:
        raise ModelLoadError(f"Processor setting {key!r} must contain {edge_key!r}.")
    return _checked_int(value, f"{key}.{edge_key}")


def merged(
    image_processor: Mapping[str, Any], processor: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One flat configuration from `preprocessor_config.json` and `processor_config.json`.

    Newer checkpoints nest the image processor's settings inside the processor's file under
    `image_processor`; those count as image-processor settings. Explicit image-processor
    settings win over nested ones.
    """
    processor = processor or {}
    nested = section(processor, "image_processor")
    flat = {k: v for k, v in processor.items() if k != "image_processor"}
    return {**flat, **nested, **image_processor}


def _checked_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(
            f"Processor setting {key!r} must be a positive integer, got {value!r}."
        )
    return value
