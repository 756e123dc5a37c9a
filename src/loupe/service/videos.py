"""A request's videos: fetched, planned from their headers, and sampled for that plan.

Each model has its own limits (one `VideoIntake`) and its family's video counter; a model whose
family takes no video has none, and its requests with video are refused naming it. Plans come
from the containers' metadata, so `/v1/estimate` decodes nothing; `prepare` then decodes only
the frames each plan names, at their planned size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from loupe.domain import ModelCard, PlannedVideo, PreparedVideo, VideoFrames, VideoRef
from loupe.errors import LoupeError, TooManyVideos, VideoCombinationNotSupported, VideoTokensExceeded
from loupe.media.video_intake import EncodedVideo, FramePlan, VideoIntake
from loupe.media.video_limits import VideoLimits
from loupe.models.video import VideoShape
from loupe.models.video_catalog import VideoCounter, refuse_video
from loupe.settings import ModelSettings


def video_limits_for(model: ModelSettings) -> VideoLimits:
    """One model's limits on each video (the fetch policy is the images' fetcher's)."""
    videos = model.videos
    return VideoLimits(
        max_bytes=videos.max_video_bytes,
        max_duration_s=videos.max_duration_s,
        max_frames=videos.max_frames,
        max_pixels=videos.max_frame_pixels,
        max_side=videos.max_frame_side,
        max_fps=videos.max_fps,
        decode_timeout_s=videos.decode_timeout_s,
    )


@dataclass(frozen=True, slots=True)
class VideoModel:
    """One model's video intake, counter (None: its family takes no video) and request limits."""

    intake: VideoIntake
    counter: VideoCounter | None
    max_videos: int = 4
    max_video_tokens: int = 32768


class VideoService:
    """Plans and prepares the videos of a request for the model it names."""

    def __init__(self, models: Mapping[str, VideoModel]) -> None:
        self._models = dict(models)

    def check(self, card: ModelCard, refs: Sequence[VideoRef], *, images: int = 0) -> None:
        """Refuse, before anything is fetched, videos this model cannot take in this request.

        Raises VideoNotSupported, TooManyVideos, and VideoCombinationNotSupported for videos
        beside `images` images where the family reads both alike (see video_catalog)."""
        if not refs:
            return
        _, counter = self._for(card, refs)
        if images and not counter.with_images:
            raise VideoCombinationNotSupported(
                f"{card.id} ({counter.family}) takes images or videos in one request, not both; "
                "send them in separate requests",
                param="messages",
            )

    async def plan(self, card: ModelCard, refs: Sequence[VideoRef]) -> list[PlannedVideo]:
        """Every video planned from its header alone: no frame is decoded.

        Raises VideoNotSupported, TooManyVideos, VideoTokensExceeded (the request's videos
        together), and the VideoError of the first video refused (located at its part)."""
        if not refs:
            return []
        model, counter = self._for(card, refs)
        encoded = await model.intake.fetch(refs)
        frames = _frames(counter, refs, encoded)
        _within(frames, model, card)
        return [PlannedVideo(index, f, ref.detail) for index, (f, ref) in enumerate(zip(frames, refs, strict=True))]

    async def prepare(
        self, card: ModelCard, refs: Sequence[VideoRef], admit: Callable[[int], Awaitable[None]] | None = None
    ) -> list[PreparedVideo]:
        """`plan`, then each video's planned frames decoded at their planned size.
        `admit(cost)`, when given, is awaited before any frame is decoded with the bytes the
        sampled frames and their pixel values may take (see service.budget)."""
        if not refs:
            return []
        model, counter = self._for(card, refs)
        encoded = await model.intake.fetch(refs)
        frames = _frames(counter, refs, encoded)
        _within(frames, model, card)
        if admit is not None:
            await admit(sum(video_cost(f) for f in frames))
        plans = [FramePlan(f.indices, (f.width, f.height)) for f in frames]
        pixels = await model.intake.sample(refs, encoded, plans)
        return [
            PreparedVideo(pixels=p, frames=f, content_hash=_frames_key(e.digest, f))
            for p, f, e in zip(pixels, frames, encoded, strict=True)
        ]

    def _for(self, card: ModelCard, refs: Sequence[VideoRef]) -> tuple[VideoModel, VideoCounter]:
        model = self._models.get(card.id)
        if model is None or model.counter is None:
            raise refuse_video(card.id, card.family)
        if len(refs) > model.max_videos:
            raise TooManyVideos(
                f"{len(refs)} videos were sent; {card.id} accepts at most {model.max_videos}", param="messages"
            )
        return model, model.counter


def _frames(counter: VideoCounter, refs: Sequence[VideoRef], encoded: Sequence[EncodedVideo]) -> list[VideoFrames]:
    out = []
    for ref, video in zip(refs, encoded, strict=True):
        header = video.header
        shape = VideoShape(header.frame_count, header.fps, header.width, header.height)
        try:
            plan = counter.plan(shape, ref.fps, ref.max_frames, ref.detail)
        except LoupeError as exc:  # located at the part, or at its `fps` / `max_frames` field
            exc.param = f"{ref.param}.{exc.param}" if exc.param else ref.param
            raise
        out.append(
            VideoFrames(
                indices=plan.indices,
                video_fps=header.fps,
                frame_count=header.frame_count,
                duration_s=header.duration_s,
                width=plan.width,
                height=plan.height,
                original_width=header.width,
                original_height=header.height,
                detail=plan.detail_applied,
                tokens=plan.tokens,
            )
        )
    return out


def video_cost(frames: VideoFrames) -> int:
    """Bytes a video's sampled frames may take in flight: their RGB pixels and the model's
    float32 pixel values of them."""
    return len(frames.indices) * frames.width * frames.height * 3 * (1 + 4)


def _within(frames: Sequence[VideoFrames], model: VideoModel, card: ModelCard) -> None:
    total = sum(f.tokens for f in frames)
    if total > model.max_video_tokens:
        raise VideoTokensExceeded(
            f"the request's videos would be {total} tokens; {card.id} allows {model.max_video_tokens} "
            "per request: lower fps or max_frames, or use detail 'low'",
            param="messages",
        )


def _frames_key(digest: str, frames: VideoFrames) -> str:
    """Same file, same frames, same size: same pixels (and the same embeddings)."""
    plan = f"{digest}:{frames.width}x{frames.height}:{','.join(map(str, frames.indices))}"
    return hashlib.sha256(plan.encode()).hexdigest()
