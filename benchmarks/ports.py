"""Free ports for servers that must be told their port up front (benchmarks and tests).

Picked at random outside the kernel's ephemeral range, never with `bind(0)`:
every client socket of the load (a browser driver's, a Redis client's,
anything else on the machine) takes an ephemeral port, and one may take a
port found free there before its server binds it ("address already in
use"). Outside that range the kernel hands out nothing, so only another
server picking the same port could take it. A port handed out is held, by
this process or any other of this user's, so that it is not handed out
again: a test names the ports of several servers before any binds them, and
the suite runs several test processes at once. Each held port is a file in
`REGISTRY` (`$VINOM_PORT_REGISTRY` when set, a directory of this user's
only), its modification time when the hold ends, read and written under one
`flock`. A port is held for `HELD_FOR`, long enough for its server to start
(or to start again on it after a kill), not longer: held ports are
scattered, and a range must find that many free in a row (run 62: ranges
held for 15 minutes left `test_bench` no 256 in a row). A server that binds
its range's ports later (a game host, one a match) may find one taken by
then, at odds of the range's share of the ports handed out since.

Given a range (`$VINOM_BENCH_PORTS`, LOW-HIGH, set by `python -m benchmarks --ports`
and inherited by every process it starts), every port is picked inside it instead,
so that two measurements can share a machine, each in its own range.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator

_LOWEST = 10_000
REGISTRY = os.environ.get("VINOM_PORT_REGISTRY") or os.path.join(
    tempfile.gettempdir(), f"vinom-ports-{os.getuid()}"
)
HELD_FOR = 120.0
# The range every port is picked in, when given (LOW-HIGH; module docstring).
RANGE_VARIABLE = "VINOM_BENCH_PORTS"


def ephemeral_ports() -> tuple[int, int]:
    """The range the OS picks client ports from (Linux; a common default elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def given_range() -> tuple[int, int] | None:
    """The range `$VINOM_BENCH_PORTS` gives, or None; a malformed one is refused."""
    text = os.environ.get(RANGE_VARIABLE)
    if not text:
        return None
    return parse_range(text)


def parse_range(text: str) -> tuple[int, int]:
    """LOW-HIGH, 1024 <= LOW <= HIGH <= 65535: the ports a run may listen on."""
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"a port range is LOW-HIGH, not {text!r}") from None
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"a port range is LOW-HIGH within 1024-65535, not {text!r}")
    return low, high


def _spans(size: int, given: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Where a run of `size` ports may start: [first, last) spans (in `given`, a range)."""
    if given is not None:
        low, high = given
        if high - low + 1 < size:
            raise RuntimeError(f"{size} ports do not fit in ${RANGE_VARIABLE} {low}-{high}")
        return [(low, high - size + 2)]
    low_ephemeral, high_ephemeral = ephemeral_ports()
    spans = [(_LOWEST, low_ephemeral - size), (high_ephemeral + 1, 65535 - size)]
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        raise RuntimeError(f"no room for {size} ports outside the ephemeral range")
    return spans


def _free(interface: str, port: int, kind: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((interface, port))
    except OSError:
        return False
    return True


_pruned = False


@contextlib.contextmanager
def _registry() -> Iterator[str]:
    global _pruned
    registry = REGISTRY
    os.makedirs(registry, mode=0o700, exist_ok=True)
    if os.stat(registry).st_uid != os.getuid():
        raise RuntimeError(f"the port registry {registry} is another user's: "
                           "set VINOM_PORT_REGISTRY to a directory of your own")  # fmt: skip
    with open(os.path.join(registry, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _pruned:
                _pruned = True
                now = time.time()
                for name in os.listdir(registry):
                    if name.isdigit() and not _held(registry, int(name), now):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(registry, name))
            yield registry
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _held(registry: str, port: int, now: float) -> bool:
    try:
        return os.stat(os.path.join(registry, str(port))).st_mtime > now
    except FileNotFoundError:
        return False


def _hold(registry: str, port: int, until: float) -> None:
    path = os.path.join(registry, str(port))
    with open(path, "w"):
        pass
    os.utime(path, (until, until))


def free_port_range(interface: str, size: int, kind: int = socket.SOCK_DGRAM,
                    attempts: int = 500) -> tuple[int, int]:  # fmt: skip
    """`size` consecutive ports of socket `kind`, all free now, in the given range (else
    outside the ephemeral range) and not handed out lately: (first, last)."""
    rng = random.Random()
    given = given_range()
    spans = _spans(size, given)
    # Every first port equally likely, whichever span it is in.
    weights = [b - a for a, b in spans]
    with _registry() as registry:
        now = time.time()
        for _ in range(attempts):
            first, last = rng.choices(spans, weights)[0]
            low = rng.randrange(first, last)
            ports = range(low, low + size)
            if any(_held(registry, port, now) for port in ports):
                continue
            if all(_free(interface, port, kind) for port in ports):
                until = now + HELD_FOR
                for port in ports:
                    _hold(registry, port, until)
                return low, low + size - 1
    if given is not None:
        raise RuntimeError(
            f"no {size} consecutive free ports in ${RANGE_VARIABLE} {given[0]}-{given[1]}: "
            f"ports handed out stay held {HELD_FOR:g} s, so give a range that holds a few "
            "runs' ports (a match run takes 256 for its game host)")
    raise RuntimeError(f"no {size} consecutive free ports found")


def free_tcp_port(interface: str = "127.0.0.1") -> int:
    return free_port_range(interface, 1, socket.SOCK_STREAM)[0]


def free_udp_port(interface: str = "127.0.0.1") -> int:
    return free_port_range(interface, 1, socket.SOCK_DGRAM)[0]


def free_udp_range(interface: str, size: int) -> tuple[int, int]:
    return free_port_range(interface, size, socket.SOCK_DGRAM)
