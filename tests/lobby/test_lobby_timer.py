"""A lobby connection's one timer (vinom.lobby.timer), on a fake clock."""

from __future__ import annotations

import weakref

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vinom.lobby.timer import ConnectionTimer


class ConnectionTimerTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.fired: list[float] = []
        self.timer = ConnectionTimer(self.clock, lambda: self.fired.append(self.clock.seconds()))

    def test_a_sooner_setting_replaces_a_later_one(self) -> None:
        self.timer.set(10)
        self.clock.advance(1)
        self.timer.set(5)
        self.clock.advance(4.5)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.5)
        self.assertEqual(self.fired, [6])
        self.clock.advance(20)
        self.assertEqual(self.fired, [6])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_later_setting_replaces_a_sooner_one(self) -> None:
        self.timer.set(5)
        self.clock.advance(4)
        self.timer.set(60)
        self.clock.advance(59)
        self.assertEqual(self.fired, [])
        self.clock.advance(1)
        self.assertEqual(self.fired, [64])

    def test_none_stops_it_and_it_can_be_set_again_after_firing(self) -> None:
        self.timer.set(5)
        self.timer.set(None)
        self.clock.advance(10)
        self.assertEqual(self.fired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.timer.set(1)
        self.clock.advance(1)
        self.timer.set(None)  # after it fired: nothing to cancel
        self.timer.set(2)
        self.clock.advance(2)
        self.assertEqual(self.fired, [11, 13])

    def test_one_pending_call_however_often_it_is_set(self) -> None:
        for seconds in (10, 5, 60, 5, 1):
            self.timer.set(seconds)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_a_later_setting_moves_no_call_and_the_call_waits_out_the_rest(self) -> None:
        self.timer.set(5)
        (pending,) = self.clock.getDelayedCalls()
        for _ in range(3):
            self.clock.advance(1)
            self.timer.set(5)  # a frame arrived: the timeout starts again
            self.assertEqual(self.clock.getDelayedCalls(), [pending])
        self.clock.advance(2)  # the first call comes at 5 and waits until 8
        self.assertEqual(self.fired, [])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        self.timer.set(0.25)  # sooner than the call waiting for 8: a new call
        self.clock.advance(0.25)
        self.assertEqual(self.fired, [5.75])
        self.clock.advance(10)
        self.assertEqual(self.fired, [5.75])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_closed_timer_never_fires_and_lets_go_of_its_callback(self) -> None:
        self.timer.set(5)
        self.timer.close()
        self.timer.set(1)  # the connection is gone: nothing is set any more
        self.clock.advance(10)
        self.assertEqual(self.fired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

        class Connection:
            def expired(self) -> None:
                raise AssertionError("a closed timer fired")

        connection = Connection()
        timer = ConnectionTimer(self.clock, connection.expired)
        gone = weakref.ref(connection)
        timer.set(1)
        timer.close()
        del connection
        self.assertIsNone(gone())
