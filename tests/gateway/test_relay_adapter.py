"""The relay's Twisted adapter (vinom.gateway.relay.Relay) on a Clock, fake public UDP
ports and real route sockets on the loopback: one socket per route, read through the
reactor's readers (`addReader`) and closed with its route, replies by the public port,
reads bounded per wake-up, a failed send counted, the idle timer followed, and a route
whose socket cannot be opened forgotten in one line."""

from __future__ import annotations

import select
import socket
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.relay import READS_PER_WAKEUP, Relay
from vinom.gateway.relay_core import RelayCore
from vinom.protocol.route_token import RouteTokenIssuer

KEY = bytes(range(32))
WALL = 1_700_000_000.0
ALICE = ("198.51.100.1", 50000)


class FakePort:
    def __init__(self, number: int, protocol: DatagramProtocol) -> None:
        self.number = number
        self.protocol = protocol
        self.written: list[tuple[bytes, Any]] = []
        self.listening = True

    def write(self, data: bytes, addr: Any) -> None:
        self.written.append((data, addr))

    def stopListening(self) -> None:
        self.listening = False


class FakeReactor(Clock):
    """A Clock with fake public UDP ports and the readers it was given (IReactorFDSet)."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []
        self.readers: list[IReadDescriptor] = []

    def listenUDP(self, port: int, protocol: DatagramProtocol, interface: str = "",
                  maxPacketSize: int = 8192) -> FakePort:  # noqa: N803  # fmt: skip
        fake = FakePort(port, protocol)
        self.ports.append(fake)
        return fake

    def addReader(self, reader: IReadDescriptor) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: IReadDescriptor) -> None:
        self.readers.remove(reader)


class RelayAdapterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.host.close)
        self.host.bind(("127.0.0.1", 0))
        self.host.settimeout(5.0)
        self.reactor = FakeReactor()
        self.reactor.advance(1000.0)
        core = RelayCore(KEY, wall_clock=lambda: WALL, idle_timeout=8.0)
        self.relay = Relay(self.reactor, core, host_interface="127.0.0.1")
        self.addCleanup(self.relay.stop)
        self.relay.listen(range(7800, 7802))
        self.public = list(self.reactor.ports)
        self.token = RouteTokenIssuer(KEY).issue(*self.host.getsockname(), WALL)

    def from_player(self, data: bytes, listener: int = 1) -> None:
        self.public[listener].protocol.datagramReceived(data, ALICE)

    def at_host(self) -> tuple[bytes, Any]:
        data, address = self.host.recvfrom(4096)
        return data, address

    def wake(self, reader: IReadDescriptor) -> None:
        """The reactor's part: wait until the route's socket is readable, then read it."""
        readable, _, _ = select.select([reader.fileno()], [], [], 5.0)
        self.assertTrue(readable, "nothing arrived on the route's socket")
        reader.doRead()

    def test_a_route_has_its_own_socket_and_replies_leave_by_the_players_port(self) -> None:
        self.from_player(self.token + b"hello")
        data, route_address = self.at_host()
        self.assertEqual(data, b"hello")
        self.assertEqual(route_address[0], "127.0.0.1")
        self.assertNotIn(route_address[1], (7800, 7801))
        [reader] = self.reactor.readers
        self.assertGreater(reader.fileno(), 0)
        self.host.sendto(b"welcome", route_address)
        self.wake(reader)
        self.assertEqual(self.public[1].written, [(b"welcome", ALICE)])
        self.assertEqual(self.public[0].written, [])
        # A second player is a second route: a second socket, a second peer for the host.
        bob = RouteTokenIssuer(KEY).issue(*self.host.getsockname(), WALL)
        self.public[0].protocol.datagramReceived(bob + b"hi", ("198.51.100.2", 50001))
        data, other = self.at_host()
        self.assertEqual(data, b"hi")
        self.assertNotEqual(other, route_address)
        self.assertEqual(len(self.reactor.readers), 2)

    def test_one_wake_up_reads_what_arrived_within_its_bound(self) -> None:
        self.from_player(self.token + b"hello")
        _, route_address = self.at_host()
        [reader] = self.reactor.readers
        for n in range(READS_PER_WAKEUP + 5):
            self.host.sendto(b"%d" % n, route_address)
        self.wake(reader)
        self.assertEqual(len(self.public[1].written), READS_PER_WAKEUP)
        self.wake(reader)
        self.assertEqual([d for d, _ in self.public[1].written],
                         [b"%d" % n for n in range(READS_PER_WAKEUP + 5)])  # fmt: skip
        # Nothing more to read: the wake-up returns quietly.
        reader.doRead()
        self.assertEqual(len(self.public[1].written), READS_PER_WAKEUP + 5)

    def test_a_datagram_that_cannot_be_sent_is_counted_never_raised(self) -> None:
        # The route's socket is IPv4 (--relay-host-interface 127.0.0.1), the host IPv6.
        token = RouteTokenIssuer(KEY).issue("::1", 7400, WALL)
        with capturedLogs() as events:
            self.from_player(token + b"hello")
            self.from_player(token + b"again")
        self.assertEqual(self.relay.send_errors, 2)
        self.assertEqual(self.relay.core.route_count, 1)
        self.assertEqual([e for e in events if "log_failure" in e], [])

    def test_an_idle_route_closes_its_socket_on_the_clock(self) -> None:
        self.from_player(self.token + b"hello")
        [reader] = self.reactor.readers
        for _ in range(4):
            self.reactor.advance(4.0)
            self.from_player(self.token + b"still here")
        self.assertEqual(self.reactor.readers, [reader])
        self.reactor.advance(8.0 * 1.25)
        self.assertEqual(self.reactor.readers, [])
        self.assertEqual(reader.fileno(), -1)  # closed
        self.assertEqual(self.relay.core.route_count, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_no_socket_for_a_route_forgets_it_and_says_so_once(self) -> None:
        # 192.0.2.1 (TEST-NET-1) is no address of this machine: its bind fails, as
        # a socket() call does when the file descriptors run out.
        self.relay.host_interface = "192.0.2.1"
        with capturedLogs() as events:
            for _ in range(5):
                self.from_player(self.token + b"hello")
        self.assertEqual(self.relay.core.route_count, 0)
        self.assertEqual(self.relay.socket_failures, 5)
        self.assertEqual(self.reactor.readers, [])
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertNotIn("log_failure", warnings[0])
        # Sockets again: the player's next datagram opens its route.
        self.relay.host_interface = "127.0.0.1"
        self.from_player(self.token + b"hello")
        self.assertEqual(self.at_host()[0], b"hello")

    def test_stopping_closes_every_socket(self) -> None:
        self.from_player(self.token + b"hello")
        [reader] = self.reactor.readers
        self.relay.stop()
        self.assertEqual(self.reactor.readers, [])
        self.assertEqual(reader.fileno(), -1)
        self.assertEqual([p.listening for p in self.public], [False, False])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
