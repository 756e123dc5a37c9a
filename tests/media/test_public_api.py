from __future__ import annotations

import subprocess
import sys

import loupe.media


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
    code = (
        "import sys, loupe.media; "
        "print([m for m in ('fastapi', 'starlette', 'torch', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
