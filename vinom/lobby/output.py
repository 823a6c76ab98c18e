"""Output back-pressure of one lobby connection: frames held while its transport is full.

A transport calls its registered streaming producer's `pauseProducing` when
its write buffer passes its high-water mark (64 KiB for TCP) and
`resumeProducing` once it has drained; the TLS layer (vinom.server.tls) holds
nothing of its own after the handshake: it encrypts each write onto the TCP
transport at once, whose buffer does the pausing. `OutputGate` is that producer for
one lobby connection (TCP or WebSocket): while the transport is paused,
frames wait in the gate, counted in bytes, and the connection serves no
request (`LobbyConnection.output_paused`), so a peer that asks and never
reads makes the server hold at most the transport's buffer plus what the
gate holds. Frames the server pushes on its own (`room_update`,
`match_found`, pings) still arrive; once more than `limit` bytes wait, the
gate calls `overflow` and takes no more: the connection is dropped.

`OutputTotals` is what the lobby counts over all its connections, for the
operations endpoint: bytes held now and connections dropped; it logs each
drop, at a limited rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from vinom.net.limits import LogLimiter

# Connections dropped for not reading: logged at most this many at once and this
# many per second after that (one line per connection, but never a flood).
DROP_LOG_BURST = 10
DROP_LOG_RATE = 1.0


class OutputTotals:
    """Bytes held by every gate of a lobby now, and the connections dropped for it."""

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self.held_bytes = 0
        self.dropped = 0
        self._log_limit = LogLimiter(DROP_LOG_RATE, DROP_LOG_BURST, clock)

    def slow_reader_dropped(self, peer_host: str, held: int, limit: int) -> None:
        """Count (and log, unless drops come in a flood) a connection dropped because
        more than `limit` bytes waited for its peer to read."""
        self.dropped += 1
        if not self._log_limit.allow():
            return
        suppressed = self._log_limit.take_suppressed()
        self.log.info(
            "dropped a lobby connection from {peer}: {held} bytes waited for it to read"
            " (more than {limit})"
            + (" ({suppressed} more drops not logged)" if suppressed else ""),
            peer=peer_host,
            held=held,
            limit=limit,
            suppressed=suppressed,
        )


@implementer(IPushProducer)
class OutputGate:
    """Frames to `send`, held while the transport has paused this producer (module docstring).

    `paused` and `resumed` are called as the transport pauses and (its buffer
    drained and every held frame sent) resumes the gate; `overflow` once,
    when more than `limit` bytes wait.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        *,
        limit: int,
        totals: OutputTotals,
        paused: Callable[[], None],
        resumed: Callable[[], None],
        overflow: Callable[[int], None],
    ) -> None:
        self._send = send
        self._limit = limit
        self._totals = totals
        self._on_paused = paused
        self._on_resumed = resumed
        self._on_overflow = overflow
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._paused = False
        # Past the limit, or the connection is gone: frames are dropped.
        self._shut = False

    @property
    def held_bytes(self) -> int:
        """Bytes of the frames waiting for the transport."""
        return self._held_bytes

    def write(self, frame: bytes) -> None:
        """Send `frame` now, or hold it while the transport is paused."""
        if self._shut:
            return
        if not self._paused and not self._held:
            self._send(frame)
            return
        self._held.append(frame)
        self._held_bytes += len(frame)
        self._totals.held_bytes += len(frame)
        if self._held_bytes > self._limit:
            held = self._held_bytes
            self.discard()
            self._on_overflow(held)

    def flush(self) -> None:
        """Hand every held frame to the transport, paused or not (the connection is
        closing: what it said last goes out, or the close times out)."""
        while self._held and not self._shut:
            self._take_one()

    def discard(self) -> None:
        """Drop what is held and everything written from now on (the connection is gone)."""
        self._shut = True
        self._totals.held_bytes -= self._held_bytes
        self._held.clear()
        self._held_bytes = 0

    # IPushProducer

    def pauseProducing(self) -> None:
        if self._paused or self._shut:
            return
        self._paused = True
        self._on_paused()

    def resumeProducing(self) -> None:
        if self._shut:
            return
        self._paused = False
        # Sending may fill the transport again, which pauses this gate at once.
        while self._held and not self._paused and not self._shut:
            self._take_one()
        if not self._paused and not self._shut:
            self._on_resumed()

    def stopProducing(self) -> None:
        self.discard()

    def _take_one(self) -> None:
        frame = self._held.popleft()
        self._held_bytes -= len(frame)
        self._totals.held_bytes -= len(frame)
        self._send(frame)
