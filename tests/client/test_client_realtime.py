"""The sending side of real-time inputs (vinom.client.realtime): the tick clock and the queue."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from vinom.client.realtime import MAX_UNACKED, InputQueue, TickClock


class TickClockTests(SynchronousTestCase):
    def test_the_estimate_runs_on_from_the_newest_snapshot(self) -> None:
        clock = TickClock(20.0)
        self.assertIsNone(clock.estimate(5.0))
        clock.observe(100, 10.0)
        self.assertAlmostEqual(clock.estimate(10.25), 105.0)  # type: ignore[arg-type]
        clock.observe(99, 10.3)  # an older snapshot, arriving late: ignored
        self.assertEqual((clock.tick, clock.seen_at), (100, 10.0))

    def test_an_input_is_for_the_first_tick_after_it_arrives(self) -> None:
        clock = TickClock(20.0)
        clock.observe(100, 10.0)
        # No round trip: the next tick the host runs.
        self.assertEqual(clock.input_tick(10.0, 0.0), 101)
        self.assertEqual(clock.input_tick(10.07, 0.0), 102)  # tick 101 ran meanwhile
        # 100 ms round trip: 50 ms for the snapshot to come (tick 101 ran then),
        # 50 ms for the input to go (102 ran then): the input is for 103.
        self.assertEqual(clock.input_tick(10.0, 0.1), 103)
        self.assertEqual(clock.input_tick(10.07, 0.1), 104)

    def test_before_any_snapshot_the_first_tick(self) -> None:
        self.assertEqual(TickClock(20.0).input_tick(3.0, 0.05), 1)


class InputQueueTests(SynchronousTestCase):
    def test_ticks_only_grow(self) -> None:
        queue = InputQueue()
        self.assertEqual(queue.add(5, {"a": 1}), 5)
        self.assertEqual(queue.add(5, {"a": 2}), 6)  # one input per tick
        self.assertEqual(queue.add(3, {"a": 3}), 7)
        self.assertEqual([k for k, _ in queue.pending], [5, 6, 7])

    def test_the_acknowledged_go_the_rest_are_repeated(self) -> None:
        queue = InputQueue()
        for k in range(1, 5):
            queue.add(k, {"k": k})
        queue.acknowledge(2)
        self.assertEqual([k for k, _ in queue.pending], [3, 4])

    def test_at_most_eight_wait_the_oldest_dropped(self) -> None:
        queue = InputQueue()
        for k in range(1, 12):
            queue.add(k, {"k": k})
        self.assertEqual(len(queue.pending), MAX_UNACKED)
        self.assertEqual(queue.pending[0][0], 4)
        self.assertEqual(queue.overflowed, 3)
