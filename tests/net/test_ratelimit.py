"""Tests for vinom.net.ratelimit: the token bucket behind every rate limit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vinom.net.ratelimit import TokenBucket


class TokenBucketTests(SynchronousTestCase):
    def test_starts_full_then_refills_at_its_rate(self) -> None:
        bucket = TokenBucket(rate=10.0, burst=3.0, now=100.0)
        self.assertEqual([bucket.take(100.0) for _ in range(4)], [True, True, True, False])
        self.assertAlmostEqual(bucket.wait(100.0), 0.1)
        self.assertFalse(bucket.take(100.05))
        self.assertAlmostEqual(bucket.wait(100.05), 0.05)
        self.assertTrue(bucket.take(100.1))
        self.assertFalse(bucket.take(100.1))

    def test_a_timer_set_for_wait_finds_the_token(self) -> None:
        # Rounding must not leave the token a hair short when the timer fires.
        bucket = TokenBucket(rate=3.0, burst=1.0, now=0.7)
        self.assertTrue(bucket.take(0.7))
        now = 0.7
        for _ in range(50):
            now += bucket.wait(now)
            self.assertTrue(bucket.take(now))

    def test_a_timer_set_for_ready_at_finds_the_token_at_the_wall_clock(self) -> None:
        # The reactor's clock is about 1.8e9 s, where floats are 2**-22 s apart:
        # `now + wait(now)` for 1 ms rounds to 4194 such steps, a hair early.
        now = 1_795_476_040.0
        bucket = TokenBucket(rate=1000.0, burst=1.0, now=now)
        self.assertTrue(bucket.take(now))
        self.assertFalse(bucket.take(now + bucket.wait(now)))
        for _ in range(50):
            at = bucket.ready_at(now)
            self.assertGreater(at, now)
            self.assertTrue(bucket.take(at))
            now = at
        self.assertEqual(bucket.ready_at(now + 1.0), now + 1.0)

    @settings(max_examples=100, deadline=None)
    @given(
        now=st.floats(1e9, 4e9),
        rate=st.floats(0.5, 1e6),
        steps=st.lists(st.floats(0.0, 0.01), max_size=50),
    )
    def test_ready_at_is_after_now_and_has_the_token(
        self, now: float, rate: float, steps: list[float]
    ) -> None:
        bucket = TokenBucket(rate, 1.0, now)
        for step in steps:
            now += step
            while bucket.take(now):
                pass
            at = bucket.ready_at(now)
            self.assertGreater(at, now)
            self.assertTrue(bucket.take(at))
            now = at

    def test_never_holds_more_than_its_burst(self) -> None:
        bucket = TokenBucket(rate=10.0, burst=2.0, now=0.0)
        self.assertEqual([bucket.take(3600.0) for _ in range(3)], [True, True, False])
        self.assertEqual(bucket.wait(7200.0), 0.0)

    def test_a_clock_stepping_back_gives_nothing_and_refills_from_there(self) -> None:
        bucket = TokenBucket(rate=1.0, burst=1.0, now=10.0)
        self.assertTrue(bucket.take(10.0))
        self.assertFalse(bucket.take(5.0))
        self.assertFalse(bucket.take(5.5))
        self.assertTrue(bucket.take(6.0))

    def test_is_full_once_refilled_to_its_burst(self) -> None:
        bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
        self.assertTrue(bucket.is_full(0.0))
        bucket.take(0.0)
        self.assertFalse(bucket.is_full(0.25))
        self.assertTrue(bucket.is_full(0.5))

    def test_invalid(self) -> None:
        for rate, burst in ((0.0, 1.0), (-1.0, 1.0), (1.0, 0.5), (float("inf"), 1.0),
                            (float("nan"), 1.0), (1.0, float("nan"))):  # fmt: skip
            self.assertRaises(ValueError, TokenBucket, rate, burst)

    @settings(max_examples=100, deadline=None)
    @given(
        rate=st.floats(0.5, 100.0),
        burst=st.floats(1.0, 50.0),
        steps=st.lists(st.floats(0.0, 0.5), max_size=200),
    )
    def test_never_more_than_burst_plus_rate_times_elapsed(
        self, rate: float, burst: float, steps: list[float]
    ) -> None:
        bucket = TokenBucket(rate, burst, 0.0)
        now = 0.0
        taken = 0
        for step in steps:
            now += step
            while bucket.take(now):
                taken += 1
            # Taking until refused leaves less than one token.
            self.assertGreater(bucket.wait(now), 0.0)
        self.assertLessEqual(taken, int(burst + rate * now + 1e-6))
