"""tests/support/waiting.py's `until`, on a Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.waiting import until


class UntilTests(SynchronousTestCase):
    def test_returns_as_soon_as_the_condition_holds(self) -> None:
        clock = Clock()
        seen: list[int] = []
        waited = Deferred.fromCoroutine(until(lambda: len(seen) >= 2 and seen, "two", clock=clock))
        clock.advance(0.02)
        seen.append(1)
        clock.advance(0.02)
        self.assertNoResult(waited)
        seen.append(2)
        clock.advance(0.02)
        self.assertEqual(self.successResultOf(waited), [1, 2])

    def test_awaits_a_deferred_condition(self) -> None:
        clock = Clock()
        answers = iter([0, 0, 7])
        waited = Deferred.fromCoroutine(until(lambda: succeed(next(answers)), clock=clock))
        clock.advance(0.02)
        clock.advance(0.02)
        self.assertEqual(self.successResultOf(waited), 7)

    def test_fails_naming_what_and_the_last_value_after_the_timeout(self) -> None:
        clock = Clock()
        waited = Deferred.fromCoroutine(until(lambda: 0, "the ticket", timeout=1.0, clock=clock))
        clock.advance(0.98)
        self.assertNoResult(waited)
        clock.pump([0.02] * 3)
        failure = self.failureResultOf(waited, AssertionError)
        self.assertIn("timed out waiting for the ticket", str(failure.value))
        self.assertIn("last seen 0", str(failure.value))

    def test_what_may_be_a_function_called_when_it_fails(self) -> None:
        clock = Clock()
        output = [b"starting"]
        waited = Deferred.fromCoroutine(
            until(lambda: b"ready" in output, lambda: f"ready in {output}", 0.1, clock=clock)
        )
        output.append(b"crashed")
        clock.pump([0.02] * 6)
        self.assertIn("ready in [b'starting', b'crashed']", str(self.failureResultOf(waited).value))
