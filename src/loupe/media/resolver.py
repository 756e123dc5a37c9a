"""How an image host name becomes IP addresses: a protocol, and the system resolver behind it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Protocol

from loupe.errors import ImageFetchFailed
from loupe.media.address_policy import IPAddress


class Resolver(Protocol):
    async def resolve(self, host: str) -> Sequence[IPAddress]:
        """Return every address of `host` (a name, never an IP literal), in preference order.

        Called once per host per fetch; the fetcher connects to an address from this answer
        and never resolves the name again. Raises ImageFetchFailed when the name does not resolve.
        """
        ...


class SystemResolver:
    """The operating system's resolver, through the event loop's `getaddrinfo`."""

    async def resolve(self, host: str) -> Sequence[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise ImageFetchFailed(f"The image host {host!r} could not be resolved.") from None
        addresses: list[IPAddress] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        return addresses
