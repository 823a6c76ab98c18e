"""Free loopback ports for servers the tests start on a port they must know in advance.

Ports are picked at random below the kernel's ephemeral range, never with
`bind(0)`: a port from the ephemeral range that is free when checked may be
given to an outgoing connection (the browser driver's, Redis clients') before
the server binds it, and the test then fails with "address already in use".
Below that range nothing is handed out by the kernel, so only another
server picking the same port at random could take it.
"""

from __future__ import annotations

import random
import socket

_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free(port: int, kinds: tuple[int, ...]) -> bool:
    sockets: list[socket.socket] = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_INET, kind)
            sockets.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for s in sockets:
            s.close()
    return True


def free_port_range(count: int, kinds: tuple[int, ...], attempts: int = 500) -> int:
    """The first of `count` consecutive loopback ports free right now for every socket kind."""
    rng = random.Random()
    top = max(_LOWEST + count + 1, _ephemeral_start()) - count
    for _ in range(attempts):
        base = rng.randrange(_LOWEST, top)
        if all(_free(port, kinds) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} free consecutive ports")


def free_tcp_port() -> int:
    """A loopback TCP port nothing listens on (and nothing will be given by the kernel)."""
    return free_port_range(1, (socket.SOCK_STREAM,))


def free_udp_port() -> int:
    return free_port_range(1, (socket.SOCK_DGRAM,))


def free_udp_range(count: int) -> int:
    """The first of `count` consecutive free UDP ports."""
    return free_port_range(count, (socket.SOCK_DGRAM,))


def free_udp_ports(count: int) -> list[int]:
    """`count` distinct free UDP ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_udp_port())
    return sorted(ports)
