"""Images in: data URLs and SSRF-safe http(s) fetches, validated and decoded to upright RGB."""

from loupe.media.address_policy import IPAddress, forbidden_reason, parse_ip_host
from loupe.media.decode import DecodedImage, decode_image
from loupe.media.fetch import ImageFetcher, network_transport
from loupe.media.intake import DecodedCache, EncodedImage, MediaIntake
from loupe.media.limits import ImageLimits
from loupe.media.pixels import Pixels, as_pillow, pixel_bytes, pixel_size
from loupe.media.probe import ImageHeader, probe_image
from loupe.media.resolver import Resolver, SystemResolver

__all__ = [
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
