"""Which IP addresses an image fetch may connect to, and how numeric hosts are read.

Numeric hosts are read the way inet_aton and getaddrinfo read them (`127.1`, `2130706433`,
`0x7f000001`, `0177.0.0.1`), so no spelling of a forbidden address passes for a name.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not global, whatever a given Python's ipaddress tables say.
_FORBIDDEN_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"),
    (ipaddress.ip_network("2001::/23"), "IETF protocol assignments, Teredo included (2001::/23)"),
    (ipaddress.ip_network("2001:db8::/32"), "documentation (2001:db8::/32)"),
    (ipaddress.ip_network("fec0::/10"), "site-local (fec0::/10)"),
)

_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


def parse_ip_host(host: str) -> IPAddress | None:
    """Read `host` as an IP address if it is one in any spelling; None for a name.

    Raises ValueError for a host that looks numeric but is no valid address (`1.2.3.4.5`,
    `256.1.1.1`, `08.1.1.1`): such hosts must not reach a resolver, which may read them its own way.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        return ipaddress.IPv6Address(bare)
    labels = bare.removesuffix(".").split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    return ipaddress.IPv4Address(_inet_aton(labels))


def forbidden_reason(address: IPAddress) -> str | None:
    """Why Loupe must not connect to `address`, or None when it is a public unicast address.

    IPv4-mapped addresses are refused whole, as are NAT64 (64:ff9b::/96, inside the reserved
    ::/8) and Teredo (2001::/32); a 6to4 address (2002::/16) is judged by the IPv4 it carries.
    """
    reason = _own_reason(address)
    if reason is not None or not isinstance(address, ipaddress.IPv6Address):
        return reason
    if address.sixtofour is not None:
        inner = _own_reason(address.sixtofour)
        if inner is not None:
            return f"6to4 of a {inner} address"
    return None


def _own_reason(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        inner = _own_reason(address.ipv4_mapped)
        return "IPv4-mapped IPv6" if inner is None else f"IPv4-mapped IPv6 of a {inner} address"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    for matched, reason in checks:
        if matched:
            return reason
    for network, reason in _FORBIDDEN_NETWORKS:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "non-global"
    return None



def _inet_aton(labels: list[str]) -> int:
    """inet_aton's reading: the last label fills the bytes the earlier ones leave."""
    invalid = ValueError(f"{'.'.join(labels)!r} is not a valid IPv4 address")
    try:
        values = [_label_value(label) for label in labels]
    except ValueError:
        raise invalid from None
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (5 - len(values))):
        raise invalid
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return number


def _label_value(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)  # 8 and 9 raise, as inet_aton refuses them
    return int(label)
