"""Which image URLs may be fetched: scheme, form, host and the addresses the host resolves to."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from loupe.errors import ImageFetchFailed, ImageUrlForbidden
from loupe.media.address_policy import IPAddress, forbidden_reason, parse_ip_host
from loupe.media.limits import ImageLimits

MAX_URL_LENGTH = 8192
_SCHEMES = frozenset({"http", "https"})
# After IDNA encoding a host name is ASCII letters, digits, hyphens (and, in practice, underscores).
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$")


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL that passed every check that can be made before resolving its host.

    `url` is the one parsed object used from here on; `host` is its host in canonical form
    (lower case, no trailing dot, an IP address written the standard way); `address` is that
    address when the host is an IP literal; `private_ok` says the host was explicitly opted in.
    """

    url: httpx.URL
    host: str
    address: IPAddress | None
    private_ok: bool

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.url.port is None else f"{host}:{self.url.port}"


class UrlPolicy:
    """The rules of `ImageLimits` about URLs, applied to each URL and each redirect target."""

    def __init__(self, limits: ImageLimits) -> None:
        self._domains = tuple(_canonical_host(d) for d in limits.allowed_domains)
        self._private_hosts = frozenset(_canonical_host(h) for h in limits.allowed_private_hosts)

    def check_url(self, raw: str) -> Destination:
        """Parse `raw` once and check everything but the addresses. Raises ImageUrlForbidden."""
        url = _parse(raw)
        host = url.raw_host.decode("ascii").lower().removesuffix(".")
        try:
            address = parse_ip_host(host)
        except ValueError:
            raise ImageUrlForbidden(
                f"The image URL host {host!r} is a malformed IP address."
            ) from None
        if address is not None:
            host = str(address)
        elif not _HOST_NAME.match(host):
            raise ImageUrlForbidden(f"The image URL host {host!r} is not a valid host name.")
        private_ok = host in self._private_hosts
        if not private_ok:
            self._check_public_host(host, address)
        return Destination(url=url, host=host, address=address, private_ok=private_ok)

    def check_addresses(
        self, destination: Destination, addresses: Sequence[IPAddress]
    ) -> IPAddress:
        """Return the address to connect to, if every address of the host is allowed."""
        if not addresses:
            raise ImageFetchFailed(f"The image host {destination.host!r} has no address.")
        if not destination.private_ok:
            for address in addresses:
                reason = forbidden_reason(address)
                if reason is not None:
                    raise ImageUrlForbidden(
                        f"The image host {destination.host!r} resolves to a {reason} address."
                    )
        return addresses[0]

    def _check_public_host(self, host: str, address: IPAddress | None) -> None:
        if self._domains and not any(host == d or host.endswith(f".{d}") for d in self._domains):
            raise ImageUrlForbidden(
                f"The image host {host!r} is not among the allowed image domains."
            )
        if address is not None:
            reason = forbidden_reason(address)
            if reason is not None:
                raise ImageUrlForbidden(f"The image URL points to a {reason} address ({host}).")
        elif host == "localhost" or host.endswith(".localhost"):
            raise ImageUrlForbidden(f"The image URL host {host!r} is the local machine.")


def check_reference_text(text: str) -> None:
    """Refuse characters that URL parsers disagree about (backslashes, controls, spaces)."""
    if "\\" in text:
        raise ImageUrlForbidden("The image URL contains a backslash; write it with `/` only.")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise ImageUrlForbidden("The image URL contains spaces or control characters.")


def _parse(raw: str) -> httpx.URL:
    if len(raw) > MAX_URL_LENGTH:
        raise ImageUrlForbidden(f"The image URL is longer than {MAX_URL_LENGTH} characters.")
    check_reference_text(raw)
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise ImageUrlForbidden(f"The image URL is malformed ({exc}).") from None
    if url.scheme not in _SCHEMES:
        shown = url.scheme or "no scheme"
        raise ImageUrlForbidden(f"Only http and https image URLs are fetched, not {shown}.")
    if not raw.lower().startswith(f"{url.scheme}://") or not url.raw_host:
        raise ImageUrlForbidden("The image URL has no host; write it as http(s)://host/path.")
    if url.userinfo:
        raise ImageUrlForbidden("The image URL carries credentials (user@host); remove them.")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ImageUrlForbidden(f"The image URL port {url.port} is out of range.")
    return url


def _canonical_host(host: str) -> str:
    host = host.strip().lower().removesuffix(".")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = parse_ip_host(host)
    except ValueError:
        return host
    return host if address is None else str(address)
