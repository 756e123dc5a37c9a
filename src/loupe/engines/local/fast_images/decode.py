"""Decode an image straight to the size the model needs: JPEG DCT scaling, then the exact resize.

libjpeg can decode at 1/2, 1/4 or 1/8 scale for a fraction of the full cost (Pillow's
`Image.draft`). Loupe uses it only when the target is at most half the source on both sides,
at the smallest scale still at least the target, and then resizes with the filter the processor
would use. Draft decoding changes the pixels (the DCT downscale is not the filter's), so the
model's input equals what the HF processor makes of *this* resized image, not of a full decode
resized: the resized image is the point where Loupe's path and the processor's are compared.
"""

from __future__ import annotations

from PIL import ExifTags, Image, ImageOps

from loupe.media.decode import to_rgb

__all__ = ["draft_scale", "load_resized"]

JPEG_SCALES = (8, 4, 2)
"""The DCT scales libjpeg decodes at, largest first."""

# EXIF orientation -> (upright x comes from stored y, upright x reversed, upright y reversed).
_ORIENTATION_AXES = {
    1: (False, False, False),
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, True, False),
    7: (True, True, True),
    8: (True, False, True),
}


def draft_scale(source: tuple[int, int], target: tuple[int, int]) -> int:
    """The DCT scale libjpeg would use for (width, height) `target`: 1 unless it is at most half
    of `source` on both sides."""
    fits = min(source[0] // max(target[0], 1), source[1] // max(target[1], 1))
    return next((s for s in JPEG_SCALES if fits >= s), 1)


def load_resized(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """Load `image` (opened, header read and validated, pixels not yet decoded) as upright RGB
    at `size` (width, height, upright), draft-decoding JPEGs where `draft_scale` allows.

    CPU-bound: call it off the event loop. Pillow's own errors pass through, as from `load()`.
    Without a draft the result is exactly the full decode, made upright and RGB, then
    `resize(size, resample)`; the same image when the size already matches.
    """
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    swap = _ORIENTATION_AXES.get(orientation, (False, False, False))[0]
    stored_target = (size[1], size[0]) if swap else size
    box = None
    if image.format == "JPEG" and draft_scale(image.size, stored_target) > 1:
        drafted = image.draft("RGB", stored_target)
        if drafted is not None:
            box = _upright_box(drafted[1][2:], image.size, orientation)
    image.load()
    upright = to_rgb(ImageOps.exif_transpose(image) if orientation != 1 else image)
    if box is None and upright.size == size:
        return upright
    return upright.resize(size, resample, box=box)


def _upright_box(
    content: tuple[float, float], drafted: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    """Where the source lies in the upright drafted image. The draft rounds each side up, so the
    source covers `content` (its size over the scale) from the stored image's top-left corner;
    the orientation decides which corner that is once upright."""
    swap, flip_x, flip_y = _ORIENTATION_AXES.get(orientation, (False, False, False))
    if swap:
        content, drafted = (content[1], content[0]), (drafted[1], drafted[0])
    x0 = drafted[0] - content[0] if flip_x else 0.0
    y0 = drafted[1] - content[1] if flip_y else 0.0
    return (x0, y0, x0 + content[0], y0 + content[1])
