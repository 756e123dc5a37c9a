from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from loupe.errors import ImageFetchFailed
from loupe.media.resolver import SystemResolver


def test_localhost_resolves_to_loopback() -> None:
    # Answered from the hosts file: no DNS packet leaves the machine.
    addresses = asyncio.run(SystemResolver().resolve("localhost"))
    assert addresses
    assert all(address.is_loopback for address in addresses)
    assert len(set(addresses)) == len(addresses)


def test_resolution_failure_is_fetch_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fail)
    with pytest.raises(ImageFetchFailed, match="could not be resolved"):
        asyncio.run(SystemResolver().resolve("nowhere.example"))


def test_only_ip_answers_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(self: Any, *args: Any, **kwargs: Any) -> Any:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800::1", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0)),
        ]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", answer)
    addresses = asyncio.run(SystemResolver().resolve("images.example"))
    assert addresses == [ipaddress.ip_address(a) for a in ("93.184.216.34", "2606:2800::1")]
