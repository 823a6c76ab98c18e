"""The drain (vinom.server.drain): no new players, queued ones told, running matches end first.

Unit tests drive `Drain` over the lobby harness of tests.lobby.test_lobby (Clock,
StringTransport, placeholder game hosts); tests/server/test_twistd.py drains a real
`twistd vinom` process with SIGTERM.
"""

from __future__ import annotations

from tests.lobby.test_lobby import LobbyHarness
from vinom.lobby import errors
from vinom.match import Match, Ticket
from vinom.server.drain import Drain, PlayersMatches
from vinom.store.memory import MemoryPlayerStore


class DrainTests(LobbyHarness):
    ports = (7400, 7401)

    def test_queued_players_are_told_and_new_queues_refused(self) -> None:
        queued = self.queued_player("A", "maze")
        idle = self.connect()
        idle.hello("B")
        done = Drain(self.factory, self.hosting, self.clock, 600).run()
        self.assertIsNone(self.successResultOf(done), "nothing runs: the drain is over")
        [frame] = queued.frames()
        self.assertEqual(frame["code"], errors.SERVER_DRAINING)
        self.assertTrue(queued.closed)
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        self.assert_error(idle.request({"type": "queue", "game": "maze"}),
                          errors.SERVER_DRAINING)
        # Everything else still works.
        self.assertEqual(idle.request({"type": "ping"})["type"], "pong")

    def test_running_matches_end_before_the_drain_is_over(self) -> None:
        self.queued_player("A")
        self.queued_player("B")
        self.assertEqual(self.hosting.running_games, 1)
        done = Drain(self.factory, self.hosting, self.clock, 600).run()
        self.clock.advance(599)
        self.assertNoResult(done)
        self.hosts.end_match(self.matches[0].match_id)
        self.successResultOf(done)

    def test_the_timeout_ends_the_wait(self) -> None:
        self.queued_player("A")
        self.queued_player("B")
        drain = Drain(self.factory, self.hosting, self.clock, 600)
        done = drain.run()
        self.clock.advance(600)
        self.successResultOf(done)
        self.assertEqual(self.hosting.running_games, 1, "aborting is the hosting's stop")

    def test_a_cut_short_wait(self) -> None:
        self.queued_player("A")
        self.queued_player("B")
        drain = Drain(self.factory, self.hosting, self.clock, 600)
        done = drain.run()
        self.assertNoResult(done)
        drain.skip_wait()
        self.successResultOf(done)
        end = self.clock.seconds() + 600
        late = [c for c in self.clock.getDelayedCalls() if c.getTime() >= end]
        self.assertEqual(late, [], "the drain's timeout is cancelled")


class LobbyOnlyDrainTests(LobbyHarness):
    """A lobby whose matches run on game hosts elsewhere, on a shared store: the drain
    waits for its players' matches, then closes its players' connections."""

    ports = (7400, 7401)

    def setUp(self) -> None:
        super().setUp()
        self.store = MemoryPlayerStore()
        self.factory.stopService()
        self.factory = self.make_factory(store=self.store)
        self.factory.startService()

    def drain(self) -> Drain:
        return Drain(self.factory, PlayersMatches(self.factory), self.clock, 600,
                     close_players=True)  # fmt: skip

    def test_it_serves_until_its_players_match_ends_then_closes_its_players(self) -> None:
        players = [self.queued_player("A"), self.queued_player("B")]
        for player in players:
            self.assertEqual(player.frames()[-1]["type"], "match_found")
            player.drop()
        idle = self.connect()
        idle.hello("C")
        done = self.drain().run()
        self.clock.advance(5)
        self.assertNoResult(done)
        self.assertEqual(idle.request({"type": "ping"})["type"], "pong")
        self.assert_error(idle.request({"type": "cancel"}), errors.NOT_QUEUED)
        self.hosts.end_match(self.matches[0].match_id)
        # Its players' match has ended: the last connected player is told, and closed.
        [frame] = idle.frames()
        self.assertEqual(frame["code"], errors.SERVER_DRAINING)
        self.assertTrue(idle.closed)
        self.assertNoResult(done)
        idle.drop()
        self.successResultOf(done)
        # Nobody's record is left: the idle player was forgotten as they left, the
        # match's players with the match.
        for player_id in (idle.player_id, *(p.player_id for p in players)):
            assert player_id is not None
            self.assertIsNone(self.successResultOf(self.store.get_player(player_id)))

    def test_the_matches_of_other_lobbies_players_are_not_waited_for(self) -> None:
        # Every lobby hears every match: this one holds none of its players.
        players = tuple(Ticket(f"p-{i}", f"P{i}", "tictactoe", None, 1.0) for i in range(2))
        self.factory.placer.match_formed(Match("m-elsewhere", "tictactoe", players, 1.0))
        self.assertEqual(self.hosting.running_games, 1)
        self.successResultOf(self.drain().run())

    def test_a_connection_that_does_not_close_holds_the_drain_a_bounded_time(self) -> None:
        idle = self.connect()
        idle.hello("C")
        done = self.drain().run()
        self.assertTrue(idle.closed)
        self.assertNoResult(done)
        self.clock.advance(self.config.close_timeout + 1.0)
        self.successResultOf(done)
