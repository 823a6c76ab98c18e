"""Free ports for servers that must be told their port up front (benchmarks and tests).

Picked at random outside the kernel's ephemeral range, never with `bind(0)`:
every client socket of the load (a browser driver's, a Redis client's,
anything else on the machine) takes an ephemeral port, and one may take a
port found free there before its server binds it ("address already in
use"). Outside that range the kernel hands out nothing, so only another
server picking the same port at random could take it. This process hands
out no port twice (of the last few thousand): a test that names the ports of
several servers before any of them binds would otherwise give two the same.
"""

from __future__ import annotations

import random
import socket
from collections import OrderedDict

_LOWEST = 10_000
# The ports handed out lately (their servers may not have bound them yet).
_HANDED_OUT: OrderedDict[int, None] = OrderedDict()
_REMEMBERED = 4096


def ephemeral_ports() -> tuple[int, int]:
    """The range the OS picks client ports from (Linux; a common default elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _free(interface: str, port: int, kind: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((interface, port))
    except OSError:
        return False
    return True


def free_port_range(interface: str, size: int, kind: int = socket.SOCK_DGRAM,
                    attempts: int = 500) -> tuple[int, int]:  # fmt: skip
    """`size` consecutive ports of socket `kind`, all free now and outside the
    ephemeral range: (first, last)."""
    rng = random.Random()
    low_ephemeral, high_ephemeral = ephemeral_ports()
    spans = [(_LOWEST, low_ephemeral - size), (high_ephemeral + 1, 65535 - size)]
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        raise RuntimeError(f"no room for {size} ports outside the ephemeral range")
    for _ in range(attempts):
        first, last = rng.choice(spans)
        low = rng.randrange(first, last)
        ports = range(low, low + size)
        if any(port in _HANDED_OUT for port in ports):
            continue
        if all(_free(interface, port, kind) for port in ports):
            for port in ports:
                _HANDED_OUT[port] = None
            while len(_HANDED_OUT) > _REMEMBERED:
                _HANDED_OUT.popitem(last=False)
            return low, low + size - 1
    raise RuntimeError(f"no {size} consecutive free ports found")


def free_tcp_port(interface: str = "127.0.0.1") -> int:
    return free_port_range(interface, 1, socket.SOCK_STREAM)[0]


def free_udp_port(interface: str = "127.0.0.1") -> int:
    return free_port_range(interface, 1, socket.SOCK_DGRAM)[0]


def free_udp_range(interface: str, size: int) -> tuple[int, int]:
    return free_port_range(interface, size, socket.SOCK_DGRAM)
