"""The seam between the packet layer (this package's endpoints) and the reliability layer.

The endpoints encrypt, number and authenticate packets; what travels inside a
`payload` packet is one body of the reliability layer (channels, acks, resends,
fragments: vinom/protocol/reliability.py, docs/protocol.md section 13). The
endpoints know that layer only through this structural type, and make one per
session with a factory taking `now`.

Installed builds compile this module with mypyc (setup.py, COMPILED): there its
declared types are checked at run time and its classes' methods cannot be
replaced on an instance. tox runs the suite on both builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from vinom.protocol.reliability import Reliability
from vinom.protocol.wire import MAX_BODY


class ReliabilityLayer(Protocol):
    """One session's reliability state, on one side (see the module docstring)."""

    def send_reliable(self, data: bytes) -> None: ...

    def send_unreliable(self, data: bytes) -> None: ...

    def replace_unreliable(self, data: bytes) -> None: ...

    def reliable_mark(self) -> int: ...

    def reliable_acked(self, mark: int) -> bool: ...

    def build_bodies(self, now: float) -> list[bytes]: ...

    def receive_body(self, body: bytes, now: float) -> list[tuple[int, bytes]] | None: ...

    def next_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def compact(self, forget_records: bool = True) -> None: ...

    def set_ack_delays(self, own_s: float, peer_s: float) -> None: ...


ReliabilityFactory = Callable[[float], ReliabilityLayer]


def default_reliability(now: float) -> ReliabilityLayer:
    """vinom's reliability layer for one session, sized to one payload packet."""
    return Reliability(max_body=MAX_BODY, now=now)


def host_reliability(
    max_receive_message: int, max_receive_buffer: int, now: float
) -> ReliabilityLayer:
    """A game host session's reliability layer: it sends large messages (states) but
    accepts only what its application does, and holds little out of order."""
    return Reliability(max_body=MAX_BODY, now=now, max_receive_message=max_receive_message,
                       max_receive_buffer=max_receive_buffer)
