"""Prepared videos for engine tests: a session clip through Loupe's own video path (data URL,
probe, the family's plan, sampled frames), as the chat service hands them to an engine."""

from __future__ import annotations

import asyncio
import base64

from loupe.domain import Detail, ModelCard, PreparedVideo, VideoRef
from loupe.engines.local.loader import Checkpoint
from loupe.media.video_intake import VideoIntake
from loupe.media.video_limits import VideoLimits
from loupe.models.families import MODEL_TYPES
from loupe.models.video_catalog import video_counter_for
from loupe.service.videos import VideoModel, VideoService
from tests.video_clips import clip


def prepared_video(
    checkpoint: Checkpoint,
    name: str,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    detail: Detail | None = None,
) -> PreparedVideo:
    """Clip `name` (see tests.video_clips) prepared for this checkpoint's family."""
    return asyncio.run(prepare_video(checkpoint, name, fps=fps, max_frames=max_frames, detail=detail))


async def prepare_video(
    checkpoint: Checkpoint,
    name: str,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    detail: Detail | None = None,
) -> PreparedVideo:
    """`prepared_video`, for a caller inside an event loop."""
    family = MODEL_TYPES[checkpoint.model_type]
    counter = video_counter_for(
        family, checkpoint.video_config, budget=1024, max_frames=64, processor_config=checkpoint.processor_config
    )
    card = ModelCard(id="tiny", created=0, owned_by="test", family=family, checkpoint="tiny", context_size=32768, max_images=8)
    service = VideoService({card.id: VideoModel(VideoIntake(VideoLimits()), counter, max_video_tokens=1 << 20)})
    url = "data:video/mp4;base64," + base64.b64encode(clip(name).data).decode()
    ref = VideoRef(url, detail, "messages[0].content[1]", fps, max_frames)
    [video] = await service.prepare(card, [ref])
    return video
