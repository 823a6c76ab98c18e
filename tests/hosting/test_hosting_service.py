"""Tests for the game hosting service with the placeholder game host factory."""

from __future__ import annotations

import socket

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support.doubles import FakeUDPReactor, PlaceholderGameHost, PlaceholderGameHostFactory
from tests.support.http import capture_log
from tests.support.ports import free_udp_port
from tests.support.waiting import until
from vinom.hosting.interfaces import (
    IGameHost,
    IGameHostFactory,
    IMatchHosting,
    IParkingHostFactory,
)
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService, HostingStopped
from vinom.match import Match, MatchEnded, Ticket
from vinom.protocol.address import HostAddress


def make_match(match_id: str, *players: str) -> Match:
    tickets = tuple(Ticket(p, p, "tictactoe", None, 0.0) for p in players)
    return Match(match_id, "tictactoe", tickets, 0.0)


class HostingServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeUDPReactor()
        self.factory = PlaceholderGameHostFactory(self.reactor, "127.0.0.1", "203.0.113.7")
        self.allocator = PortAllocator.from_range(7400, 7401)
        self.service = GameHostingService(self.allocator, self.factory)
        self.service.startService()

    def test_factory_and_hosts_provide_their_interfaces(self) -> None:
        self.assertTrue(verifyObject(IGameHostFactory, self.factory))
        host = self.successResultOf(self.factory.start_host(7499))
        self.assertTrue(verifyObject(IGameHost, host))
        self.assertTrue(verifyObject(IMatchHosting, self.service))
        self.assertEqual(self.service.free_ports, 2)

    def test_a_match_gets_a_listening_host_on_a_port_of_the_pool(self) -> None:
        address = self.successResultOf(self.service.host_match(make_match("m-1", "a", "b")))
        self.assertEqual(address, HostAddress("203.0.113.7", 7400))
        self.assertEqual(self.reactor.listening[7400][1], "127.0.0.1")
        host = self.service.host_of("m-1")
        assert isinstance(host, PlaceholderGameHost)
        self.assertEqual(list(host.matches), ["m-1"])
        self.assertEqual(self.allocator.available, 1)
        self.assertEqual(self.service.running_games, 1)

    def test_when_the_match_ends_the_host_stops_and_the_port_returns(self) -> None:
        ended: list[MatchEnded | None] = []
        self.service.host_match(make_match("m-1", "a", "b"), on_ended=ended.append)
        outcome = MatchEnded("m-1", "aborted", None, "players_missing", ("a",))
        self.assertTrue(self.factory.end_match("m-1", outcome))
        self.assertEqual(ended, [outcome], "the host's outcome reaches the caller")
        self.assertNotIn(7400, self.reactor.listening)
        self.assertEqual(self.allocator.available, 2)
        self.assertEqual(self.service.running_games, 0)
        self.assertIsNone(self.service.host_of("m-1"))
        self.assertFalse(self.factory.end_match("m-1"))

    def test_matches_wait_for_a_port_in_order_and_resume_when_one_returns(self) -> None:
        waiting: list[tuple[str, int]] = []
        results = []
        for n in range(4):
            match_id = f"m-{n}"
            d = self.service.host_match(
                make_match(match_id, f"a{n}", f"b{n}"),
                on_waiting=lambda position, m=match_id: waiting.append((m, position)),
            )
            results.append(d)
        self.assertEqual(waiting, [("m-2", 1), ("m-3", 2)])
        self.assertNoResult(results[2])
        self.factory.end_match("m-1")
        self.assertEqual(self.successResultOf(results[2]).port, 7401)
        self.assertNoResult(results[3])
        self.factory.end_match("m-0")
        self.assertEqual(self.successResultOf(results[3]).port, 7400)
        self.assertEqual(self.service.running_games, 2)

    def test_a_port_another_process_holds_is_skipped_in_one_line(self) -> None:
        # Another service on a port of --udp-ports (an operator's mistake), or a
        # test run that picked the same port: the match goes to the next free port
        # of the range, and the taken one goes back to the end of the ring.
        self.reactor.taken.add(7400)
        lines = capture_log(self)
        address = self.successResultOf(self.service.host_match(make_match("m-1", "a")))
        self.assertEqual(address.port, 7401)
        self.assertEqual((self.service.running_games, self.allocator.available), (1, 1))
        # Its end gives back the port it ran on.
        self.factory.end_match("m-1")
        self.assertEqual((self.service.running_games, self.allocator.available), (0, 2))
        self.assertEqual(len(lines), 3, lines)  # the line, the match hosted, its end
        self.assertEqual(lines[0], "UDP port 7400 of the game port range is in use by another "
                                   "process; match m-1 takes another")  # fmt: skip
        self.assertNotIn("Traceback", "".join(lines))

    def test_every_free_port_held_elsewhere_fails_the_match(self) -> None:
        # Each free port tried once, then the match fails (the lobby tells its
        # players), every port back in the ring.
        self.reactor.taken.update({7400, 7401})
        self.failureResultOf(self.service.host_match(make_match("m-1", "a")), CannotListenError)
        self.assertEqual((self.service.running_games, self.allocator.available), (0, 2))
        # Likewise with a port of the range running a match: each free one is tried
        # once, not over and over.
        self.reactor.taken.clear()
        running = self.successResultOf(self.service.host_match(make_match("m-2", "b")))
        self.reactor.taken.add(14801 - running.port)  # the other of 7400 and 7401
        self.failureResultOf(self.service.host_match(make_match("m-3", "c")), CannotListenError)
        self.assertEqual((self.service.running_games, self.allocator.available), (1, 1))

    def test_cancelling_a_waiting_match_withdraws_it(self) -> None:
        self.service.host_match(make_match("m-1", "a"))
        self.service.host_match(make_match("m-2", "b"))
        waiting = self.service.host_match(make_match("m-3", "c"))
        later = self.service.host_match(make_match("m-4", "d"))
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.allocator.waiting, 1)
        self.factory.end_match("m-1")
        self.assertEqual(self.successResultOf(later).port, 7400)
        self.assertIsNone(self.service.host_of("m-3"))

    def test_stopping_stops_hosts_and_withdraws_waiting_matches(self) -> None:
        ended: list[MatchEnded | None] = []
        self.service.host_match(make_match("m-1", "a"), on_ended=ended.append)
        self.service.host_match(make_match("m-2", "b"))
        waiting = self.service.host_match(make_match("m-3", "c"))
        self.successResultOf(self.service.stopService())
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.reactor.listening, {})
        self.assertEqual(self.allocator.available, 2)
        self.assertEqual(ended, [None], "stopped before it ended: no outcome")
        self.failureResultOf(self.service.host_match(make_match("m-4", "d")), HostingStopped)
        # A match ending after the stop changes nothing (and does not release twice).
        self.assertFalse(self.factory.end_match("m-1"))

    def test_a_failing_add_match_stops_the_host_and_returns_the_port(self) -> None:
        @implementer(IGameHost)
        class Refusing(PlaceholderGameHost):
            def add_match(self, match: Match) -> Deferred[None]:
                return fail(ValueError("no room"))

        @implementer(IGameHostFactory)
        class RefusingFactory:
            def __init__(self) -> None:
                self.hosts: list[Refusing] = []

            def start_host(self, port: int) -> Deferred[IGameHost]:
                host = Refusing(HostAddress("127.0.0.1", port), None)  # type: ignore[arg-type]
                self.hosts.append(host)
                return succeed(host)

        factory = RefusingFactory()
        service = GameHostingService(PortAllocator([9000]), factory)
        self.failureResultOf(service.host_match(make_match("m-1", "a")), ValueError)
        self.assertTrue(factory.hosts[0].stopped)
        self.assertEqual(service.allocator.available, 1)




@implementer(IParkingHostFactory)
class ParkingFactory(PlaceholderGameHostFactory):
    """Placeholder hosts, parked by port when their matches end (unless `refuse`)."""

    def __init__(self, reactor: FakeUDPReactor) -> None:
        super().__init__(reactor, "127.0.0.1", "203.0.113.7")
        self.parked: dict[int, PlaceholderGameHost] = {}
        self.refuse = False
        self.started = 0

    def start_host(self, port: int) -> Deferred[IGameHost]:
        parked = self.parked.pop(port, None)
        if parked is not None:
            return succeed(parked)
        self.started += 1
        return super().start_host(port)

    def park(self, host: IGameHost) -> bool:
        if self.refuse or not isinstance(host, PlaceholderGameHost) or host.matches:
            return False
        self.parked[host.address.port] = host
        return True

    def stop_parked(self) -> Deferred[None]:
        parked, self.parked = list(self.parked.values()), {}
        for host in parked:
            host.stop()
        return succeed(None)


class ParkingServiceTests(SynchronousTestCase):
    """With a factory that parks (vinom.hosting.inline's does), an idle host waits on
    its port for the next match there instead of stopping."""

    def setUp(self) -> None:
        self.reactor = FakeUDPReactor()
        self.factory = ParkingFactory(self.reactor)
        self.allocator = PortAllocator([7400])
        self.service = GameHostingService(self.allocator, self.factory)
        self.service.startService()

    def test_the_next_match_on_the_port_reuses_the_parked_host(self) -> None:
        ended: list[MatchEnded | None] = []
        self.service.host_match(make_match("m-1", "a", "b"), on_ended=ended.append)
        first = self.service.host_of("m-1")
        waiting = self.service.host_match(make_match("m-2", "c", "d"))
        outcome = MatchEnded("m-1", "finished", {"winners": ["a"]}, None, ("a", "b"))
        self.factory.end_match("m-1", outcome)
        # Its outcome reaches the caller though the port went on to m-2 at once.
        self.assertEqual(ended, [outcome])
        self.assertEqual(self.successResultOf(waiting).port, 7400)
        self.assertIs(self.service.host_of("m-2"), first)
        self.assertEqual((self.factory.started, list(self.reactor.listening)), (1, [7400]))
        self.factory.end_match("m-2")
        self.assertEqual((self.allocator.available, self.service.running_games), (1, 0))
        self.assertEqual(list(self.factory.parked), [7400], "listening still")

    def test_a_host_the_factory_will_not_park_is_stopped(self) -> None:
        self.factory.refuse = True
        self.service.host_match(make_match("m-1", "a"))
        self.factory.end_match("m-1")
        self.assertEqual((self.reactor.listening, self.allocator.available), ({}, 1))

    def test_a_host_that_failed_is_stopped_not_parked(self) -> None:
        @implementer(IGameHost)
        class Failing(PlaceholderGameHost):
            def add_match(self, match: Match) -> Deferred[None]:
                return succeed(None)  # holds nothing: the factory would park it

            def when_idle(self) -> Deferred[None]:
                return fail(RuntimeError("the host's process died"))

        made: list[Failing] = []

        @implementer(IParkingHostFactory)
        class FailingFactory(ParkingFactory):
            def start_host(self, port: int) -> Deferred[IGameHost]:
                made.append(Failing(HostAddress("127.0.0.1", port), None))  # type: ignore[arg-type]
                return succeed(made[-1])

        factory = FailingFactory(self.reactor)
        service = GameHostingService(PortAllocator([9000]), factory)
        self.successResultOf(service.host_match(make_match("m-1", "a")))
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual((service.allocator.available, service.running_games), (1, 0))
        self.assertEqual(factory.parked, {})
        self.assertTrue(made[0].stopped)

    def test_stopping_stops_the_parked_hosts(self) -> None:
        self.service.host_match(make_match("m-1", "a"))
        self.factory.end_match("m-1")
        self.assertIn(7400, self.reactor.listening)
        self.successResultOf(self.service.stopService())
        self.assertEqual((self.reactor.listening, self.factory.parked), ({}, {}))


class PlaceholderOnRealSocketsTests(TestCase):
    """The placeholder host really holds its UDP port and drops what arrives."""

    async def test_host_listens_counts_drops_and_frees_the_port(self) -> None:
        port = free_udp_port()
        factory = PlaceholderGameHostFactory(global_reactor, "127.0.0.1", "127.0.0.1")
        host = await factory.start_host(port)
        assert isinstance(host, PlaceholderGameHost)
        self.addCleanup(host.stop)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            self.assertRaises(OSError, other.bind, ("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"hello?", ("127.0.0.1", port))
            client.setblocking(False)
            await until(lambda: host.protocol.dropped, "the datagram dropped")
            self.assertEqual(host.protocol.dropped, 1)
            self.assertRaises(BlockingIOError, client.recvfrom, 100)
        await host.stop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind(("127.0.0.1", port))
