"""The lobby over WebSocket, for browsers: `/lobby`, a `LobbyProtocol` on vinom's framing.

Browsers cannot open raw TLS lines, so the lobby is also served at
`wss://HOST:7380/lobby` (docs/web.md). Each WebSocket text message is one
lobby frame (one JSON object, no newline) and each frame the lobby writes
goes out as one text message; everything else (the player's state, the
frame rate limit, the error count, timeouts, admission caps, draining, the
output gate that drops a peer that does not read) is the same
`LobbyConnection`, `LobbyProtocol` and `LobbyFactory` the TLS lobby uses.

`LobbySocketResource` is `/lobby` on twisted.web: it checks the upgrade
(vinom.net.upgrade: RFC 6455's headers; a page of another origin is refused
with HTTP 403, counted and logged at a limited rate; a request with no
Origin, from a program rather than a browser, is let in), answers 101 and
hands the connection to a `WebSocketLobbyProtocol`, whose frames are
`ServerFrames` (vinom.net.websocket, sans-I/O, the `/game` socket's too):
a message over the lobby's `max_frame_bytes` fails the connection with close
code 1009 at its header, text that is not UTF-8 with 1007, a frame RFC 6455
forbids with 1002; a binary message is answered `malformed_json`. The
opening handshake's time is the web server's request timeout (the lobby's
hello timeout); after a close frame the peer's is awaited for the lobby's
`close_timeout`, as a TLS close is.
"""

from __future__ import annotations

from typing import Final

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from vinom.lobby import errors
from vinom.lobby.codec import FrameError
from vinom.lobby.server import LobbyFactory, LobbyProtocol
from vinom.net.limits import LogLimiter
from vinom.net.origins import OriginPolicy
from vinom.net.upgrade import accept_upgrade, client_address, refusal, refuse
from vinom.net.websocket import (
    CLOSED,
    OPEN,
    CloseReceived,
    Ping,
    ProtocolFailure,
    ServerFrames,
    TextMessage,
)

__all__ = ["LobbySocketResource", "WebSocketLobbyFactory", "WebSocketLobbyProtocol"]

# Origin refusals logged at most this many at once and this many per second after that.
REFUSAL_LOG_BURST = 10
REFUSAL_LOG_RATE = 1.0
# Close code of a normal close (RFC 6455, 7.4.1): the lobby said its last frame.
CLOSE_NORMAL: Final = 1000

_BINARY_REFUSED = FrameError(
    errors.MALFORMED_JSON, "a frame must be a text message (UTF-8 JSON), not a binary one"
)


class WebSocketLobbyProtocol(LobbyProtocol):
    """One WebSocket lobby connection: text messages to its `LobbyConnection`, frames
    back as text messages (the TLS lobby's `LobbyProtocol`, framed)."""

    messages = True

    def __init__(self, lobby: LobbyFactory, peer_host: str) -> None:
        super().__init__(lobby, peer_host)
        self._frames = ServerFrames(lobby.config.max_frame_bytes)

    def dataReceived(self, data: bytes) -> None:
        frames = self._frames
        for event in frames.receive(data):
            connection = self.connection
            if isinstance(event, TextMessage):
                if connection is not None and frames.state is OPEN:
                    connection.data_received(event.text.encode("utf-8"))
            elif type(event) is bytes:
                if connection is not None and frames.state is OPEN:
                    connection.message_refused(_BINARY_REFUSED)
            elif isinstance(event, Ping):
                self.transport.write(event.reply)
            elif isinstance(event, CloseReceived):
                # Our close answered, or the peer's echoed: the closing handshake is done.
                self.transport.write(event.reply)
                super().close()
            elif isinstance(event, ProtocolFailure):
                # 1009, 1007 or 1002, written; the lobby's close bounds the wait for the
                # peer's answer, as for a close of its own.
                self.transport.write(event.reply)
                if connection is not None:
                    connection.close()
                else:
                    super().close()

    def send_frame(self, data: bytes) -> None:
        # One frame per call; the newline that ends it on TCP is the message's end here.
        if self._frames.state is OPEN:
            self.transport.write(self._frames.text(data[:-1] if data.endswith(b"\n") else data))
        # Else the close frame went: what follows is lost with the connection, as bytes
        # written to a closing TCP socket are.

    def close(self) -> None:
        if self._output is not None:
            self._output.flush()  # what is held goes before the close frame
        frame = self._frames.close(CLOSE_NORMAL)
        if frame:
            self.transport.write(frame)
        elif self._frames.state is CLOSED:
            super().close()


class WebSocketLobbyFactory:
    """Builds the WebSocket lobby's protocols for one `LobbyFactory`; holds the Origin
    policy, the trusted proxies' count and the Origin refusals' count."""

    log = Logger()

    def __init__(
        self,
        lobby: LobbyFactory,
        origin_policy: OriginPolicy,
        *,
        reactor: IReactorTime,
        trusted_proxies: int = 0,
    ) -> None:
        self.lobby = lobby
        self.origin_policy = origin_policy
        self.trusted_proxies = trusted_proxies
        self.origins_refused = 0
        self._refusal_log = LogLimiter(REFUSAL_LOG_RATE, REFUSAL_LOG_BURST, reactor)

    def build_protocol(self, peer_host: str) -> WebSocketLobbyProtocol:
        """The protocol of an upgrade accepted from `peer_host` (the address it counts as)."""
        return WebSocketLobbyProtocol(self.lobby, peer_host)

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


class LobbySocketResource(Resource):
    """`/lobby` on twisted.web: the upgrade checked and answered (vinom.net.upgrade),
    its connection handed to a `WebSocketLobbyProtocol` of `factory`."""

    isLeaf = True

    def __init__(self, factory: WebSocketLobbyFactory) -> None:
        super().__init__()
        self.factory = factory

    def render_GET(self, request: Request) -> bytes | int:
        factory = self.factory
        address = client_address(request, factory.trusted_proxies)
        if address is None:
            return NOT_DONE_YET  # the connection went while the request was read
        refused = refusal(request, factory.origin_policy)
        if refused is not None:
            if refused.reason == "origin":
                factory.origin_refused(request.getHeader("origin") or "", address)
            return refuse(request, refused)
        accept_upgrade(request, factory.build_protocol(address))
        return NOT_DONE_YET

