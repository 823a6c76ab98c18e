"""`/game`'s WebSocket itself, as a peer or an attacker meets it on a real listener.

`GameSocketResource` on twisted.web over plain TCP on 127.0.0.1; the peers are
wsproto clients (an implementation independent of the server's framing) on
real sockets, or raw bytes where an attacker writes what no client would: a
request that is no upgrade, an unmasked frame, a header that claims a
gigabyte. No token is sent: what is tested is the socket, before any match.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
)

from tests.support.waiting import until
from vinom.hosting.websocket import GameSocketConfig, GameSocketFactory, GameSocketResource
from vinom.net.origins import OriginPolicy
from vinom.protocol.config import ProtocolConfig


class _NoMatches:
    def host_of(self, match_id: str) -> None:
        return None


class WsprotoPeer(Protocol):
    """A `/game` client on wsproto: what it received, as wsproto's events; it answers
    pings unless told not to."""

    def __init__(self, answer_pings: bool = True) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Any] = []
        self.raw = b""
        self.answer_pings = answer_pings
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.ws.send(Request(host="127.0.0.1", target="/game")))

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self.ws.receive_data(data)
        for event in self.ws.events():
            self.events.append(event)
            answer = self.answer_pings if isinstance(event, Ping) else (
                isinstance(event, CloseConnection) and self.ws.state.name != "CLOSED"
            )  # fmt: skip
            if answer:
                self.send(event.response())

    def send(self, event: Any) -> None:
        assert self.transport is not None
        self.transport.write(self.ws.send(event))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class GameSocketWireTests(TestCase):
    timeout = 30

    def serve(self, **config: Any) -> GameSocketFactory:
        self.game = GameSocketFactory(
            _NoMatches(), ProtocolConfig(token_key=b"k" * 32), OriginPolicy(("*",)),
            reactor=reactor, config=GameSocketConfig(**config),
        )  # fmt: skip
        root = Resource()
        root.putChild(b"game", GameSocketResource(self.game))
        site = Site(root)
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        return self.game

    async def connect(self, peer: Protocol) -> Any:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        connected = await connectProtocol(endpoint, peer)
        self.addCleanup(self.drop, connected)
        return connected

    def drop(self, peer: Any) -> Deferred[None] | None:
        if peer.lost.called:
            return None
        peer.transport.abortConnection()
        return peer.lost  # type: ignore[no-any-return]

    async def open_peer(self, answer_pings: bool = True) -> WsprotoPeer:
        peer = await self.connect(WsprotoPeer(answer_pings))
        await until(lambda: peer.of(AcceptConnection), "the upgrade accepted")
        return peer  # type: ignore[no-any-return]

    async def test_a_request_that_is_no_upgrade_is_answered_426(self) -> None:
        self.serve()
        peer = await self.connect(_Raw(b"GET /game HTTP/1.1\r\nHost: x\r\n\r\n"))
        await until(lambda: b"\r\n\r\n" in peer.raw, "an answer")
        self.assertTrue(peer.raw.startswith(b"HTTP/1.1 426 "), peer.raw)
        self.assertEqual(self.game.open_sockets, 0)

    async def test_a_wsproto_client_is_accepted_and_pinged_and_stays(self) -> None:
        self.serve(ping_interval=0.1, ping_timeout=0.3, token_timeout=60)
        peer = await self.open_peer()
        await until(lambda: len(peer.of(Ping)) >= 5, "five pings")
        self.assertFalse(peer.lost.called)
        self.assertEqual(self.game.open_sockets, 1)

    async def test_a_client_that_answers_no_ping_is_dropped(self) -> None:
        """Liveness (docs/web.md): a ping every `ping_interval`; one unanswered for
        `ping_timeout` drops the socket, without a close frame."""
        self.serve(ping_interval=0.1, ping_timeout=0.3, token_timeout=60)
        peer = await self.open_peer(answer_pings=False)
        await peer.lost
        self.assertGreaterEqual(len(peer.of(Ping)), 1)
        self.assertEqual(peer.of(CloseConnection), [])
        await until(lambda: self.game.open_sockets == 0, "the socket released")

    async def test_the_token_timeout_closes_with_4002_and_the_handshake_completes(self) -> None:
        self.serve(token_timeout=0.2)
        peer = await self.open_peer()
        await peer.lost
        [closed] = peer.of(CloseConnection)
        self.assertEqual((closed.code, closed.reason), (4002, "no token in time"))
        self.assertEqual(self.game.refusals["token_timeout"], 1)

    async def test_an_unmasked_frame_fails_the_socket_with_1002(self) -> None:
        self.serve(token_timeout=60)
        peer = await self.open_peer()
        assert peer.transport is not None
        peer.transport.write(b"\x82\x03abc")  # no mask: only a server may send that
        await peer.lost
        [closed] = peer.of(CloseConnection)
        self.assertEqual(closed.code, 1002)

    async def test_a_header_claiming_a_gigabyte_fails_the_socket_with_1009_at_once(self) -> None:
        """The frame is refused at its header: the server closes without waiting for
        (or holding) its payload."""
        self.serve(token_timeout=60)
        peer = await self.open_peer()
        assert peer.transport is not None
        peer.transport.write(b"\x82\xff" + (1 << 30).to_bytes(8, "big") + b"mask" + b"x" * 1000)
        await peer.lost
        [closed] = peer.of(CloseConnection)
        self.assertEqual(closed.code, 1009)
        self.assertEqual(peer.of(BytesMessage), [])

    async def test_an_upgrade_without_a_valid_key_is_refused(self) -> None:
        self.serve()
        peer = await self.connect(_Raw(
            b"GET /game HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n"
        ))  # fmt: skip
        await until(lambda: b"\r\n\r\n" in peer.raw, "an answer")
        self.assertTrue(peer.raw.startswith(b"HTTP/1.1 400 "), peer.raw)

    async def test_a_wrong_origin_is_refused_with_403_as_wsproto_sees_it(self) -> None:
        self.serve()
        self.game.origin_policy = OriginPolicy(("https://games.example",))
        peer = WsprotoPeer()
        peer.connectionMade = lambda: peer.transport.write(  # type: ignore[method-assign,union-attr]
            peer.ws.send(Request(host="x", target="/game",
                                 extra_headers=[(b"origin", b"https://evil.example")]))
        )  # fmt: skip
        await self.connect(peer)
        await until(lambda: peer.of(RejectConnection), "the refusal")
        self.assertEqual(peer.of(RejectConnection)[0].status_code, 403)
        self.assertEqual(self.game.refusals["origin"], 1)


class _Raw(Protocol):
    """Writes `request` and keeps what comes back."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.raw = b""
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.raw += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)
