"""A request's images: fetched, validated, planned for their detail, and decoded for that plan.

Each model has its own limits (one `MediaIntake`) and its own image-token counter (its family's
rules bound to its processor settings). Plans come from the headers, so a JPEG planned far below
its size decodes at a fraction of the cost; the engine resizes each image to its planned size
(`PreparedImage`), with the fastest exact-enough resize it has. Decoding runs off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from loupe.domain import DEFAULT_DETAIL, Detail, ImageRef, ModelCard, PlannedImage, PreparedImage
from loupe.errors import ImageError, InvalidRequest, LoupeError, ServiceUnavailable
from loupe.media import DecodedImage, ImageFetcher, ImageLimits, MediaIntake
from loupe.models import ImagePlan, TokenCounter
from loupe.service.budget import image_cost
from loupe.service.metrics import Metrics
from loupe.settings import FetchSettings, ModelSettings


Admit = Callable[[int], Awaitable[None]]


def fetch_limits(fetch: FetchSettings) -> ImageLimits:
    """The fetch policy every model shares (timeouts, redirects, allowed hosts)."""
    return ImageLimits(
        connect_timeout=fetch.connect_timeout_s,
        read_timeout=fetch.read_timeout_s,
        total_timeout=fetch.total_timeout_s,
        max_redirects=fetch.max_redirects,
        allowed_domains=fetch.allowed_domains,
        allowed_private_hosts=fetch.allow_media_hosts,
    )


def limits_for(model: ModelSettings, fetch: FetchSettings) -> ImageLimits:
    """One model's image limits on top of the shared fetch policy."""
    images = model.images
    return replace(
        fetch_limits(fetch),
        max_bytes=images.max_image_bytes,
        max_pixels=images.max_image_pixels,
        max_side=images.max_image_side,
        min_side=images.min_image_side,
    )


def plan_all(counter: TokenCounter, refs: Sequence[ImageRef], sizes: Sequence[tuple[int, int]]) -> list[ImagePlan]:
    """Plan a request's images together (a family may count an image by its company).

    An image without `detail` gets `auto`. Where that would size a request's images with
    different processor settings (the tiled families fit each image to the budget with its own
    setting), those images get `high`, which every image can share, instead of a refusal."""
    for ref, (width, height) in zip(refs, sizes, strict=True):
        try:  # each image alone first, so a refusal names its part
            counter.plan(width, height, ref.detail or DEFAULT_DETAIL)
        except LoupeError as exc:
            raise exc.with_param(ref.param) from None
    plans = counter.plan_all([(w, h, ref.detail or DEFAULT_DETAIL) for ref, (w, h) in zip(refs, sizes, strict=True)])
    if _settings_differ(plans) and any(ref.detail is None for ref in refs):
        plans = counter.plan_all([(w, h, ref.detail or Detail.HIGH) for ref, (w, h) in zip(refs, sizes, strict=True)])
    if _settings_differ(plans):
        raise InvalidRequest(
            "this model cannot mix these detail levels in one request (they need different "
            "processor settings); use the same detail for every image",
            param="messages",
        )
    return plans


def planned_images(
    refs: Sequence[ImageRef], sizes: Sequence[tuple[int, int]], plans: Sequence[ImagePlan]
) -> list[PlannedImage]:
    """What the estimate reports of each image: its size, the detail asked and applied, its plan."""
    return [
        PlannedImage(
            index=index,
            width=width,
            height=height,
            detail=ref.detail,
            detail_applied=plan.detail_applied,
            resized_width=plan.resized_width,
            resized_height=plan.resized_height,
            tokens=plan.tokens,
        )
        for index, (ref, (width, height), plan) in enumerate(zip(refs, sizes, plans, strict=True))
    ]


class ImageService:
    """The chat service's `ImagePipeline`, and the estimate's header-only planner."""

    def __init__(
        self,
        intakes: Mapping[str, MediaIntake],
        counters: Mapping[str, TokenCounter],
        fetcher: ImageFetcher | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._intakes = dict(intakes)
        self._counters = dict(counters)
        self._fetcher = fetcher
        self._metrics = metrics or Metrics()

    async def prepare(
        self, card: ModelCard, refs: Sequence[ImageRef], admit: Admit | None = None
    ) -> list[PreparedImage]:
        """Plan every image from its header, then decode it for its planned size (the engine
        resizes it there). `admit(cost)`, when given, is awaited before any pixel is decoded
        with the bytes the images may take (see `budget`)."""
        if not refs:
            return []
        intake, counter = self._for(card)
        try:
            encoded = await intake.fetch(refs)
            sizes = [(e.header.width, e.header.height) for e in encoded]
            plans = plan_all(counter, refs, sizes)
            if admit is not None:
                await admit(sum(image_cost(s, (p.resized_width, p.resized_height)) for s, p in zip(sizes, plans, strict=True)))
            decoded = await intake.decode(refs, encoded, [_target(plan) for plan in plans])
        except ImageError as exc:
            self._metrics.image_refused(exc.code)
            raise
        for image in decoded:
            self._metrics.image_accepted(card.id, image.byte_size)
        return [_prepared(img, plan) for img, plan in zip(decoded, plans, strict=True)]

    async def plan(self, card: ModelCard, refs: Sequence[ImageRef]) -> list[PlannedImage]:
        """Plan every image from its header alone: no pixel is decoded."""
        intake, counter = self._for(card)
        sizes = [(h.width, h.height) for h in await intake.probe(refs)]
        return planned_images(refs, sizes, plan_all(counter, refs, sizes))

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()

    def _for(self, card: ModelCard) -> tuple[MediaIntake, TokenCounter]:
        intake, counter = self._intakes.get(card.id), self._counters.get(card.id)
        if intake is None or counter is None:
            raise ServiceUnavailable(f"model {card.id!r} has no image pipeline configured")
        return intake, counter


def _settings_differ(plans: Sequence[ImagePlan]) -> bool:
    """The HF processor takes one set of arguments per call: images whose plans need different
    ones (SmolVLM `low` beside `high`) cannot share a request."""
    return len({plan.processor_overrides for plan in plans}) > 1


def _target(plan: ImagePlan) -> tuple[int, int] | None:
    return (plan.resized_width, plan.resized_height) if plan.loupe_resizes else None


def _prepared(image: DecodedImage, plan: ImagePlan) -> PreparedImage:
    width, height = (plan.resized_width, plan.resized_height) if plan.loupe_resizes else (image.width, image.height)
    return PreparedImage(
        pixels=image.pixels,
        width=width,
        height=height,
        original_width=image.width,
        original_height=image.height,
        detail=plan.detail_applied,
        content_hash=image.content_hash,
        tokens=plan.tokens,
        processor_overrides=plan.processor_overrides,
        source=image.source,
    )
