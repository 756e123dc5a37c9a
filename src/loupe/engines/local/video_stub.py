"""A video-processor stand-in that lets image-only processors load without torchvision."""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

from transformers import ProcessorMixin
from transformers.video_processing_utils import VideoProcessorMixin

from loupe.errors import InvalidRequest

P = TypeVar("P", bound=ProcessorMixin)


class ImageOnlyVideoProcessor(VideoProcessorMixin):
    """Fills a processor's `video_processor` slot and refuses any video.

    transformers' real video processors require torchvision, and processors such as
    Qwen2VLProcessor and SmolVLMProcessor type-check that slot at init. Loupe serves images only,
    so it always loads this stand-in (with or without torchvision) and keeps outputs identical.
    It carries the settings processors read outside the video path: `merge_size`,
    `temporal_patch_size` and `patch_size` (Qwen-style processors), and `num_frames` and `fps`
    (SmolVLM's `apply_chat_template` forwards them as defaults). Anything that would touch
    frames raises InvalidRequest.
    """

    # No frame sampling to default to: SmolVLM then passes None on, which its image path ignores.
    num_frames: int | None = None
    fps: float | None = None

    def __init__(
        self,
        *,
        merge_size: int | None = None,
        temporal_patch_size: int | None = None,
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.merge_size = merge_size
        self.temporal_patch_size = temporal_patch_size
        self.patch_size = patch_size

    @classmethod
    def matching(cls, image_processor: Any) -> ImageOnlyVideoProcessor:
        """A stand-in whose patch geometry is the image processor's, as the real ones share it."""
        return cls(
            merge_size=getattr(image_processor, "merge_size", None),
            temporal_patch_size=getattr(image_processor, "temporal_patch_size", None),
            patch_size=getattr(image_processor, "patch_size", None),
        )

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def preprocess(self, videos: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def get_num_of_video_patches(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    @staticmethod
    def _refuse() -> NoReturn:
        raise InvalidRequest(
            "video input is not supported: Loupe serves images only; send each frame as an image"
        )


class _AcceptsStandIn:
    """Lets ProcessorMixin's init type check pass the stand-in, before it looks anything up.

    The check resolves the name "VideoProcessorMixin" through transformers' top-level exports,
    which omit it when torchvision is missing, so the stock check crashes (AttributeError on a
    dummy VIDEO_PROCESSOR_MAPPING) even for a true VideoProcessorMixin instance.
    """

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> type:
        if isinstance(argument, ImageOnlyVideoProcessor):
            return ImageOnlyVideoProcessor
        checked: type = super().check_argument_for_proper_class(  # type: ignore[misc]
            argument_name, argument
        )
        return checked


def accepting_stand_in(cls: type[P]) -> type[P]:
    """A subclass of processor class `cls`, under the same name, whose init takes the stand-in."""
    namespace = {"__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (_AcceptsStandIn, cls), namespace)
