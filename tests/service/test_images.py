"""The image service plans from headers, then decodes each image for its plan."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import pytest
from PIL import Image

from loupe.media.pixels import pixel_size
from loupe.domain import Detail, ImageRef, ModelCard
from loupe.errors import InvalidImageFormat
from loupe.lru import ByteLRU
from loupe.media import DecodedCache, ImageLimits, MediaIntake
from loupe.models import counter_for
from loupe.service.images import ImageService
from loupe.service.metrics import Metrics
from loupe.testing.tiny.qwen2_vl import PREPROCESSOR_CONFIG as QWEN
from loupe.testing.tiny.smolvlm import PREPROCESSOR_CONFIG as SMOLVLM
from tests.helpers import PHOTOS

CARD = ModelCard(id="m", created=0, owned_by="test", family="f", checkpoint="c", context_size=32768, max_images=8)


def jpeg_url(name: str = "boats.jpg") -> str:
    if not PHOTOS.is_dir():
        pytest.skip(f"the shared photos are not at {PHOTOS}")
    return "data:image/jpeg;base64," + base64.b64encode((PHOTOS / name).read_bytes()).decode()


def service(model_type: str, config: dict[str, Any], cache: DecodedCache | None = None) -> tuple[ImageService, Metrics]:
    metrics = Metrics()
    intake = MediaIntake(ImageLimits(), cache=cache)
    return ImageService({"m": intake}, {"m": counter_for(model_type, config)}, metrics=metrics), metrics


def prepare(images: ImageService, *refs: tuple[str, Detail | None]) -> list[Any]:
    found = [ImageRef(url=u, detail=d, param=f"messages[0].content[{i}].image_url") for i, (u, d) in enumerate(refs)]
    return asyncio.run(images.prepare(CARD, found))


def test_a_photo_planned_small_is_drafted_and_keeps_its_planned_size() -> None:
    images, _ = service("qwen2_vl", QWEN)
    low, high = prepare(images, (jpeg_url(), Detail.LOW), (jpeg_url(), Detail.HIGH))
    assert (low.width, low.height) == (448, 448) and low.tokens == 256
    assert pixel_size(low.pixels) == (960, 540)  # a DCT-scaled decode, still larger than the plan
    assert (low.original_width, low.original_height) == (1920, 1080)
    assert (high.width, high.height) == (1932, 1092) and pixel_size(high.pixels) == (1920, 1080)
    assert low.content_hash == high.content_hash  # the file's; the engine keys add the geometry


def test_a_family_whose_processor_resizes_gets_the_decoded_picture() -> None:
    images, _ = service("smolvlm", SMOLVLM)
    [prepared] = prepare(images, (jpeg_url("bus.jpg"), None))
    assert (prepared.width, prepared.height) == pixel_size(prepared.pixels) == (810, 1080)


def test_later_turns_reuse_the_decode() -> None:
    cache: DecodedCache = ByteLRU(256 * 1024 * 1024)
    images, _ = service("qwen2_vl", QWEN, cache)
    [first] = prepare(images, (jpeg_url(), Detail.LOW))
    [again] = prepare(images, (jpeg_url(), Detail.LOW))
    assert again.pixels is first.pixels and cache.hits == 1


def test_a_corrupt_image_is_refused_at_its_part_and_counted() -> None:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(out, format="JPEG")
    truncated = "data:image/jpeg;base64," + base64.b64encode(out.getvalue()[:300]).decode()
    images, metrics = service("qwen2_vl", QWEN)
    with pytest.raises(InvalidImageFormat) as caught:
        prepare(images, (jpeg_url(), None), (truncated, None))
    assert caught.value.param == "messages[0].content[1].image_url"
    assert metrics.image_failures.labels("INVALID_IMAGE_FORMAT")._value.get() == 1


def test_images_without_detail_are_auto_unless_they_could_not_share_a_processor_call() -> None:
    from loupe.errors import InvalidRequest
    from loupe.service.images import plan_all

    def ref(detail: Detail | None, i: int = 0) -> ImageRef:
        return ImageRef(url="", detail=detail, param=f"messages[0].content[{i}].image_url")

    qwen = counter_for("qwen2_vl", QWEN)
    omitted, auto = plan_all(qwen, [ref(None)], [(1920, 1080)]), plan_all(qwen, [ref(Detail.AUTO)], [(1920, 1080)])
    assert omitted == auto and omitted[0].tokens <= 1024

    internvl = counter_for("internvl", {})  # auto fits each image with its own max_patches
    sizes = [(1920, 1080), (300, 200)]
    with pytest.raises(InvalidRequest, match="cannot mix"):
        plan_all(internvl, [ref(Detail.AUTO), ref(Detail.AUTO, 1)], sizes)
    together = plan_all(internvl, [ref(None), ref(None, 1)], sizes)
    assert together == plan_all(internvl, [ref(Detail.HIGH), ref(Detail.HIGH, 1)], sizes)
    alone = plan_all(internvl, [ref(None)], sizes[:1])
    assert alone == plan_all(internvl, [ref(Detail.AUTO)], sizes[:1]) and alone[0].tokens == 770
