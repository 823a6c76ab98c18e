"""The lobby over WebSocket, for browsers: a thin autobahn adapter around `LobbyConnection`.

Browsers cannot open raw TLS lines, so the lobby is also served at
`wss://HOST:7380/lobby` (docs/web.md). Each WebSocket text message is one
lobby frame (one JSON object, no newline) and each frame the lobby writes
goes out as one text message; everything else (the player's state, the
frame rate limit, the error count, timeouts, admission caps, draining) is
the same `LobbyConnection` and `LobbyFactory` the TLS lobby uses.

`WebSocketLobbyProtocol` is the `ILobbyWire` of one connection, as
`LobbyProtocol` is for TCP. `WebSocketLobbyFactory` builds them, holds the
Origin policy (`OriginPolicy`: a handshake from a page of another origin
is refused with HTTP 403, counted and logged at a limited rate; one with no
Origin, from a program rather than a browser, is let in) and sets
autobahn's own limits from the lobby's: messages and frames of at most
`max_frame_bytes` (a bigger one fails the connection with close code 1009),
no compression, the hello timeout for the opening handshake.

Each protocol writes through an `OutputGate` (vinom.lobby.output), as the
TLS lobby does: it takes the transport's producer slot from twisted.web's
HTTP channel, so a peer that does not read stops being served and is
dropped once more than `max_output_bytes` wait for it.

The lobby's timers run on the injected clock; autobahn's own (the opening
and closing handshake timeouts) run on txaio's loop, the global reactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from txaio.tx import make_logger
from zope.interface import implementer

from vinom.lobby import errors
from vinom.lobby.codec import FrameError
from vinom.lobby.connection import ILobbyWire, LobbyConnection
from vinom.lobby.output import OutputGate
from vinom.lobby.server import LobbyFactory
from vinom.lobby.timer import ConnectionTimer
from vinom.net.limits import LogLimiter
from vinom.net.origins import OriginPolicy, forwarded_client_address, peer_host_of

__all__ = [
    "WebSocketLobbyFactory",
    "WebSocketLobbyProtocol",
]

# Origin refusals logged at most this many at once and this many per second after that.
REFUSAL_LOG_BURST = 10
REFUSAL_LOG_RATE = 1.0
# Close code of a normal close (RFC 6455, 7.4.1): the lobby said its last frame.
CLOSE_NORMAL = 1000
# The opcode of a text frame (RFC 6455, 5.2).
_TEXT_OPCODE = 1

@implementer(ILobbyWire)
class WebSocketLobbyProtocol(WebSocketServerProtocol):
    """One WebSocket lobby connection: text messages to its `LobbyConnection`, frames back.

    The `LobbyConnection` is made when the opening handshake arrives (after
    the Origin check), so the lobby's admission and hello timeout start
    there; frames it writes before the handshake completes (a refusal,
    `too_many_connections`) wait for it, then go out first.
    """

    # autobahn logs every refused handshake and failed connection at info and warn:
    # a flood's worth of lines an attacker chooses. The lobby logs its own refusals
    # at a limited rate; from autobahn only errors (TLS failures) get through.
    log = make_logger(level="error")

    def __init__(self, owner: WebSocketLobbyFactory) -> None:
        super().__init__()
        # The factory, typed (autobahn reads `factory`, which buildProtocol sets too).
        self._owner = owner
        self.connection: LobbyConnection | None = None
        self._open = False
        self._before_open: list[bytes] = []
        self._close_when_open = False
        self._output: OutputGate | None = None
        self._peer_host = ""
        self._timer = ConnectionTimer(owner.lobby.clock, self._timed_out)

    # autobahn

    def connectionMade(self) -> None:
        super().connectionMade()
        self._output = self._owner.lobby.output_gate(
            self._send_text, lambda: self.connection, self._overflowed
        )
        # twisted.web's HTTP channel keeps the transport's producer slot after the
        # upgrade; the gate takes it, so a full write buffer pauses this connection.
        consumer = IConsumer(self.transport, None)
        if consumer is not None:
            consumer.unregisterProducer()
            consumer.registerProducer(self._output, True)

    def onConnect(self, request: ConnectionRequest) -> None:
        assert self.transport is not None
        peer_host = self._owner.client_address(peer_host_of(self.transport), request.headers)
        self._peer_host = peer_host
        origin = request.headers.get("origin")
        if origin is not None and not self._owner.origin_policy.allows(origin):
            self._owner.origin_refused(origin, peer_host)
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        self.connection = self._owner.lobby.new_connection(self, peer_host, messages=True)
        self.connection.connection_made()

    def onOpen(self) -> None:
        self._open = True
        held, self._before_open = self._before_open, []
        for frame in held:
            self._write_open(frame)
        if self._close_when_open:
            self.close()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803 (autobahn's name)
        if self.connection is None:
            return
        if isBinary:
            self.connection.message_refused(
                FrameError(
                    errors.MALFORMED_JSON,
                    "a frame must be a text message (UTF-8 JSON), not a binary one",
                )
            )
        else:
            self.connection.data_received(payload)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._output is not None:
            self._output.discard()
        super().connectionLost(reason)
        # autobahn leaves its close-handshake timer running when the peer drops the
        # connection mid-close; it would only find the connection closed.
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None
        if self.connection is not None:
            self.connection.connection_lost()
        self._timer.set(None)

    def sendCloseFrame(
        self, code: int | None = None, reasonUtf8: bytes | None = None, isReply: bool = False  # noqa: N803
    ) -> None:
        super().sendCloseFrame(code, reasonUtf8, isReply)
        # A close autobahn begins itself (1009, a message over the limit) is the
        # lobby's close too: bounded by its close_timeout, as the lobby's own are.
        if not isReply and self.connection is not None:
            self.connection.close()

    def _timed_out(self) -> None:
        if self.connection is not None:
            self.connection.timer_expired()

    # ILobbyWire

    def write(self, data: bytes) -> None:
        # One frame per call; the newline that ends it on TCP is the message's end here.
        frame = data[:-1] if data.endswith(b"\n") else data
        if not self._open:
            self._before_open.append(frame)
        else:
            self._write_open(frame)

    def close(self) -> None:
        if self._open:
            if self._output is not None:
                self._output.flush()  # what is held goes before the close frame
            if self.state == WebSocketServerProtocol.STATE_OPEN:
                self.sendClose(CLOSE_NORMAL)
        else:
            self._close_when_open = True

    def abort(self) -> None:
        self.dropConnection(abort=True)

    def dropConnection(self, abort: bool = False) -> None:
        # A transport does not close while a producer is registered.
        if self._output is not None:
            if abort:
                self._output.discard()
            else:
                self._output.flush()
            consumer = IConsumer(self.transport, None)
            if consumer is not None:
                consumer.unregisterProducer()
        super().dropConnection(abort)

    def pause_reading(self) -> None:
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resume_reading(self) -> None:
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def set_timeout(self, seconds: float | None) -> None:
        self._timer.set(seconds)

    def _write_open(self, frame: bytes) -> None:
        if self._output is not None:
            self._output.write(frame)
        else:
            self._send_text(frame)

    def _send_text(self, frame: bytes) -> None:
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            # One text frame. Not sendMessage: autobahn applies the incoming size limit
            # (`max_frame_bytes`) to what it sends too, and a `room_list` page or a
            # `room` of many players is longer than any frame a client may send.
            self.sendFrame(opcode=_TEXT_OPCODE, payload=frame)
        # Else the peer has begun to close (autobahn would raise): the frame is lost
        # with the connection, as bytes written to a closing TCP socket are.

    def _overflowed(self, held: int) -> None:
        self._owner.lobby.slow_reader_dropped(self._peer_host, held)
        self.dropConnection(abort=True)


class WebSocketLobbyFactory(WebSocketServerFactory):
    """Builds the WebSocket lobby's protocols for one `LobbyFactory`; holds the Origin policy."""

    log = Logger()
    noisy = False

    def __init__(
        self,
        lobby: LobbyFactory,
        origin_policy: OriginPolicy,
        *,
        reactor: IReactorTime,
        trusted_proxies: int = 0,
    ) -> None:
        super().__init__(server="vinom", reactor=reactor)
        self.lobby = lobby
        self.origin_policy = origin_policy
        self.trusted_proxies = trusted_proxies
        self.origins_refused = 0
        self._refusal_log = LogLimiter(REFUSAL_LOG_RATE, REFUSAL_LOG_BURST, lobby.clock)
        limit = lobby.config.max_frame_bytes
        options: dict[str, Any] = {
            "maxMessagePayloadSize": limit,
            "maxFramePayloadSize": limit,
            # Invalid UTF-8 is the lobby's to answer (malformed_json), as on TCP.
            "utf8validateIncoming": False,
            # Fail with a close frame (1009 for a message too big), not a bare drop.
            "failByDrop": False,
            "openHandshakeTimeout": lobby.config.hello_timeout,
            # A plain GET of /lobby is answered 426 Upgrade Required, not a status page.
            "webStatus": False,
            # The lobby pings its queued players itself.
            "autoPingInterval": 0,
            # A close the peer does not answer is aborted by the lobby after its
            # close_timeout (LobbyConnection.close). autobahn's own timer (1 s) falls on
            # a whole second of the clock (txaio's batched timer rounds the deadline
            # down), so it fired anywhere from 0 to 1 s after the close frame, sometimes
            # before match_found and the close frame had left the server's buffer: the
            # peer got a reset and no match.
            "closeHandshakeTimeout": 0,
            # The Origin is checked in onConnect, where a refusal can be a 403 and counted.
            "allowedOrigins": ["*"],
            "allowNullOrigin": True,
        }
        self.setProtocolOptions(**options)

    def buildProtocol(self, addr: IAddress | None) -> WebSocketLobbyProtocol:
        protocol = WebSocketLobbyProtocol(self)
        protocol.factory = self
        return protocol

    def client_address(self, peer_host: str, headers: Mapping[str, str]) -> str:
        """The address a connection counts as (`forwarded_client_address`)."""
        return forwarded_client_address(peer_host, headers, self.trusted_proxies)

    def origin_refused(self, origin: str, peer_host: str) -> None:
        """Count a handshake refused for its Origin; log it unless refusals come in a flood."""
        self.origins_refused += 1
        if not self._refusal_log.allow():
            return
        suppressed = self._refusal_log.take_suppressed()
        self.log.info(
            "refused a WebSocket lobby connection from {peer}: origin {origin} not allowed"
            + (" ({suppressed} more refusals not logged)" if suppressed else ""),
            peer=peer_host,
            origin=origin[:100],
            suppressed=suppressed,
        )
