"""The test-port pickers (tests/support/ports.py, on `benchmarks.ports`)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from benchmarks.ports import ephemeral_ports
from tests.support.ports import free_tcp_port, free_udp_range


class FreePortTests(SynchronousTestCase):
    def test_no_port_is_handed_out_twice_before_its_server_binds_it(self) -> None:
        # A test names several servers' ports before any binds: two must never get
        # the same one (2,000 random picks of ~30,000 ports would collide).
        picked = [free_tcp_port() for _ in range(2000)]
        self.assertEqual(len(set(picked)), len(picked))

    def test_ports_are_outside_the_ephemeral_range(self) -> None:
        low, high = ephemeral_ports()
        first = free_udp_range(8)
        for port in [free_tcp_port() for _ in range(200)] + list(range(first, first + 8)):
            self.assertFalse(low <= port <= high, port)
            self.assertGreaterEqual(port, 10_000)
