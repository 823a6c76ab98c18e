"""One browser's game session over WebTransport: its framing on the session's stream,
its datagrams and its close capsule, around the WebSocket's own session machine
(`GameStream`, vinom.hosting.game_stream). vinom.hosting.webtransport serves the
QUIC connections and HTTP/3 that carry it. In the session:

- The browser opens one bidirectional stream. On it every message, both
  ways, is a 4-byte big-endian length and that many bytes; the first message
  from the browser is its 1200-byte connect token (the `request` packet of
  docs/protocol.md), every later one a room message (msgpack), as on the
  WebSocket. The server sends the reliable room messages there, in order.
- Datagrams (RFC 9297, in the session's context) carry one room message each:
  the server's states (the UNRELIABLE channel: `state`, `snap`) when they fit
  (`MAX_DATAGRAM_PAYLOAD`; a larger one goes on the stream) once the browser
  has sent a message after its token (before, they follow the welcome on the
  stream), the browser's `input`s.
- The server ends a session with a CLOSE_WEBTRANSPORT_SESSION capsule whose
  code is the WebSocket path's close code (1000, 4001 with the refusal reason,
  4002, 4008, 1009, 1011), so the web client explains both alike. A browser
  drops what it has not read of its streams when the session closes, so the
  final messages (the result, a spectator's last states) must be read first:
  the server ends its side of the stream (FIN) behind them, and sends the
  capsule once the browser has ended its side (it read to the end), or after
  `close_wait` seconds if it does not.
- A browser that reads slower than the match runs (or not at all) leaves what
  is sent to it in qh3, which holds it without a limit (QUIC's flow and
  congestion control stop it leaving). qh3 does not say how much it holds,
  so each connection keeps `backlog`: the bytes of messages handed to it less
  the bytes of the packets it has written since, never below 0. Every byte
  handed leaves in a packet that carries it and more (headers, acknowledgements,
  resends), so qh3 holds at least `backlog` bytes unsent: past the
  WebSocket's `held_limit` the session is dropped as a slow WebSocket is
  (counted `too_slow`, logged, the seat's grace) and its connection closed at
  once (CONNECTION_CLOSE with H3_EXCESSIVE_LOAD, reason `too_slow`, which no
  congestion window holds back), with everything it held.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Protocol

from qh3._hazmat import encode_uint_var
from qh3.h3.connection import ErrorCode
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from vinom.hosting.game_stream import (
    CLOSE_NORMAL,
    Close,
    GameStream,
    GameStreamRunner,
    IGameStreamWire,
    StreamCounts,
)
from vinom.hosting.websocket import GameSocketFactory
from vinom.protocol.events import UNRELIABLE

__all__ = [
    "CLOSE_TOO_LARGE",
    "MAX_DATAGRAM_PAYLOAD",
    "GameTransportSession",
    "close_capsule",
    "frame",
]

# A message larger than the session's limit (the WebSocket's 1009).
CLOSE_TOO_LARGE = 1009
# The largest room message sent as one datagram: a 1200-byte QUIC packet less its
# header (up to 1 + 20 + 4 bytes), AEAD tag (16), the DATAGRAM frame's type and
# length (3) and the session's quarter stream ID (up to 4), with room for an ACK
# frame beside it. A larger state goes on the stream (qh3 would otherwise hold
# a datagram that fits no packet for ever).
MAX_DATAGRAM_PAYLOAD = 1100
# The CLOSE_WEBTRANSPORT_SESSION capsule (draft-ietf-webtrans-http3, 5.6).
_CLOSE_CAPSULE = 0x2843
_LENGTH = struct.Struct(">I")
# A session's close reason is at most this long (the capsule allows 1024 bytes).
_MAX_REASON = 1024


def frame(message: bytes) -> bytes:
    """One message as it travels on the session's stream: its length, then it."""
    return _LENGTH.pack(len(message)) + message


def close_capsule(code: int, reason: str) -> bytes:
    """The CLOSE_WEBTRANSPORT_SESSION capsule ending a session with `code` and `reason`."""
    body = struct.pack(">I", code) + reason.encode("utf-8")[:_MAX_REASON]
    return encode_uint_var(_CLOSE_CAPSULE) + encode_uint_var(len(body)) + body


class Listener(StreamCounts, Protocol):
    """What a session needs of the listener serving it (vinom.hosting.webtransport's
    `WebTransportServer`): the WebSocket's gate, the clock and its counts."""

    gate: GameSocketFactory
    clock: IReactorTime
    messages: Counter[str]

    def dropped(self, reason: str) -> None: ...


class Carrier(Protocol):
    """What a session needs of the QUIC connection carrying it (vinom.hosting.webtransport)."""

    @property
    def server(self) -> Listener: ...

    # Bytes handed to qh3 and not yet written in its packets (a lower bound on what it holds).
    backlog: int

    def send_datagram(self, session_id: int, data: bytes) -> None: ...

    def send_stream(self, stream_id: int, data: bytes) -> None: ...

    def flush(self) -> None: ...

    def abort(self, session_id: int, error_code: int, reason: str) -> None: ...

    def close_session(self, session_id: int, code: int, reason: str,
                      read_first: int | None) -> None: ...  # fmt: skip


@implementer(IGameStreamWire)
class GameTransportSession:
    """One browser's game session over WebTransport: a `GameStream` (token first, then
    room messages both ways) on a session's stream and datagrams; the stream session's
    `IStreamPeer` on the match's host."""

    def __init__(self, connection: Carrier, session_id: int, client: str) -> None:
        self._connection = connection
        self._server = connection.server
        self.session_id = session_id
        self._client: str | None = client
        self._stream_id: int | None = None
        # The browser ended its side of the stream (it is leaving).
        self._peer_ended = False
        self._buffer = b""
        # States go on the stream, behind the welcome, until the browser's first
        # message after the session opened: a datagram could overtake the welcome
        # (the UDP sessions' rule for their opening, docs/protocol.md section 14).
        self._datagrams = False
        gate = self._server.gate
        clock = self._server.clock
        self._stream = GameStream(gate.find_host, token_timeout=gate.config.token_timeout,
                                  message_rate=gate.config.message_rate,
                                  message_burst=gate.config.message_burst)  # fmt: skip
        self._runner = GameStreamRunner(self._stream, self, clock, self._server)
        self._runner.run(self._stream.start(clock.seconds()))

    # From the connection

    def stream_data(self, stream_id: int, data: bytes, ended: bool) -> None:
        """Bytes on one of the session's streams (the first the browser opened is its stream)."""
        stream = self._stream
        if stream.is_closed:
            return
        if self._stream_id is None:
            self._stream_id = stream_id
        elif stream_id != self._stream_id:
            self._server.dropped("extra_stream")
            return
        self._buffer += data
        limit = max(self._server.gate.config.max_message, 1200)
        while len(self._buffer) >= 4 and not stream.is_closed:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > limit:
                self._runner.run(stream.refuse(CLOSE_TOO_LARGE, "too_large", "message too large"))
                return
            if len(self._buffer) < 4 + length:
                break  # the rest of it is still on the way
            message = self._buffer[4 : 4 + length]
            self._buffer = self._buffer[4 + length :]
            self._server.messages["stream_in"] += 1
            self._received(message)
        if ended and not stream.is_closed:
            # The browser ended its stream: the session is over (its seat's grace).
            self._peer_ended = True
            self._runner.run(stream.close(CLOSE_NORMAL, "stream ended"))

    def datagram(self, data: bytes) -> None:
        """A datagram of the session: one room message, once the session is open."""
        if not self._stream.is_open:
            self._server.dropped("datagram_before_token")
            return
        if len(data) > self._server.gate.config.max_message:
            self._server.dropped("datagram_too_large")
            return
        self._server.messages["datagram_in"] += 1
        self._received(data)

    def closed_by_peer(self) -> None:
        """The browser closed the session, or its connection went."""
        self._runner.run(self._stream.peer_closed())
        self._finish()

    # IStreamPeer

    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        if self._stream.is_closed or self._stream_id is None:
            return
        connection = self._connection
        datagrams = self._datagrams
        for channel, data in messages:
            if datagrams and channel == UNRELIABLE and len(data) <= MAX_DATAGRAM_PAYLOAD:
                connection.send_datagram(self.session_id, data)
                self._server.messages["datagram_out"] += 1
            else:
                connection.send_stream(self._stream_id, frame(data))
                self._server.messages["stream_out"] += 1
        connection.flush()

    def check_backlog(self) -> None:
        """Drop the session if the browser reads slower than the match runs (after a
        transmit: what is left in `backlog` is held)."""
        if (not self._stream.is_closed
                and self._connection.backlog > self._server.gate.config.held_limit):  # fmt: skip
            self._drop_slow_reader()

    def stream_ended(self) -> None:
        self._runner.run(self._stream.host_ended())

    # IGameStreamWire

    def end_session(self, close: Close) -> None:
        # Nothing is held back here (QUIC's flow control holds it): `drain` needs no wait.
        # The final messages are read before the capsule where the browser reads on.
        read_first = None if self._peer_ended else self._stream_id
        self._connection.close_session(self.session_id, close.code, close.reason, read_first)
        self._finish()

    # internals

    def _drop_slow_reader(self) -> None:
        """The browser reads slower than the match runs: drop the session (its seat's
        grace) and close the connection, with all qh3 holds for it."""
        held = self._connection.backlog
        self._runner.run(self._stream.drop("too_slow"))
        self._server.gate.slow_reader_dropped(held)
        self._connection.abort(self.session_id, ErrorCode.H3_EXCESSIVE_LOAD, "too_slow")
        self._finish()

    def _received(self, message: bytes) -> None:
        stream = self._stream
        was_open = stream.is_open
        self._runner.run(stream.message(message, self._server.clock.seconds()))
        if was_open and stream.is_open:
            # The browser spoke after its session opened: it has the welcome.
            self._datagrams = True

    def _finish(self) -> None:
        self._runner.cancel()
        self._buffer = b""
        if self._client is not None:
            self._server.gate.release(self._client)
            self._client = None
