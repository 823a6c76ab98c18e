"""tests/support/clock_truth.py: the server's schedule read from its snaps."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.support.clock_truth import schedule_errors


def samples(
    drop_at: float | None = None, late: float = 0.0, bias: float = 0.0
) -> list[list[float]]:
    """A host at 20 ticks a second started at 10 s, each snap coming `late` seconds
    after its tick (0.2 s at tick 100), and from `drop_at` on, 0.3 s of ticks
    dropped; a client's estimate `bias` ticks off the schedule it saw, which keeps
    the old schedule for its window (2 s) after a drop."""
    rows = []
    for k in range(200):
        at = 10.0 + k / 20
        start = 10.0 + (0.3 if drop_at is not None and at >= drop_at else 0.0)
        seen = 10.0 + (0.3 if drop_at is not None and at >= drop_at + 2.0 else 0.0)
        came = start + k / 20 + (0.2 if k == 100 else late)
        when = came + 0.1
        rows.append([when, (when - seen) * 20 + bias, k, came])
    return rows


class ScheduleErrorsTests(SynchronousTestCase):
    def test_a_clock_on_the_schedule_is_off_by_nothing(self) -> None:
        errors, skipped = schedule_errors(samples(late=0.001), 20.0)
        self.assertEqual(skipped, 0)
        # A snap sent late does not move the truth.
        self.assertLess(max(map(abs, errors)), 0.05)

    def test_a_clock_off_by_two_ticks_shows_it(self) -> None:
        errors, _ = schedule_errors(samples(bias=2.0), 20.0)
        self.assertTrue(all(1.9 < e < 2.1 for e in errors), errors)

    def test_the_time_after_the_host_dropped_ticks_is_left_out(self) -> None:
        errors, skipped = schedule_errors(samples(drop_at=14.0), 20.0)
        # Three seconds of snaps (the clock's window and slew), 20 a second.
        self.assertTrue(55 <= skipped <= 61, skipped)
        self.assertLess(max(map(abs, errors)), 0.05)
