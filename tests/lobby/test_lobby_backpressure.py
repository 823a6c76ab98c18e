"""Peers that ask and never read: the lobby bounds what waits for them, over real TLS.

A TLS lobby on 127.0.0.1 (`LobbyFactory` behind the server's `TLSLayerFactory`)
with 55 public rooms open, so a `room_list` reply is a few kilobytes. The
server's side of each TCP connection has small buffers (a 4 KB kernel send
buffer, an 8 KB transport buffer: a slow link), so its transport fills
after a few replies instead of after megabytes of kernel buffers. Clients
are real TLS clients (`Player` of tests.test_integration_parties); the slow
one stops reading its socket (`pauseProducing` on its transport) and keeps
sending `get_room_list`. What the tests look at is what a peer and an
operator see: the frames each client gets, whether its connection is
dropped, and the lobby's figures behind `/metrics`
(`vinom_lobby_output_held_bytes`, `vinom_lobby_slow_readers_dropped`).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITransport
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.lobby import hello
from tests.support.doubles import PlaceholderGameHostFactory, PlaceholderTokenIssuer
from tests.support.lobby_players import Player
from tests.support.lobby_players import abort_player as _abort
from tests.support.ports import free_udp_ports
from tests.support.waiting import until
from tests.support.websocket_client import connect_websocket
from vinom.games.rules import GameCatalogue, GameRules
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.config import MAX_OUTPUT_BYTES, LobbyConfig
from vinom.lobby.server import LobbyFactory
from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.net.origins import OriginPolicy
from vinom.net.tls import TLSFiles, TLSLayer, TLSLayerFactory
from vinom.server.certs import ensure_dev_certificate
from vinom.server.web import web_site
from vinom.store.memory import MemoryPlayerStore

LIMIT = 32 * 1024
# Maze matches of 4; a maze room seats 2 to 4.
MAZE = GameCatalogue([GameRules("maze", 4, min_players=2)])
ROOMS = 55


class _SlowLinkTLS(TLSLayer):
    """The server's end of a connection with small buffers (as in
    tests/hosting/test_websocket_game_backpressure.py)."""

    def makeConnection(self, transport: ITransport) -> None:
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.bufferSize = 8192  # type: ignore[attr-defined]
        super().makeConnection(transport)


class SlowReaderTests(TestCase):
    timeout = 60

    async def asyncSetUp(self) -> None:
        paths = ensure_dev_certificate(self.mktemp())
        self.cert_pem = paths.certificate.read_bytes()
        context = TLSFiles(str(paths.private_key), str(paths.certificate)).context()
        hosting = GameHostingService(
            PortAllocator(free_udp_ports(2)),
            PlaceholderGameHostFactory(reactor, "127.0.0.1", "127.0.0.1"),
        )
        hosting.startService()
        self.addCleanup(hosting.stopService)
        many = 10_000
        self.lobby = LobbyFactory(
            # Every client is on 127.0.0.1: the per-address limits out of the way.
            config=LobbyConfig(
                max_output_bytes=LIMIT,
                max_connections_per_ip=200,
                max_pending_per_ip=many,
                max_matches_per_ip=many,
                queue_rate=many,
                queue_burst=many,
                frame_rate=many,
                frame_burst=many,
            ),
            games=MAZE,
            backends=LobbyBackends(MemoryMatchmaker(MAZE, reactor), hosting, MemoryPlayerStore(),
                                   PlaceholderTokenIssuer()),
            clock=reactor,
        )
        self.lobby.startService()
        self.addCleanup(self.lobby.stopService)
        tls = TLSLayerFactory(context, self.lobby)
        tls.protocol = _SlowLinkTLS
        listening = reactor.listenTCP(0, tls, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port
        # The WebSocket lobby of the same lobby, on the web site, over the same slow link.
        self.trust = str(paths.certificate)
        site = web_site(
            WebSocketLobbyFactory(self.lobby, OriginPolicy(("*",)), reactor=reactor), timeout=60
        )
        web_tls = TLSLayerFactory(context, site)
        web_tls.protocol = _SlowLinkTLS
        web = reactor.listenTCP(0, web_tls, interface="127.0.0.1")
        self.addCleanup(web.stopListening)
        self.web_port = web.getHost().port
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        for i in range(ROOMS):
            owner = await self.connect(f"Owner {i}")
            room = await owner.request({"type": "create_room", "game": "maze"})
            self.assertEqual(room["type"], "room", room)

    def setUp(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.asyncSetUp())

    async def connect(self, name: str) -> Player:
        options = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(self.cert_pem))
        player = Player()
        await connectProtocol(SSL4ClientEndpoint(reactor, "127.0.0.1", self.port, options), player)
        self.addCleanup(_abort, player)
        welcome = await player.request(hello(name))
        self.assertEqual(welcome["type"], "welcome")
        player.player_id = welcome["player_id"]
        return player

    def flood(self, player: Player, count: int) -> None:
        """`count` `get_room_list` requests in one write."""
        assert player.transport is not None
        player.transport.write(
            b"".join(
                json.dumps({"type": "get_room_list", "id": f"f{i}"}).encode() + b"\n"
                for i in range(count)
            )
        )

    async def push_until_held(self, reader: Player, room_id: str) -> int:
        """Push to the slow reader (the reader joins and leaves its room) until a push
        waits in the lobby: the slow reader's link is full, its answers have filled
        it. The bytes held then."""

        async def held() -> bool:
            if self.lobby.output.held_bytes:
                return True
            joined = await reader.request({"type": "join_room", "room_id": room_id})
            self.assertEqual(joined["type"], "room", joined)
            self.assertEqual((await reader.request({"type": "leave_room"}))["type"], "room_left")
            return False

        await until(held, "the slow reader's link full", 20, every=0)
        return self.lobby.output.held_bytes

    async def push_until_dropped(self, reader: Player, room_id: str) -> None:
        """What the lobby pushes on its own still comes: the reader joins and leaves
        the slow reader's room until more than the limit waits for it, and it is dropped."""
        joins = 0
        while self.lobby.output.dropped == 0:
            joins += 1
            self.assertLess(joins, 2000, "the slow reader was never dropped")
            joined = await reader.request({"type": "join_room", "room_id": room_id})
            self.assertEqual(joined["type"], "room", joined)
            self.assertEqual((await reader.request({"type": "leave_room"}))["type"], "room_left")
            self.assertLessEqual(self.lobby.output.held_bytes, LIMIT)

    async def test_room_list_comes_in_pages_of_50(self) -> None:
        reader = await self.connect("Reader")
        first = await reader.request({"type": "get_room_list"})
        self.assertEqual((len(first["rooms"]), first["offset"], first["more"]), (50, 0, True))
        rest = await reader.request({"type": "get_room_list", "offset": 50})
        self.assertEqual(
            (len(rest["rooms"]), rest["offset"], rest["more"]), (ROOMS - 50, 50, False)
        )
        listed = [room["room_id"] for room in first["rooms"] + rest["rooms"]]
        self.assertEqual(len(set(listed)), ROOMS)
        past = await reader.request({"type": "get_room_list", "offset": 500})
        self.assertEqual((past["rooms"], past["more"]), ([], False))
        bad = await reader.request({"type": "get_room_list", "offset": -1})
        self.assertEqual(bad["code"], "invalid_field")

    async def test_a_peer_that_does_not_read_is_held_bounded_then_dropped(self) -> None:
        reader = await self.connect("Reader")
        slow = await self.connect("Slow")
        room = await slow.request({"type": "create_room", "game": "maze", "size": 4})
        room_id = room["room"]["room_id"]
        assert slow.transport is not None
        slow.transport.pauseProducing()  # Slow reads nothing from now on
        before = len(slow.frames)
        self.flood(slow, 2000)
        # The lobby answers until the slow link is full, then serves Slow only as its
        # link drains: what waits for it is a room update or two, not its answers (a
        # page of 50 rooms each, 2,000 of them asked).
        held = [await self.push_until_held(reader, room_id)]
        # However long Slow keeps asking, what waits for it stays far below the limit
        # (the link drains a little now and then, and Slow is served that much). A
        # reader asking as much meanwhile is answered in full, the whole time.
        self.flood(slow, 2000)
        asked = len(reader.frames)
        self.flood(reader, 2000)

        def answered() -> bool:
            held.append(self.lobby.output.held_bytes)
            return len(reader.frames) >= asked + 2000

        await until(answered, "the reader's answers", timeout=20.0)
        self.assertLess(max(held), LIMIT // 2)
        self.assertEqual(
            {(f["type"], len(f["rooms"])) for f in reader.frames[asked:]}, {("room_list", 50)}
        )
        self.assertEqual(self.lobby.output.dropped, 0)
        await self.push_until_dropped(reader, room_id)
        slow.transport.resumeProducing()
        await slow.closed
        # Slow got what the link held before it stopped: a small part of what it asked.
        self.assertLess(len(slow.frames) - before, 400)
        dropped = [e for e in self.logged if "waited for it to read" in str(e.get("log_format"))]
        self.assertEqual(len(dropped), 1)
        self.assertEqual(self.flushLoggedErrors(), [])
        # The reader goes on as before.
        self.assertEqual((await reader.request({"type": "ping"}))["type"], "pong")
        self.assertEqual(self.lobby.output.held_bytes, 0)

    async def test_a_websocket_peer_that_does_not_read_is_dropped_too(self) -> None:
        reader = await self.connect("Reader")
        slow = await connect_websocket(self, self.web_port, self.trust)
        welcome = await slow.request(hello("Slow", id=1))
        self.assertEqual(welcome["type"], "welcome")
        room = await slow.request({"type": "create_room", "game": "maze", "id": 2})
        room_id = room["room"]["room_id"]
        # A page of 50 rooms is longer than a client's frame may be: it comes whole.
        page = await slow.request({"type": "get_room_list", "id": 3})
        self.assertEqual((len(page["rooms"]), page["more"]), (50, True))
        assert slow.transport is not None
        slow.transport.pauseProducing()
        for i in range(2000):
            slow.send({"type": "get_room_list", "id": f"f{i}"})
        # The link fills and the lobby serves Slow only as it drains: what waits for
        # it is a room update or two, not its 2,000 answers.
        self.assertLess(await self.push_until_held(reader, room_id), LIMIT // 2)
        self.assertEqual(self.lobby.output.dropped, 0)
        await self.push_until_dropped(reader, room_id)
        slow.transport.resumeProducing()
        closed = await slow.closed
        self.assertFalse(closed.was_clean)  # dropped: no close frame would have got through
        self.assertLess(len(slow.of_type("room_list")), 400)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual((await reader.request({"type": "ping"}))["type"], "pong")
        self.assertEqual(self.lobby.output.held_bytes, 0)


class LingeringCloseTests(TestCase):
    """A queued peer that stops reading and never answers pings is closed after the
    ping timeout; while that close cannot complete (the link is full), its socket
    still counts against `max_connections_per_ip`."""

    timeout = 60

    async def asyncSetUp(self) -> None:
        paths = ensure_dev_certificate(self.mktemp())
        self.cert_pem = paths.certificate.read_bytes()
        context = TLSFiles(str(paths.private_key), str(paths.certificate)).context()
        hosting = GameHostingService(
            PortAllocator(free_udp_ports(2)),
            PlaceholderGameHostFactory(reactor, "127.0.0.1", "127.0.0.1"),
        )
        hosting.startService()
        self.addCleanup(hosting.stopService)
        many = 100_000
        self.matchmaker = MemoryMatchmaker(MAZE, reactor)
        self.lobby = LobbyFactory(
            config=LobbyConfig(
                max_connections_per_ip=1,
                ping_interval=0.3,
                ping_timeout=0.3,
                # Far longer than the test: the close can only complete by the peer.
                close_timeout=50.0,
                frame_rate=many,
                frame_burst=many,
            ),
            games=MAZE,
            backends=LobbyBackends(self.matchmaker, hosting, MemoryPlayerStore(),
                                   PlaceholderTokenIssuer()),
            clock=reactor,
        )
        self.lobby.startService()
        self.addCleanup(self.lobby.stopService)
        tls = TLSLayerFactory(context, self.lobby)
        tls.protocol = _SlowLinkTLS
        listening = reactor.listenTCP(0, tls, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port

    def setUp(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.asyncSetUp())

    async def connect(self) -> Player:
        options = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(self.cert_pem))
        player = Player()
        await connectProtocol(SSL4ClientEndpoint(reactor, "127.0.0.1", self.port, options), player)
        self.addCleanup(_abort, player)
        return player

    async def first_frame_after_hello(self, player: Player) -> dict[str, Any]:
        player.sendLine(json.dumps({"type": "hello", "name": "Again"}).encode())
        return await player.when(lambda frame: True)

    async def test_a_dead_peers_lingering_socket_still_counts_against_its_address(
        self,
    ) -> None:
        dead = await self.connect()
        self.assertEqual((await dead.request(hello("Dead")))["type"],
                         "welcome")  # fmt: skip
        self.assertEqual((await dead.request({"type": "queue", "game": "maze"}))["type"],
                         "queued")  # fmt: skip
        assert dead.transport is not None
        # Dead reads nothing from now on and asks for far more than the link holds
        # (pongs enough to fill the server's buffers and Dead's receive buffer).
        dead.transport.pauseProducing()
        dead.transport.write(b'{"type":"ping"}\n' * 40_000)
        # It answers no ping: it is let go (its ticket withdrawn) and closed, but
        # the close cannot complete while nothing is read.
        await until(lambda: self.matchmaker.queue_length("maze") == 0, "the dead peer let go",
                    timeout=20.0)  # fmt: skip
        self.assertFalse(dead.closed.called)
        # Its socket still counts: the address is at its cap of one connection.
        again = await self.connect()
        refused = await self.first_frame_after_hello(again)
        self.assertEqual(refused.get("code"), "too_many_connections", refused)
        await again.closed
        # Dead reads again: it gets the `timeout`, the close completes, and the
        # address may connect again.
        dead.transport.resumeProducing()
        await dead.closed
        self.assertIn("timeout", [frame.get("code") for frame in dead.frames])
        await until(lambda: self.lobby.connections_from("127.0.0.1") == 0,
                    "the closed socket no longer counted", timeout=20.0)  # fmt: skip
        welcome = await self.first_frame_after_hello(await self.connect())
        self.assertEqual(welcome["type"], "welcome", welcome)


class OptionTests(SynchronousTestCase):
    def test_the_most_a_lobby_connection_holds_back_is_256_kib(self) -> None:
        # As docs/lobby.md says; a constant, not a setting.
        self.assertEqual(LobbyConfig().max_output_bytes, MAX_OUTPUT_BYTES)
        self.assertEqual(MAX_OUTPUT_BYTES, 256 * 1024)
