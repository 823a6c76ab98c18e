"""Tests for the lobby protocol and factory, driven through StringTransport and Clock."""

from __future__ import annotations

import gc
import json
import re
import weakref
from collections.abc import Mapping
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.lobby import hello, reconnect, said
from tests.support.doubles import FakeUDPReactor, PlaceholderGameHostFactory, PlaceholderTokenIssuer
from tests.support.http import capture_log
from vinom.errors import BackendUnavailable
from vinom.games.rules import GameCatalogue
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.identity import hash_secret
from vinom.lobby import connection, errors
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.codec import FrameDecoder, parse_frame
from vinom.lobby.config import LobbyConfig
from vinom.lobby.request_types import GAME_PROTOCOL
from vinom.lobby.server import LobbyFactory, LobbyProtocol, PlayerState
from vinom.match import Match, Ticket
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.protocol.address import HostAddress
from vinom.protocol.interfaces import ITokenIssuer
from vinom.store.interfaces import MatchPlacement, PlayerRecord
from vinom.store.memory import MemoryPlayerStore

MATCH_SIZES = {"tictactoe": 2, "maze": 3}
GAMES = GameCatalogue.sized(MATCH_SIZES)


class Client:
    """One lobby connection over a StringTransport."""

    def __init__(self, protocol: LobbyProtocol, transport: StringTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.lost = False
        # The player id the server welcomed this connection's player with, if any.
        self.player_id: str | None = None
        # Frames a helper read but the test has not looked at yet.
        self.unread: list[dict[str, Any]] = []

    def send(self, frame: Mapping[str, Any] | bytes) -> None:
        data = frame if isinstance(frame, bytes) else json.dumps(frame).encode() + b"\n"
        self.protocol.dataReceived(data)

    def frames(self) -> list[dict[str, Any]]:
        """Frames written since the last call."""
        data = self.transport.value()
        self.transport.clear()
        assert data == b"" or data.endswith(b"\n"), data
        frames, self.unread = self.unread, []
        return frames + [json.loads(line) for line in data.splitlines()]

    def request(self, frame: Mapping[str, Any]) -> dict[str, Any]:
        """Send one frame and return the single frame it was answered with."""
        self.send(frame)
        replies = self.frames()
        assert len(replies) == 1, replies
        return replies[0]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def drop(self) -> None:
        """The TCP connection ends (after the server closed it, or the client left)."""
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def hello(self, name: str = "Ann") -> dict[str, Any]:
        welcome = self.request(hello(name))
        assert welcome["type"] == "welcome", welcome
        self.player_id = welcome["player_id"]
        return welcome


class LobbyHarness(SynchronousTestCase):
    """A lobby with in-memory parts, a Clock, and placeholder hosts on a fake UDP reactor."""

    config = LobbyConfig()
    ports: tuple[int, ...] = (7400, 7401)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.store = MemoryPlayerStore()
        self.matchmaker = MemoryMatchmaker(GAMES, self.clock)
        self.udp = FakeUDPReactor()
        self.hosts = PlaceholderGameHostFactory(self.udp, "0.0.0.0", "198.51.100.9")
        self.allocator = PortAllocator(self.ports)
        # The hosting saves each placement in the lobby's store (`reconnect` reads it).
        self.hosting = GameHostingService(self.allocator, self.hosts, store=self.store,
                                          clock=self.clock)
        self.issuer = PlaceholderTokenIssuer(lifetime=30.0)
        self.matches: list[Match] = []
        self.matchmaker.add_listener(self.matches.append)
        self.factory = self.make_factory()
        self.factory.startService()
        self.hosting.startService()
        self._peer_port = 40000

    def make_factory(
        self,
        *,
        config: LobbyConfig | None = None,
        games: GameCatalogue = GAMES,
        **backends: Any,
    ) -> LobbyFactory:
        """A lobby of the harness's parts; `backends` replace its `LobbyBackends`'."""
        arguments: dict[str, Any] = dict(
            matchmaker=self.matchmaker,
            hosting=self.hosting,
            token_issuer=self.issuer,
            store=self.store,
        )
        arguments.update(backends)
        return LobbyFactory(
            config=config or self.config,
            games=games,
            backends=LobbyBackends(**arguments),
            clock=self.clock,
        )

    def connect(self, host: str = "192.0.2.1", factory: LobbyFactory | None = None) -> Client:
        factory = factory or self.factory
        self._peer_port += 1
        peer: IPv4Address | IPv6Address
        if ":" in host:
            peer = IPv6Address("TCP", host, self._peer_port)
        else:
            peer = IPv4Address("TCP", host, self._peer_port)
        protocol = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return Client(protocol, transport)

    def queued_player(self, name: str, game: str = "tictactoe") -> Client:
        client = self.connect()
        client.hello(name)
        client.send({"type": "queue", "game": game})
        frames = client.frames()
        assert frames[0]["type"] == "queued", frames
        client.unread = frames[1:]
        return client

    def wait(self, seconds: float, *clients: Client, step: float = 1.0) -> None:
        """Let `seconds` pass `step` at a time, the clients answering the lobby's pings as
        a live client does; what else they were sent waits in their `frames()`."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            for client in clients:
                frames = client.frames()
                if {"type": "ping"} in frames:
                    client.send({"type": "ping"})
                    frames += client.frames()
                client.unread = [f for f in frames if f["type"] not in ("ping", "pong")]

    def assert_uncounted(self, client: Client) -> None:
        """The client's protocol error count is still zero: one error short of the limit
        the connection stays open."""
        limit = self.config.max_protocol_errors
        client.send(b"x\n" * (limit - 1))
        frames = client.frames()
        self.assertEqual([f["code"] for f in frames], [errors.MALFORMED_JSON] * (limit - 1))
        self.assertFalse(client.closed)

    def assert_error(self, frame: Mapping[str, Any], code: str, request_id: Any = None) -> None:
        self.assertEqual(frame["type"], "error", frame)
        self.assertEqual(frame["code"], code, frame)
        self.assertEqual(frame["id"], request_id, frame)
        self.assertIsInstance(frame["message"], str)
        self.assertTrue(frame["message"])


class HelloTests(LobbyHarness):
    def test_welcome_issues_a_player_id_and_a_secret_and_stores_only_its_hash(self) -> None:
        client = self.connect()
        welcome = client.request({"type": "hello", "name": "Ann", "id": 1})
        self.assertEqual(welcome["id"], 1)
        self.assertRegex(welcome["player_id"], r"^p-[0-9a-f]{16}$")
        self.assertEqual(welcome["name"], "Ann")
        self.assertEqual(welcome["games"], MATCH_SIZES)
        record = self.successResultOf(self.store.get_player(welcome["player_id"]))
        assert record is not None
        self.assertEqual(record.name, "Ann")
        self.assertEqual(record.secret_hash, hash_secret(welcome["secret"]))
        self.assertNotIn(welcome["secret"], repr(record))
        self.assertIs(self.factory.state_of(welcome["player_id"]), PlayerState.IDLE)
        self.assertFalse(client.closed)

    def test_every_hello_gets_a_new_identity(self) -> None:
        first, second = self.connect().hello(), self.connect().hello()
        self.assertNotEqual(first["player_id"], second["player_id"])
        self.assertNotEqual(first["secret"], second["secret"])

    def test_second_hello_is_already_hello(self) -> None:
        client = self.connect()
        client.hello()
        self.assert_error(
            client.request({"type": "hello", "name": "B", "id": "h"}), errors.ALREADY_HELLO, "h"
        )

    def test_ping_works_before_hello(self) -> None:
        client = self.connect()
        self.assertEqual(
            client.request({"type": "ping", "id": "x"}),
            {"type": "pong", "id": "x", "time": self.clock.seconds()},
        )

    def test_queue_and_cancel_need_hello(self) -> None:
        client = self.connect()
        self.assert_error(
            client.request({"type": "queue", "game": "maze", "id": 1}), errors.HELLO_REQUIRED, 1
        )
        self.assert_error(client.request({"type": "cancel", "id": 2}), errors.HELLO_REQUIRED, 2)


class ClosedConnectionTests(LobbyHarness):
    """A closed connection's objects go as soon as nothing holds them: no cycle through
    the protocol leaves them to the garbage collector (issue #41: its passes over such
    leftovers cost the lobby a few percent of its CPU)."""

    def setUp(self) -> None:
        super().setUp()
        gc.disable()
        self.addCleanup(gc.enable)

    def gone_once_dropped(self, clients: list[Client]) -> None:
        """Drop the last of `clients` (the only reference to it): its protocol and
        connection must be gone at once."""
        client = clients.pop()
        refs = [weakref.ref(client.protocol), weakref.ref(client.protocol.connection)]
        client.drop()
        del client
        self.assertEqual([ref() for ref in refs], [None, None])

    def test_a_player_who_left_while_queued(self) -> None:
        self.gone_once_dropped([self.queued_player("Ann")])
        self.assertEqual(self.factory.connection_count, 0)

    def test_matched_players_who_left_after_match_found(self) -> None:
        players = [self.queued_player("Ann"), self.queued_player("Bob")]
        self.assertEqual([[f["type"] for f in c.frames()] for c in players],
                         [["match_found"], ["match_found"]])  # fmt: skip
        self.gone_once_dropped(players)
        self.gone_once_dropped(players)

    def test_a_connection_closed_by_the_lobby(self) -> None:
        clients = [self.connect()]
        clients[0].send(b"not json\n" * 20)
        self.assertTrue(clients[0].closed)
        self.gone_once_dropped(clients)

    def test_a_closed_connection_is_sent_nothing_and_times_nothing(self) -> None:
        client = self.queued_player("Ann")
        protocol = client.protocol
        client.drop()
        protocol.write(b"{}\n")
        protocol.set_timeout(1.0)
        self.assertEqual(client.frames(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FrameErrorTests(LobbyHarness):
    def test_malformed_json(self) -> None:
        client = self.connect()
        client.send(b"{not json\n")
        [frame] = client.frames()
        self.assert_error(frame, errors.MALFORMED_JSON)

    def test_not_an_object(self) -> None:
        client = self.connect()
        client.send(b"[1, 2]\n")
        self.assert_error(client.frames()[0], errors.NOT_AN_OBJECT)

    def test_unknown_type(self) -> None:
        self.assert_error(
            self.connect().request({"type": "dance", "id": 9}), errors.UNKNOWN_TYPE, 9
        )

    def test_missing_field(self) -> None:
        client = self.connect()
        self.assert_error(client.request({"id": 1}), errors.MISSING_FIELD, 1)
        self.assert_error(client.request({"type": "hello", "id": 2}), errors.MISSING_FIELD, 2)

    def test_invalid_field(self) -> None:
        client = self.connect()
        self.assert_error(
            client.request({"type": "hello", "name": 5, "id": 3}), errors.INVALID_FIELD, 3
        )
        self.assert_error(client.request({"type": "ping", "id": [1]}), errors.INVALID_FIELD)

    def test_frame_too_large_then_the_next_frame_is_served(self) -> None:
        client = self.connect()
        client.send(b'{"type":"ping","pad":"' + b"x" * 5000)
        self.assert_error(client.frames()[0], errors.FRAME_TOO_LARGE)
        client.send(b'xxxx"}\n{"type":"ping","id":2}\n')
        [pong] = client.frames()
        self.assertEqual((pong["type"], pong["id"]), ("pong", 2))
        self.assertFalse(client.closed)

    def test_replies_come_in_request_order(self) -> None:
        client = self.connect()
        client.send(
            b'{"type":"ping","id":1}\nbad\n{"type":"hello","name":"A","protocol":%d,"id":2}\n'
            b'{"type":"queue","game":"maze","id":3}\n{"type":"cancel","id":4}\n' % GAME_PROTOCOL
        )
        frames = client.frames()
        self.assertEqual(
            [(f["type"], f["id"]) for f in frames],
            [("pong", 1), ("error", None), ("welcome", 2), ("queued", 3), ("cancelled", 4)],
        )


class QueueTests(LobbyHarness):
    def test_queue_answers_position_and_status(self) -> None:
        first = self.connect()
        first.hello("A")
        reply = first.request({"type": "queue", "game": "maze", "id": "q"})
        self.assertEqual(
            reply,
            {"type": "queued", "id": "q", "game": "maze", "queue": "normal", "position": 1,
             "status": "searching"},
        )
        second = self.connect()
        second.hello("B")
        self.assertEqual(second.request({"type": "queue", "game": "maze"})["position"], 2)
        self.assertIs(self.factory.state_of(first.player_id or ""), PlayerState.QUEUED)

    def test_rating_is_passed_to_the_ticket(self) -> None:
        client = self.connect()
        welcome = client.hello()
        client.request({"type": "queue", "game": "tictactoe", "rating": 1500})
        other = self.queued_player("B")
        [match] = self.matches
        self.assertEqual(match.players[0].rating, 1500.0)
        self.assertEqual(match.players[0].player_id, welcome["player_id"])
        self.assertIsNone(match.players[1].rating)
        del other

    def test_unknown_game(self) -> None:
        client = self.connect()
        client.hello()
        self.assert_error(
            client.request({"type": "queue", "game": "chess", "id": 1}), errors.UNKNOWN_GAME, 1
        )
        self.assertIs(self.factory.state_of(client.player_id or ""), PlayerState.IDLE)

    def test_already_queued(self) -> None:
        client = self.queued_player("A", "maze")
        self.assert_error(
            client.request({"type": "queue", "game": "tictactoe", "id": 1}),
            errors.ALREADY_QUEUED,
            1,
        )
        self.assertEqual(self.matchmaker.queue_length("maze"), 1)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)

    def test_cancel_then_queue_again(self) -> None:
        client = self.queued_player("A", "maze")
        self.assertEqual(
            client.request({"type": "cancel", "id": 5}),
            {"type": "cancelled", "id": 5, "game": "maze"},
        )
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        self.assertEqual(client.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_not_queued(self) -> None:
        client = self.connect()
        client.hello()
        self.assert_error(client.request({"type": "cancel", "id": 1}), errors.NOT_QUEUED, 1)

    def test_disconnecting_cancels_the_ticket_and_forgets_the_player(self) -> None:
        client = self.queued_player("A", "maze")
        player_id = client.player_id
        assert player_id is not None
        client.drop()
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        self.assertIsNone(self.successResultOf(self.store.get_player(player_id)))
        self.assertIsNone(self.factory.state_of(player_id))
        # The next players are matched without the one who left.
        b, c, d = (self.queued_player(n, "maze") for n in "BCD")
        self.assertEqual(len(self.matches), 1)
        self.assertNotIn(player_id, self.matches[0].player_ids)
        del b, c, d

    def test_an_idle_player_who_leaves_is_forgotten(self) -> None:
        client = self.connect()
        player_id = client.hello()["player_id"]
        client.drop()
        self.assertIsNone(self.successResultOf(self.store.get_player(player_id)))
        self.assertEqual(self.factory.connection_count, 0)


class MatchFoundTests(LobbyHarness):
    def test_both_players_get_match_found_and_are_disconnected(self) -> None:
        first = self.queued_player("A")
        second = self.connect()
        second.hello("B")
        second.send({"type": "queue", "game": "tictactoe", "id": "q"})
        # The second player's queue reply comes before their match_found.
        queued, found_b = second.frames()
        self.assertEqual((queued["type"], queued["id"], queued["position"]), ("queued", "q", 2))
        [found_a] = first.frames()
        [match] = self.matches
        for seat, (found, client) in enumerate([(found_a, first), (found_b, second)]):
            self.assertEqual(found["type"], "match_found")
            self.assertNotIn("id", found)
            self.assertEqual(found["game"], "tictactoe")
            self.assertEqual(found["game_id"], match.match_id)
            self.assertEqual((found["host"], found["port"]), ("198.51.100.9", 7400))
            self.assertEqual(found["seat"], seat)
            self.assertEqual(found["token"]["player_id"], client.player_id)
            self.assertEqual(found["token"]["match_id"], match.match_id)
            self.assertEqual(found["expires_at"], self.clock.seconds() + 30.0)
            self.assertTrue(client.closed)
        placement = self.successResultOf(self.store.get_placement(match.match_id))
        assert placement is not None
        self.assertEqual(placement.address, HostAddress("198.51.100.9", 7400))
        self.assertIn(7400, self.udp.listening)

    def test_frames_after_match_found_are_ignored(self) -> None:
        first = self.queued_player("A")
        second = self.queued_player("B")
        self.assertEqual(first.frames()[-1]["type"], "match_found")
        self.assertEqual(second.frames()[-1]["type"], "match_found")
        first.send({"type": "ping"})
        second.send(b"garbage\n")
        self.assertEqual(first.frames(), [])
        self.assertEqual(second.frames(), [])

    def test_waiting_for_server_then_match_found_when_a_game_ends(self) -> None:
        players = [self.queued_player(name) for name in "ABCDEF"]
        for client in players[:4]:
            self.assertEqual(client.frames()[-1]["type"], "match_found")
            client.drop()
        waiting = [client.frames() for client in players[4:]]
        for frames in waiting:
            self.assertEqual(
                frames[-1],
                {
                    "type": "queued",
                    "game": "tictactoe",
                    "position": 1,
                    "status": "waiting_for_server",
                },
            )
        self.assertFalse(players[4].closed)
        self.assertEqual(self.factory.waiting_matches, 1)
        self.assertTrue(self.hosts.end_match(self.matches[0].match_id))
        for client in players[4:]:
            [found] = client.frames()
            self.assertEqual((found["type"], found["port"]), ("match_found", 7400))
            self.assertEqual(found["game_id"], self.matches[2].match_id)
            self.assertTrue(client.closed)
        self.assertEqual(self.factory.waiting_matches, 0)

    def test_a_match_that_ends_removes_its_placement_and_players(self) -> None:
        first, second = self.queued_player("A"), self.queued_player("B")
        first.drop()
        second.drop()
        [match] = self.matches
        self.hosts.end_match(match.match_id)
        self.assertIsNone(self.successResultOf(self.store.get_placement(match.match_id)))
        for player_id in match.player_ids:
            self.assertIsNone(self.successResultOf(self.store.get_player(player_id)))
        self.assertEqual(self.allocator.available, 2)

    def test_match_failed_when_no_host_can_start(self) -> None:
        # Every port of the range held by another process: each is skipped
        # (hosting's test), then the match fails, said in one line, no traceback.
        self.udp.taken.update({7400, 7401})
        lines = capture_log(self)
        first = self.queued_player("A")
        second = self.queued_player("B")
        for client in (first, second):
            [frame] = client.frames()
            self.assert_error(frame, errors.MATCH_FAILED)
            self.assertFalse(client.closed)
            self.assertIs(self.factory.state_of(client.player_id or ""), PlayerState.IDLE)
        self.assertEqual(self.flushLoggedErrors(), [])
        [said] = [line for line in lines if "not placed" in line]
        self.assertRegex(said, r"^match m-\w+ not placed: Couldn.t listen on \S+:740[01]")
        self.assertNotIn("Traceback", "".join(lines))
        # They can queue again; once a port is free, the next match gets it.
        self.udp.taken.discard(7401)
        first.request({"type": "queue", "game": "tictactoe"})
        second.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual(second.frames()[-1]["port"], 7401)

    def test_stopping_the_hosting_service_fails_waiting_matches_quietly(self) -> None:
        players = [self.queued_player(name) for name in "ABCDEF"]
        self.successResultOf(self.hosting.stopService())
        for client in players[4:]:
            frames = client.frames()
            self.assertEqual(frames[0]["status"], "waiting_for_server")
            self.assert_error(frames[-1], errors.MATCH_FAILED)
        # A withdrawn match is not an error in the log.
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.factory.waiting_matches, 0)

    def test_a_player_who_leaves_while_waiting_for_a_server_gives_the_match_up(self) -> None:
        players = [self.queued_player(name) for name in "ABCDEF"]
        leaver, partner = players[4], players[5]
        leaver_id = leaver.player_id or ""
        self.assertEqual(leaver.frames()[-1]["status"], "waiting_for_server")
        partner.frames()
        leaver.drop()
        # Withdrawn: the partner is back at the head of the queue at once, the leaver
        # forgotten, and no port is held for the match.
        self.assertEqual([(f["type"], f.get("requeued"), f.get("reason"))
                          for f in partner.frames()], [("queued", True, "no_host")])  # fmt: skip
        self.assertIsNone(self.successResultOf(self.store.get_player(leaver_id)))
        self.assertEqual(self.factory.waiting_matches, 0)
        self.hosts.end_match(self.matches[0].match_id)
        self.assertEqual(self.hosting.running_games, 1)


class ReconnectTests(LobbyHarness):
    def play_until_match_found(self) -> tuple[dict[str, Any], dict[str, Any], Match]:
        first = self.connect()
        welcome = first.hello("A")
        first.request({"type": "queue", "game": "tictactoe"})
        second = self.queued_player("B")
        [found] = first.frames()
        first.drop()
        second.drop()
        return welcome, found, self.matches[0]

    def test_reconnect_returns_a_fresh_token_for_the_same_seat(self) -> None:
        welcome, found, match = self.play_until_match_found()
        self.clock.advance(10)
        client = self.connect()
        again = client.request(
            reconnect(welcome["player_id"], welcome["secret"], id="r")
        )
        self.assertEqual(again["type"], "match_found")
        self.assertEqual(again["id"], "r")
        for key in ("game", "game_id", "host", "port", "seat"):
            self.assertEqual(again[key], found[key])
        self.assertEqual(again["game_id"], match.match_id)
        self.assertNotEqual(again["token"]["nonce"], found["token"]["nonce"])
        self.assertEqual(again["expires_at"], found["expires_at"] + 10)
        self.assertTrue(client.closed)

    def test_bad_secret(self) -> None:
        welcome, _, _ = self.play_until_match_found()
        client = self.connect()
        reply = client.request(
            reconnect(welcome["player_id"], "guess", id=1)
        )
        self.assert_error(reply, errors.BAD_SECRET, 1)
        self.assertFalse(client.closed)

    def test_unknown_player_is_bad_secret_too(self) -> None:
        reply = self.connect().request(
            reconnect("p-0000000000000000", "s")
        )
        self.assert_error(reply, errors.BAD_SECRET)

    def test_no_active_match(self) -> None:
        client = self.connect()
        welcome = client.hello()
        reply = self.connect().request(
            reconnect(welcome["player_id"], welcome["secret"])
        )
        self.assert_error(reply, errors.NO_ACTIVE_MATCH)

    def test_after_the_match_ended_the_player_is_gone(self) -> None:
        welcome, _, match = self.play_until_match_found()
        self.hosts.end_match(match.match_id)
        reply = self.connect().request(
            reconnect(welcome["player_id"], welcome["secret"])
        )
        self.assert_error(reply, errors.BAD_SECRET)

    def test_reconnect_after_hello_is_refused(self) -> None:
        welcome, _, _ = self.play_until_match_found()
        client = self.connect()
        client.hello()
        reply = client.request(
            reconnect(welcome["player_id"], welcome["secret"])
        )
        self.assert_error(reply, errors.ALREADY_HELLO)

    def test_no_seat_to_reconnect_to_after_leaving_a_match_waiting_for_a_server(
        self,
    ) -> None:
        for name in "ABCD":
            self.queued_player(name)
        late = self.connect()
        welcome = late.hello("E")
        late.request({"type": "queue", "game": "tictactoe"})
        self.queued_player("F")
        self.assertEqual(late.frames()[-1]["status"], "waiting_for_server")
        late.drop()
        reply = self.connect().request(reconnect(welcome["player_id"], welcome["secret"]))
        self.assert_error(reply, errors.BAD_SECRET)

    def test_a_reconnect_replaces_a_live_connection_of_the_player(self) -> None:
        for name in "ABCD":
            self.queued_player(name)
        old = self.connect()
        welcome = old.hello("E")
        old.request({"type": "queue", "game": "tictactoe"})
        self.queued_player("F")
        old.frames()
        new = self.connect()
        new.request(
            reconnect(welcome["player_id"], welcome["secret"])
        )
        [replaced] = old.frames()
        self.assert_error(replaced, errors.SESSION_REPLACED)
        self.assertTrue(old.closed)
        old.drop()
        # The old connection's end does not take the player from the new one.
        self.assertIs(self.factory.state_of(welcome["player_id"]), PlayerState.MATCHED)
        self.hosts.end_match(self.matches[0].match_id)
        self.assertEqual(new.frames()[-1]["type"], "match_found")


class ReturningPlayerTests(LobbyHarness):
    """A player whose lobby connection was lost while queued comes back on a new one."""

    def queued_with_welcome(self, name: str) -> tuple[Client, dict[str, Any]]:
        client = self.connect()
        welcome = client.hello(name)
        self.assertEqual(client.request({"type": "queue", "game": "tictactoe"})["type"], "queued")
        return client, welcome

    def test_hello_with_the_previous_identity_withdraws_its_queued_ticket(self) -> None:
        old, welcome = self.queued_with_welcome("Ann")
        back = self.connect()
        previous = {"player_id": welcome["player_id"], "secret": welcome["secret"]}
        again = back.request(hello("Ann", previous=previous))
        self.assertEqual((again["type"], again["withdrawn"]), ("welcome", True))
        self.assertNotEqual(again["player_id"], welcome["player_id"])
        # The earlier connection (still open here) is told and closed.
        [replaced] = old.frames()
        self.assert_error(replaced, errors.SESSION_REPLACED)
        self.assertTrue(old.closed)
        old.drop()
        # Nobody is matched with the earlier ticket: the next player waits, and is
        # matched with Ann queued again.
        bob = self.connect()
        bob.hello("Bob")
        self.assertEqual(bob.request({"type": "queue", "game": "tictactoe"})["position"], 1)
        self.assertEqual(self.matches, [])
        back.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual([m.player_ids for m in self.matches],
                         [(bob.player_id, again["player_id"])])  # fmt: skip
        # The earlier identity is forgotten.
        reply = self.connect().request(said({"type": "reconnect", **previous}))
        self.assert_error(reply, errors.BAD_SECRET)

    def test_a_wrong_secret_withdraws_nothing_and_says_so_as_for_nothing_queued(self) -> None:
        _, welcome = self.queued_with_welcome("Ann")
        for previous in (
            {"player_id": welcome["player_id"], "secret": "guess"},
            {"player_id": "p-0000000000000000", "secret": welcome["secret"]},
        ):
            again = self.connect().request(hello("Eve", previous=previous))
            self.assertEqual((again["type"], again["withdrawn"]), ("welcome", False))
        bob = self.connect()
        bob.hello("Bob")
        bob.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual([m.player_ids for m in self.matches],
                         [(welcome["player_id"], bob.player_id)])  # fmt: skip

    def test_a_plain_hello_has_no_withdrawn_field(self) -> None:
        self.assertNotIn("withdrawn", self.connect().hello())

    def test_reconnect_of_a_queued_player_withdraws_their_ticket(self) -> None:
        old, welcome = self.queued_with_welcome("Ann")
        reply = self.connect().request(
            reconnect(welcome["player_id"], welcome["secret"])
        )
        self.assert_error(reply, errors.NO_ACTIVE_MATCH)
        self.assertIn("withdrawn", reply["message"])
        self.assert_error(old.frames()[0], errors.SESSION_REPLACED)
        old.drop()
        bob = self.connect()
        bob.hello("Bob")
        self.assertEqual(bob.request({"type": "queue", "game": "tictactoe"})["position"], 1)
        self.assertEqual(self.matches, [])


class LimitTests(LobbyHarness):
    def test_rate_limited_beyond_the_burst(self) -> None:
        client = self.connect()
        client.send(b'{"type":"ping"}\n' * 45)
        frames = client.frames()
        self.assertEqual([f["type"] for f in frames[:40]], ["pong"] * 40)
        for frame in frames[40:]:
            self.assert_error(frame, errors.RATE_LIMITED)
        self.assertEqual(len(frames), 45)
        self.assertFalse(client.closed)
        # Tokens come back at 20 per second.
        self.clock.advance(0.5)
        client.send(b'{"type":"ping"}\n' * 11)
        frames = client.frames()
        self.assertEqual([f["type"] for f in frames], ["pong"] * 10 + ["error"])

    def test_a_rate_limited_request_is_not_served(self) -> None:
        client = self.connect()
        client.send(b'{"type":"ping"}\n' * 40 + b'{"type":"hello","name":"A","id":7}\n')
        last = client.frames()[-1]
        self.assert_error(last, errors.RATE_LIMITED, 7)
        self.assertEqual(self.factory.connection_count, 1)
        # The hello was not served: once tokens are back, a hello is welcomed.
        self.clock.advance(1)
        self.assertEqual(client.hello()["name"], "Ann")

    def test_per_ip_cap(self) -> None:
        factory = self.make_factory(config=LobbyConfig(max_connections_per_ip=2))
        first = self.connect("192.0.2.5", factory)
        self.connect("192.0.2.5", factory)
        third = self.connect("192.0.2.5", factory)
        [frame] = third.frames()
        self.assert_error(frame, errors.TOO_MANY_CONNECTIONS)
        self.assertTrue(third.closed)
        third.drop()
        self.assertEqual(factory.connections_from("192.0.2.5"), 2)
        # Another address is not affected, and a slot frees when a connection ends.
        self.assertFalse(self.connect("192.0.2.6", factory).closed)
        first.drop()
        self.assertFalse(self.connect("192.0.2.5", factory).closed)
        self.assertEqual(factory.connections_from("192.0.2.5"), 2)

    def test_the_default_cap_is_32(self) -> None:
        clients = [self.connect("192.0.2.7") for _ in range(33)]
        self.assertEqual([c.closed for c in clients], [False] * 32 + [True])

    def test_repeated_protocol_errors_close_with_a_final_error(self) -> None:
        client = self.connect()
        client.send(b"x\n" * 9)
        self.assertEqual(len(client.frames()), 9)
        self.assertFalse(client.closed)
        client.send(b'x\n{"type":"ping"}\n')
        frames = client.frames()
        self.assertEqual(
            [f["code"] for f in frames], [errors.MALFORMED_JSON, errors.TOO_MANY_ERRORS]
        )
        self.assertTrue(client.closed)
        client.send(b'{"type":"ping"}\n')
        self.assertEqual(client.frames(), [])

    def test_errors_from_races_do_not_count(self) -> None:
        client = self.connect()
        client.hello()
        for _ in range(15):
            self.assert_error(client.request({"type": "cancel"}), errors.NOT_QUEUED)
        self.assertFalse(client.closed)

    def test_a_bad_client_does_not_cost_anyone_their_place(self) -> None:
        first = self.queued_player("A", "maze")
        second = self.queued_player("B", "maze")
        attacker = self.connect()
        attacker.hello("X")
        attacker.send(b"\x00\xff{{{\n" * 20 + b"z" * 10_000)
        self.assertTrue(attacker.closed)
        attacker.drop()
        self.assertEqual(self.successResultOf(self.matchmaker.position(first.player_id or "")), 1)
        self.assertEqual(self.successResultOf(self.matchmaker.position(second.player_id or "")), 2)
        self.queued_player("C", "maze")
        [match] = self.matches
        self.assertEqual(match.player_ids[:2], (first.player_id, second.player_id))


class DrainingTests(LobbyHarness):
    def test_draining_refuses_new_queue_requests_and_tells_queued_players(self) -> None:
        first = self.queued_player("A")
        late = self.connect()
        late.hello("B")
        self.factory.stopService()
        self.assertTrue(self.factory.draining)
        self.assert_error(
            late.request({"type": "queue", "game": "tictactoe", "id": 1}), errors.SERVER_DRAINING, 1
        )
        # The queued player is told, its ticket withdrawn, its connection closed.
        [told] = first.frames()
        self.assertEqual(told["code"], errors.SERVER_DRAINING)
        self.assertTrue(first.closed)
        self.assertIsNone(self.successResultOf(self.matchmaker.position(first.player_id or "")))
        # Pings still work while draining.
        self.assertEqual(late.request({"type": "ping"})["type"], "pong")
        self.factory.startService()
        self.assertEqual(late.request({"type": "queue", "game": "tictactoe"})["type"], "queued")


class SlowStore(MemoryPlayerStore):
    """A store whose answers wait until the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Deferred[Any]] = []

    def save_player(self, record: PlayerRecord) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.addCallback(lambda _: super(SlowStore, self).save_player(record))
        self.pending.append(d)
        return d

    def release_all(self) -> None:
        while self.pending:
            self.pending.pop(0).callback(None)


class AsynchronousStoreTests(LobbyHarness):
    def test_requests_wait_for_the_one_before_them(self) -> None:
        store = SlowStore()
        factory = self.make_factory(store=store)
        client = self.connect(factory=factory)
        client.send(b'{"type":"hello","name":"A","id":1}\n{"type":"ping","id":2}\n')
        self.assertEqual(client.frames(), [])
        store.release_all()
        self.assertEqual(
            [(f["type"], f["id"]) for f in client.frames()], [("welcome", 1), ("pong", 2)]
        )

    def test_reading_pauses_while_a_backlog_waits(self) -> None:
        store = SlowStore()
        config = LobbyConfig(frame_burst=1000)
        client = self.connect(factory=self.make_factory(store=store, config=config))
        ping = b'{"type":"ping"}\n'
        # Up to a frame's worth of bytes may wait behind the request being served.
        client.send(b'{"type":"hello","name":"A"}\n' + ping * (4096 // len(ping)))
        self.assertEqual(client.transport.producerState, "producing")
        client.send(ping)
        self.assertEqual(client.transport.producerState, "paused")
        store.release_all()
        self.assertEqual(client.transport.producerState, "producing")
        frames = client.frames()
        self.assertEqual(
            [f["type"] for f in frames], ["welcome"] + ["pong"] * (4096 // len(ping) + 1)
        )

    def test_frames_waiting_behind_a_request_are_neither_split_nor_parsed(self) -> None:
        parsed: list[bytes] = []

        def counting(line: bytes) -> Any:
            parsed.append(line)
            return parse_frame(line)

        decoders: list[FrameDecoder] = []
        lines_split: list[object] = []

        class Recording(FrameDecoder):
            def __init__(self, max_frame_bytes: int) -> None:
                super().__init__(max_frame_bytes)
                decoders.append(self)

            def next_line(self) -> Any:
                line = super().next_line()
                if line is not None:
                    lines_split.append(line)
                return line

        self.patch(connection, "parse_frame", counting)
        self.patch(connection, "FrameDecoder", Recording)
        store = SlowStore()
        client = self.connect(factory=self.make_factory(store=store))
        client.send(b'{"type":"hello","name":"A"}\n' + b"1\n" * 16383)
        [decoder] = decoders
        self.assertEqual((len(parsed), len(lines_split)), (1, 1))
        self.assertEqual(decoder.buffered, 2 * 16383)
        self.assertEqual(client.transport.producerState, "paused")
        # Nothing answered (so nothing counted) while the hello waits.
        self.assertEqual(client.frames(), [])
        store.release_all()
        # Served in order: the welcome, then ten errors close the connection.
        frames = client.frames()
        self.assertEqual(frames[0]["type"], "welcome")
        self.assertEqual([f["code"] for f in frames[1:-1]], [errors.NOT_AN_OBJECT] * 10)
        self.assertEqual(frames[-1]["code"], errors.TOO_MANY_ERRORS)
        self.assertTrue(client.closed)
        self.assertEqual((len(parsed), len(lines_split)), (11, 11))
        # What was left unsplit is dropped with the connection, not kept.
        self.assertEqual(decoder.buffered, 0)

    def test_a_player_who_leaves_during_hello_is_not_kept(self) -> None:
        store = SlowStore()
        client = self.connect(factory=self.make_factory(store=store))
        client.send({"type": "hello", "name": "A"})
        client.drop()
        store.release_all()
        self.assertEqual(store.player_count, 0)
        self.assertEqual(client.frames(), [])


class AwayStore(MemoryPlayerStore):
    def save_player(self, record: PlayerRecord) -> Deferred[None]:
        return fail(BackendUnavailable("Redis at 127.0.0.1:6379 did not answer within 2 s"))


class AwayMatchmaker(MemoryMatchmaker):
    def enqueue(self, ticket: Ticket) -> Deferred[int]:
        return fail(BackendUnavailable("enqueue: Redis did not answer within 5.0 s"))


class PlacementSaveTests(LobbyHarness):
    """The hosting of a lobby in one process saves each placement in the lobby's store
    (in memory) before the players are told where to go; a save that fails (a bug) does
    not fail a match its game host runs: only the players' `reconnect` to it is lost."""

    def test_the_placement_is_saved_as_the_players_are_told(self) -> None:
        first, second = self.queued_player("A"), self.queued_player("B")
        [match] = self.matches
        for client in (first, second):
            self.assertEqual(client.frames()[-1]["type"], "match_found")
        placement = self.successResultOf(self.store.get_placement(match.match_id))
        self.assertEqual(placement.match_id, match.match_id)

    def test_a_save_that_fails_still_delivers(self) -> None:
        for failure in (RuntimeError("a bug"), BackendUnavailable("Redis is away")):
            class BrokenPlacements(MemoryPlayerStore):
                def save_placement(self, placement: MatchPlacement,
                                   error: Exception = failure) -> Deferred[None]:  # fmt: skip
                    return fail(error)

            self.matches.clear()
            self.matchmaker = MemoryMatchmaker(GAMES, self.clock)
            self.matchmaker.add_listener(self.matches.append)
            broken = BrokenPlacements()
            hosting = GameHostingService(PortAllocator(self.ports), self.hosts, store=broken,
                                         clock=self.clock)  # fmt: skip
            self.factory = self.make_factory(store=broken, matchmaker=self.matchmaker,
                                             hosting=hosting)  # fmt: skip
            self.factory.startService()
            first, second = self.queued_player("A"), self.queued_player("B")
            for client in (first, second):
                self.assertEqual([f["type"] for f in client.frames()], ["match_found"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class BrokenStore(MemoryPlayerStore):
    def save_player(self, record: PlayerRecord) -> Deferred[None]:
        raise OSError("disk on fire")


class InternalErrorTests(LobbyHarness):
    def test_a_failing_store_answers_internal_error_and_keeps_the_connection(self) -> None:
        client = self.connect(factory=self.make_factory(store=BrokenStore()))
        self.assert_error(
            client.request({"type": "hello", "name": "A", "id": 1}), errors.INTERNAL_ERROR, 1
        )
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(client.request({"type": "ping"})["type"], "pong")

    def test_redis_away_answers_unavailable_and_logs_no_failure(self) -> None:
        # The store or matchmaker timed out on Redis: the player is told to try
        # again (`unavailable`), not that the server broke.
        client = self.connect(factory=self.make_factory(store=AwayStore()))
        self.assert_error(
            client.request({"type": "hello", "name": "A", "id": 1}), errors.UNAVAILABLE, 1
        )
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(client.request({"type": "ping"})["type"], "pong")
        away = AwayMatchmaker(GameCatalogue.sized({"tictactoe": 2}), self.clock)
        factory = self.make_factory(matchmaker=away)
        queuer = self.connect(factory=factory)
        queuer.hello("B")
        self.assert_error(
            queuer.request({"type": "queue", "game": "tictactoe", "id": 2}), errors.UNAVAILABLE, 2
        )
        # Not queued: the player may queue again.
        self.assert_error(queuer.request({"type": "cancel", "id": 3}), errors.NOT_QUEUED, 3)

    def test_a_failing_token_issuer_fails_only_that_delivery(self) -> None:
        class Broken(PlaceholderTokenIssuer):
            def issue(
                self,
                player_id: str,
                match_id: str,
                address: HostAddress,
                now: float,
                **user_data: Any,
            ) -> Mapping[str, Any]:
                if user_data["name"] == "B":
                    raise RuntimeError("no key")
                return super().issue(player_id, match_id, address, now, **user_data)

        self.assert_only_b_refused(Broken(), RuntimeError)

    def assert_only_b_refused(self, issuer: Any, error: type[Exception]) -> None:
        """A and B queue for one match; `issuer` fails on B's token with `error`: A is
        told `match_found`, B an internal error, and the error is logged once."""
        factory = self.make_factory(token_issuer=issuer)
        first = self.connect(factory=factory)
        first.hello("A")
        first.request({"type": "queue", "game": "tictactoe"})
        second = self.connect(factory=factory)
        second.hello("B")
        second.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual(first.frames()[-1]["type"], "match_found")
        self.assert_error(second.frames()[-1], errors.INTERNAL_ERROR)
        self.assertEqual(len(self.flushLoggedErrors(error)), 1)

    def test_a_token_json_cannot_carry_fails_only_that_delivery(self) -> None:
        class Unsafe(PlaceholderTokenIssuer):
            def issue(
                self,
                player_id: str,
                match_id: str,
                address: HostAddress,
                now: float,
                **user_data: Any,
            ) -> Mapping[str, Any]:
                token = dict(super().issue(player_id, match_id, address, now, **user_data))
                if user_data["name"] == "B":
                    token["expires_at"] = float("nan")
                return token

        self.assert_only_b_refused(Unsafe(), ValueError)


class PlaceholderTokenIssuerTests(SynchronousTestCase):
    def test_issues_a_fresh_json_safe_token(self) -> None:
        issuer = PlaceholderTokenIssuer(lifetime=15.0)
        self.assertTrue(verifyObject(ITokenIssuer, issuer))
        address = HostAddress("127.0.0.1", 7400)
        token = issuer.issue("p-b", "m-1", address, 100.0, name="B", team=1)
        self.assertEqual(token["seat"], 1)
        self.assertEqual(token["expires_at"], 115.0)
        self.assertEqual(token["kind"], "placeholder")
        json.dumps(token)
        self.assertNotEqual(
            token["nonce"], issuer.issue("p-b", "m-1", address, 100.0, team=1)["nonce"]
        )
        self.assertTrue(re.fullmatch(r"[0-9a-f]{32}", token["nonce"]))
        self.assertIn("placeholder", (PlaceholderTokenIssuer.__doc__ or "").lower())
