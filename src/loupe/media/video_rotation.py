"""A phone video's rotation, read from its MP4/MOV track header without decoding a frame.

Phones record portrait video as landscape frames plus a display matrix saying how to turn them
(the video track's `tkhd` box). FFmpeg applies it when it plays or converts a file, and so does
OpenCV (vLLM's default video reader); transformers' PyAV reader does not, so the reference
processors see such a clip sideways. Loupe turns the frames upright, and plans from the upright
size, so that the model and the token count see the video as it is watched.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

# Boxes whose children are boxes, on the way from the file to a track's header and handler.
_CONTAINERS = {b"moov", b"trak", b"mdia"}
# A file with more boxes than this at one level is not a video Loupe takes apart further.
_MAX_BOXES = 4096


def mp4_rotation(data: bytes) -> int:
    """The counterclockwise turn (0, 90, 180 or 270 degrees) that shows the first video track
    of an MP4 or MOV upright; 0 where the file says none, or something other than a quarter
    turn (a mirror, a shear), or cannot be read."""
    for trak in _children(data, 0, len(data), b"moov", b"trak"):
        matrix, video = None, False
        for kind, start, end in _boxes(data, *trak):
            if kind == b"tkhd":
                matrix = _tkhd_matrix(data[start:end])
            elif kind == b"mdia":
                video = any(data[s + 8 : s + 12] == b"vide" for k, s, _ in _boxes(data, start, end) if k == b"hdlr")
        if video:
            return _quarter_turns(matrix) if matrix is not None else 0
    return 0


def upright(rotation: int, width: int, height: int) -> tuple[int, int]:
    """The (width, height) shown after turning a `width` x `height` frame by `rotation`."""
    return (height, width) if rotation % 180 else (width, height)


def _children(data: bytes, start: int, end: int, *path: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each box at `path` (a box type per level) under data[start:end]."""
    for kind, child_start, child_end in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield child_start, child_end
            else:
                yield from _children(data, child_start, child_end, *path[1:])


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]; stops at the first
    malformed one."""
    at = start
    for _ in range(_MAX_BOXES):
        if at + 8 > end:
            return
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


def _tkhd_matrix(payload: bytes) -> tuple[float, float, float, float] | None:
    """(a, b, c, d) of the track header's transformation matrix, as numbers."""
    version = payload[0] if payload else 0
    offset = 4 + (32 if version == 1 else 20) + 16  # times, ids and duration; then layer, volume...
    if len(payload) < offset + 36:
        return None
    a, b, _, c, d = struct.unpack_from(">iiiii", payload, offset)
    return a / 65536, b / 65536, c / 65536, d / 65536


def _quarter_turns(matrix: tuple[float, float, float, float]) -> int:
    a, b, c, d = matrix
    if a * d - b * c <= 1e-6:  # degenerate, or a mirror
        return 0
    degrees = math.degrees(math.atan2(b, a))
    turn = round(degrees / 90)
    if abs(degrees - 90 * turn) > 1:
        return 0
    return (-90 * turn) % 360
