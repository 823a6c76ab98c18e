"""The Redis pool closes last (vinom.cluster.services, vinom.server.logs.ServerRoot): after
every other service has stopped and after the lobby's calls in flight are answered.

On a Clock, with a stand-in for the pool (its `disconnect`) and for a player store.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase

from vinom.cluster.inflight import InFlightCalls
from vinom.cluster.services import CALLS_WAIT, RedisClientService
from vinom.server.logs import ServerRoot


class _Pool:
    def __init__(self) -> None:
        self.disconnected = False

    def disconnect(self) -> Deferred[None]:
        self.disconnected = True
        return succeed(None)


class _SlowStop(Service):
    """A service whose stop takes until the test says so."""

    def __init__(self) -> None:
        self.stopping: Deferred[None] = Deferred()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.stopping


class _Store:
    """Calls answered when the test says so."""

    def __init__(self) -> None:
        self.calls: list[Deferred[None]] = []
        self.name = "store"

    def remove_player(self, player_id: str) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.calls.append(d)
        return d

    def count(self) -> int:
        return len(self.calls)


def pool_service(clock: Clock, calls: InFlightCalls | None = None) -> tuple[_Pool, Any]:
    pool = _Pool()
    return pool, RedisClientService(pool, clock, calls)  # type: ignore[arg-type]


class StopOrderTests(SynchronousTestCase):
    def test_the_pool_closes_once_the_services_added_after_it_have_stopped(self) -> None:
        clock = Clock()
        root = ServerRoot()
        pool, redis = pool_service(clock)
        redis.setServiceParent(root)
        user = _SlowStop()
        user.setServiceParent(root)  # added after the pool: it uses it
        root.startService()
        done = root.stopService()
        self.assertFalse(pool.disconnected, "the pool waits for its users to stop")
        self.assertNoResult(done)
        user.stopping.callback(None)
        self.assertTrue(pool.disconnected)
        self.successResultOf(done)


class InFlightCallsTests(SynchronousTestCase):
    def test_a_tracked_part_passes_everything_through_and_counts_its_deferreds(self) -> None:
        calls = InFlightCalls(Clock())
        store = _Store()
        tracked = calls.track(store)
        self.assertEqual(tracked.name, "store")
        self.assertEqual(tracked.count(), 0)  # not a Deferred: not counted
        self.assertEqual(calls.running, 0)
        d = tracked.remove_player("p-1")
        self.assertIs(d, store.calls[0])
        self.assertEqual(calls.running, 1)
        store.calls[0].callback(None)
        self.assertEqual(calls.running, 0)

    def test_the_pool_closes_after_the_calls_in_flight_and_those_they_lead_to(self) -> None:
        clock = Clock()
        calls = InFlightCalls(clock)
        store = _Store()
        tracked = calls.track(store)
        pool, redis = pool_service(clock, calls)
        redis.startService()
        first = tracked.remove_player("p-1")
        # What the caller does once the first call is answered: a second call.
        first.addCallback(lambda _: tracked.remove_player("p-2"))
        done = redis.stopService()
        store.calls[0].callback(None)
        clock.advance(0)
        self.assertFalse(pool.disconnected, "the second call runs")
        store.calls[1].callback(None)
        clock.advance(0)
        self.assertTrue(pool.disconnected)
        self.successResultOf(done)

    def test_a_call_never_answered_holds_the_pool_for_a_bounded_time(self) -> None:
        clock = Clock()
        calls = InFlightCalls(clock)
        tracked = calls.track(_Store())
        pool, redis = pool_service(clock, calls)
        redis.startService()
        tracked.remove_player("p-1")
        done = redis.stopService()
        clock.advance(CALLS_WAIT - 0.1)
        self.assertFalse(pool.disconnected)
        clock.advance(0.1)
        self.assertTrue(pool.disconnected)
        self.successResultOf(done)
