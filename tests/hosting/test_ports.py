"""Tests for the port allocator: a bounded ring of ports with a FIFO wait list."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from vinom.hosting.ports import PortAllocator


def fired_with(d: Deferred[int]) -> list[int]:
    got: list[int] = []
    d.addCallback(got.append)
    return got


class PortAllocatorTests(SynchronousTestCase):
    def test_acquire_free_ports_at_once_in_ring_order(self) -> None:
        allocator = PortAllocator.from_range(7400, 7402)
        self.assertEqual(allocator.size, 3)
        ports = [self.successResultOf(allocator.acquire()) for _ in range(3)]
        self.assertEqual(ports, [7400, 7401, 7402])
        self.assertEqual(allocator.available, 0)
        self.assertEqual(allocator.in_use, 3)

    def test_released_port_goes_to_the_back_of_the_ring(self) -> None:
        allocator = PortAllocator([10, 11, 12])
        first = self.successResultOf(allocator.acquire())
        allocator.release(first)
        self.assertEqual(
            [self.successResultOf(allocator.acquire()) for _ in range(3)], [11, 12, 10]
        )

    def test_pool_of_two_five_matches_released_one_at_a_time(self) -> None:
        """The issue's scenario: FIFO order, never more than two in use, nobody waits forever."""
        allocator = PortAllocator.from_range(7400, 7401)
        requests = [allocator.acquire() for _ in range(5)]
        results = [fired_with(d) for d in requests]
        self.assertEqual([bool(r) for r in results], [True, True, False, False, False])
        self.assertEqual(allocator.waiting, 3)
        order_served: list[int] = [0, 1]
        holders = {0: results[0][0], 1: results[1][0]}
        while len(order_served) < 5 or holders:
            # Release the port of the longest-running holder, one at a time.
            oldest = min(holders)
            allocator.release(holders.pop(oldest))
            for index, result in enumerate(results):
                if result and index not in order_served:
                    order_served.append(index)
                    holders[index] = result[0]
            self.assertLessEqual(allocator.in_use, 2)
            self.assertEqual(len(holders), allocator.in_use)
        self.assertEqual(order_served, [0, 1, 2, 3, 4])
        self.assertTrue(all(results))
        self.assertEqual(allocator.waiting, 0)
        self.assertEqual(allocator.available, 2)

    def test_release_wakes_the_oldest_waiter_with_that_port(self) -> None:
        allocator = PortAllocator([5000])
        self.successResultOf(allocator.acquire())
        second, third = allocator.acquire(), allocator.acquire()
        allocator.release(5000)
        self.assertEqual(self.successResultOf(second), 5000)
        self.assertNoResult(third)
        self.assertEqual(allocator.available, 0)

    def test_release_twice_raises(self) -> None:
        allocator = PortAllocator([5000, 5001])
        port = self.successResultOf(allocator.acquire())
        allocator.release(port)
        self.assertRaises(ValueError, allocator.release, port)
        self.assertEqual(allocator.available, 2)

    def test_release_of_a_port_never_acquired_raises(self) -> None:
        allocator = PortAllocator([5000, 5001])
        self.assertRaises(ValueError, allocator.release, 5001)

    def test_release_outside_the_range_raises(self) -> None:
        allocator = PortAllocator.from_range(5000, 5001)
        self.successResultOf(allocator.acquire())
        self.assertRaises(ValueError, allocator.release, 5002)
        self.assertRaises(ValueError, allocator.release, 4999)

    def test_cancelling_a_waiter_removes_it_from_the_wait_list(self) -> None:
        allocator = PortAllocator([5000])
        self.successResultOf(allocator.acquire())
        cancelled, kept = allocator.acquire(), allocator.acquire()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.assertEqual(allocator.waiting, 1)
        allocator.release(5000)
        self.assertEqual(self.successResultOf(kept), 5000)

    def test_invalid_pools_are_refused(self) -> None:
        self.assertRaises(ValueError, PortAllocator, [])
        self.assertRaises(ValueError, PortAllocator, [5000, 5000])
        self.assertRaises(ValueError, PortAllocator, [0])
        self.assertRaises(ValueError, PortAllocator, [65536])
        self.assertRaises(ValueError, PortAllocator.from_range, 5001, 5000)

    def test_membership(self) -> None:
        allocator = PortAllocator.from_range(5000, 5001)
        self.assertIn(5001, allocator)
        self.assertNotIn(5002, allocator)


class PortAllocatorPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(
        size=st.integers(min_value=1, max_value=4),
        operations=st.lists(
            st.tuples(st.sampled_from(["acquire", "release", "cancel"]), st.integers(0, 50)),
            max_size=60,
        ),
    )
    def test_never_over_the_pool_and_waiters_served_in_order(
        self, size: int, operations: list[tuple[str, int]]
    ) -> None:
        allocator = PortAllocator(range(6000, 6000 + size))
        waiting: list[tuple[int, Deferred[int]]] = []  # (request number, deferred)
        holding: list[int] = []
        served: list[int] = []
        requests = 0

        def on_port(port: int, number: int) -> int:
            served.append(number)
            holding.append(port)
            return port

        for kind, pick in operations:
            if kind == "acquire":
                d = allocator.acquire()
                d.addCallback(on_port, requests)
                if not d.called:
                    waiting.append((requests, d))
                requests += 1
            elif kind == "release" and holding:
                allocator.release(holding.pop(pick % len(holding)))
            elif kind == "cancel" and waiting:
                _, d = waiting.pop(pick % len(waiting))
                if not d.called:
                    d.cancel()
                    d.addErrback(lambda f: f.trap(CancelledError))
            waiting = [(n, d) for n, d in waiting if not d.called]
            self.assertEqual(len(holding), allocator.in_use)
            self.assertLessEqual(allocator.in_use, size)
            self.assertEqual(len(set(holding)), len(holding))
            # Nobody waits while a port is free.
            self.assertFalse(allocator.waiting and allocator.available)
            self.assertEqual(allocator.waiting, len(waiting))
        # Requests are served in the order they were made.
        self.assertEqual(served, sorted(served))
        # Releasing everything serves every remaining waiter: nobody waits forever.
        while holding:
            allocator.release(holding.pop(0))
        self.assertTrue(all(d.called for _, d in waiting))
        self.assertEqual(allocator.available, size)
