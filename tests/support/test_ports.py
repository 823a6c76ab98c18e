"""The test-port pickers (tests/support/ports.py, on `benchmarks.ports`)."""

from __future__ import annotations

import os
import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from benchmarks.ports import RESERVED_FOR, ephemeral_ports, free_port_range, reserve
from tests.support.ports import free_tcp_port, free_udp_range


class FreePortTests(SynchronousTestCase):
    def test_no_port_is_handed_out_twice_before_its_server_binds_it(self) -> None:
        # A test names several servers' ports before any binds: two must never get
        # the same one (2,000 random picks of ~30,000 ports would collide). Reserved
        # in a directory of the test's own, not for the machine's other runs.
        reservations = self.mktemp()
        picked = [free_port_range("127.0.0.1", 1, socket.SOCK_STREAM,
                                  reservations=reservations)[0] for _ in range(2000)]  # fmt: skip
        self.assertEqual(len(set(picked)), len(picked))

    def test_a_port_handed_out_elsewhere_is_not_handed_out_here(self) -> None:
        # Another process (trial's other worker, another run of the suite) was given
        # the port: its reservation keeps it from this one until it is stale.
        reservations = self.mktemp()
        self.assertTrue(reserve(20_001, reservations))
        self.assertFalse(reserve(20_001, reservations))
        stale = time.time() - RESERVED_FOR - 1
        os.utime(os.path.join(reservations, "20001"), (stale, stale))
        self.assertTrue(reserve(20_001, reservations))
        self.assertFalse(reserve(20_001, reservations))
        # What the pickers hand out is reserved.
        first = free_udp_range(4)
        self.assertEqual([reserve(port) for port in range(first, first + 4)], [False] * 4)

    def test_ports_are_outside_the_ephemeral_range(self) -> None:
        low, high = ephemeral_ports()
        first = free_udp_range(8)
        for port in [free_tcp_port() for _ in range(200)] + list(range(first, first + 8)):
            self.assertFalse(low <= port <= high, port)
            self.assertGreaterEqual(port, 10_000)
