"""The session manager behind the real session protocol, in memory.

The game host's real `GameHostProtocol` over a real `ServerEndpoint`, with the
session manager as its admission and sink, and real `ClientConnection`s with
real connect tokens; datagrams are moved between them by hand and time comes
from a `Clock`. This checks the seams (admission during the handshake, session
events, both channels, closing sessions) without sockets.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.test_rooms_fixtures import make_match
from vinom.games.duel import DuelGame
from vinom.games.registry import GameRegistry
from vinom.hosting.udp import GameHostProtocol
from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import (
    RELIABLE,
    ConnectFailed,
    MessageReceived,
    SessionClosed,
    SessionConnected,
)
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.tokens import TokenIssuer
from vinom.rooms.messages import Phase, decode_server_message, encode_action
from vinom.rooms.room import RoomConfig
from vinom.rooms.session_manager import SessionManager

HOST = HostAddress("127.0.0.1", 40000)
WALL_START = 1_700_000_000.0


class CaptureTransport:
    """Stands in for the UDP port: keeps what the host writes."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.written.append((data, addr))


class Player:
    """A client connection and what its player has seen."""

    def __init__(self, connection: ClientConnection, address: tuple[str, int]) -> None:
        self.connection = connection
        self.address = address
        self.messages: list[dict[str, Any]] = []
        self.view: dict[str, Any] | None = None
        self.version = -1
        self.connected = False
        self.closed: str | None = None
        self.silent = False  # its datagrams are lost both ways

    def take_events(self) -> None:
        while (event := self.connection.next_event()) is not None:
            if isinstance(event, SessionConnected):
                self.connected = True
            elif isinstance(event, MessageReceived):
                message = decode_server_message(event.data)
                assert message is not None, event.data
                self.messages.append(message)
                if message["t"] == "state" and message["v"] > self.version:
                    self.version, self.view = message["v"], message["s"]
            elif isinstance(event, SessionClosed | ConnectFailed):
                self.closed = event.reason

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["t"] == kind]


class SeamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        protocol = ProtocolConfig(token_key=os.urandom(32))
        self.issuer = TokenIssuer(IssuerConfig(protocol))
        self.manager = SessionManager(
            games=GameRegistry([DuelGame()]).get,
            clock=self.clock,
            config=RoomConfig(options={"target": 20}),
        )
        self.endpoint = ServerEndpoint(
            HostConfig(protocol, (HOST,)), self.manager, wall_clock=self.wall
        )
        self.host = GameHostProtocol(self.endpoint, self.manager, self.clock)
        self.transport = CaptureTransport()
        self.host.transport = self.transport  # type: ignore[assignment]
        self.host.startProtocol()
        self.addCleanup(self.host.stopProtocol)
        self.manager.sender = self.host
        self.players: list[Player] = []
        self.next_port = 50000

    def wall(self) -> float:
        return WALL_START + self.clock.seconds()

    def join(self, player_id: str, match_id: str = "m-1") -> Player:
        token = self.issuer.issue_token(
            player_id=player_id, match_id=match_id, hosts=(HOST,), now=self.wall()
        )
        connection = ClientConnection(token, self.clock.seconds(), wall_clock=self.wall)
        self.next_port += 1
        player = Player(connection, ("127.0.0.1", self.next_port))
        self.players.append(player)
        self.pump()
        return player

    def pump(self) -> None:
        """Move datagrams both ways until none are left."""
        for _ in range(100):
            moved = False
            now = self.clock.seconds()
            for player in self.players:
                for data, _addr in player.connection.datagrams_to_send(now):
                    moved = True
                    if not player.silent:
                        self.host.datagramReceived(data, player.address)
            written, self.transport.written = self.transport.written, []
            for data, addr in written:
                moved = True
                for player in self.players:
                    if player.address == addr and not player.silent:
                        player.connection.receive_datagram(data, (HOST.host, HOST.port), now)
            for player in self.players:
                player.take_events()
            if not moved:
                return
        self.fail("datagrams kept flowing")

    def run_for(self, seconds: float, step: float = 0.05) -> None:
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.clock.advance(step)
            now = self.clock.seconds()
            for player in self.players:
                timer = player.connection.get_timer()
                if timer is not None and timer <= now:
                    player.connection.handle_timer(now)
            self.pump()

    def play_until_finished(self, players: list[Player]) -> None:
        action_id = 0
        for _ in range(500):
            room = self.manager.room("m-1")
            if room is None or room.ended:
                return
            for player in players:
                assert player.view is not None
                seq = player.view["seq"][player.connection.token.player_id]
                action_id += 1
                player.connection.send_message(RELIABLE, encode_action({"seq": seq + 1}, action_id))
            self.run_for(0.05)
        self.fail("the game did not finish")

    def test_a_whole_match(self) -> None:
        room = self.manager.add_match(make_match("m-1", ("p-a", "p-b"), "duel"))
        a, b = self.join("p-a"), self.join("p-b")
        self.assertTrue(a.connected and b.connected)
        self.assertEqual(room.phase, Phase.PLAYING)
        self.assertEqual(a.messages[0]["t"], "welcome")
        self.assertEqual(b.of_type("welcome")[0]["seat"], 1)
        self.play_until_finished([a, b])
        self.run_for(0.5)
        self.assertEqual(room.phase, Phase.FINISHED)
        for player in (a, b):
            phase = player.of_type("phase")[-1]
            self.assertEqual(phase["p"], "finished")
            self.assertEqual(phase["result"]["reason"], "target")
            self.assertEqual(player.version, room.version)
        # Only a move still in flight when the game ended can have been rejected.
        errors = a.of_type("error") + b.of_type("error")
        self.assertEqual({e["code"] for e in errors} - {"not_playing"}, set())
        self.assertEqual(self.manager.counters["actions_rejected"], len(errors))
        self.assertEqual(self.manager.drops, {})
        # The room lingers, then goes; its sessions are closed and the host is idle.
        idle: list[None] = []
        self.manager.when_idle().addCallback(idle.append)
        self.run_for(3.5)
        self.assertIsNone(self.manager.room("m-1"))
        self.assertEqual(idle, [None])
        self.assertEqual((a.closed, b.closed), ("disconnect", "disconnect"))
        self.assertEqual(self.endpoint.session_count, 0)

    def test_strangers_are_refused_in_the_handshake(self) -> None:
        self.manager.add_match(make_match("m-1", ("p-a", "p-b"), "duel"))
        stranger = self.join("p-z")
        wrong_match = self.join("p-a", "m-2")
        self.run_for(0.5)
        self.assertFalse(stranger.connected or wrong_match.connected)
        self.assertEqual(self.endpoint.session_count, 0)
        self.assertEqual(self.manager.counters["sessions_opened"], 0)

    def test_reconnect_after_a_timeout(self) -> None:
        room = self.manager.add_match(make_match("m-1", ("p-a", "p-b"), "duel"))
        a, b = self.join("p-a"), self.join("p-b")
        a.connection.send_message(RELIABLE, encode_action({"seq": 1}, 1))
        self.run_for(0.2)
        # A's network goes away: the host times the session out and holds the seat.
        a.silent = True
        self.run_for(6)
        self.assertTrue(room.in_grace("p-a"))
        self.assertIn({"t": "presence", "id": "p-a", "status": "disconnected"}, b.messages)
        b.connection.send_message(RELIABLE, encode_action({"seq": 1}, 1))
        self.run_for(0.2)
        # A comes back with a fresh token (from the lobby) and a new socket.
        again = self.join("p-a")
        self.run_for(0.2)
        self.assertTrue(again.connected)
        welcome = again.of_type("welcome")[0]
        self.assertTrue(welcome["reconnected"])
        assert again.view is not None
        self.assertEqual(again.view["seq"], {"p-a": 1, "p-b": 1})
        self.assertEqual(again.version, room.version)
        self.assertIn({"t": "presence", "id": "p-a", "status": "connected"}, b.messages)
        self.players.remove(a)
        self.play_until_finished([again, b])
        self.assertEqual(room.phase, Phase.FINISHED)
