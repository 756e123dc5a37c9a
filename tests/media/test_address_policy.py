from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loupe.media.address_policy import forbidden_reason, parse_ip_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ],
)
def test_numeric_spellings(host: str, expected: str) -> None:
    assert parse_ip_host(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "1e3.com", "a.0x1g", "xn--bcher-kva.de"]
)
def test_names_are_not_addresses(host: str) -> None:
    assert parse_ip_host(host) is None


@pytest.mark.parametrize(
    "host",
    ["1.2.3.4.5", "256.1.1.1", "1.256.1.1", "08.1.1.1", "0x100.1", "1.2.65536", "4294967296", ":g"],
)
def test_malformed_numeric_hosts(host: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_host(host)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", ""),
        ("255.255.255.255", ""),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", ""),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("192.0.0.8", ""),
        ("192.0.2.1", ""),
        ("198.18.0.1", ""),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped IPv6 of a loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped IPv6 of a link-local"),
        ("::ffff:8.8.8.8", "IPv4-mapped IPv6"),
        ("::127.0.0.1", "reserved"),
        ("2002:7f00:1::", "6to4 of a loopback"),
        ("2002:a9fe:a9fe::", "6to4 of a link-local"),
        ("2002:c0a8:0101::1", "6to4 of a private"),
        ("64:ff9b::7f00:1", "reserved"),
        ("64:ff9b:1::1", "reserved"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ""),  # Teredo
        ("2001:db8::1", ""),
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:0808:0808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_spelling_of_a_loopback_address_is_loopback(number: int) -> None:
    address = ipaddress.IPv4Address((127 << 24) | (number & 0xFFFFFF))
    a, b, c, d = address.packed
    for spelling in (
        str(int(address)),
        hex(int(address)),
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"0{a:o}.0x{b:x}.{c}.0{d:o}",
    ):
        assert parse_ip_host(spelling) == address
        assert forbidden_reason(address) == "loopback"
