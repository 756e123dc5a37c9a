from __future__ import annotations

import loupe.media
from tests.helpers import imports_of


def test_public_surface_is_pinned() -> None:
    assert sorted(loupe.media.__all__) == [
        "DecodedCache",
        "DecodedImage",
        "EncodedImage",
        "IPAddress",
        "ImageFetcher",
        "ImageHeader",
        "ImageLimits",
        "MediaIntake",
        "Pixels",
        "Resolver",
        "SystemResolver",
        "as_pillow",
        "decode_image",
        "forbidden_reason",
        "network_transport",
        "parse_ip_host",
        "pixel_bytes",
        "pixel_size",
        "probe_image",
    ]
    for name in loupe.media.__all__:
        assert getattr(loupe.media, name) is not None


def test_media_imports_no_http_framework_and_no_torch() -> None:
    assert imports_of("loupe.media", ("fastapi", "starlette", "torch", "transformers")) == []
