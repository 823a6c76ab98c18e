"""vinom.net.wakeup: one callLater at the earliest time asked for."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vinom.net.wakeup import WakeUp


class WakeUpTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.fired: list[float] = []
        self.wake_up = WakeUp(self.clock, lambda: self.fired.append(self.clock.seconds()))

    def test_an_earlier_time_moves_it_a_later_one_does_not(self) -> None:
        self.wake_up.at(5.0, 0.0)
        self.wake_up.at(7.0, 0.0)  # later: the 5 s one stays
        self.wake_up.at(3.0, 0.0)  # earlier: moved
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(2.9)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.fired, [3.0])
        self.clock.advance(10.0)
        self.assertEqual(self.fired, [3.0])  # once

    def test_after_firing_any_time_arms_it_again(self) -> None:
        self.wake_up.at(1.0, 0.0)
        self.clock.advance(1.0)
        self.wake_up.at(9.0, 1.0)
        self.clock.advance(8.0)
        self.assertEqual(self.fired, [1.0, 9.0])

    def test_a_past_time_fires_at_once_and_cancel_stops_it(self) -> None:
        self.clock.advance(5.0)
        self.wake_up.at(4.0, 5.0)
        self.clock.advance(0.0)
        self.assertEqual(self.fired, [5.0])
        self.wake_up.at(6.0, 5.0)
        self.wake_up.cancel()
        self.wake_up.cancel()  # twice is harmless
        self.clock.advance(10.0)
        self.assertEqual(self.fired, [5.0])
        self.assertEqual(self.clock.getDelayedCalls(), [])
