"""Stream sessions of the game host core (the WebSocket path), driven by bytes and `now`.

A real `GameHostCore` with one player on UDP (a sans-I/O `ClientConnection`)
and one on a stream: the test hands the stream player's messages to
`stream_received` and takes what the core owes it from `streams_to_send`,
as the WebSocket adapter does. No socket, no reactor.
"""

from __future__ import annotations

from typing import Any

from tests.hosting.test_hosting_core import HOST, CoreTestCase
from tests.rooms.test_rooms_fixtures import make_match
from vinom.games.duel import DuelGame
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.hosting.core import GameHostCore, HostConfig, HostIdle
from vinom.hosting.interfaces import StreamOpened, StreamRefused, StreamsReady
from vinom.hosting.spectators import SPECTATOR_PREFIX, SpectatorSettings
from vinom.match import MatchEnded
from vinom.protocol.address import HostAddress
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.client_messages import encode_action, encode_leave
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.room import RoomConfig


class StreamPlayer:
    """A player on a stream: its session id and what it has received."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.messages: list[dict[str, Any]] = []
        self.channels: list[int] = []
        self.view: dict[str, Any] | None = None
        self.version = -1
        self.closed = False

    def receive(self, channel: int, data: bytes) -> None:
        message = decode_server_message(data)
        assert message is not None, data
        self.messages.append(message)
        self.channels.append(channel)
        if message["t"] == "state" and message["v"] > self.version:
            self.version, self.view = message["v"], message["s"]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["t"] == kind]


class StreamCoreTestCase(CoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.streams: dict[int, StreamPlayer] = {}
        # Messages for stream sessions no player holds (any would be a bug).
        self.strays: list[int] = []

    def request(self, player_id: str, match_id: str = "m-1", **kwargs: Any) -> bytes:
        fields: dict[str, Any] = {"hosts": (HOST,), "now": self.wall()} | kwargs
        token = self.issuer.issue_token(player_id=player_id, match_id=match_id, **fields)
        return token.request_packet()

    def open(self, player_id: str, match_id: str = "m-1") -> StreamPlayer:
        opened = self.core.open_stream(self.request(player_id, match_id), self.now)
        assert isinstance(opened, StreamOpened), opened
        self.assertEqual((opened.player_id, opened.match_id), (player_id, match_id))
        player = self.streams[opened.session_id] = StreamPlayer(opened.session_id)
        self.pump()
        return player

    def send(self, player: StreamPlayer, data: bytes) -> None:
        self.core.stream_received(player.session_id, data, self.now)
        self.pump()

    def pump(self) -> None:
        super().pump()
        # The core announces stream output once, after its other events.
        self.events = [e for e in self.events if not isinstance(e, StreamsReady)]
        messages, closed = self.core.streams_to_send()
        for session_id, channel, data in messages:
            if session_id in self.streams:
                self.streams[session_id].receive(channel, data)
            else:
                self.strays.append(session_id)
        for session_id in closed:
            self.streams[session_id].closed = True


class StreamMatchTests(StreamCoreTestCase):
    def test_a_whole_tictactoe_match_one_udp_one_stream_player(self) -> None:
        self.core.add_match(make_match("m-t", ("p-x", "p-o"), "tictactoe"), self.now)
        x = self.join("p-x", "m-t")  # UDP, plays X
        o = self.open("p-o", "m-t")  # stream
        self.assertTrue(x.connected)
        self.assertLess(o.session_id, 0, "stream ids never collide with the endpoint's")
        self.assertEqual((self.core.session_count, self.core.stream_count), (1, 1))
        [welcome] = o.of_type("welcome")
        self.assertEqual(o.messages[0], welcome, "the welcome comes first")
        self.assertEqual((welcome["match"], welcome["seat"]), ("m-t", 1))
        self.assertEqual([p["id"] for p in welcome["players"]], ["p-x", "p-o"])
        self.assertEqual(o.of_type("phase")[-1]["p"], "playing")
        rows = {"p-x": [0, 1, 2], "p-o": [3, 4, 5]}
        for action_id in range(1, 11):
            assert x.view is not None
            turn = x.view["turn"]
            if turn is None:
                break
            cell = rows[turn].pop(0)
            if turn == "p-x":
                x.connection.send_message(RELIABLE, encode_action({"cell": cell}, action_id))
            else:
                self.send(o, encode_action({"cell": cell}, action_id))
            self.run_for(0.05)
        assert x.view is not None
        self.assertTrue(x.view["round_over"])
        self.assertEqual(o.view, x.view, "both see the same board")
        self.assertEqual(o.version, x.version)
        winner = x.view["round_winner"]
        loser_is_stream = winner == "p-x"
        if loser_is_stream:
            self.send(o, encode_action({"rematch": False}, 99))
        else:
            x.connection.send_message(RELIABLE, encode_action({"rematch": False}, 99))
        self.run_for(0.1)
        for messages in (x.messages, o.messages):
            phase = [m for m in messages if m["t"] == "phase"][-1]
            self.assertEqual((phase["p"], phase["result"]["winners"]), ("finished", [winner]))
            self.assertEqual([m for m in messages if m["t"] == "error"], [])
        self.assertTrue(o.of_type("event"), "events reach the stream player")
        [ended] = self.events
        assert isinstance(ended, MatchEnded)
        self.assertEqual((ended.phase, ended.joined), ("finished", ("p-x", "p-o")))
        # The linger ends: the core closes the stream after its last messages.
        self.run_for(3.5)
        self.assertEqual(self.events[1:], [HostIdle()])
        self.assertTrue(o.closed)
        self.assertEqual(x.closed, "disconnect")
        self.assertEqual((self.core.session_count, self.core.stream_count), (0, 0))
        self.assertIsNone(self.core.get_timer())
        self.assertEqual(self.strays, [])

    def test_states_go_unreliable_and_only_the_newest_pending_one_is_kept(self) -> None:
        self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        a = self.open("p-a")
        b = self.open("p-b")
        self.assertEqual(b.of_type("phase")[-1]["p"], "playing")
        # Five moves and several periodic states before B's stream is read again.
        for n in range(1, 6):
            self.core.stream_received(a.session_id, encode_action({"seq": n}, n), self.now)
        self.now += 3.0
        self.core.handle_timer(self.now)
        messages, _ = self.core.streams_to_send()
        states = [(ch, data) for sid, ch, data in messages
                  if sid == b.session_id and decode_server_message(data)["t"] == "state"]
        self.assertEqual([ch for ch, _ in states], [UNRELIABLE], "one state, the newest")
        newest = decode_server_message(states[0][1])
        room = self.core.room("m-1")
        assert room is not None and newest is not None
        self.assertEqual(newest["v"], room.version)
        self.assertEqual(newest["s"]["seq"]["p-a"], 5)
        self.assertGreater(len(messages), len(states), "reliable ones are all kept")

    def test_a_closed_stream_holds_the_seat_and_a_new_stream_resumes_it(self) -> None:
        room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        a = self.open("p-a")
        b = self.join("p-b")
        self.send(a, encode_action({"seq": 1}, 1))
        self.core.stream_closed(a.session_id, self.now)
        self.pump()
        self.assertTrue(room.in_grace("p-a"))
        self.assertIn({"t": "presence", "id": "p-a", "status": "disconnected"}, b.messages)
        # Messages for the closed stream go nowhere.
        self.core.stream_received(a.session_id, encode_action({"seq": 2}, 2), self.now)
        self.assertEqual(self.core.stream_drops["no_session"], 1)
        self.run_for(1.0)
        again = self.open("p-a")
        self.assertNotEqual(again.session_id, a.session_id)
        self.assertTrue(again.of_type("welcome")[0]["reconnected"])
        assert again.view is not None
        self.assertEqual(again.view["seq"]["p-a"], 1)
        self.assertIn({"t": "presence", "id": "p-a", "status": "connected"}, b.messages)
        self.assertFalse(room.in_grace("p-a"))

    def test_stream_output_is_announced_once_until_taken(self) -> None:
        self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        opened = self.core.open_stream(self.request("p-a"), self.now)
        assert isinstance(opened, StreamOpened)
        self.assertEqual(self.core.next_event(), StreamsReady())
        self.assertIsNone(self.core.next_event(), "once")
        messages, closed = self.core.streams_to_send()
        self.assertEqual(decode_server_message(messages[0][2])["t"], "welcome")  # type: ignore[index]
        self.assertEqual(closed, [])
        self.assertIsNone(self.core.next_event(), "nothing new")
        self.assertEqual(self.core.streams_to_send(), ([], []))

    def test_a_new_stream_of_the_same_player_replaces_the_old(self) -> None:
        room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        old = self.open("p-a")
        new = self.open("p-a")
        self.assertTrue(old.closed, "the core closed the old stream")
        self.assertFalse(new.closed)
        self.assertEqual(self.core.stream_count, 1)
        self.assertTrue(new.of_type("welcome")[0]["reconnected"])
        self.assertIsNotNone(room.seat_of("p-a"))

    def test_leave_closes_the_stream(self) -> None:
        room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        a = self.open("p-a")
        self.open("p-b")
        self.send(a, encode_leave())
        self.assertTrue(a.closed)
        self.assertTrue(room.ended)


class StreamRefusalTests(StreamCoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)

    def assert_refused(self, token: bytes, reason: str) -> None:
        self.assertEqual(self.core.open_stream(token, self.now), StreamRefused(reason))
        self.assertEqual(self.core.stream_count, 0)
        self.pump()
        self.assertEqual(self.strays, [])

    def test_garbage_is_refused(self) -> None:
        for data in (b"", b"\x00", b"x" * 1200, self.request("p-a")[:-1]):
            self.assert_refused(data, "request_size")

    def test_a_forged_token_is_refused(self) -> None:
        request = bytearray(self.request("p-a"))
        request[100] ^= 1
        self.assert_refused(bytes(request), "token_invalid")

    def test_an_expired_token_is_refused(self) -> None:
        self.assert_refused(self.request("p-a", now=self.wall() - 3600), "token_expired")

    def test_a_token_for_another_host_is_refused(self) -> None:
        other = (HostAddress("127.0.0.1", 40001),)
        self.assert_refused(self.request("p-a", hosts=other), "wrong_host")

    def test_a_stranger_is_refused(self) -> None:
        self.assert_refused(self.request("p-z"), "not_admitted")
        self.assert_refused(self.request("p-a", "m-2"), "not_admitted")

    def test_a_token_opens_one_session(self) -> None:
        request = self.request("p-a")
        self.assertIsInstance(self.core.open_stream(request, self.now), StreamOpened)
        self.assertEqual(self.core.open_stream(request, self.now), StreamRefused("token_reused"))

    def test_a_player_on_udp_cannot_open_a_stream(self) -> None:
        a = self.join("p-a")
        self.assertTrue(a.connected)
        self.assert_refused(self.request("p-a"), "already_connected")

    def test_oversized_and_malformed_messages_are_dropped(self) -> None:
        self.core.add_match(make_match("m-2", ("p-c", "p-d"), "duel"), self.now)
        c = self.open("p-c", "m-2")
        before = len(c.messages)
        self.send(c, b"\x81" + b"x" * 3000)
        self.send(c, b"\xc1not msgpack")
        self.assertEqual(self.core.stream_drops["too_large"], 1)
        self.assertEqual(sum(self.core.router.drops.values()), 1)
        self.assertEqual(len(c.messages), before, "never a reply to garbage")
        self.assertFalse(c.closed)


class DelayedSpectatorTests(StreamCoreTestCase):
    """A spectator `delay` seconds behind sees the match's last seconds that late too,
    and the host is idle (free to stop) only once the delayed end has been sent."""

    DELAY = 5.0

    def setUp(self) -> None:
        super().setUp()
        self.core = GameHostCore(
            HostConfig(self.core.endpoint.config.protocol, (HOST,)),
            GameRegistry([DuelGame(), TicTacToeGame()]).get,
            RoomConfig(),
            wall_clock=self.wall,
            spectators=SpectatorSettings(delay=self.DELAY),
        )

    def test_the_end_comes_delay_seconds_late_and_the_host_waits_for_it(self) -> None:
        self.core.add_match(make_match("m-t", ("p-x", "p-o"), "tictactoe"), self.now)
        x, o = self.open("p-x", "m-t"), self.open("p-o", "m-t")
        watcher = self.open(SPECTATOR_PREFIX + "1", "m-t")
        players = {"p-x": x, "p-o": o}
        rows = {"p-x": [0, 1, 2], "p-o": [3, 4, 5]}
        for action_id in range(1, 10):
            assert x.view is not None
            turn = x.view["turn"]
            if turn is None:
                break
            self.send(players[turn], encode_action({"cell": rows[turn].pop(0)}, action_id))
            self.run_for(0.5)
        assert x.view is not None
        self.assertTrue(x.view["round_over"])
        winner = x.view["round_winner"]
        loser = o if winner == "p-x" else x
        self.send(loser, encode_action({"rematch": False}, 99))  # the match ends here
        ended_at = self.now
        [ended] = [e for e in self.events if isinstance(e, MatchEnded)]
        self.assertEqual(ended.phase, "finished")  # the outcome is told at once
        # The players leave; the room goes; the spectator is still DELAY behind.
        self.send(x, encode_leave())
        self.send(o, encode_leave())
        self.run_for(self.DELAY - 0.5)
        self.assertEqual(watcher.of_type("phase"), [])
        self.assertLess(watcher.version, x.version)  # the last moves not shown yet
        self.assertFalse(watcher.closed)
        self.assertNotIn(HostIdle(), self.events)
        self.run_for(1.0)
        phases = watcher.of_type("phase")
        self.assertEqual(phases[-1]["p"], "finished")
        self.assertEqual(phases[-1]["result"]["winners"], [winner])
        self.assertEqual(watcher.of_type("state")[-1]["v"], x.version)
        self.assertTrue(watcher.closed)
        self.assertEqual(self.events[-1], HostIdle())
        self.assertEqual(self.events.count(HostIdle()), 1)
        self.assertGreaterEqual(self.now, ended_at + self.DELAY)
        self.assertEqual(self.strays, [])
