"""The game host core, driven by datagrams and `now` alone: whole matches in a unit test.

A real `GameHostCore` (endpoint, seat router, rooms) and real sans-I/O
`ClientConnection`s with real connect tokens; the test moves datagrams
between them by hand and says what time it is. No reactor, no clock, no
socket: what the players see (welcome, states, phases, results, presence,
closed sessions) is all the core's doing.
"""

from __future__ import annotations

import os
import random
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import SeqGame, make_match
from vinom.games.duel import DuelGame
from vinom.games.maze import MazeGame
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.hosting.core import GameHostCore, HostIdle
from vinom.hosting.spectators import SPECTATOR_PREFIX
from vinom.match import MatchEnded
from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import (
    RELIABLE,
    UNRELIABLE,
    ConnectFailed,
    MessageReceived,
    SessionClosed,
    SessionConnected,
)
from vinom.protocol.tokens import TokenIssuer
from vinom.rooms.client_messages import encode_action, encode_input
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import Phase
from vinom.rooms.room import RoomConfig
from vinom.rooms.router import FLOOD_SECONDS, INPUT_MESSAGES_PER_TICK

HOST = HostAddress("127.0.0.1", 40000)
WALL_START = 1_700_000_000.0


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


class CoreTestCase(SynchronousTestCase):
    """A core with the duel, tictactoe and maze games; the players and the time are the test's."""

    def setUp(self) -> None:
        self.now = 100.0
        protocol = ProtocolConfig(token_key=os.urandom(32))
        self.issuer = TokenIssuer(IssuerConfig(protocol))
        self.core = GameHostCore(
            HostConfig(protocol, (HOST,)),
            GameRegistry([DuelGame(), TicTacToeGame(), MazeGame()]).get,
            RoomConfig(options={"target": 20}),
            wall_clock=self.wall,
        )
        self.players: list[Player] = []
        self.next_port = 50000
        self.events: list[object] = []

    def wall(self) -> float:
        return WALL_START + self.now

    def join(self, player_id: str, match_id: str = "m-1") -> Player:
        token = self.issuer.issue_token(
            player_id=player_id, match_id=match_id, hosts=(HOST,), now=self.wall()
        )
        connection = ClientConnection(token, self.now, wall_clock=self.wall)
        self.next_port += 1
        player = Player(connection, ("127.0.0.1", self.next_port))
        self.players.append(player)
        self.pump()
        return player

    def pump(self) -> None:
        """Move datagrams both ways until none are left."""
        core = self.core
        for _ in range(100):
            moved = False
            now = self.now
            for player in self.players:
                for data, _addr in player.connection.datagrams_to_send(now):
                    moved = True
                    if not player.silent:
                        core.receive_datagram(data, player.address, now)
            for data, addr in core.datagrams_to_send(now):
                moved = True
                for player in self.players:
                    if player.address == addr and not player.silent:
                        player.connection.receive_datagram(data, (HOST.host, HOST.port), now)
            for player in self.players:
                player.take_events()
            while (event := core.next_event()) is not None:
                self.events.append(event)
            if not moved:
                return
        self.fail("datagrams kept flowing")

    def run_for(self, seconds: float, step: float = 0.05) -> None:
        """Let time pass in steps, calling every timer that falls due, as an adapter does."""
        end = self.now + seconds
        while self.now < end:
            self.now += step
            now = self.now
            timer = self.core.get_timer()
            if timer is not None and timer <= now:
                self.core.handle_timer(now)
            for player in self.players:
                timer = player.connection.get_timer()
                if timer is not None and timer <= now:
                    player.connection.handle_timer(now)
            self.pump()


class DuelTests(CoreTestCase):
    def play_until_finished(self, players: list[Player]) -> None:
        action_id = 0
        for _ in range(500):
            room = self.core.room("m-1")
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
        room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
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
        self.assertEqual(self.core.router.counters["actions_rejected"], len(errors))
        self.assertEqual(self.core.router.drops, {})
        self.assertEqual(
            self.events,
            [MatchEnded("m-1", "finished", room.ending.result, None, ("p-a", "p-b"))],
            "the room lingers",
        )
        # The room lingers, then goes; its sessions are closed and the host is idle.
        self.run_for(3.5)
        self.assertIsNone(self.core.room("m-1"))
        self.assertEqual(self.events[1:], [HostIdle()])
        self.assertEqual((a.closed, b.closed), ("disconnect", "disconnect"))
        self.assertEqual(self.core.session_count, 0)
        self.assertIsNone(self.core.get_timer())

    def test_strangers_are_refused_in_the_handshake(self) -> None:
        self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        stranger = self.join("p-z")
        wrong_match = self.join("p-a", "m-2")
        self.run_for(0.5)
        self.assertFalse(stranger.connected or wrong_match.connected)
        self.assertEqual(self.core.session_count, 0)
        self.assertEqual(self.core.router.counters["sessions_opened"], 0)

    def test_reconnect_after_a_timeout(self) -> None:
        room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
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

    def test_shutdown_ends_the_rooms_and_closes_their_sessions(self) -> None:
        self.core.add_match(make_match("m-1", ("p-a", "p-b"), "duel"), self.now)
        a, b = self.join("p-a"), self.join("p-b")
        self.core.shutdown("maintenance", self.now)
        self.pump()
        self.assertEqual((a.closed, b.closed), ("disconnect", "disconnect"))
        # Told before their sessions closed: the final phase and state arrive first.
        for player in (a, b):
            phase = player.of_type("phase")[-1]
            self.assertEqual((phase["p"], phase["reason"]), ("aborted", "maintenance"))
            self.assertEqual(player.of_type("state")[-1]["p"], "aborted")
        self.assertEqual(
            self.events,
            [MatchEnded("m-1", "aborted", None, "maintenance", ("p-a", "p-b")), HostIdle()],
        )
        self.assertEqual(self.core.room_count, 0)


class TicTacToeMatchTests(CoreTestCase):
    """The issue's test: a whole tictactoe match, datagrams and `now` only."""

    def test_a_whole_tictactoe_match(self) -> None:
        self.core.add_match(make_match("m-t", ("p-x", "p-o"), "tictactoe"), self.now)
        x = self.join("p-x", "m-t")  # the first to join plays X
        o = self.join("p-o", "m-t")
        for player, seat in ((x, 0), (o, 1)):
            self.assertTrue(player.connected)
            [welcome] = player.of_type("welcome")
            self.assertEqual(
                (welcome["match"], welcome["game"], welcome["seat"]), ("m-t", "tictactoe", seat)
            )
            self.assertEqual(player.of_type("phase")[-1]["p"], "playing")
        # Each fills a row of its own when its turn comes; whoever starts wins.
        rows = {"p-x": [0, 1, 2], "p-o": [3, 4, 5]}
        for action_id in range(1, 11):
            assert x.view is not None
            turn = x.view["turn"]
            if turn is None:
                break
            mover = x if turn == "p-x" else o
            cell = rows[turn].pop(0)
            mover.connection.send_message(RELIABLE, encode_action({"cell": cell}, action_id))
            self.run_for(0.05)
        assert x.view is not None and o.view is not None
        self.assertTrue(x.view["round_over"])
        self.assertEqual(o.view, x.view, "both see the same board")
        self.assertEqual(len([c for c in x.view["board"] if c]), 5)
        winner = x.view["round_winner"]
        self.assertIn(winner, ("p-x", "p-o"))
        # The loser declines a rematch: the match is over.
        loser = o if winner == "p-x" else x
        loser.connection.send_message(RELIABLE, encode_action({"rematch": False}, 99))
        self.run_for(0.1)
        for player in (x, o):
            phase = player.of_type("phase")[-1]
            self.assertEqual(phase["p"], "finished")
            self.assertEqual(phase["result"]["winners"], [winner])
            self.assertEqual(phase["result"]["reason"], "completed")
            final = player.of_type("state")[-1]
            self.assertEqual((final["p"], final["s"]["finished"]), ("finished", True))
            self.assertEqual(player.of_type("error"), [])
        [ended] = self.events
        assert isinstance(ended, MatchEnded)
        self.assertEqual((ended.match_id, ended.phase, ended.reason), ("m-t", "finished", None))
        self.assertEqual(ended.result and ended.result["winners"], [winner])
        # After the linger the room goes, the sessions are closed, nothing is left.
        self.run_for(3.5)
        self.assertEqual(self.events[1:], [HostIdle()])
        self.assertEqual((x.closed, o.closed), ("disconnect", "disconnect"))
        self.assertEqual((self.core.room_count, self.core.session_count), (0, 0))
        self.assertIsNone(self.core.get_timer())


class FirstMessagesTests(CoreTestCase):
    """docs/protocol.md §14: the welcome is a session's first message, and the first
    state after it is current, also for the player whose arrival starts the match."""

    def assert_welcome_then_current_state(self, player: Player, phase: str) -> None:
        kinds = [m["t"] for m in player.messages]
        self.assertEqual(kinds[0], "welcome", kinds)
        first_state = player.of_type("state")[0]
        latest = max(m["v"] for m in player.messages if "v" in m)
        self.assertEqual((first_state["v"], first_state["p"]), (latest, phase), player.messages)

    def test_the_player_who_completes_the_match(self) -> None:
        for game in ("tictactoe", "duel"):
            with self.subTest(game=game):
                a, b = f"{game}-a", f"{game}-b"
                self.core.add_match(make_match(f"m-{game}", (a, b), game), self.now)
                first = self.join(a, f"m-{game}")
                self.assert_welcome_then_current_state(first, "waiting")
                second = self.join(b, f"m-{game}")  # play starts as it arrives
                self.assert_welcome_then_current_state(second, "playing")
                versions = [m["v"] for m in second.of_type("state")]
                self.assertEqual(versions, sorted(versions), "no state goes backwards")
                self.players.clear()


class LateConnectionTests(CoreTestCase):
    def test_a_match_aborted_for_players_missing_denies_a_late_player(self) -> None:
        """docs/protocol.md §5.7: `denied` when the match will not seat the player,
        which includes a match that has ended; the client fails at once."""
        self.core.add_match(make_match("m-late", ("p-on-time", "p-late"), "tictactoe"), self.now)
        on_time = self.join("p-on-time", "m-late")
        self.run_for(31.0)  # past the connect deadline (30 s)
        self.assertEqual(on_time.of_type("phase")[-1]["reason"], "players_missing")
        late = self.join("p-late", "m-late")
        self.run_for(0.2)
        self.assertEqual((late.connected, late.closed), (False, "denied"))
        checkout = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        docs = os.path.join(checkout, "docs", "protocol.md")
        with open(docs, encoding="utf-8") as f:
            text = f.read()
        denied = text[text.index("### 5.7 denied"):text.index("### 5.8")]
        self.assertIn("players_missing", denied)


class IdlePlayerTests(CoreTestCase):
    """A player whose move is awaited and who sends no action for the game's
    idle_timeout (60 s in tictactoe) forfeits; only the awaited player counts."""

    def start(self) -> tuple[Player, Player]:
        self.core.add_match(make_match("m-idle", ("p-x", "p-o"), "tictactoe"), self.now)
        x, o = self.join("p-x", "m-idle"), self.join("p-o", "m-idle")
        assert x.view is not None
        return (x, o) if x.view["turn"] == "p-x" else (o, x)

    def move(self, player: Player, cell: int, action_id: int) -> None:
        player.connection.send_message(RELIABLE, encode_action({"cell": cell}, action_id))
        self.run_for(0.05)

    def test_turns_taken_in_time_are_never_idle(self) -> None:
        first, second = self.start()
        # Each waits 50 s before every move: 100 s of silence each, but never 60
        # while the other was to move... and the game goes on.
        for n, (player, cell) in enumerate(((first, 0), (second, 3), (first, 1), (second, 4))):
            self.run_for(50.0, step=1.0)
            self.move(player, cell, n + 1)
        self.assertEqual(first.of_type("phase")[-1]["p"], "playing")
        self.assertEqual([m for m in first.messages if m.get("status") == "idle"], [])

    def test_the_awaited_player_forfeits_after_the_idle_timeout(self) -> None:
        first, second = self.start()
        self.move(first, 0, 1)
        self.run_for(59.0, step=1.0)
        self.assertEqual(second.of_type("phase")[-1]["p"], "playing")
        self.run_for(1.5, step=0.5)
        for player in (first, second):
            self.assertIn({"t": "presence", "id": self.id_of(second), "status": "idle"},
                          player.messages)
            phase = player.of_type("phase")[-1]
            self.assertEqual((phase["p"], phase["result"]["reason"]), ("finished", "idle"))
            self.assertEqual(phase["result"]["winners"], [self.id_of(first)])
        [ended] = [e for e in self.events if isinstance(e, MatchEnded)]
        self.assertEqual(ended.phase, "finished")

    def test_an_idle_player_of_a_game_that_goes_on_is_out(self) -> None:
        self.core.add_match(make_match("m-maze", ("p-1", "p-2", "p-3"), "maze"), self.now)
        players = [self.join(p, "m-maze") for p in ("p-1", "p-2", "p-3")]
        self.run_for(3.5)  # the countdown
        # Two keep moving (as the game's bots would); the third sends nothing.
        bots = [MazeGame().make_bot(p, random.Random(1)) for p in ("p-1", "p-2")]
        for n in range(13):
            for player, bot in zip(players, bots, strict=False):
                assert player.view is not None
                action = bot.choose_action(player.view)
                if action is not None:
                    player.connection.send_message(RELIABLE, encode_action(action, n + 1))
            self.run_for(5.0, step=0.5)
        idle = {"t": "presence", "id": "p-3", "status": "idle"}
        self.assertIn(idle, players[0].messages)
        self.assertNotIn({"t": "presence", "id": "p-1", "status": "idle"}, players[0].messages)
        self.assertEqual(players[0].of_type("phase")[-1]["p"], "playing")
        players[2].connection.send_message(RELIABLE, encode_action({"move": "up"}, 99))
        self.run_for(0.1)
        self.assertEqual(players[2].of_type("error")[-1]["code"], "not_seated")

    def id_of(self, player: Player) -> str:
        [welcome] = player.of_type("welcome")
        return str(welcome["players"][welcome["seat"]]["id"])


class SpectatorMessageTests(CoreTestCase):
    """A UDP spectator's messages are read by nobody: each is dropped and counted as
    the spectators' (`messages_dropped`), never handed to the seat router, and the
    players' match goes on as if it had sent nothing."""

    def test_a_spectators_action_is_dropped_counted_and_never_routed(self) -> None:
        self.core.add_match(make_match("m-t", ("p-x", "p-o"), "tictactoe"), self.now)
        x, o = self.join("p-x", "m-t"), self.join("p-o", "m-t")
        watcher = self.join(SPECTATOR_PREFIX + "1", "m-t")
        self.assertTrue(watcher.connected)
        self.assertEqual(watcher.of_type("welcome")[0]["seat"], -1)
        assert x.view is not None
        turn = x.view["turn"]
        version = x.version
        for action_id in (1, 2):
            watcher.connection.send_message(RELIABLE, encode_action({"cell": 4}, action_id))
            self.run_for(0.1)
        self.assertEqual(self.core.spectators.counts["messages_dropped"], 2)
        self.assertEqual(self.core.router.drops, {})
        self.assertEqual(self.core.router.counters["actions_rejected"], 0)
        self.assertEqual((x.version, x.view["turn"]), (version, turn), "the board untouched")
        self.assertEqual(watcher.of_type("error") + o.of_type("error"), [])


class InputFloodTests(CoreTestCase):
    """Issue 73: a session flooding `input`s was dropped but never ended, each
    datagram costing an AEAD open and a bucket for good. Past its bucket and
    FLOOD_SECONDS of overdraft the session ends (counted `flood`), its seat is held
    as after a timeout, and its datagrams find no session; an honest client's
    bursts never come near."""

    TICK_RATE = 20
    # The session's bucket: a second's worth, and its overdraft.
    RATE = INPUT_MESSAGES_PER_TICK * TICK_RATE

    def setUp(self) -> None:
        super().setUp()
        self.core = GameHostCore(
            self.core.endpoint.config, {"seq": SeqGame(tick_rate=self.TICK_RATE)}.__getitem__,
            wall_clock=self.wall,
        )  # fmt: skip
        self.room = self.core.add_match(make_match("m-1", ("p-a", "p-b"), "seq"), self.now)
        self.a, self.b = self.join("p-a"), self.join("p-b")
        self.run_for(0.2)
        self.assertEqual(self.room.phase, Phase.PLAYING)

    def send_inputs(self, player: Player, count: int) -> list[bytes]:
        """`count` input messages from `player` at once (in datagrams of up to 50:
        a client queues 64 unreliable messages at most); the datagrams sent."""
        sent = []
        for start in range(0, count, 50):
            for n in range(start, min(count, start + 50)):
                tick = self.room.tick_number + 1
                player.connection.send_message(UNRELIABLE, encode_input(None, [(tick, {"seq": n})]))
            for data, _addr in player.connection.datagrams_to_send(self.now):
                sent.append(data)
                self.core.receive_datagram(data, player.address, self.now)
            self.pump()
        return sent

    def test_a_flood_ends_the_session_and_its_datagrams_cost_a_strangers(self) -> None:
        drops = self.core.router.drops
        over = FLOOD_SECONDS * self.RATE
        flood = self.send_inputs(self.a, self.RATE + over)
        self.assertEqual((drops["input_rate_limited"], drops["flood"]), (over, 0))
        self.assertIsNone(self.a.closed)
        self.send_inputs(self.a, 1)
        self.assertEqual((drops["input_rate_limited"], drops["flood"]), (over, 1))
        # The peer is told; the seat is held as after a lost connection.
        self.assertEqual(self.a.closed, "disconnect")
        self.assertTrue(self.room.in_grace("p-a"))
        self.assertIn({"t": "presence", "id": "p-a", "status": "disconnected"}, self.b.messages)
        self.assertEqual(self.core.session_count, 1)
        # The flood goes on: each datagram is a stranger's (no session), not read.
        endpoint = self.core.endpoint
        strangers = endpoint.drops["no_session"]
        for data in flood:
            self.core.receive_datagram(data, self.a.address, self.now)
        self.assertEqual(endpoint.drops["no_session"], strangers + len(flood))
        self.assertEqual((drops["input_rate_limited"], drops["flood"]), (over, 1))
        self.assertEqual(self.core.datagrams_to_send(self.now), [])
        # The player may come back with a fresh token, as after a timeout.
        self.players.remove(self.a)
        again = self.join("p-a")
        self.run_for(0.2)
        self.assertTrue(again.of_type("welcome")[0]["reconnected"])

    def test_an_honest_clients_bursts_are_not_a_flood(self) -> None:
        """A link stalled for 40 s that delivers every input (one a tick) at once,
        then a client sending one and a half times its bucket for 30 s: dropped
        past the bucket, counted, never closed."""
        drops = self.core.router.drops
        held_back = 40 * self.TICK_RATE
        self.send_inputs(self.a, held_back)
        self.assertEqual(drops["input_rate_limited"], held_back - self.RATE)
        for _ in range(30 * self.TICK_RATE):
            self.send_inputs(self.a, INPUT_MESSAGES_PER_TICK * 3 // 2)
            self.run_for(1 / self.TICK_RATE, step=1 / self.TICK_RATE)
        self.assertGreater(drops["input_rate_limited"], held_back - self.RATE)
        self.assertEqual(drops["flood"], 0)
        self.assertIsNone(self.a.closed)
        self.assertEqual(self.core.session_count, 2)
