"""The relay's Twisted adapter (vinom.gateway.relay.Relay) on a Clock and fake UDP ports:
one socket per route, opened and closed with it, replies by the public port, the idle
timer followed, and a route whose socket cannot be opened forgotten in one line."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.relay import Relay
from vinom.gateway.relay_core import RelayCore
from vinom.protocol.route_token import RouteTokenIssuer

KEY = bytes(range(32))
WALL = 1_700_000_000.0
HOST = ("10.0.0.7", 7400)
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
    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []
        self.refuse = False

    def listenUDP(self, port: int, protocol: DatagramProtocol, interface: str = "",
                  maxPacketSize: int = 8192) -> FakePort:  # noqa: N803  # fmt: skip
        if self.refuse and port == 0:
            raise OSError(24, "Too many open files")
        fake = FakePort(port or 40000 + len(self.ports), protocol)
        self.ports.append(fake)
        return fake


class RelayAdapterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(1000.0)
        core = RelayCore(KEY, wall_clock=lambda: WALL, idle_timeout=8.0)
        self.relay = Relay(self.reactor, core)
        self.relay.listen(range(7800, 7802))
        self.public = list(self.reactor.ports)
        self.token = RouteTokenIssuer(KEY).issue(*HOST, WALL)

    def from_player(self, data: bytes, listener: int = 1) -> None:
        self.public[listener].protocol.datagramReceived(data, ALICE)

    def test_a_route_has_its_own_socket_and_replies_leave_by_the_players_port(self) -> None:
        self.from_player(self.token + b"hello")
        route = self.reactor.ports[-1]
        self.assertEqual(route.written, [(b"hello", HOST)])
        route.protocol.datagramReceived(b"welcome", HOST)
        self.assertEqual(self.public[1].written, [(b"welcome", ALICE)])
        self.assertEqual(self.public[0].written, [])

    def test_an_idle_route_closes_its_socket_on_the_clock(self) -> None:
        self.from_player(self.token + b"hello")
        route = self.reactor.ports[-1]
        for _ in range(4):
            self.reactor.advance(4.0)
            self.from_player(self.token + b"still here")
        self.assertTrue(route.listening)
        self.reactor.advance(8.0 * 1.25)
        self.assertFalse(route.listening)
        self.assertEqual(self.relay.core.route_count, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_no_socket_for_a_route_forgets_it_and_says_so_once(self) -> None:
        self.reactor.refuse = True
        with capturedLogs() as events:
            for _ in range(5):
                self.from_player(self.token + b"hello")
        self.assertEqual(self.relay.core.route_count, 0)
        self.assertEqual(self.relay.socket_failures, 5)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertNotIn("log_failure", warnings[0])
        # Sockets again: the player's next datagram opens its route.
        self.reactor.refuse = False
        self.from_player(self.token + b"hello")
        self.assertEqual(self.reactor.ports[-1].written, [(b"hello", HOST)])

    def test_stopping_closes_every_socket(self) -> None:
        self.from_player(self.token + b"hello")
        self.relay.stop()
        self.assertEqual([p.listening for p in self.reactor.ports], [False] * 3)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
