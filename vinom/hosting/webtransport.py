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
codes); what is WebTransport's is its framing and its datagrams
(vinom.hosting.webtransport_session).

Receive budget and address validation: vinom.hosting.quic.


Nothing raises out of `datagramReceived`: a datagram that is not QUIC, names
no connection, or would start one past the caps is dropped and counted in
`drops` by reason; what qh3 refuses inside a connection closes that
connection (its own errors), and a failure in vinom's handling is logged (at
most `_MAX_LOGGED` times) and counted in `errors`.

Security: a QUIC connection costs a handshake before anything else, and new
connections beyond `max_connections` in all or `max_connections_per_ip` per
address are not started (their Initial packets are dropped, counted); while
many are in their handshake, new ones must validate their address first
(vinom.hosting.quic). A connection must open
its session within the token timeout (else it is closed, counted `no_session`:
pings alone would keep it for ever); a session must present a valid token
within the token timeout and respect the message rate of the WebSocket path,
else it is closed; a connection whose session closed is closed too, so nothing
outlives its player.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from attrs import frozen
from qh3._hazmat import Buffer
from qh3.h3.connection import H3_ALPN, ErrorCode, H3Connection
from qh3.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
)
from qh3.quic.packet import (
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from qh3.tls import load_pem_private_key, load_pem_x509_certificates
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorFDSet, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from vinom.hosting.datagrams import DatagramReader, GameHostPort
from vinom.hosting.game_stream import (
    ADMISSION_STATUS,
)
from vinom.hosting.quic import RECEIVE_BUDGET, BoundedQuicConnection, RetryTokens
from vinom.hosting.udp import SOCKET_BUFFER
from vinom.hosting.websocket import GameSocketFactory
from vinom.hosting.webtransport_session import GameTransportSession, close_capsule
from vinom.net.addresses import client_key
from vinom.net.wakeup import WakeUp

__all__ = [
    "GAME_PATH",
    "Credentials",
    "WebTransportConfig",
    "WebTransportServer",
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

# (the certificate, its chain, its private key) as qh3 takes them (`load_credentials`).
Credentials = tuple[Any, list[Any], Any]


def load_credentials(chain: bytes, private_key: bytes) -> Credentials:
    """The credentials in a PEM certificate chain (the leaf first) and a PEM private key."""
    certificates = load_pem_x509_certificates(chain)
    return certificates[0], certificates[1:], load_pem_private_key(private_key)


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
    # the server has not read (vinom.hosting.quic, "Receive budget"): bytes ahead of what
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


# The reason a connection without a session is closed, and counted under.
NO_SESSION = "no_session"


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
        # floored at 0: a lower bound on what qh3 holds unsent (vinom.hosting.webtransport_session).
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
