"""The game session over WebTransport, for browsers: a thin Twisted adapter over qh3.

A browser with WebTransport plays its match over HTTP/3 rather than a
WebSocket (docs/web.md, "The game session over WebTransport"): states and
real-time inputs travel as QUIC datagrams, so a lost packet delays nothing
but itself. This module is the only one of vinom that imports qh3.

qh3 (1.x, a maintained fork of aioquic whose packet protection, TLS, buffers
and QPACK are compiled) is a sans-I/O QUIC and HTTP/3 implementation: its `QuicConnection`
takes datagrams and `now` and returns datagrams and a timer, as vinom's own
game-host core does. `WebTransportServer` drives it from a Twisted
`DatagramProtocol` exactly as vinom.hosting.udp drives the game host: it
feeds each datagram to the connection its connection ID names (a new one for
a client's first Initial packet), transmits what the connection then has to
send, and keeps one reactor timer per connection at its `get_timer()`. There
is no asyncio loop.

Its cost per move is mostly qh3's per packet (docs/performance.md, "play
--transport webtransport"), so the adapter makes as few packets as it can,
as the game host does: the datagrams waiting on the socket are read and
handled as one batch (vinom.hosting.datagrams; `listen_webtransport` serves
the port as a `GameHostPort`, one `recvmmsg` per batch), and only then does
each connection that owes anything transmit, once: the states a room sent a
browser for every move in the batch leave together, in one packet where they
fit. Packets go out with the socket's `sendto` (Port.write checks every
address). qh3's timer moves on almost every packet; the reactor's call
is moved only when the timer comes earlier, and one that fires before the
timer finds nothing due and is armed again.

On each connection, `H3Connection` (with WebTransport enabled) turns QUIC
into HTTP/3. An extended CONNECT (`:protocol webtransport`) at `/game` opens a
`GameTransportSession` when the Origin is allowed and the client's address
has a game socket to spare: the same policy, per-address and total caps as
`/game` over WebSocket, counted together with those sockets (the
`GameSocketFactory` is the gate of both). The session is a thin adapter
around the WebSocket's own session machine (`GameStream`,
vinom.hosting.game_stream: token and its timeout, rate limit, refusals, close
codes); what is WebTransport's is its framing and its datagrams. In the session:

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

Receive budget: qh3 holds a stream's data from the first byte not yet read
up to the highest offset received (zero-filling any gap) and doubles the
windows each time that offset passes half of one, or the peer says it is
blocked at one, so a peer sending a few bytes just below the window each round
trip doubles what the server holds each time. `BoundedQuicConnection` slides
the windows instead (what was read plus `stream_receive_budget` on a stream,
plus `receive_budget` on the connection), takes DATA_BLOCKED and
STREAM_DATA_BLOCKED as the hints they are, and checks each STREAM and CRYPTO
frame before qh3 takes it: one past its
windows or its budget closes the connection (FLOW_CONTROL_ERROR, RFC 9000
section 21.6), counted in `closes` (`receive_budget`), and so does an HTTP/3
layer holding more than a stream's budget of frames not yet whole.

Nothing raises out of `datagramReceived`: a datagram that is not QUIC, names
no connection, or would start one past the caps is dropped and counted in
`drops` by reason; what qh3 refuses inside a connection closes that
connection (its own errors), and a failure in vinom's handling is logged (at
most `_MAX_LOGGED` times) and counted in `errors`.

Security: a QUIC connection costs a handshake before anything else, and new
connections beyond `max_connections` in all or `max_connections_per_ip` per
address are not started (their Initial packets are dropped, counted). While
`retry_above` connections are in their handshake, a client's first Initial is
answered with a Retry (`RetryTokens`): only an Initial that brings its token
back from its own address starts a connection, so a spoofed address gets a
packet smaller than its Initial and costs no handshake; below that mark, an
address not validated yet never gets more than 3x what it sent (RFC 9000 8.1:
qh3 keeps it but on a CONNECTION_CLOSE, which is then not sent where it would
not fit; `BoundedQuicConnection`). A connection must open
its session within the token timeout (else it is closed, counted `no_session`:
pings alone would keep it for ever); a session must present a valid token
within the token timeout and respect the message rate of the WebSocket path,
else it is closed; a connection whose session closed is closed too, so nothing
outlives its player.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from attrs import frozen
from qh3._hazmat import Buffer, BufferReadError, encode_uint_var
from qh3.h3.connection import H3_ALPN, ErrorCode, H3Connection
from qh3.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import (
    QuicConnection,
    QuicConnectionError,
    QuicReceiveContext,
)
from qh3.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
)
from qh3.quic.packet import (
    QuicErrorCode,
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from qh3.tls import load_pem_private_key, load_pem_x509_certificates
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorFDSet, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from vinom.hosting.datagrams import DatagramReader, GameHostPort
from vinom.hosting.game_stream import (
    ADMISSION_STATUS,
    CLOSE_NORMAL,
    Close,
    GameStream,
    GameStreamRunner,
    IGameStreamWire,
)
from vinom.hosting.udp import SOCKET_BUFFER
from vinom.hosting.websocket import GameSocketFactory
from vinom.net.addresses import client_key
from vinom.net.wakeup import WakeUp
from vinom.protocol.events import UNRELIABLE

__all__ = [
    "CLOSE_TOO_LARGE",
    "GAME_PATH",
    "MAX_DATAGRAM_PAYLOAD",
    "Credentials",
    "GameTransportSession",
    "WebTransportConfig",
    "WebTransportServer",
    "close_capsule",
    "frame",
    "listen_webtransport",
    "load_credentials",
]

_log = Logger()
_MAX_LOGGED = 10
# The largest datagram read (QUIC's are at most 1500 on the paths browsers take).
READ_SIZE = 4096
# A reactor call this close before qh3's timer handles it (timers fire a hair early).
_EARLY = 0.0005

# The smallest datagram that may carry a client's first Initial (RFC 9000 14.1).
_SMALLEST_INITIAL = 1200
# The path of the session, as the WebSocket's.
GAME_PATH = b"/game"
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

# (the certificate, its chain, its private key) as qh3 takes them (`load_credentials`).
Credentials = tuple[Any, list[Any], Any]


def load_credentials(chain: bytes, private_key: bytes) -> Credentials:
    """The credentials in a PEM certificate chain (the leaf first) and a PEM private key."""
    certificates = load_pem_x509_certificates(chain)
    return certificates[0], certificates[1:], load_pem_private_key(private_key)


def frame(message: bytes) -> bytes:
    """One message as it travels on the session's stream: its length, then it."""
    return _LENGTH.pack(len(message)) + message


def close_capsule(code: int, reason: str) -> bytes:
    """The CLOSE_WEBTRANSPORT_SESSION capsule ending a session with `code` and `reason`."""
    body = struct.pack(">I", code) + reason.encode("utf-8")[:_MAX_REASON]
    return encode_uint_var(_CLOSE_CAPSULE) + encode_uint_var(len(body)) + body


@frozen
class WebTransportConfig:
    """The limits of the WebTransport listener (the sessions' are the WebSocket's)."""

    # QUIC connections at once, in all and per client address (IPv4, IPv6 /64).
    max_connections: int = 10000
    max_connections_per_ip: int = 32
    # Seconds a connection may stay silent (QUIC's idle timeout): a browser that
    # vanished lets its seat enter the reconnection grace after this. While it has a
    # session, the browser is pinged after a third of it without a packet from it.
    idle_timeout: float = 10.0
    # Seconds a closing session waits for the browser to end its side of the stream
    # (it has read the final messages) before its close capsule goes anyway.
    close_wait: float = 1.0
    # The most one connection may make the server hold of what its browser sent and
    # the server has not read (module docstring, "Receive budget"): bytes ahead of what
    # was read on one stream, in all its streams, and of HTTP/3 frames not yet whole.
    # They are its flow-control windows, sliding with what was read.
    stream_receive_budget: int = 64 * 1024
    receive_budget: int = 256 * 1024
    # Address validation (RFC 9000 8.1.2): while this many connections or more are in
    # their handshake, a new client's first Initial is answered with a Retry (a
    # token, smaller than the Initial), and a connection starts only for an Initial
    # that brings a token back from its own address. 0: always.
    retry_above: int = 64
    # Seconds a Retry token is good for (a client answers a Retry at once).
    retry_token_lifetime: float = 10.0


class RetryTokens:
    """The Retry tokens of one listener (RFC 9000 8.1.2): a client that brings one back
    receives at the address it claims.

    A token is the time it was issued, the client's original destination
    connection ID and the Retry's source connection ID, with an HMAC-SHA256 (cut
    to 16 bytes) over them and the client's address under a key made at start:
    checking one costs a hash, so Initials with forged tokens cost little."""

    _HEAD = struct.Struct(">dB")
    _MAC = 16

    def __init__(self, key: bytes | None = None, lifetime: float = 10.0) -> None:
        self._key = key if key is not None else os.urandom(32)
        self.lifetime = lifetime

    def issue(self, addr: Any, original_cid: bytes, retry_cid: bytes, now: float) -> bytes:
        body = self._HEAD.pack(now, len(original_cid)) + original_cid + retry_cid
        return body + self._mac(addr, body)

    def check(self, addr: Any, token: bytes, destination_cid: bytes,
              now: float) -> bytes | None:  # fmt: skip
        """The client's original destination connection ID if `token` is one this
        listener issued to `addr` for a Retry from `destination_cid`, in its lifetime."""
        body, mac = token[: -self._MAC], token[-self._MAC :]
        if len(body) < self._HEAD.size or not hmac.compare_digest(mac, self._mac(addr, body)):
            return None
        issued, length = self._HEAD.unpack_from(body)
        original = body[self._HEAD.size : self._HEAD.size + length]
        if body[self._HEAD.size + length :] != destination_cid or not (
            0 <= now - issued <= self.lifetime
        ):
            return None
        return original

    def _mac(self, addr: Any, body: bytes) -> bytes:
        where = f"{addr[0]} {addr[1]} ".encode()
        return hmac.new(self._key, where + body, hashlib.sha256).digest()[: self._MAC]


@implementer(IGameStreamWire)
class GameTransportSession:
    """One browser's game session over WebTransport: a `GameStream` (token first, then
    room messages both ways) on a session's stream and datagrams; the stream session's
    `IStreamPeer` on the match's host."""

    def __init__(self, connection: _Connection, session_id: int, client: str) -> None:
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


# The reasons a connection is closed by a limit of its own, and counted under: over
# its receive budget; no session opened within the token timeout.
RECEIVE_BUDGET = "receive_budget"
NO_SESSION = "no_session"


class BoundedQuicConnection(QuicConnection):
    """qh3's server connection, holding no more of what its peer sent than vinom's
    budget (module docstring, "Receive budget").

    qh3 keeps a stream's data from the first byte not yet read up to the highest
    offset received, zero-filling any gap, and doubles a stream's and the
    connection's window each time that highest offset passes half of it, or the
    peer says it is blocked at it: a peer sending a few bytes just below the window
    each round trip makes it hold twice as much each time. Here the windows slide
    instead: a stream's is what was read of it plus `stream_budget`, the
    connection's what was read of all of them plus `budget`, each raised (by qh3's
    own MAX_STREAM_DATA and MAX_DATA frames) once it can grow by half a budget,
    never otherwise; the limits on streams opened stay where they start (qh3
    doubles them too). And every STREAM and CRYPTO frame is checked before qh3
    takes it: one beyond its windows, or that would leave more than `stream_budget`
    bytes unread on its stream or `budget` on all of them, or carry an epoch's
    handshake data past `stream_budget`, closes the connection with
    FLOW_CONTROL_ERROR (CRYPTO_BUFFER_EXCEEDED for a CRYPTO frame) and sets
    `over_budget`, and qh3 never holds it.

    The frames' layout is RFC 9000's (19.6, 19.8, 19.12, 19.13), read before qh3
    reads it; what qh3 keeps is read through its streams' `receiver.starting_offset()`
    and `receiver.highest_offset` and its `_local_max_*` limits; its packet writer is
    called with its doubling rule's input (the highest offsets, the data and streams
    used) hidden, as qh3's 1.x line has them (their presence is checked when this
    module loads)."""

    def __init__(self, *, stream_budget: int, budget: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream_budget = stream_budget
        self.budget = budget
        # Why the connection was closed for holding too much, once it was.
        self.over_budget: str | None = None
        # A STREAM frame was taken since the flag was last cleared (then HTTP/3 may
        # hold part of a frame: `_Connection` checks it).
        self.stream_data = False

    @staticmethod
    def configure(configuration: QuicConfiguration, stream_budget: int, budget: int) -> None:
        """Start a connection's windows at the budget."""
        configuration.max_stream_data = stream_budget
        configuration.max_data = budget

    def held(self) -> int:
        """The bytes received and not read on all the connection's streams (qh3 keeps
        each stream's from its first unread byte to its highest offset)."""
        return sum(stream.receiver.highest_offset - stream.receiver.starting_offset()
                   for stream in self._streams.values())  # fmt: skip

    def _handle_stream_frame(self, context: QuicReceiveContext, frame_type: int,
                             buf: Buffer) -> None:  # fmt: skip
        start = buf.tell()
        try:
            stream_id = buf.pull_uint_var()
            offset = buf.pull_uint_var() if frame_type & 4 else 0
            length = buf.pull_uint_var() if frame_type & 2 else buf.capacity - buf.tell()
        except BufferReadError:
            stream_id = None  # malformed: qh3's own reading refuses it
        buf.seek(start)
        if stream_id is not None:
            self._check_stream(frame_type, stream_id, offset + length)
        self.stream_data = True
        super()._handle_stream_frame(context, frame_type, buf)
        if stream_id is not None and (stream := self._streams.get(stream_id)) is not None:
            # qh3 looks at a stream's window again only when its highest offset
            # grows; a frame filling a gap moves what was read, and so the window.
            self._streams_dirty_limits.add(stream)

    def _check_stream(self, frame_type: int, stream_id: int, end: int) -> None:
        if stream_id in self._streams_finished:
            return  # a late resend on a stream qh3 has done with: it ignores it
        stream = self._streams.get(stream_id)
        read = highest = 0
        window = self.stream_budget  # a new stream's (`configure`)
        if stream is not None:
            read, highest = stream.receiver.starting_offset(), stream.receiver.highest_offset
            window = stream.max_stream_data_local or window
        if end <= highest:
            return  # nothing more to hold than now
        more = end - highest
        connection = self._local_max_data
        if (end > min(window, read + self.stream_budget)
                or connection.used + more > connection.value
                or self.held() + more > self.budget):  # fmt: skip
            self._refuse(frame_type, QuicErrorCode.FLOW_CONTROL_ERROR)

    def _handle_crypto_frame(self, context: QuicReceiveContext, frame_type: int,
                             buf: Buffer) -> None:  # fmt: skip
        start = buf.tell()
        try:
            end = buf.pull_uint_var() + buf.pull_uint_var()
        except BufferReadError:
            end = 0
        buf.seek(start)
        # All of an epoch's handshake data, not only what is unread: qh3's TLS keeps
        # what it was given until a whole message (up to 16 MiB, as it claims) came.
        if end > self.stream_budget:
            self._refuse(frame_type, QuicErrorCode.CRYPTO_BUFFER_EXCEEDED)
        super()._handle_crypto_frame(context, frame_type, buf)

    def _refuse(self, frame_type: int, error_code: int) -> None:
        self.over_budget = RECEIVE_BUDGET
        raise QuicConnectionError(error_code=error_code, frame_type=frame_type,
                                  reason_phrase="over the receive budget")  # fmt: skip

    def _handle_data_blocked_frame(self, context: QuicReceiveContext, frame_type: int,
                                   buf: Buffer) -> None:  # fmt: skip
        # qh3 doubles the connection's window when a peer says it is blocked; the
        # window slides with what was read here, and the hint changes nothing.
        buf.pull_uint_var()

    def _handle_stream_data_blocked_frame(self, context: QuicReceiveContext, frame_type: int,
                                          buf: Buffer) -> None:  # fmt: skip
        # As DATA_BLOCKED, for a stream's window (qh3 would double it); a stream
        # this end only sends on is an error (RFC 9000 19.13).
        stream_id = buf.pull_uint_var()
        buf.pull_uint_var()
        self._assert_stream_can_receive(frame_type, stream_id)
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._streams_dirty_limits.add(stream)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """qh3's packets, the windows they raise slid to what was read plus the budget.

        qh3 writes MAX_DATA and MAX_STREAM_DATA where a window moved, doubling one
        whose highest offset (a stream's) or data used (the connection's) has passed
        half of it: here the windows are moved first, and those inputs hidden while it
        writes (nothing is received meanwhile)."""
        limit = self._local_max_data
        # Counting what is held walks every stream: only where the window may move.
        if limit.used + self.budget - limit.value >= self.budget // 2:
            wanted = limit.used - self.held() + self.budget
            if wanted - limit.value >= self.budget // 2:
                limit.value = wanted
        hidden = []
        for stream in self._streams_dirty_limits:
            receiver = stream.receiver
            if stream.max_stream_data_local:  # 0: a stream only this end sends on
                wanted = receiver.starting_offset() + self.stream_budget
                if wanted - stream.max_stream_data_local >= self.stream_budget // 2:
                    stream.max_stream_data_local = wanted
            hidden.append((receiver, receiver.highest_offset))
            receiver.highest_offset = 0
        # And the limits on streams opened stay qh3's first (100 bidirectional, 103
        # unidirectional, for the connection's life): qh3 doubles them on the
        # number ever opened, however many are closed, and a game session needs two.
        limits = (limit, self._local_max_streams_bidi, self._local_max_streams_uni)
        used = [each.used for each in limits]
        for each in limits:
            each.used = 0
        closing = self._close_pending
        try:
            datagrams = super().datagrams_to_send(now)
        finally:
            for each, value in zip(limits, used, strict=True):
                each.used = value
            for receiver, highest in hidden:
                receiver.highest_offset = highest
        if closing and datagrams and self._network_paths:
            datagrams = self._within_3x(self._network_paths[0], datagrams)
        return datagrams

    @staticmethod
    def _within_3x(path: Any, datagrams: list[tuple[bytes, Any]]) -> list[tuple[bytes, Any]]:
        """The datagrams of a CONNECTION_CLOSE that fit 3x what an unvalidated address
        sent (RFC 9000 8.1); the rest are not sent. qh3 keeps that limit on every
        packet but this one: an Initial nobody answers would otherwise get its first
        flight and resends (3x) and the close on top."""
        if path.is_validated:
            return datagrams
        sent = path.bytes_sent - sum(len(data) for data, _ in datagrams)
        kept = []
        for data, addr in datagrams:
            if sent + len(data) > 3 * path.bytes_received:
                break
            sent += len(data)
            kept.append((data, addr))
        path.bytes_sent = sent
        return kept


class _Connection:
    """One QUIC connection: qh3's connection and HTTP/3 layer, its timer, its sessions."""

    def __init__(self, server: WebTransportServer, quic: BoundedQuicConnection, addr: Any,
                 client: str) -> None:  # fmt: skip
        self.server = server
        self.quic = quic
        self.h3 = H3Connection(quic, enable_webtransport=True)
        self.addr = addr
        self.client = client
        self.cids: set[bytes] = set()
        self.sessions: dict[int, GameTransportSession] = {}
        # Ended sessions whose close capsule waits for the browser to read to the end
        # of their stream: the capsule, and the call that sends it anyway.
        self.closing: dict[int, tuple[bytes, IDelayedCall]] = {}
        # The reactor's call that follows qh3's timer, and that timer.
        self._wake = WakeUp(server.clock, self._on_timer)
        self._timer_at: float | None = None
        self._closing: IDelayedCall | None = None
        self.ended = False
        # Closed by a limit of its own (counted once, `closed_by_limit`).
        self.counted = False
        # In its handshake (counted in the server's `handshakes` until it completes).
        self.handshaking = True
        # When a packet last came from the browser, and the call that pings it when it
        # has been quiet for a third of the idle timeout (`keep_alive`).
        self.last_heard = server.clock.seconds()
        self._keepalive: IDelayedCall | None = None
        # A session must open within the token timeout, or the connection goes: one
        # that only keeps itself alive (pings) would hold a slot for ever.
        self._session_deadline: IDelayedCall | None = server.clock.callLater(
            server.gate.config.token_timeout, self._no_session)  # fmt: skip
        # Bytes of messages handed to qh3 less the bytes of packets written since,
        # floored at 0: a lower bound on what qh3 holds unsent (module docstring).
        self.backlog = 0

    def receive(self, data: bytes, addr: Any, now: float) -> None:
        """A datagram of this connection: fed to qh3, its events handled; what it
        owes is sent when the batch it came in has been handled (`flush`)."""
        self.addr = addr
        self.last_heard = now
        quic = self.quic
        quic.receive_datagram(data, addr, now)
        self._process_events()
        if quic.stream_data or (quic.over_budget is not None and not self.counted):
            quic.stream_data = False
            self._check_held()
        self.flush()

    def _check_held(self) -> None:
        """Close the connection, counted, if it holds more than its budget: qh3
        refused a frame (`BoundedQuicConnection`), or HTTP/3 holds more of frames not
        yet whole than a stream may (it keeps them until they are)."""
        quic = self.quic
        if quic.over_budget is None and not self.ended:
            h3_streams = getattr(self.h3, "_stream", {})
            if sum(len(stream.buffer) for stream in h3_streams.values()) > quic.stream_budget:
                quic.over_budget = RECEIVE_BUDGET
                quic.close(error_code=ErrorCode.H3_EXCESSIVE_LOAD,
                           reason_phrase="over the receive budget")  # fmt: skip
        if quic.over_budget is not None and not self.counted:
            self.counted = True
            self.server.closed_by_limit(quic.over_budget)

    def flush(self) -> None:
        """Transmit now, or once the batch of datagrams being handled is done: what
        the connection owes for all of it then leaves in as few packets as it can
        (say the acknowledgement of a move with the state that shows it)."""
        server = self.server
        if server.batching:
            server.dirty.add(self)
            return
        self.transmit()
        for session in list(self.sessions.values()):
            session.check_backlog()

    def transmit(self) -> None:
        if self.ended:
            return
        server = self.server
        now = server.clock.seconds()
        send = server.sender()
        if send is not None:
            written = 0
            for data, addr in self.quic.datagrams_to_send(now):
                written += len(data)
                try:
                    send(data, addr)
                except OSError:
                    server.send_errors += 1
            self.backlog = max(0, self.backlog - written)
        self._arm(self.quic.get_timer(), now)
        self._process_events()

    def _arm(self, timer_at: float | None, now: float) -> None:
        """Keep the reactor's call at or before qh3's timer (`WakeUp`). A call due
        earlier than the timer is kept (it finds nothing due and arms again: qh3's
        timer moves on nearly every packet); none is needed without a timer, but an
        armed one is left to fire."""
        self._timer_at = timer_at
        if timer_at is not None:
            self._wake.at(timer_at, now)

    def _on_timer(self) -> None:
        timer_at = self._timer_at
        now = self.server.clock.seconds()
        if timer_at is None or timer_at > now + _EARLY:
            # Fired before qh3's timer (moved on since it was armed): arm again.
            self._arm(timer_at, now)
            return
        try:
            # A call may fire a hair before its time: the timer is then due.
            self.quic.handle_timer(max(timer_at, now))
            self._process_events()
            self.transmit()
        except Exception:
            self.server.failed("a WebTransport connection's timer")

    def send_datagram(self, session_id: int, data: bytes) -> None:
        self.backlog += len(data)
        self.h3.send_datagram(session_id // 4, data)  # RFC 9297 2.1

    def send_stream(self, stream_id: int, data: bytes) -> None:
        self.backlog += len(data)
        self.quic.send_stream_data(stream_id, data)

    def abort(self, session_id: int, error_code: int, reason: str) -> None:
        """Close the connection at once, its session with it (no capsule: it would wait
        behind what the browser has not read)."""
        self.sessions.pop(session_id, None)
        if not self.ended:
            self.quic.close(error_code=error_code, reason_phrase=reason)
            self.transmit()

    def close_session(self, session_id: int, code: int, reason: str,
                      read_first: int | None = None) -> None:  # fmt: skip
        """End a session with a close capsule, then the connection (one session each).

        With `read_first` (the session's stream), the server's side of that stream
        ends now, behind the messages already sent, and the capsule waits until the
        browser ends its side (`peer_read`) or `close_wait` seconds."""
        if self.sessions.pop(session_id, None) is None or self.ended:
            return
        capsule = close_capsule(code, reason)
        if read_first is None:
            self._send_capsule(session_id, capsule)
            return
        with contextlib.suppress(Exception):  # the stream is already gone
            self.quic.send_stream_data(read_first, b"", end_stream=True)
        self.transmit()
        wait = self.server.clock.callLater(self.server.config.close_wait, self.peer_read,
                                           session_id)  # fmt: skip
        self.closing[session_id] = (capsule, wait)

    def peer_read(self, session_id: int) -> None:
        """The browser ended its side of a closing session's stream (or was waited for
        long enough): its close capsule goes."""
        pending = self.closing.pop(session_id, None)
        if pending is None or self.ended:
            return
        capsule, wait = pending
        if wait.active():
            wait.cancel()
        self._send_capsule(session_id, capsule)

    def _send_capsule(self, session_id: int, capsule: bytes) -> None:
        with contextlib.suppress(Exception):  # the stream is already gone
            self.h3.send_data(session_id, capsule, end_stream=True)
        self.transmit()
        # Closed once the capsule has had a moment to leave: a connection closed at
        # once would make the browser report a lost connection instead of the code.
        if not self.sessions and not self.closing and self._closing is None:
            self._closing = self.server.clock.callLater(self.server.close_delay,
                                                            self._close_if_idle)  # fmt: skip

    def close_now(self) -> None:
        if not self.ended:
            for session_id in list(self.closing):  # their codes, before the end
                self.peer_read(session_id)
            self.quic.close(error_code=0, reason_phrase="server stopping")
            self.transmit()

    def keep_alive(self) -> None:
        """Ping the browser whenever it has been quiet for a third of the idle timeout,
        while it has a session: its acknowledgement is a packet heard. In a quiet match
        neither end sends anything (a spectator's page never does), and QUIC's idle
        timeout would close the connection of a browser that is still there; one that
        is gone does not answer and is closed as before."""
        interval = self.server.config.idle_timeout / 3
        clock = self.server.clock
        if self.ended or not self.sessions:
            self._keepalive = None
            return
        now = clock.seconds()
        if now - self.last_heard >= interval - _EARLY:
            self.quic.send_ping(0)
            self.transmit()
            due = interval
        else:
            due = self.last_heard + interval - now
        self._keepalive = clock.callLater(due, self.keep_alive)

    def _no_session(self) -> None:
        """No session opened within the token timeout: the connection is closed, counted."""
        self._session_deadline = None
        if not self.ended:
            self.counted = True
            self.server.closed_by_limit(NO_SESSION)
            self.quic.close(error_code=ErrorCode.H3_NO_ERROR, reason_phrase="no session in time")
            self.transmit()

    def _close_if_idle(self) -> None:
        self._closing = None
        if not self.sessions and not self.closing and not self.ended:
            self.quic.close(error_code=0, reason_phrase="session closed")
            self.transmit()

    def _process_events(self) -> None:
        quic = self.quic
        while (event := quic.next_event()) is not None:
            self._quic_event(event)

    def _quic_event(self, event: QuicEvent) -> None:
        server = self.server
        if isinstance(event, ConnectionIdIssued):
            self.cids.add(event.connection_id)
            server.connections[event.connection_id] = self
        elif isinstance(event, ConnectionIdRetired):
            self.cids.discard(event.connection_id)
            server.connections.pop(event.connection_id, None)
        elif isinstance(event, ConnectionTerminated):
            self.terminated()
            return
        elif isinstance(event, HandshakeCompleted):
            server.handshake_done(self)
        for h3_event in self.h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, DatagramReceived):
            # Its context is the session's quarter stream ID (RFC 9297 2.1).
            session_id = event.flow_id * 4
            session = self.sessions.get(session_id)
            if session is None:
                closing = session_id in self.closing
                self.server.dropped("session_closing" if closing else "datagram_without_session")
            else:
                session.datagram(event.data)
        elif isinstance(event, WebTransportStreamDataReceived):
            session = self.sessions.get(event.session_id)
            if session is not None:
                session.stream_data(event.stream_id, event.data, event.stream_ended)
            elif event.session_id in self.closing:
                # What the browser sent while its session closed is not read; the end
                # of its side says it read the server's to the end.
                if event.stream_ended:
                    self.peer_read(event.session_id)
            else:
                self.server.dropped("stream_without_session")
        elif isinstance(event, HeadersReceived):
            self._request(event)
        elif isinstance(event, DataReceived):
            # The CONNECT stream's own data: the browser's close capsule, then its end.
            session = self.sessions.get(event.stream_id)
            if session is not None and event.stream_ended:
                self.sessions.pop(event.stream_id, None)
                session.closed_by_peer()
                self._close_if_idle()
            elif event.stream_ended and event.stream_id in self.closing:
                # The browser closed a session that was closing: no capsule to send.
                _capsule, wait = self.closing.pop(event.stream_id)
                if wait.active():
                    wait.cancel()
                self._close_if_idle()

    def _request(self, event: HeadersReceived) -> None:
        server = self.server
        headers = dict(event.headers)
        stream_id = event.stream_id
        if headers.get(b":method") != b"CONNECT" or headers.get(b":protocol") != b"webtransport":
            server.refused("not_webtransport")
            self._respond(stream_id, 400)
            return
        if headers.get(b":path", b"").partition(b"?")[0] != GAME_PATH:
            server.refused("not_found")
            self._respond(stream_id, 404)
            return
        origin = headers.get(b"origin")
        if origin is not None and not server.gate.origin_policy.allows(
            origin.decode("utf-8", "replace")
        ):
            server.refused("origin")
            self._respond(stream_id, ADMISSION_STATUS["origin"])
            return
        if self.sessions:
            server.refused("second_session")
            self._respond(stream_id, 429)
            return
        refusal = server.gate.admit(self.client)
        if refusal is not None:
            server.refused(refusal)
            self._respond(stream_id, ADMISSION_STATUS[refusal])
            return
        self.h3.send_headers(stream_id, [
            (b":status", b"200"),
            (b"sec-webtransport-http3-draft", b"draft02"),
        ])  # fmt: skip
        if self._session_deadline is not None:
            self._session_deadline.cancel()
            self._session_deadline = None
        self.sessions[stream_id] = GameTransportSession(self, stream_id, self.client)
        if self._keepalive is None:
            self.keep_alive()

    def _respond(self, stream_id: int, status: int) -> None:
        self.h3.send_headers(stream_id, [(b":status", str(status).encode())], end_stream=True)

    def terminated(self) -> None:
        if self.ended:
            return
        self.ended = True
        waits = [wait for _capsule, wait in self.closing.values()]
        self.closing = {}
        self._wake.cancel()
        for call in (self._closing, self._session_deadline, self._keepalive, *waits):
            if call is not None and call.active():
                call.cancel()
        self._closing = self._session_deadline = self._keepalive = None
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            session.closed_by_peer()
        self.server.forget(self)


class WebTransportServer(DatagramProtocol):
    """Serves WebTransport game sessions on one UDP port (see the module docstring).

    `gate` is the `/game` WebSocket factory: its token key, Origin policy, caps
    and limits apply here too. `credentials()` gives the certificate to present
    to each new connection (read each time: a development certificate renews).
    """

    noisy = False

    def __init__(
        self, gate: GameSocketFactory, credentials: Callable[[], Credentials], *,
        clock: IReactorTime, config: WebTransportConfig | None = None,
        close_delay: float = 0.1,
    ) -> None:  # fmt: skip
        self.gate = gate
        self.clock = clock
        self.config = config if config is not None else WebTransportConfig()
        self.close_delay = close_delay
        self._credentials = credentials
        self.connections: dict[bytes, _Connection] = {}
        self._open: set[_Connection] = set()
        self._per_client: Counter[str] = Counter()
        # Datagrams dropped before reaching a session, by reason; sessions refused or
        # closed by a limit, by reason; sessions opened on a game host.
        self.drops: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.sessions_opened = 0
        # Room messages through the sessions, by way and direction: stream_in,
        # stream_out, datagram_in, datagram_out.
        self.messages: Counter[str] = Counter()
        # Connections closed by a limit of their own, by reason (`receive_budget`).
        self.closes: Counter[str] = Counter()
        # Connections in their handshake now; Retry packets sent (`retry_above`).
        self.handshakes = 0
        self.retries = 0
        self._tokens = RetryTokens(lifetime=self.config.retry_token_lifetime)
        self.errors = 0
        self.send_errors = 0
        # While a batch of datagrams is handled, the connections that owe packets
        # (sent once the batch is done, `_Connection.flush`).
        self.batching = False
        self.dirty: set[_Connection] = set()
        self._reading: DatagramReader | None = None
        self._socket: socket.socket | None = None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def refused(self, reason: str) -> None:
        self.refusals[reason] += 1

    def stream_opened(self) -> None:
        self.sessions_opened += 1

    def dropped(self, reason: str) -> None:
        self.drops[reason] += 1

    def closed_by_limit(self, reason: str) -> None:
        self.closes[reason] += 1

    def handshake_done(self, connection: _Connection) -> None:
        if connection.handshaking:
            connection.handshaking = False
            self.handshakes -= 1

    def failed(self, what: str) -> None:
        self.errors += 1
        if self.errors <= _MAX_LOGGED:
            _log.failure("vinom: {what} failed", what=what)

    def close_all(self) -> None:
        """Close every connection now (the listener stops): each browser hears it at once
        rather than after its idle timeout."""
        for connection in list(self._open):
            connection.close_now()

    def startProtocol(self) -> None:
        # Datagrams go out through the port's socket (as vinom.hosting.udp's: Port.write
        # checks every address, and ours are the literals recvfrom gave), and those
        # waiting behind one that arrives are read and handled with it.
        sock = getattr(self.transport, "socket", None)
        self._socket = sock if isinstance(sock, socket.socket) else None
        if self._socket is not None:
            self._reading = DatagramReader(
                self._socket, self._handle_datagrams,
                read_size=int(getattr(self.transport, "maxPacketSize", READ_SIZE)),
                recvmmsg=isinstance(self.transport, GameHostPort),
            )  # fmt: skip
            # The game host's socket buffers: every browser's packets wait in one
            # socket while the reactor is busy, and a full one loses them (a lost
            # move waits for QUIC's loss timer).
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):  # else: the system's default
                    self._socket.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)

    def stopProtocol(self) -> None:
        self._socket = None
        if self._reading is not None:
            self._reading.close()
            self._reading = None
        for connection in list(self._open):
            connection.terminated()

    def sender(self) -> Callable[[bytes, Any], Any] | None:
        """What sends a datagram (`sendto` of the port's socket, else the port's `write`)."""
        if self._socket is not None:
            return self._socket.sendto
        if self.transport is not None:
            return self.transport.write
        return None

    def read_waiting(self) -> None:
        """Read and handle every datagram waiting (a `GameHostPort`'s doRead)."""
        if self._reading is not None:
            self._reading.read_waiting()

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        batch = [(data, addr)]
        if self._reading is not None:
            self._reading.read_more(batch)
        self._handle_datagrams(batch)

    def _handle_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> int:
        """Handle a batch of datagrams, then transmit once on each connection that owes
        packets for any of them; returns the bytes handled."""
        read = 0
        # Timed once, as the batch was read: every datagram in it had arrived by then.
        now = self.clock.seconds()
        self.batching = True
        try:
            for data, addr in datagrams:
                read += len(data)
                try:
                    self._datagram(data, addr, now)
                except Exception:
                    self.failed("a WebTransport datagram's handling")
        finally:
            self.batching = False
        dirty, self.dirty = self.dirty, set()
        for connection in dirty:
            try:
                connection.flush()
            except Exception:
                self.failed("a WebTransport connection's transmit")
        return read

    def _datagram(self, data: bytes, addr: Any, now: float) -> None:
        if data and data[0] & 0xC0 == 0x40:
            # A short header (the packets of an open connection): the destination
            # connection ID is the 8 bytes after the first, with no header to parse.
            connection = self.connections.get(data[1:9])
            if connection is not None:
                connection.receive(data, addr, now)
                return
        buf = Buffer(data=data)
        try:
            header = pull_quic_header(buf, host_cid_length=8)
        except ValueError:
            self.dropped("malformed")
            return
        connection = self.connections.get(header.destination_cid)
        if connection is not None:
            connection.receive(data, addr, now)
            return
        if header.packet_type == QuicPacketType.VERSION_NEGOTIATION:
            self.dropped("unknown_connection")
            return
        if header.version is not None and header.version not in _SUPPORTED_VERSIONS:
            self.dropped("unknown_version")
            if len(data) >= _SMALLEST_INITIAL and self.transport is not None:
                # Only to a full-size Initial: no amplification of a small spoofed packet.
                self.transport.write(encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=list(_SUPPORTED_VERSIONS),
                ), addr)  # fmt: skip
            return
        if header.packet_type != QuicPacketType.INITIAL or len(data) < _SMALLEST_INITIAL:
            self.dropped("unknown_connection")
            return
        original_cid, retry_cid = header.destination_cid, None
        if header.token:
            # A client answering a Retry: it receives at this address.
            original = self._tokens.check(addr, header.token, header.destination_cid, now)
            if original is None:
                self.dropped("invalid_token")
                return
            original_cid, retry_cid = original, header.destination_cid
        elif self.handshakes >= self.config.retry_above:
            self._retry(header.version, header.source_cid, header.destination_cid, addr, now)
            return
        client = client_key(str(addr[0]))
        if len(self._open) >= self.config.max_connections:
            self.dropped("server_full")
            return
        if self._per_client[client] >= self.config.max_connections_per_ip:
            self.dropped("too_many_connections")
            return
        certificate, chain, key = self._credentials()
        configuration = QuicConfiguration(
            is_client=False,
            alpn_protocols=H3_ALPN,
            max_datagram_frame_size=65536,
            idle_timeout=self.config.idle_timeout,
            certificate=certificate,
            certificate_chain=chain,
            private_key=key,
        )
        config = self.config
        BoundedQuicConnection.configure(configuration, config.stream_receive_budget,
                                        config.receive_budget)  # fmt: skip
        quic = BoundedQuicConnection(
            configuration=configuration,
            original_destination_connection_id=original_cid,
            retry_source_connection_id=retry_cid,
            stream_budget=config.stream_receive_budget, budget=config.receive_budget,
        )
        connection = _Connection(self, quic, addr, client)
        self._open.add(connection)
        self._per_client[client] += 1
        self.handshakes += 1
        for cid in (header.destination_cid, quic.host_cid):
            connection.cids.add(cid)
            self.connections[cid] = connection
        connection.receive(data, addr, now)

    def _retry(self, version: int | None, client_cid: bytes, original_cid: bytes, addr: Any,
               now: float) -> None:  # fmt: skip
        """Answer an Initial with a Retry: a token the client must bring back from this
        address before any state is kept or any handshake made for it."""
        sender = self.sender()
        if sender is None or version is None:
            return
        retry_cid = os.urandom(8)
        token = self._tokens.issue(addr, original_cid, retry_cid, now)
        self.retries += 1
        with contextlib.suppress(OSError):
            sender(encode_quic_retry(version=version, source_cid=retry_cid,
                                     destination_cid=client_cid,
                                     original_destination_cid=original_cid,
                                     retry_token=token), addr)  # fmt: skip

    def forget(self, connection: _Connection) -> None:
        """A connection ended: its IDs and its count go."""
        for cid in connection.cids:
            if self.connections.get(cid) is connection:
                del self.connections[cid]
        connection.cids.clear()
        self.handshake_done(connection)
        if connection in self._open:
            self._open.discard(connection)
            self._per_client[connection.client] -= 1
            if self._per_client[connection.client] <= 0:
                del self._per_client[connection.client]


def listen_webtransport(reactor: Any, port: int, server: WebTransportServer,
                        interface: str = "") -> IListeningPort:  # fmt: skip
    """Serve `server` on UDP `port` (0: any free port); raises CannotListenError.

    On a reactor that watches file descriptors (every POSIX reactor) the port is a
    `GameHostPort`, which reads the datagrams waiting in batches (one `recvmmsg` each
    on Linux, IPv4), as a game host's; elsewhere the reactor's own."""
    if not IReactorFDSet.providedBy(reactor):
        listening: IListeningPort = reactor.listenUDP(port, server, interface=interface,
                                                      maxPacketSize=READ_SIZE)  # fmt: skip
        return listening
    game_port = GameHostPort(port, server, interface, READ_SIZE, reactor)
    game_port.startListening()
    return game_port


_SUPPORTED_VERSIONS = tuple(QuicConfiguration(is_client=False).supported_versions)
# qh3's connection IDs are 8 bytes (QuicConfiguration.connection_id_length).
assert QuicConfiguration(is_client=False).connection_id_length == 8
# The receive budget is kept in qh3's STREAM, CRYPTO and *_BLOCKED frame handlers and
# its packet writer, which BoundedQuicConnection extends (the 1.x line has them: 2.x
# moved the connection into native code): a release without them would leave it
# unchecked, so the listener does not load on one.
for _handler in ("_handle_stream_frame", "_handle_crypto_frame", "_handle_data_blocked_frame",
                 "_handle_stream_data_blocked_frame", "_assert_stream_can_receive",
                 "_streams_dirty_limits", "_streams_finished", "_local_max_streams_bidi",
                 "_local_max_streams_uni", "_close_pending", "_network_paths"):  # fmt: skip
    if not hasattr(QuicConnection, _handler):
        raise ImportError(f"vinom needs qh3 1.x (its QuicConnection has no {_handler})")
