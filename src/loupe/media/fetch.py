"""Fetch an image URL without letting any request reach an address the policy forbids.

The URL is parsed once; its host is resolved once; the request goes to that exact IP, with the
original Host header and, for https, the original name for SNI and certificate checks, so a DNS
answer that changes between check and connect (rebinding) changes nothing. Redirects are
followed by hand, each target checked the same way.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from loupe.errors import ImageFetchFailed, ImageFileExceedsMaxSize
from loupe.media.address_policy import IPAddress
from loupe.media.limits import ImageLimits
from loupe.media.resolver import Resolver
from loupe.media.url_policy import Destination, UrlPolicy, check_reference_text

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "Accept-Encoding": "identity",
    "User-Agent": "Loupe-image-fetcher",
}


def network_transport(verify: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport:
    """The transport for real fetches. It loads CA certificates: build it at the composition root.

    `verify` replaces the default trust store (e.g. for a private CA). No keep-alive, so a
    connection whose certificate was checked for one host name is never reused for another name
    on the same IP; no retries; no proxy (a proxy would resolve names itself, undoing the pinning).
    """
    return httpx.AsyncHTTPTransport(
        verify=True if verify is None else verify,
        limits=httpx.Limits(max_keepalive_connections=0),
        retries=0,
    )


class ImageFetcher:
    """Downloads the bytes of http(s) image URLs under the limits and URL rules of ImageLimits."""

    def __init__(
        self, limits: ImageLimits, *, transport: httpx.AsyncBaseTransport, resolver: Resolver
    ) -> None:
        self._limits = limits
        self._policy = UrlPolicy(limits)
        self._transport = transport
        self._resolver = resolver

    async def fetch(self, url: str, *, max_bytes: int | None = None, accept: str = "image/*") -> bytes:
        """Return the body of `url`, following up to `max_redirects` checked redirects.

        `max_bytes` overrides the limit's cap, so one fetcher can serve models with different
        limits; `accept` is the Accept header (videos ask for `video/*`). Raises ImageUrlForbidden (before any request is sent for that URL),
        ImageFetchFailed (unresolvable, unreachable, timed out, non-2xx, too many redirects) and
        ImageFileExceedsMaxSize (the body passed `max_bytes`; reading stops there).
        """
        cap = self._limits.max_bytes if max_bytes is None else max_bytes
        try:
            async with asyncio.timeout(self._limits.total_timeout):
                with _httpx_errors_as_fetch_failed():
                    return await self._follow(url, cap, accept)
        except TimeoutError:
            raise ImageFetchFailed(
                f"Fetching the image took longer than {self._limits.total_timeout:g} s."
            ) from None

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _follow(self, url: str, max_bytes: int, accept: str) -> bytes:
        resolved: dict[str, IPAddress] = {}
        for _ in range(self._limits.max_redirects + 1):
            destination = self._policy.check_url(url)
            address = await self._address_of(destination, resolved)
            response = await self._transport.handle_async_request(
                self._request(destination, address, accept)
            )
            try:
                location = _redirect_location(response)
                if location is None:
                    return await _read_body(response, max_bytes)
            finally:
                await response.aclose()
            check_reference_text(location)
            url = str(destination.url.join(location))
        raise ImageFetchFailed(
            f"The image URL redirected more than {self._limits.max_redirects} times."
        )

    async def _address_of(
        self, destination: Destination, resolved: dict[str, IPAddress]
    ) -> IPAddress:
        if destination.address is not None:
            return destination.address
        if destination.host not in resolved:
            addresses = await self._resolver.resolve(destination.host)
            resolved[destination.host] = self._policy.check_addresses(destination, addresses)
        return resolved[destination.host]

    def _request(self, destination: Destination, address: IPAddress, accept: str) -> httpx.Request:
        limits = self._limits
        extensions: dict[str, object] = {
            "timeout": {
                "connect": limits.connect_timeout,
                "read": limits.read_timeout,
                "write": limits.read_timeout,
                "pool": limits.connect_timeout,
            }
        }
        if destination.url.scheme == "https" and destination.address is None:
            extensions["sni_hostname"] = destination.host
        return httpx.Request(
            "GET",
            destination.url.copy_with(host=str(address), fragment=None),
            headers={"Host": destination.host_header, **_HEADERS, "Accept": accept},
            extensions=extensions,
        )


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    if not 200 <= response.status_code < 300:
        raise ImageFetchFailed(f"The image URL answered HTTP {response.status_code}.")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ImageFileExceedsMaxSize(
            f"The image is {declared} bytes; the limit is {limit} bytes."
        )
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise ImageFileExceedsMaxSize(f"The image is larger than {limit} bytes.")
    return bytes(body)


def _redirect_location(response: httpx.Response) -> str | None:
    if response.status_code not in _REDIRECTS:
        return None
    location: str | None = response.headers.get("Location")
    if not location:
        raise ImageFetchFailed(
            f"The image URL answered HTTP {response.status_code} without a Location."
        )
    return location


@contextmanager
def _httpx_errors_as_fetch_failed() -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException:
        raise ImageFetchFailed("The image server did not answer in time.") from None
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        raise ImageFetchFailed(f"The image could not be fetched ({detail}).") from exc
