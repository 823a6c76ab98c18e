"""Which client a peer address belongs to, for the lobby's per-address limits.

An IPv4 address is one client. An IPv6 subscriber usually gets a whole /64
(often more) and can use any address in it, so per-address limits count a
/64 as one client; an IPv4-mapped IPv6 address counts as its IPv4 address.
Anything that is not an IP address (a UNIX socket, say) is its own client.
"""

from __future__ import annotations

import ipaddress

IPV6_CLIENT_PREFIX = 64


def client_key(host: str) -> str:
    """The key a peer's limits are counted under: the IPv4 address or the IPv6 /64."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
    return str(network)
