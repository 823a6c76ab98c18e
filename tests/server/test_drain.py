"""The drain (vinom.server.drain): no new players, queued ones told, running matches end first.

Unit tests drive `Drain` over the lobby harness of tests.lobby.test_lobby (Clock,
StringTransport, placeholder game hosts); tests/server/test_twistd.py drains a real
`twistd vinom` process with SIGTERM.
"""

from __future__ import annotations

from tests.lobby.test_lobby import LobbyHarness
from vinom.lobby import errors
from vinom.server.drain import Drain


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
