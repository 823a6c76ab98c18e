"""What an account store remembers of recent sign-ins (vinom.accounts.recent): values
live `ttl` seconds on the caller's clock, at most `size` of them; the store's
defaults are the ones docs/accounts.md gives."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vinom.accounts import sql
from vinom.accounts.recent import Recent


class RecentTests(TestCase):
    def test_a_value_lives_ttl_seconds_from_when_it_was_read(self) -> None:
        clock = Clock()
        clock.advance(100.0)
        recent: Recent[str, int] = Recent(5.0, 10)
        recent.put("ann", 1, clock.seconds())
        clock.advance(4.999)
        self.assertEqual(recent.get("ann", clock.seconds()), 1)
        clock.advance(0.001)
        self.assertIsNone(recent.get("ann", clock.seconds()))
        self.assertEqual(len(recent), 0)
        # A clock that went back does not stretch a value's life: it is dropped.
        recent.put("bob", 2, 200.0)
        self.assertIsNone(recent.get("bob", 199.0))
        self.assertEqual(len(recent), 0)

    def test_at_most_size_values_the_oldest_put_going_first(self) -> None:
        recent: Recent[int, int] = Recent(60.0, 3)
        for n in range(4):
            recent.put(n, n, 1.0)
        self.assertEqual(len(recent), 3)
        self.assertEqual([recent.get(n, 2.0) for n in range(4)], [None, 1, 2, 3])
        # Put again, a value is the newest.
        recent.put(1, 10, 1.0)
        recent.put(4, 4, 1.0)
        self.assertEqual([recent.get(n, 2.0) for n in (1, 2, 3, 4)], [10, None, 3, 4])
        recent.clear()
        self.assertEqual(len(recent), 0)
        nothing: Recent[int, int] = Recent(60.0, 0)
        nothing.put(1, 1, 1.0)
        self.assertIsNone(nothing.get(1, 1.0))

    def test_the_stores_defaults_are_the_documented_ones(self) -> None:
        # docs/accounts.md: "less than 5 s ago", "at most 4,096 of each", "at most every 50 ms".
        self.assertEqual((sql.RECENT_SIGN_IN_TTL, sql.RECENT_SIGN_INS, sql.BATCH_INTERVAL),
                         (5.0, 4096, 0.05))  # fmt: skip
