"""The limits one image must respect, from the bytes on the wire to the decoded pixels."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What Loupe accepts for one image and how it may fetch it.

    `min_side` is model-dependent; the caller sets it. `allowed_domains`, when not empty, is the
    only set of domains (with their subdomains) fetched. `allowed_private_hosts` opts named hosts
    or IP addresses (e.g. "127.0.0.1", "intranet.example") out of the private-address ban; it is
    empty by default, so loopback, private and link-local addresses are never fetched.
    """

    max_bytes: int = 20 * MiB
    max_pixels: int = 50_000_000
    max_side: int = 16384
    min_side: int = 1
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 20.0
    max_redirects: int = 3
    allowed_domains: tuple[str, ...] = ()
    allowed_private_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side", "min_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImageLimits.{name} must be at least 1")
        if self.min_side > self.max_side:
            raise ValueError("ImageLimits.min_side must not exceed max_side")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ImageLimits.{name} must be positive")
        if self.max_redirects < 0:
            raise ValueError("ImageLimits.max_redirects must not be negative")
        for name in ("allowed_domains", "allowed_private_hosts"):
            if not isinstance(getattr(self, name), tuple):
                raise ValueError(f"ImageLimits.{name} must be a tuple of host names")
