"""The game client's handling of versions, welcomes and phases, and the bot runner's clean-up."""

from __future__ import annotations

import random

import msgpack
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.servers import start_server
from tests.support.waiting import until
from vinom.client.bots import play_bot
from vinom.client.game import GameSession
from vinom.games.interfaces import Seat
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHost
from vinom.lobby.server import LobbyFactory
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.messages import encode_error, encode_phase, encode_state, encode_welcome

SEATS = [Seat("p-a", "ada", 0), Seat("p-b", "bob", 1)]


def welcome(reconnected: bool) -> bytes:
    return encode_welcome("m-1", "duel", 0, SEATS, reconnected)


class GameSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.session = GameSession()
        self.states: list[int] = []
        self.session.on_state = lambda m: self.states.append(m["v"])

    def test_only_newer_states_are_kept(self) -> None:
        for v in (1, 3, 2, 3, 5, 4):
            self.session.message_received(UNRELIABLE, encode_state(v, "playing", None, {"x": v}))
        self.assertEqual(self.states, [1, 3, 5])
        self.assertEqual(self.session.version, 5)
        self.assertEqual(self.session.view, {"x": 5})
        self.assertEqual(self.session.stale_states, 3)

    def test_tick_and_server_time_of_the_newest_state(self) -> None:
        self.assertIsNone(self.session.tick)
        self.assertIsNone(self.session.server_time)
        self.session.message_received(
            UNRELIABLE, encode_state(4, "playing", None, {}, None, 12, 2550)
        )
        self.assertEqual((self.session.tick, self.session.server_time), (12, 2.55))
        # A state from a server that sends neither is still taken.
        old = msgpack.packb({"t": "state", "v": 5, "p": "playing", "r": None, "s": {}, "i": None})
        self.session.message_received(UNRELIABLE, old)
        self.assertEqual(self.session.version, 5)
        self.assertEqual((self.session.tick, self.session.server_time), (None, None))

    def test_tick_and_snapshot_rates_from_the_welcome(self) -> None:
        self.assertEqual((self.session.tick_rate, self.session.snapshot_rate), (None, None))
        data = encode_welcome("m-1", "arena", 0, SEATS, False, "Arena", 20.0, 10.0)
        self.session.message_received(RELIABLE, data)
        self.assertEqual((self.session.tick_rate, self.session.snapshot_rate), (20.0, 10.0))
        # A turn-based game: no tick, a state after every change.
        data = encode_welcome("m-1", "duel", 0, SEATS, False, "Duel", 0, 0)
        self.session.message_received(RELIABLE, data)
        self.assertEqual((self.session.tick_rate, self.session.snapshot_rate), (0.0, 0.0))
        # A server that sends neither (or sends nonsense) gives None.
        self.session.message_received(RELIABLE, welcome(False))
        self.assertEqual((self.session.tick_rate, self.session.snapshot_rate), (None, None))

    def test_a_state_that_overtook_the_first_welcome_is_kept(self) -> None:
        self.session.message_received(UNRELIABLE, encode_state(1, "countdown", 3.0, {}))
        self.session.message_received(RELIABLE, welcome(False))
        self.session.message_received(RELIABLE, encode_state(0, "waiting", 30.0, {}))
        self.assertEqual(self.states, [1])
        self.assertEqual(self.session.phase, "countdown")

    def test_after_a_reconnection_the_current_state_is_taken_at_its_version(self) -> None:
        self.session.message_received(UNRELIABLE, encode_state(7, "playing", 9.0, {"a": 1}))
        self.session.message_received(RELIABLE, welcome(True))
        self.session.message_received(RELIABLE, encode_state(7, "playing", 8.0, {"a": 1}))
        self.assertEqual(self.states, [7, 7])
        self.session.message_received(UNRELIABLE, encode_state(7, "playing", 8.0, {"a": 1}))
        self.assertEqual(self.states, [7, 7])

    def test_after_a_reconnection_an_older_state_is_still_dropped(self) -> None:
        self.session.message_received(UNRELIABLE, encode_state(7, "playing", 9.0, {"a": 1}))
        self.session.message_received(RELIABLE, welcome(True))
        self.session.message_received(UNRELIABLE, encode_state(6, "playing", 9.5, {"a": 0}))
        self.assertEqual(self.states, [7])
        self.assertEqual(self.session.view, {"a": 1})

    def test_finished_fires_once_with_the_result(self) -> None:
        results: list[dict[str, object]] = []
        self.session.finished.addCallback(results.append)
        phase = encode_phase("finished", 9, None, result={"winners": ["p-a"], "reason": "x"})
        self.session.message_received(RELIABLE, phase)
        self.session.message_received(RELIABLE, phase)
        self.assertEqual(len(results), 1)
        self.assertEqual(self.session.result, {"winners": ["p-a"], "reason": "x"})

    def test_garbage_and_errors(self) -> None:
        errors: list[str] = []
        self.session.on_error = lambda m: errors.append(m["code"])
        for data in (b"", b"\xc1", b"\x93\x01\x02\x03", b"\x81\xa1t\xa5state"):
            self.session.message_received(RELIABLE, data)
        self.assertEqual(self.session.undecodable, 4)
        self.session.message_received(RELIABLE, encode_error("stale", "no", 3))
        self.assertEqual(errors, ["stale"])
        self.assertEqual(self.states, [])


class BotRunnerTests(TestCase):
    timeout = 30

    async def test_a_failed_bot_closes_its_lobby_connection(self) -> None:
        server = await start_server(self, ports=1)
        lobby = server.service("lobby")
        assert isinstance(lobby, LobbyFactory)
        game = GameRegistry.from_plugins().get("maze")
        # A game this server does not know: the lobby answers unknown_game.
        unknown = _Renamed(game, "no-such-game")
        report = await play_bot(reactor, server.lobby, unknown, "lost", rng=random.Random(1))
        self.assertEqual(report.outcome, "error")
        assert report.error is not None
        self.assertIn("unknown_game", report.error)
        await until(lambda: lobby.connection_count == 0)


class _Renamed:
    """A game under another name (only `name` is read before the lobby refuses it)."""

    def __init__(self, game: object, name: str) -> None:
        self._game = game
        self.name = name

    def __getattr__(self, attribute: str) -> object:
        return getattr(self._game, attribute)


class SessionClosedTests(TestCase):
    timeout = 30

    async def test_bots_whose_sessions_the_host_closes_come_back_through_reconnect(
        self,
    ) -> None:
        server = await start_server(self, ports=1)
        game = GameRegistry.from_plugins().get("tictactoe")
        sessions: list[GameSession] = []
        bots = [
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, game, f"b{i}", rng=random.Random(i),
                         think_time=0.5, on_session=sessions.append)
            )
            for i in range(2)
        ]
        await until(lambda: len(sessions) == 2 and all(s.welcome for s in sessions))
        match_id = sessions[0].welcome["match"]  # type: ignore[index]
        host = server.hosting.host_of(match_id)
        assert isinstance(host, InlineGameHost)
        for session in sessions:
            assert session.protocol is not None and session.protocol.session is not None
            host.core.close_session(session.protocol.session.session_id, reactor.seconds())
            host.protocol.transmit()
        # Each bot's session closes without a result: the bot asks the lobby for a
        # fresh token for its seat (`reconnect`) and plays its match to the end on the
        # same session.
        reports = await gatherResults(bots)
        for report, session in zip(reports, sessions, strict=True):
            self.assertEqual(report.outcome, "finished", report.error)
            self.assertEqual(report.match_id, match_id)
            self.assertEqual(report.reconnects, 1)
            self.assertEqual(report.lobby_changes, 0)
            self.assertTrue(session.finished.called)
            self.assertTrue(session.welcome["reconnected"])  # type: ignore[index]
