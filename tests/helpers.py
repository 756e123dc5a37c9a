"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_IMAGES = REPO.parent / "shared" / "images"
PHOTOS = SHARED_IMAGES / "photos"
PILLOW = SHARED_IMAGES / "pillow"


def data_url(path: Path) -> str:
    mime = "image/png" if path.suffix == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def photo_url(name: str) -> str:
    return data_url(PHOTOS / name)


def resized_photo_url(name: str, width: int, height: int) -> str:
    """A real photo resized to an exact size, as a PNG data URL."""
    with Image.open(PHOTOS / name) as img:
        out = img.convert("RGB").resize((width, height))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_part(url: str, detail: str | None = None) -> dict[str, object]:
    image_url: dict[str, object] = {"url": url}
    if detail is not None:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def billed(usage: dict[str, Any]) -> dict[str, Any]:
    """A usage object without `cached_tokens`, which depends on what earlier calls left in the cache."""
    details = {k: v for k, v in usage["prompt_tokens_details"].items() if k != "cached_tokens"}
    return {**usage, "prompt_tokens_details": details}


def user(text: str, *urls: str) -> dict[str, object]:
    return {"role": "user", "content": [*(image_part(u) for u in urls), {"type": "text", "text": text}]}


HEAVY = ("fastapi", "starlette", "httpx", "torch", "transformers", "numpy", "PIL")


def imports_of(package: str, among: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of `among` a fresh interpreter has loaded once it imported `package` (a layer's rule)."""
    code = f"import sys, {package}; print(' '.join(m for m in {among!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()
