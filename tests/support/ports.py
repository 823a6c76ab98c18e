"""Free loopback ports for servers the tests must name a port for in advance
(picked outside the ephemeral range: `benchmarks.ports` says why)."""

from __future__ import annotations

from benchmarks.ports import free_tcp_port, free_udp_port
from benchmarks.ports import free_udp_range as _free_udp_range

__all__ = ["free_tcp_port", "free_udp_port", "free_udp_ports", "free_udp_range"]


def free_udp_range(count: int) -> int:
    """The first of `count` consecutive free UDP ports on 127.0.0.1."""
    return _free_udp_range("127.0.0.1", count)[0]


def free_udp_ports(count: int) -> list[int]:
    """`count` distinct free UDP ports on 127.0.0.1."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_udp_port())
    return sorted(ports)
