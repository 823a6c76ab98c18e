"""Test helper: autobahn WebSocket clients of the lobby and of the game session (`/game`),
over TLS trusting the dev certificate.

`connect_websocket` opens `wss://localhost:PORT/lobby` (TLS verified with
`optionsForClientTLS` against the server's certificate, as a browser
trusting the dev certificate would) and returns a `WebSocketPlayer` once
the opening handshake is done, or raises `HandshakeRefused` with autobahn's
reason (it names the HTTP status) when the server refuses it.
`connect_game_socket` opens `/game` and sends a connect token; its
`GameSocketPlayer.session` is the game client's `GameSession`, fed the
socket's binary messages (msgpack room messages), so a `BotDriver` plays it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from attrs import frozen
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from vinom.client.game import GameSession
from vinom.protocol.events import RELIABLE
from vinom.protocol.tokens import PublicToken

Frame = dict[str, Any]

# autobahn's client waits 1 s for the server's answer to its close and 1 s for the
# server to drop TCP after the handshake, then calls the close unclean. A loaded test
# process can stall that long; these tests judge the server, not its speed.
PATIENT: dict[str, Any] = {"closeHandshakeTimeout": 10, "serverConnectionDropTimeout": 10}


@frozen
class Closed:
    """How the WebSocket ended: autobahn's onClose arguments."""

    was_clean: bool
    code: int | None
    reason: str | None


class HandshakeRefused(Exception):
    """The server answered the opening handshake with an HTTP error."""


class ClosedBeforeFrame(Exception):
    """The connection closed before a frame a test waited for: how it closed, and
    the last frames it had received."""


class WebSocketPlayer(WebSocketClientProtocol):  # type: ignore[misc]
    """Records every text message as a frame; sends frames as text messages."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self.opened: Deferred[None] = Deferred()
        self.closed: Deferred[Closed] = Deferred()
        self._waiters: list[tuple[Callable[[Frame], bool], Deferred[Frame]]] = []

    def onOpen(self) -> None:
        self.opened.callback(None)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803
        assert not isBinary, payload
        frame = json.loads(payload)
        assert isinstance(frame, dict), payload
        self.frames.append(frame)
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(frame):
                self._waiters.remove(waiter)
                d.callback(frame)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N803
        closed = Closed(wasClean, code, reason)
        if not self.opened.called:
            self.opened.errback(HandshakeRefused(reason))
        # A frame that never came fails its waiter at once, saying how the socket
        # ended, instead of leaving the test to its timeout.
        waiters, self._waiters = self._waiters, []
        for _predicate, d in waiters:
            d.errback(ClosedBeforeFrame(closed, self.frames[-5:]))
        if not self.closed.called:
            self.closed.callback(closed)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        # autobahn leaves this timer running after a drop; trial wants a clean reactor.
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None

    def send(self, frame: Frame) -> None:
        self.sendMessage(json.dumps(frame).encode(), isBinary=False)

    def when(self, predicate: Callable[[Frame], bool]) -> Deferred[Frame]:
        """Fires with the first frame (already received or later) matching `predicate`."""
        for frame in self.frames:
            if predicate(frame):
                d: Deferred[Frame] = Deferred()
                d.callback(frame)
                return d
        d = Deferred()
        self._waiters.append((predicate, d))
        return d

    def of_type(self, kind: str) -> list[Frame]:
        return [f for f in self.frames if f["type"] == kind]

    async def request(self, frame: Frame) -> Frame:
        """Send a frame with an `id` and wait for the frame that echoes it."""
        request_id = frame["id"]
        reply = self.when(lambda f: f.get("id") == request_id)
        self.send(frame)
        return await reply


async def connect_websocket(
    case: TestCase,
    port: int,
    trust: str,
    *,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/lobby",
) -> WebSocketPlayer:
    """A WebSocket lobby client of the server on 127.0.0.1:`port`; dropped at cleanup."""
    with open(trust, "rb") as f:
        authority = Certificate.loadPEM(f.read())
    factory = WebSocketClientFactory(f"wss://localhost:{port}{path}", origin=origin,
                                     headers=headers, reactor=reactor)  # fmt: skip
    factory.setProtocolOptions(**PATIENT)
    factory.protocol = WebSocketPlayer
    endpoint = SSL4ClientEndpoint(
        reactor, "127.0.0.1", port, optionsForClientTLS("localhost", trustRoot=authority)
    )
    player: WebSocketPlayer = await endpoint.connect(factory)
    case.addCleanup(_drop, player)
    await player.opened
    return player


def _drop(player: WebSocketPlayer | GameSocketPlayer) -> Deferred[Closed] | None:
    # Only if a test left the connection open: trial must see a clean reactor.
    if player.closed.called:
        return None
    player.dropConnection(abort=True)
    return player.closed


class _SocketLink:
    """What a `GameSession` sends through, here a `/game` WebSocket instead of UDP."""

    def __init__(self, player: GameSocketPlayer, player_id: str) -> None:
        self.player = player
        self.session = SimpleNamespace(player_id=player_id)
        self.closed: Deferred[str] = Deferred()

    def send(self, channel: int, data: bytes) -> None:
        self.player.sendMessage(data, isBinary=True)

    def set_ack_delays(self, own_s: float, peer_s: float) -> None:
        """A ticking room's welcome: a stream has no acks to time."""

    def disconnect(self) -> Deferred[None]:
        if self.player.state == WebSocketClientProtocol.STATE_OPEN:
            self.player.sendClose(1000)
        done: Deferred[None] = Deferred()
        self.closed.addBoth(lambda result: (done.callback(None), result)[1])
        return done


class GameSocketPlayer(WebSocketClientProtocol):  # type: ignore[misc]
    """A player on `/game`: sends its token first, then feeds every binary message to a
    `vinom.client.game.GameSession` (so that `BotDriver` plays it as a UDP session)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: Deferred[None] = Deferred()
        self.closed: Deferred[Closed] = Deferred()
        self.session = GameSession()
        self.text_messages: list[bytes] = []

    def attach(self, token: PublicToken, first: bytes | None = None) -> None:
        """Link the session to this socket and send the token (or `first` instead)."""
        link = _SocketLink(self, token.player_id)
        self.session.protocol = link  # type: ignore[assignment]
        def socket_closed(closed: Closed) -> Closed:
            link.closed.callback(str(closed.code))
            return closed

        self.closed.addCallback(socket_closed)
        link.closed.addCallback(self.session.session_closed, link)
        self.sendMessage(token.request_packet() if first is None else first, isBinary=True)

    def onOpen(self) -> None:
        self.opened.callback(None)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803
        if isBinary:
            self.session.message_received(RELIABLE, payload)
        else:
            self.text_messages.append(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N803
        closed = Closed(wasClean, code, reason)
        if not self.opened.called:
            self.opened.errback(HandshakeRefused(reason))
        if not self.closed.called:
            self.closed.callback(closed)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None


async def connect_game_socket(
    case: TestCase,
    port: int,
    trust: str,
    token: PublicToken | None,
    *,
    origin: str | None = None,
    first: bytes | None = None,
    protocol: type[GameSocketPlayer] | None = None,
    headers: dict[str, str] | None = None,
) -> GameSocketPlayer:
    """A player on `wss://localhost:PORT/game` that has sent its token (or `first`, or
    nothing when both are None); dropped at cleanup. `protocol` is the player's class
    (a `GameSocketPlayer` by default); `headers` go with the upgrade request."""
    with open(trust, "rb") as f:
        authority = Certificate.loadPEM(f.read())
    factory = WebSocketClientFactory(f"wss://localhost:{port}/game", origin=origin,
                                     headers=headers, reactor=reactor)  # fmt: skip
    factory.setProtocolOptions(**PATIENT)
    factory.protocol = GameSocketPlayer if protocol is None else protocol
    endpoint = SSL4ClientEndpoint(
        reactor, "127.0.0.1", port, optionsForClientTLS("localhost", trustRoot=authority)
    )
    player: GameSocketPlayer = await endpoint.connect(factory)
    case.addCleanup(_drop, player)
    await player.opened
    if token is not None:
        player.attach(token, first)
    elif first is not None:
        player.sendMessage(first, isBinary=True)
    return player
