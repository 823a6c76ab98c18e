"""The test-port pickers (tests/support/ports.py, on `benchmarks.ports`)."""

# slow: starts a Python child process that picks ports too

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import benchmarks.ports
from benchmarks.ports import ephemeral_ports
from tests.support.ports import free_tcp_port, free_udp_range

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PICK = (
    "from tests.support.ports import free_tcp_port\nprint(*(free_tcp_port() for _ in range(400)))"
)


class FreePortTests(SynchronousTestCase):
    def setUp(self) -> None:
        # A registry of the test's own: the ports these tests hold for two minutes
        # would leave the suite's other processes few long runs of free ports.
        self.registry = os.path.abspath(self.mktemp())
        self.patch(benchmarks.ports, "REGISTRY", self.registry)

    def test_no_port_is_handed_out_twice_before_its_server_binds_it(self) -> None:
        # A test names several servers' ports before any binds: two must never get
        # the same one (400 random picks of ~27,000 ports collide 19 times in 20).
        picked = [free_tcp_port() for _ in range(400)]
        self.assertEqual(len(set(picked)), len(picked))

    def test_another_process_is_never_handed_a_port_this_one_was(self) -> None:
        # The suite's test processes run at once, each naming ports for its servers
        # (two independent sets of 400 random picks would share about 6).
        env = {**os.environ, "PYTHONPATH": ROOT, "VINOM_PORT_REGISTRY": self.registry}
        other = subprocess.Popen([sys.executable, "-c", PICK], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.addCleanup(other.kill)  # a no-op once it has ended
        mine = {free_tcp_port() for _ in range(400)}
        out, _ = other.communicate(timeout=60)
        self.assertEqual(other.returncode, 0)
        theirs = {int(port) for port in out.split()}
        self.assertEqual(len(theirs), 400)
        self.assertEqual(mine & theirs, set())

    def test_ports_are_outside_the_ephemeral_range(self) -> None:
        low, high = ephemeral_ports()
        first = free_udp_range(8)
        for port in [free_tcp_port() for _ in range(200)] + list(range(first, first + 8)):
            self.assertFalse(low <= port <= high, port)
            self.assertGreaterEqual(port, 10_000)
