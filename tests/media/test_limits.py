from __future__ import annotations

import dataclasses

import pytest

from loupe.media.limits import ImageLimits


def test_defaults() -> None:
    limits = ImageLimits()
    assert limits.max_bytes == 20 * 1024 * 1024
    assert (limits.connect_timeout, limits.read_timeout, limits.total_timeout) == (5.0, 10.0, 20.0)
    assert limits.max_redirects == 3
    assert limits.allowed_domains == () and limits.allowed_private_hosts == ()


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ImageLimits().max_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"max_bytes": 0},
        {"max_pixels": 0},
        {"min_side": 0},
        {"min_side": 100, "max_side": 50},
        {"total_timeout": 0},
        {"max_redirects": -1},
        {"allowed_private_hosts": ["127.0.0.1"]},
    ],
)
def test_invalid_limits_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImageLimits(**changes)  # type: ignore[arg-type]
