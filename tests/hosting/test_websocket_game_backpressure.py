"""Slow readers on the game WebSocket (`/game`): states held back, a hard bound, real sockets.

A real game host (`InlineGameHost` on a UDP port of 127.0.0.1) runs a
tictactoe match whose room sends its state every few milliseconds, so that
a socket nobody reads fills quickly; the `/game` adapter (`GameSocketFactory`)
is served by twisted.web over TLS on 127.0.0.1 and both players are autobahn
clients. The server's side of each TCP connection has small buffers (a slow
link), so its transport pauses the session after a few kilobytes; so has the
paused reader's, so that a thousand states are far more than the link holds. What the
tests look at is what a peer sees: the messages each player receives, and
the other player's `presence`.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import ITransport
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.rooms.test_rooms_fixtures import make_match
from tests.support.ports import free_udp_range
from tests.support.waiting import until
from tests.support.websocket_client import GameSocketPlayer, connect_game_socket
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.interfaces import IGameHost, StreamOpened
from vinom.hosting.websocket import GameSocketConfig, GameSocketFactory, GameSocketResource
from vinom.net.origins import OriginPolicy
from vinom.net.tls import TLSFiles, TLSLayer, TLSLayerFactory
from vinom.protocol.address import HostAddress
from vinom.protocol.config import ProtocolConfig
from vinom.protocol.events import RELIABLE
from vinom.protocol.tokens import IssuerConfig, TokenIssuer
from vinom.rooms.client_messages import encode_action, encode_sync
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import encode_event
from vinom.rooms.room import RoomConfig
from vinom.server.certs import ensure_dev_certificate

# States every 2 ms: about 50 KB/s of states for each player.
STATE_INTERVAL = 0.002


class _SlowLinkTLS(TLSLayer):
    """The server's end of a connection with small buffers: a 4 KB kernel send
    buffer and an 8 KB transport buffer before the transport pauses its producer."""

    def makeConnection(self, transport: ITransport) -> None:
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.bufferSize = 8192  # type: ignore[attr-defined]
        super().makeConnection(transport)


class _OneMatch:
    """The hosting service as the adapter sees it: one host for every match."""

    def __init__(self, host: IGameHost) -> None:
        self.host = host

    def host_of(self, match_id: str) -> IGameHost | None:
        return self.host


class RecordingPlayer(GameSocketPlayer):
    """A `/game` player that also keeps every room message it received, decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803
        if isBinary:
            message = decode_server_message(payload)
            assert message is not None, payload
            self.received.append(message)
        super().onMessage(payload, isBinary)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["t"] == kind]

    def newest_state(self) -> dict[str, Any] | None:
        states = self.of_type("state")
        return max(states, key=lambda m: m["v"]) if states else None


def small_receive_buffer(player: RecordingPlayer) -> None:
    """The reader's end of the link is small too (4 KB of kernel receive buffer, as the
    server's send buffer): what it holds when it stops reading is a hundred states,
    not the seconds of them loopback's large buffers would take in first."""
    tls: Any = player.transport  # TLS over the TCP connection, whose socket this is
    tls.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


class SlowReaderTests(TestCase):
    timeout = 90

    async def start(self, held_limit: int) -> None:
        protocol = ProtocolConfig(token_key=b"k" * 32)
        self.issuer = TokenIssuer(IssuerConfig(protocol))
        hosts = InlineGameHostFactory(
            reactor=reactor,
            find_game=GameRegistry.from_plugins().get,
            protocol_config=protocol,
            public_host="127.0.0.1",
            interface="127.0.0.1",
            room_config=RoomConfig(state_interval=STATE_INTERVAL, reconnect_grace=30.0),
        )
        port = free_udp_range(1)
        self.address = HostAddress("127.0.0.1", port)
        host = await hosts.start_host(port)
        self.addCleanup(host.stop)
        await host.add_match(make_match("m-1", ("p-a", "p-b"), "tictactoe"))
        self.game = GameSocketFactory(
            _OneMatch(host), protocol, OriginPolicy(("*",)), reactor=reactor,
            # Pings out of the way: a reader that never reads would also miss them.
            config=GameSocketConfig(held_limit=held_limit, ping_interval=300, ping_timeout=300),
        )  # fmt: skip
        root = Resource()
        root.putChild(b"game", GameSocketResource(self.game))
        site = Site(root)
        site.noisy = False
        paths = ensure_dev_certificate(self.mktemp())
        self.trust = str(paths.certificate)
        context = TLSFiles(str(paths.private_key), str(paths.certificate)).context()
        tls = TLSLayerFactory(context, site)
        tls.protocol = _SlowLinkTLS
        listening = reactor.listenTCP(0, tls, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    async def player(self, player_id: str) -> RecordingPlayer:
        token = self.issuer.issue_token(
            player_id=player_id, match_id="m-1", hosts=(self.address,), now=reactor.seconds()
        )
        player = await connect_game_socket(
            self, self.port, self.trust, token, protocol=RecordingPlayer
        )
        assert isinstance(player, RecordingPlayer)
        return player

    async def two_players(self, held_limit: int) -> tuple[RecordingPlayer, RecordingPlayer]:
        await self.start(held_limit)
        a, b = await self.player("p-a"), await self.player("p-b")

        def playing() -> bool:
            state = b.newest_state()
            return state is not None and state["s"].get("turn") is not None

        await until(playing, "the match to start", timeout=20.0)
        return a, b

    async def test_a_paused_reader_gets_the_newest_state_and_every_event_not_a_backlog(
        self,
    ) -> None:
        a, b = await self.two_players(held_limit=256 * 1024)
        assert a.transport is not None
        small_receive_buffer(a)
        a.transport.pauseProducing()  # A stops reading its socket
        states_before = len(a.of_type("state"))
        b_states_at_pause = len(b.of_type("state"))
        # A round while A reads nothing (B's states say whose turn it is): each
        # player takes the first empty cell.
        action_id = 0
        while not b.of_type("event"):
            state = b.newest_state()
            assert state is not None
            view = state["s"]
            if view["turn"] is None:
                await deferLater(reactor, 0.01)
                continue
            action_id += 1
            mover = a if view["turn"] == "p-a" else b
            cell = view["board"].index("") if "" in view["board"] else None
            assert cell is not None, view
            mover.sendMessage(encode_action({"cell": cell}, action_id), isBinary=True)
            await until(lambda v=state["v"]: b.newest_state()["v"] > v or b.of_type("event"),
                        "the move", timeout=20.0)  # fmt: skip
        await until(lambda: b.of_type("event"), "the round's end, at B", timeout=20.0)
        # States keep coming for a while: far more than the socket's buffers hold.
        # (A busy machine's room sends fewer than its 500 a second: a wedged run's bound.)
        await until(lambda: len(b.of_type("state")) > b_states_at_pause + 1000,
                    "1000 states at B", timeout=60.0)  # fmt: skip
        sent_meanwhile = len(b.of_type("state")) - b_states_at_pause
        a.transport.resumeProducing()
        # A marks where it catches up: the error answering a move after the round's end
        # comes after whatever the server had for A before it (a socket keeps order).
        a.sendMessage(encode_action({"cell": 0}, 999), isBinary=True)
        await until(lambda: any(m["i"] == 999 for m in a.of_type("error")),
                    "A's marker", timeout=20.0)  # fmt: skip
        newest, target = a.newest_state(), b.newest_state()
        assert newest is not None and target is not None
        self.assertEqual((newest["v"], newest["s"]), (target["v"], target["s"]))
        self.assertEqual(
            [(e["e"], e["d"]) for e in a.of_type("event")],
            [(e["e"], e["d"]) for e in b.of_type("event")],
        )
        self.assertTrue(a.of_type("event"))
        # Not a backlog: A got a part of the states sent while it did not read (what
        # the kernels' and the transport's buffers held when the server paused, about
        # 120 of the 1000 here, then the newest), not all of them.
        received_meanwhile = len(a.of_type("state")) - states_before
        self.assertLess(received_meanwhile, sent_meanwhile / 2,
                        (received_meanwhile, sent_meanwhile))  # fmt: skip
        # Every state A got is newer than the one before it (states, then events, in order).
        versions = [m["v"] for m in a.received if m["t"] in ("state", "event", "phase")]
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(dict(self.game.refusals), {})

    async def test_a_reader_that_never_reads_is_dropped_past_the_bound(self) -> None:
        # Room for a few states; reliable messages past it drop the socket.
        a, b = await self.two_players(held_limit=2048)
        assert a.transport is not None
        a.transport.pauseProducing()
        b_states_at_pause = len(b.of_type("state"))
        # Enough states go by for the server's buffers to fill...
        await until(lambda: len(b.of_type("state")) > b_states_at_pause + 500,
                    "500 states at B", timeout=20.0)  # fmt: skip
        # ...then A asks for states on the reliable channel (never dropped) and reads none.
        closed: list[object] = []
        a.closed.addCallback(closed.append)

        def disconnected() -> bool:
            return any(m["id"] == "p-a" and m["status"] == "disconnected"
                       for m in b.of_type("presence"))  # fmt: skip

        def asked_until_dropped() -> bool:
            if disconnected():
                return True
            if not closed:
                a.sendMessage(encode_sync(), isBinary=True)
            return False

        await until(asked_until_dropped, "A dropped", timeout=20.0, every=0.1)
        self.assertEqual(self.game.refusals["too_slow"], 1)
        # Logged once, as a line, not a traceback.
        dropped = [e for e in self.logged if "waited for its peer to read" in
                   str(e.get("log_format"))]  # fmt: skip
        self.assertEqual(len(dropped), 1)
        self.assertEqual(self.flushLoggedErrors(), [])
        # B plays on: its states keep coming.
        count = len(b.of_type("state"))
        await until(lambda: len(b.of_type("state")) > count + 50, "B's states", timeout=20.0)
        if not closed:
            a.transport.resumeProducing()
            done: Deferred[object] = a.closed
            await done


class _OneBigMessage:
    """A game host whose stream sessions are each sent one 20 KB event once open:
    a game's state or event may be far longer than what a player may send."""

    def host_of(self, match_id: str) -> Any:
        return self

    def open_stream(self, token: bytes, peer: Any) -> Deferred[StreamOpened]:
        message = encode_event(1, "big", {"blob": "x" * 20000})
        reactor.callLater(0, peer.stream_output, [(RELIABLE, message)])
        return succeed(StreamOpened(1, "p-a", "m-1"))

    def stream_messages(self, messages: list[tuple[int, bytes]]) -> None:
        pass

    def close_stream(self, session_id: int) -> None:
        pass


class LongMessageTests(TestCase):
    timeout = 30

    async def test_a_message_longer_than_a_players_limit_goes_out_whole(self) -> None:
        protocol = ProtocolConfig(token_key=b"k" * 32)
        game = GameSocketFactory(_OneBigMessage(), protocol, OriginPolicy(("*",)),
                                 reactor=reactor)  # fmt: skip
        root = Resource()
        root.putChild(b"game", GameSocketResource(game))
        paths = ensure_dev_certificate(self.mktemp())
        context = TLSFiles(str(paths.private_key), str(paths.certificate)).context()
        site = Site(root)
        site.noisy = False
        listening = reactor.listenTCP(0, TLSLayerFactory(context, site), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        token = TokenIssuer(IssuerConfig(protocol)).issue_token(
            player_id="p-a", match_id="m-1", hosts=(HostAddress("127.0.0.1", 1),),
            now=reactor.seconds(),
        )  # fmt: skip
        player = await connect_game_socket(
            self, listening.getHost().port, str(paths.certificate), token,
            protocol=RecordingPlayer,
        )  # fmt: skip
        assert isinstance(player, RecordingPlayer)
        await until(lambda: player.of_type("event"), "the event", every=0.01)
        self.assertEqual(player.of_type("event")[0]["d"], {"blob": "x" * 20000})
        self.assertEqual(self.flushLoggedErrors(), [])
