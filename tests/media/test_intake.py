from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from loupe.media.pixels import pixel_size
from loupe.domain import ImageRef
from loupe.errors import ImageFetchFailed, ImageUrlForbidden, InvalidImageFormat
from loupe.media.fetch import ImageFetcher
from loupe.media.intake import MediaIntake
from loupe.lru import ByteLRU
from loupe.media.limits import ImageLimits

from .support import RecordingTransport, StubResolver

T = TypeVar("T")
PUBLIC_IP = "93.184.216.34"


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def ref(url: str, index: int = 0) -> ImageRef:
    return ImageRef(url=url, detail=None, param=f"messages[0].content[{index}].image_url")


def data_url(path: Path, declared: str = "image/png") -> str:
    return f"data:{declared};base64,{base64.b64encode(path.read_bytes()).decode()}"


def intake_with(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> MediaIntake:
    limits = ImageLimits()
    fetcher = ImageFetcher(
        limits, transport=transport, resolver=StubResolver({"images.example": [PUBLIC_IP]})
    )
    return MediaIntake(limits, fetcher=fetcher, **kwargs)


def test_data_url_and_fetched_copy_hash_equal(images: Path, recording: RecordingTransport) -> None:
    png = images / "pillow" / "hopper.png"
    recording.routes[(PUBLIC_IP, "/hopper.png")] = httpx.Response(200, content=png.read_bytes())
    loaded = run(
        intake_with(recording).load(
            [
                ref(data_url(png, declared="image/jpeg"), 0),
                ref("http://images.example/hopper.png", 1),
                ref(data_url(images / "pillow" / "hopper.webp"), 2),
            ]
        )
    )
    assert [image.format for image in loaded] == ["png", "png", "webp"]
    assert loaded[0].content_hash == loaded[1].content_hash
    assert loaded[0].byte_size == png.stat().st_size


def test_errors_carry_the_param(images: Path, recording: RecordingTransport) -> None:
    intake = intake_with(recording)
    refs = [ref(data_url(images / "pillow" / "hopper.png"), 0), ref("data:image/png;base64,@@", 3)]
    with pytest.raises(InvalidImageFormat) as caught:
        run(intake.load(refs))
    assert caught.value.param == "messages[0].content[3].image_url"

    with pytest.raises(ImageUrlForbidden) as forbidden:
        run(intake.load([ref("http://127.0.0.1/x.png", 5)]))
    assert forbidden.value.param == "messages[0].content[5].image_url"
    assert recording.requests == []

    with pytest.raises(InvalidImageFormat) as unsupported:
        run(intake.load([ref(data_url(images / "pillow" / "hopper.tif"), 1)]))
    assert "TIFF" in unsupported.value.message
    assert unsupported.value.param == "messages[0].content[1].image_url"


def test_without_a_fetcher_urls_are_refused(images: Path) -> None:
    intake = MediaIntake(ImageLimits())
    assert len(run(intake.load([ref(data_url(images / "pillow" / "hopper.gif"))]))) == 1
    with pytest.raises(ImageUrlForbidden, match="data URL") as caught:
        run(intake.load([ref("https://images.example/a.png", 2)]))
    assert caught.value.param == "messages[0].content[2].image_url"


def test_empty_request() -> None:
    assert run(MediaIntake(ImageLimits()).load([])) == []


class Rendezvous(httpx.AsyncBaseTransport):
    """Answers only once `expected` requests are in flight at the same time."""

    def __init__(self, expected: int, body: bytes) -> None:
        self.expected = expected
        self.body = body
        self.arrived = 0
        self.all_here: asyncio.Event | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.all_here = self.all_here or asyncio.Event()
        self.arrived += 1
        if self.arrived == self.expected:
            self.all_here.set()
        await asyncio.wait_for(self.all_here.wait(), timeout=2)
        return httpx.Response(200, content=self.body)


def test_images_of_a_request_are_fetched_concurrently(images: Path) -> None:
    transport = Rendezvous(3, (images / "pillow" / "hopper.jpg").read_bytes())
    refs = [ref(f"http://images.example/{n}.jpg", n) for n in range(3)]
    assert len(run(intake_with(transport).load(refs))) == 3


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_decoding_runs_in_the_given_executor(images: Path, recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.jpg")] = httpx.Response(
        200, content=(images / "photos" / "boats.jpg").read_bytes()
    )
    with CountingExecutor() as executor:
        refs = [
            ref("http://images.example/a.jpg", 0),
            ref(data_url(images / "pillow" / "hopper.png"), 1),
        ]
        loaded = run(intake_with(recording, executor=executor).load(refs))
    assert executor.submitted == 4  # per image: reading the header, then decoding
    assert (loaded[0].width, loaded[0].height) == (1920, 1080)


def test_fetched_images_decode_for_their_targets(images: Path, recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.jpg")] = httpx.Response(
        200, content=(images / "photos" / "boats.jpg").read_bytes()
    )
    refs = [ref("http://images.example/a.jpg", 0), ref(data_url(images / "pillow" / "hopper.png"), 1)]
    intake = intake_with(recording)
    encoded = run(intake.fetch(refs))
    assert [(e.header.width, e.header.height) for e in encoded] == [(1920, 1080), (128, 128)]
    decoded = run(intake.decode(refs, encoded, [(448, 448), (64, 64)]))
    assert pixel_size(decoded[0].pixels) == (960, 540)  # the JPEG at half scale still covers 448 x 448
    assert pixel_size(decoded[1].pixels) == (128, 128)  # a PNG has no DCT to scale
    assert [(d.width, d.height) for d in decoded] == [(1920, 1080), (128, 128)]
    assert len(recording.requests) == 1  # decoding does not fetch again


def test_a_failure_cancels_the_other_images(images: Path) -> None:
    class Stalling(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            raise ImageFetchFailed("unreachable")

    started = time.monotonic()
    with pytest.raises(InvalidImageFormat):
        run(
            intake_with(Stalling()).load(
                [ref("http://images.example/slow.png", 0), ref("data:image/png;base64,AAAA", 1)]
            )
        )
    assert time.monotonic() - started < 5


def test_a_file_seen_before_is_not_decoded_again(
    images: Path, recording: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loupe.media.intake as intake_module

    decodes: list[tuple[int, int] | None] = []
    real = intake_module.decode_image

    def counting(data: bytes, limits: ImageLimits, target: tuple[int, int] | None = None, digest: str | None = None) -> Any:
        decodes.append(target)
        return real(data, limits, target, digest)

    monkeypatch.setattr(intake_module, "decode_image", counting)
    cache: intake_module.DecodedCache = ByteLRU(64 * 1024 * 1024)
    intake = intake_with(recording, cache=cache)
    png = [ref(data_url(images / "pillow" / "hopper.png"))]

    async def turns() -> list[Any]:
        out = []
        for target in ((64, 64), (64, 64), (32, 32)):
            encoded = await intake.fetch(png)
            out.extend(await intake.decode(png, encoded, [target]))
        return out

    first, again, smaller = run(turns())
    assert decodes == [(64, 64), (32, 32)]  # the second turn's image came from the cache
    assert again is first and smaller is not first
    hopper = len((images / "pillow" / "hopper.png").read_bytes())
    assert cache.size == 2 * (128 * 128 * 4 + hopper)


def test_a_corrupt_file_is_refused_every_time_not_cached(images: Path, recording: RecordingTransport) -> None:
    cache: ByteLRU[Any, Any] = ByteLRU(64 * 1024 * 1024)
    intake = intake_with(recording, cache=cache)
    broken = [ref(data_url(images / "pillow" / "truncated_jpeg.jpg", declared="image/jpeg"))]
    for _ in range(2):
        with pytest.raises(InvalidImageFormat):
            run(intake.load(broken))
    assert len(cache) == 0
