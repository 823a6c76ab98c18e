"""Integration: the real lobby over real TLS on 127.0.0.1, with game hosts on real UDP ports.

`TLSLobbyIntegrationTests` assembles the lobby by hand with placeholder game
hosts (tests/support/doubles.py), so a test can end a game when it likes;
`RealServiceIntegrationTests` runs the whole server of `twistd vinom`
(`vinom.server.tap.makeService`: real token issuer, inline game hosts). Clients
verify the server's self-signed certificate (made by `vinom.server.certs`) with
`optionsForClientTLS` and service_identity, exactly as a game client
trusting a dev server would.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.lobby import hello
from tests.support.doubles import PlaceholderGameHostFactory, PlaceholderTokenIssuer
from tests.support.ports import free_udp_ports
from tests.support.servers import start_server
from tests.support.waiting import until
from vinom.games.rules import GameCatalogue
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.config import LobbyConfig
from vinom.lobby.server import LobbyFactory
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.protocol.address import HostAddress
from vinom.protocol.tokens import PublicToken
from vinom.server.certs import ensure_dev_certificate, make_self_signed
from vinom.store.memory import MemoryPlayerStore

Frame = dict[str, Any]
WAITING = "waiting_for_server"


class ScriptedPlayer(LineOnlyReceiver):
    """Says hello, queues for a game, and records every frame until the server closes."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, name: str, game: str) -> None:
        self.name = name
        self.game = game
        self.frames: list[Frame] = []
        # Fires with the exception that ended the connection (a Failure would errback).
        self.closed: Deferred[BaseException] = Deferred()
        self._waiters: list[tuple[Callable[[Frame], bool], Deferred[Frame]]] = []

    def connectionMade(self) -> None:
        self.send(hello(self.name, id=1))

    def send(self, frame: Frame) -> None:
        self.sendLine(json.dumps(frame).encode())

    def lineReceived(self, line: bytes) -> None:
        frame = json.loads(line)
        self.frames.append(frame)
        if frame["type"] == "welcome":
            self.send({"type": "queue", "game": self.game, "id": 2})
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(frame):
                self._waiters.remove(waiter)
                d.callback(frame)

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

    def connectionLost(self, reason: Failure = ConnectionDone()) -> None:  # noqa: B008
        self.closed.callback(reason.value)

    def of_type(self, kind: str) -> list[Frame]:
        return [f for f in self.frames if f["type"] == kind]




def udp_port_is_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


class TLSLobbyIntegrationTests(TestCase):
    timeout = 60

    async def start_lobby(self, udp_ports: list[int]) -> None:
        paths = ensure_dev_certificate(self.mktemp())
        self.cert_pem = paths.certificate.read_bytes()
        server_cert = PrivateCertificate.loadPEM(self.cert_pem + paths.private_key.read_bytes())
        self.hosts = PlaceholderGameHostFactory(reactor, "127.0.0.1", "127.0.0.1")
        self.allocator = PortAllocator(udp_ports)
        store = MemoryPlayerStore()
        self.hosting = GameHostingService(self.allocator, self.hosts, store=store, clock=reactor)
        self.hosting.startService()
        self.addCleanup(self.hosting.stopService)
        games = GameCatalogue.sized({"tictactoe": 2})
        self.lobby = LobbyFactory(
            config=LobbyConfig(),
            games=games,
            backends=LobbyBackends(MemoryMatchmaker(games, reactor), self.hosting,
                                   store, PlaceholderTokenIssuer()),
            clock=reactor,
        )
        self.lobby.startService()
        self.addCleanup(self.lobby.stopService)
        endpoint = SSL4ServerEndpoint(reactor, 0, server_cert.options(), interface="127.0.0.1")
        self.listening: IListeningPort = await endpoint.listen(self.lobby)
        self.addCleanup(self.listening.stopListening)
        self.lobby_port = self.listening.getHost().port

    async def connect_player(self, name: str, trust: bytes | None = None) -> ScriptedPlayer:
        options = optionsForClientTLS(
            "localhost", trustRoot=Certificate.loadPEM(trust or self.cert_pem)
        )
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", self.lobby_port, options)
        player = ScriptedPlayer(name, "tictactoe")
        await connectProtocol(endpoint, player)
        self.addCleanup(_abort, player)
        return player

    async def test_ten_players_make_five_matches_on_five_ports(self) -> None:
        udp_ports = free_udp_ports(5)
        await self.start_lobby(udp_ports)
        players = [await self.connect_player(f"player{n}") for n in range(10)]
        reasons = await gatherResults([p.closed for p in players])
        for player, reason in zip(players, reasons, strict=True):
            # The server closed the connection cleanly (TLS close_notify, then FIN).
            self.assertIsInstance(reason, ConnectionDone)
            types = [f["type"] for f in player.frames]
            self.assertEqual(types, ["welcome", "queued", "match_found"], player.frames)
        found = [p.of_type("match_found")[0] for p in players]
        by_match: dict[str, list[Frame]] = {}
        for frame in found:
            by_match.setdefault(frame["game_id"], []).append(frame)
        self.assertEqual(len(by_match), 5)
        ports = set()
        for frames in by_match.values():
            self.assertEqual(sorted(f["seat"] for f in frames), [0, 1])
            self.assertEqual(
                {f["port"] for f in frames} | {f["host"] for f in frames},
                {frames[0]["port"], "127.0.0.1"},
            )
            ports.add(frames[0]["port"])
        self.assertEqual(ports, set(udp_ports))
        self.assertEqual(len(ports), 5)
        # Each game host really holds its UDP port while the match runs.
        for port in ports:
            self.assertTrue(udp_port_is_taken(port), port)
        self.assertEqual(self.hosting.running_games, 5)
        # The server side forgets each connection as its close completes.
        await until(lambda: self.lobby.connection_count == 0, "every connection forgotten")

    async def test_waiting_for_server_then_match_found_when_a_game_ends(self) -> None:
        [port] = free_udp_ports(1)
        await self.start_lobby([port])
        players = [await self.connect_player(f"player{n}") for n in range(4)]
        # Two players are matched on the only port; the other pair's match waits for it.
        firsts = await gatherResults(
            [
                p.when(lambda f: f["type"] == "match_found" or f.get("status") == WAITING)
                for p in players
            ]
        )
        placed = [f for f in firsts if f["type"] == "match_found"]
        self.assertEqual(len(placed), 2)
        first_match = placed[0]["game_id"]
        self.assertEqual(placed[1]["game_id"], first_match)
        waiting = [p for p, f in zip(players, firsts, strict=True) if f["type"] == "queued"]
        for player in waiting:
            frame = player.of_type("queued")[-1]
            self.assertEqual((frame["status"], frame["position"]), (WAITING, 1))
        self.assertEqual(len(waiting), 2)
        self.assertFalse(any(p.closed.called for p in waiting))
        self.assertTrue(udp_port_is_taken(port))
        self.assertTrue(self.hosts.end_match(first_match))
        for player in waiting:
            frame = await player.when(lambda f: f["type"] == "match_found")
            self.assertEqual(frame["port"], port)
            self.assertNotEqual(frame["game_id"], first_match)
            reason = await player.closed
            self.assertIsInstance(reason, ConnectionDone)

    async def test_a_client_that_does_not_trust_the_certificate_cannot_talk(self) -> None:
        await self.start_lobby(free_udp_ports(1))
        stranger_cert, _ = make_self_signed("localhost")
        player = await self.connect_player("mallory", trust=stranger_cert)
        reason = await player.closed
        self.assertNotIsInstance(reason, ConnectionDone)
        self.assertEqual(player.frames, [])


class RealServiceIntegrationTests(TestCase):
    """The whole server of `twistd vinom`, in this process on the real reactor."""

    timeout = 60

    async def connect_player(self, port: int, trust: bytes, name: str) -> ScriptedPlayer:
        options = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(trust))
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port, options)
        player = ScriptedPlayer(name, "tictactoe")
        await connectProtocol(endpoint, player)
        self.addCleanup(_abort, player)
        return player

    async def test_ten_players_make_five_matches_on_five_ports(self) -> None:
        server = await start_server(self, ports=5)
        assert server.lobby.trust is not None
        with open(server.lobby.trust, "rb") as f:
            trust = f.read()
        pool = set(range(server.hosting.allocator.size))
        players = [
            await self.connect_player(server.lobby.port, trust, f"player{n}") for n in range(10)
        ]
        reasons = await gatherResults([p.closed for p in players])
        by_match: dict[str, list[tuple[Frame, Frame]]] = {}
        for player, reason in zip(players, reasons, strict=True):
            self.assertIsInstance(reason, ConnectionDone)
            types = [f["type"] for f in player.frames]
            self.assertEqual(types, ["welcome", "queued", "match_found"], player.frames)
            welcome, found = player.of_type("welcome")[0], player.of_type("match_found")[0]
            by_match.setdefault(found["game_id"], []).append((welcome, found))
        self.assertEqual(len(by_match), 5)
        ports = set()
        for match_id, pair in by_match.items():
            self.assertEqual(sorted(found["seat"] for _, found in pair), [0, 1])
            [port] = {found["port"] for _, found in pair}
            ports.add(port)
            for welcome, found in pair:
                self.assertEqual(found["host"], "127.0.0.1")
                # The connect token is the UDP protocol's own, for this player and match.
                token = PublicToken.from_json(found["token"])
                self.assertEqual(token.player_id, welcome["player_id"])
                self.assertEqual(token.match_id, match_id)
                self.assertEqual(token.hosts, (HostAddress("127.0.0.1", port),))
                self.assertEqual(token.expires_at, found["expires_at"])
                self.assertEqual(len(token.client_to_server_key), 32)
        self.assertEqual(len(ports), 5)
        low = min(ports)
        self.assertEqual({p - low for p in ports}, pool)
        for port in ports:
            self.assertTrue(udp_port_is_taken(port), port)
        self.assertEqual(server.hosting.running_games, 5)
        lobby = server.service("lobby")
        await until(lambda: lobby.connection_count == 0, "every connection forgotten")

    async def test_a_tcp_connection_that_never_starts_tls_is_dropped(self) -> None:
        server = await start_server(self, "--limit", "lobby-hello-timeout=0.2", ports=1)
        silent = SilentClient()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.lobby.port), silent)
        self.addCleanup(silent.abort)
        lobby = server.service("lobby")
        self.assertEqual(lobby.connection_count, 1)
        await silent.lost
        await until(lambda: lobby.connection_count == 0, "the connection forgotten")


class SilentClient(Protocol):
    """Connects over plain TCP and says nothing: not even a TLS ClientHello."""

    def __init__(self) -> None:
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = ConnectionDone()) -> None:  # noqa: B008
        self.lost.callback(None)

    def abort(self) -> Deferred[None] | None:
        if self.lost.called:
            return None
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]
        return self.lost


def _abort(player: ScriptedPlayer) -> Deferred[BaseException] | None:
    # Only if a failed test left the connection open: trial must see a clean reactor.
    if player.closed.called:
        return None
    assert player.transport is not None
    player.transport.abortConnection()  # type: ignore[attr-defined]
    return player.closed
