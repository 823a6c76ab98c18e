"""vinom.net.reactor: Twisted's own reactor tests, run against vinom's epoll reactor, and
what differs from Twisted's (no log context per event), on real sockets.

Twisted's conformance suites (`twisted.internet.test`, shipped with Twisted) build a
fresh reactor per test from `ReactorBuilder._reactors`; here that list names only
vinom's reactor, so TCP, UDP, TLS, processes, descriptor sets, timers and system
events are checked by Twisted's tests, not ours.
"""

# slow: runs Twisted's process tests, which start child processes

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import protocol
from twisted.internet.test import (
    test_core,
    test_fdset,
    test_process,
    test_tcp,
    test_time,
    test_tls,
    test_udp,
)
from twisted.internet.test.reactormixins import ReactorBuilder
from twisted.logger import globalLogPublisher
from twisted.python import context
from twisted.python.log import ILogContext
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from vinom.net.reactor import EPollReactor

REACTOR = "vinom.net.reactor.EPollReactor"

_BUILDERS: list[type[ReactorBuilder]] = [
    test_core.SystemEventTestsBuilder,
    test_fdset.ReactorFDSetTestsBuilder,
    test_time.TimeTestsBuilder,
    test_tcp.TCP4ClientTestsBuilder,
    test_tcp.TCPPortTestsBuilder,
    test_tcp.TCPConnectionTestsBuilder,
    test_tcp.TCP4ConnectorTestsBuilder,
    test_tcp.TCPTransportTestsBuilder,
    test_tcp.AbortConnectionTests,
    test_udp.UDPServerTestsBuilder,
    test_tls.SSLClientTestsMixin,
    test_tls.StartTLSClientTestsMixin,
    test_tls.TLSPortTestsBuilder,
    test_tls.AbortSSLConnectionTests,
    test_process.ProcessTestsBuilder,
]


def _system_is_not_the_prefix(self: Any) -> None:
    """In place of Twisted's `test_logPrefix`, which checks the one thing vinom's reactor
    does not do: EventsWithoutContextTests pins what it does instead."""
    raise SkipTest("vinom's reactor runs events without a log context (vinom.net.reactor); "
                   "EventsWithoutContextTests checks what a legacy log gets instead")  # fmt: skip


def _uid_needs_a_python_uid_1_may_run(self: Any) -> None:
    raise SkipTest("runs this Python as uid 1, which may not read it (a root-owned home); "
                   "Twisted's own EPollReactor fails it so on such a machine")  # fmt: skip


def _against_vinom(builder: type[ReactorBuilder]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"_reactors": [REACTOR], "__module__": __name__}
    if hasattr(builder, "test_logPrefix"):
        namespace["test_logPrefix"] = _system_is_not_the_prefix
    if hasattr(builder, "test_changeUID"):
        namespace["test_changeUID"] = _uid_needs_a_python_uid_1_may_run
    against = type(builder.__name__, (builder,), namespace)
    return against.makeTestCaseClasses()


for _builder in _BUILDERS:
    globals().update(_against_vinom(_builder))


class Raises(protocol.Protocol):
    """Raises on the first bytes it reads, as a buggy protocol would."""

    def dataReceived(self, data: bytes) -> None:
        raise RuntimeError("a bug in dataReceived")


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class ReactorByHand(SynchronousTestCase):
    """A reactor of its own on 127.0.0.1, turned by hand; the peers are plain sockets."""

    def setUp(self) -> None:
        self.reactor = EPollReactor()
        self.connections: list[protocol.Protocol] = []
        self.ports: list[Any] = []
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.addCleanup(self._close)

    def _close(self) -> None:
        for connection in self.connections:
            if connection.transport.connected:  # type: ignore[union-attr]
                connection.transport.abortConnection()  # type: ignore[union-attr]
        for port in self.ports:
            port.stopListening()
        self.reactor.iterate(0)
        self.reactor.iterate(0)

    def listen(self, kind: type[protocol.Protocol]) -> int:
        connections = self.connections

        class Tracked(kind):  # type: ignore[valid-type,misc]
            def connectionMade(self) -> None:
                connections.append(self)
                super().connectionMade()

        port = self.reactor.listenTCP(0, protocol.Factory.forProtocol(Tracked),
                                      interface="127.0.0.1")  # fmt: skip
        self.ports.append(port)
        return int(port.getHost().port)

    def connect(self, port: int) -> socket.socket:
        peer = socket.create_connection(("127.0.0.1", port))
        peer.settimeout(0.01)
        self.addCleanup(peer.close)
        return peer

    def turn_until(self, done: Any, turns: int = 300) -> None:
        for _ in range(turns):
            self.reactor.iterate(0.01)
            if done():
                return
        self.fail("not done in time")

    def read(self, peer: socket.socket) -> bytes | None:
        """What `peer` reads: bytes, b"" at the end of the stream, None if nothing yet."""
        try:
            return peer.recv(100)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return b""

    def errors(self) -> list[dict[str, Any]]:
        return [event for event in self.logged if event.get("isError")]


class EventsWithoutContextTests(ReactorByHand):
    def test_a_protocol_that_raises_is_dropped_and_logged_others_are_served(self) -> None:
        bad = self.connect(self.listen(Raises))
        good = self.connect(self.listen(Echo))
        self.turn_until(lambda: len(self.connections) == 2)
        bad.sendall(b"boom")
        good.sendall(b"ping")
        self.turn_until(lambda: self.read(good) == b"ping")
        self.turn_until(lambda: self.read(bad) == b"")
        good.sendall(b"again")
        self.turn_until(lambda: self.read(good) == b"again")
        [error] = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(str(error.value), "a bug in dataReceived")

    def test_an_event_for_a_descriptor_an_earlier_event_removed_is_skipped(self) -> None:
        # Both connections are readable in one poll; whichever is handled first
        # drops the other (a lobby dropping a peer, say) before its event is handled.
        class DropTheOther(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                for other in connections:
                    if other is not self:
                        other.transport.abortConnection()  # type: ignore[union-attr]
                connections.clear()
                self.transport.write(b"dropped the other")  # type: ignore[union-attr]

        connections = self.connections
        port = self.listen(DropTheOther)
        first, second = self.connect(port), self.connect(port)
        self.turn_until(lambda: len(self.connections) == 2)
        first.sendall(b"x")
        second.sendall(b"y")
        answers: dict[str, bytes] = {}

        def both_answered() -> bool:
            for name, peer in (("first", first), ("second", second)):
                if name not in answers and (data := self.read(peer)) is not None:
                    answers[name] = data
            return len(answers) == 2

        self.turn_until(both_answered)
        self.assertEqual(sorted(answers.values()), [b"", b"dropped the other"])
        self.assertEqual(self.errors(), [])

    def test_what_escapes_a_disconnection_is_logged_and_the_others_are_served(self) -> None:
        class LosesBadly(protocol.Protocol):
            def connectionLost(self, reason: object = None) -> None:
                raise RuntimeError("a bug in connectionLost")

        leaving = self.connect(self.listen(LosesBadly))
        good = self.connect(self.listen(Echo))
        self.turn_until(lambda: len(self.connections) == 2)
        leaving.close()
        good.sendall(b"ping")
        self.turn_until(lambda: self.read(good) == b"ping")
        self.turn_until(lambda: len(self.flushLoggedErrors(RuntimeError)) == 1)
        good.sendall(b"again")
        self.turn_until(lambda: self.read(good) == b"again")

    def test_a_legacy_log_made_during_an_event_is_not_tagged_with_the_connection(self) -> None:
        # The one difference from Twisted's EPollReactor (vinom.net.reactor).
        systems: list[str] = []

        class Tagged(protocol.Protocol):
            def logPrefix(self) -> str:
                return "Tagged"

            def dataReceived(self, data: bytes) -> None:
                systems.append(context.get(ILogContext)["system"])

        peer = self.connect(self.listen(Tagged))
        self.turn_until(lambda: len(self.connections) == 1)
        peer.sendall(b"x")
        self.turn_until(lambda: systems != [])
        self.assertEqual(systems, ["-"])


class WriteThroughTests(ReactorByHand):
    """An accepted connection sends in the turn that wrote, unless bytes wait."""

    def test_a_reply_leaves_in_the_turn_that_read_the_request(self) -> None:
        handled: list[bytes] = []

        class Answers(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                handled.append(data)
                self.transport.write(b"re: " + data)  # type: ignore[union-attr]

        peer = self.connect(self.listen(Answers))
        self.turn_until(lambda: len(self.connections) == 1)
        for n in range(3):
            peer.sendall(b"ping %d" % n)
            self.turn_until(lambda n=n: len(handled) == n + 1)
            # No further turn: the answer is already on its way, and the connection
            # never waited to be writable (Twisted's would, for a turn).
            self.assertEqual(self.read_within(peer, 1.0), b"re: ping %d" % n)
            self.assertNotIn(self.connections[0].transport, self.reactor.getWriters())

    def test_what_the_kernel_does_not_take_waits_and_what_follows_keeps_its_place(
        self,
    ) -> None:
        big = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than a socket's buffers

        class Floods(protocol.Protocol):
            def connectionMade(self) -> None:
                self.transport.write(big)  # type: ignore[union-attr]
                self.transport.writeSequence([b"after", b" all"])  # type: ignore[union-attr]
                self.transport.loseConnection()  # type: ignore[union-attr]

        peer = self.connect(self.listen(Floods))
        self.turn_until(lambda: len(self.connections) == 1)
        self.assertIn(self.connections[0].transport, self.reactor.getWriters())
        received = bytearray()

        def all_read() -> bool:
            while (data := self.read(peer)) is not None:
                if not data:
                    return True
                received.extend(data)
            return False

        self.turn_until(all_read, turns=5000)
        self.assertEqual(len(received), len(big) + 9)
        self.assertTrue(received == big + b"after all")
        self.assertEqual(self.errors(), [])

    def read_within(self, peer: socket.socket, seconds: float) -> bytes | None:
        peer.settimeout(seconds)
        try:
            return self.read(peer)
        finally:
            peer.settimeout(0.01)
