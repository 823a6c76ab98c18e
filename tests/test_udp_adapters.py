"""The Twisted adapters over the sans-I/O endpoints, with a `Clock` and in-memory transports."""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Invalid, implementer
from zope.interface.verify import verifyObject

from tests.test_protocol_support import (
    APPLICATION_ID,
    CLIENT_ADDR,
    HOST,
    SERVER_ADDR,
    TOKEN_KEY,
    WALL,
    FakeAdmission,
)
from vinom.client.udp import ConnectFailedError, GameClientProtocol
from vinom.hosting.udp import GameHostProtocol
from vinom.protocol.config import ClientConfig, HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import RELIABLE, UNRELIABLE, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission, ISessionSender, ISessionSink
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.tokens import TokenIssuer


class Wire:
    """Datagrams written by either side, delivered when the test says so."""

    def __init__(self) -> None:
        self.queue: list[tuple[bytes, Any, Any]] = []
        self.fail_writes = False

    def transport(self, own: tuple[str, int]) -> FakeTransport:
        return FakeTransport(self, own)


class FakeTransport:
    def __init__(self, wire: Wire, own: tuple[str, int]) -> None:
        self.wire = wire
        self.own = own
        self.written: list[tuple[bytes, Any]] = []
        self.stopped = False

    def write(self, data: bytes, addr: Any) -> None:
        if self.wire.fail_writes:
            raise OSError("ENOBUFS")
        self.written.append((data, addr))
        self.wire.queue.append((data, self.own, addr))

    def stopListening(self) -> None:
        self.stopped = True


@implementer(ISessionSink)
class RecordingSink:
    def __init__(self) -> None:
        self.sender: GameHostProtocol | None = None
        self.connected: list[SessionConnected] = []
        self.closed: list[SessionClosed] = []
        self.messages: list[tuple[int, int, bytes]] = []
        self.echo = False
        self.explode_on: bytes | None = None

    def session_connected(self, event: SessionConnected) -> None:
        self.connected.append(event)

    def message_received(self, session_id: int, channel: int, data: bytes) -> None:
        if data == self.explode_on:
            raise RuntimeError("sink bug")
        self.messages.append((session_id, channel, data))
        if self.echo and self.sender is not None:
            self.sender.send_message(session_id, channel, b"echo " + data)

    def session_closed(self, event: SessionClosed) -> None:
        self.closed.append(event)


class AdapterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        protocol = ProtocolConfig(token_key=TOKEN_KEY, application_id=APPLICATION_ID)
        self.admission = FakeAdmission()
        self.endpoint = ServerEndpoint(HostConfig(protocol, (HOST,)), self.admission,
                                       wall_clock=lambda: WALL)
        self.sink = RecordingSink()
        self.host = GameHostProtocol(self.endpoint, self.sink, self.clock)
        self.sink.sender = self.host
        self.wire = Wire()
        self.host_transport = self.wire.transport(SERVER_ADDR)
        self.host.makeConnection(self.host_transport)  # type: ignore[arg-type]
        issuer = TokenIssuer(IssuerConfig(protocol))
        self.token = issuer.issue_token(player_id="p-1", match_id="m-1", hosts=(HOST,), now=WALL)
        self.received: list[tuple[int, bytes]] = []

    def start_client(self, **kw: Any) -> GameClientProtocol:
        client = GameClientProtocol(self.clock, self.token, wall_clock=lambda: WALL,
                                    on_message=lambda c, d: self.received.append((c, d)), **kw)
        client.makeConnection(self.wire.transport(CLIENT_ADDR))  # type: ignore[arg-type]
        return client

    def deliver(self, client: GameClientProtocol | None = None) -> int:
        moved = 0
        while self.wire.queue:
            data, src, dst = self.wire.queue.pop(0)
            if dst == SERVER_ADDR:
                self.host.datagramReceived(data, src)
            elif client is not None and dst == CLIENT_ADDR:
                client.datagramReceived(data, src)
            moved += 1
        return moved

    def connected_client(self) -> tuple[GameClientProtocol, int]:
        client = self.start_client()
        self.deliver(client)
        self.deliver(client)
        self.assertTrue(client.connected.called)
        self.assertEqual(len(self.sink.connected), 1)
        return client, self.sink.connected[0].session_id

    def test_host_provides_the_sender_interface(self) -> None:
        verifyObject(ISessionSender, self.host)

    def test_handshake_and_messages_through_the_adapters(self) -> None:
        client, sid = self.connected_client()
        results: list[object] = []
        client.connected.addCallback(results.append)
        self.assertEqual(results, [client])
        assert client.session is not None
        self.assertEqual(client.session.session_id, sid)
        client.send(RELIABLE, b"hello")
        self.deliver(client)
        self.assertEqual(self.sink.messages, [(sid, RELIABLE, b"hello")])
        self.host.send_message(sid, UNRELIABLE, b"state")
        self.deliver(client)
        self.assertEqual(self.received, [(UNRELIABLE, b"state")])

    def test_replies_from_the_sink_share_the_ack_packet(self) -> None:
        client, _sid = self.connected_client()
        self.sink.echo = True
        before = len(self.host_transport.written)
        client.send(RELIABLE, b"move")
        self.deliver(client)
        # One datagram carries both the ack of "move" and the echo.
        self.assertEqual(len(self.host_transport.written) - before, 1)
        self.assertEqual(self.received, [(RELIABLE, b"echo move")])

    def test_timers_drive_keepalives_and_timeouts(self) -> None:
        _client, sid = self.connected_client()
        self.clock.advance(2.0)  # past the keepalive interval (timeout / 3)
        self.assertEqual(self.host_transport.written[-1][0][0], 6)  # a keepalive
        # The client goes silent: its transport loses everything from now on.
        for _ in range(60):
            self.clock.advance(0.1)
            self.wire.queue.clear()
        self.assertEqual([(e.session_id, e.reason) for e in self.sink.closed], [(sid, "timeout")])
        self.assertEqual(self.endpoint.session_count, 0)

    def test_client_times_out_and_releases_its_port(self) -> None:
        client, _ = self.connected_client()
        closed: list[str] = []
        client.closed.addCallback(closed.append)
        for _ in range(60):
            self.clock.advance(0.1)
            self.wire.queue.clear()
        self.assertEqual(closed, ["timeout"])
        self.clock.advance(0)
        self.assertTrue(client.transport.stopped)  # type: ignore[union-attr]

    def test_denied(self) -> None:
        self.admission.verdict = Admission.FULL
        client = self.start_client()
        self.deliver(client)
        failure = self.failureResultOf(client.connected, ConnectFailedError)
        self.assertEqual(failure.value.reason, "denied")  # type: ignore[attr-defined]
        self.assertEqual(self.successResultOf(client.closed), "denied")

    def test_connect_timeout(self) -> None:
        self.admission.verdict = Admission.REFUSE
        client = self.start_client(config=ClientConfig(attempt_timeout=1.0))
        for _ in range(12):
            self.deliver(client)
            self.clock.advance(0.1)
        failure = self.failureResultOf(client.connected, ConnectFailedError)
        self.assertEqual(failure.value.reason, "timeout")  # type: ignore[attr-defined]
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_disconnect_both_ways(self) -> None:
        client, sid = self.connected_client()
        d = client.disconnect()
        self.assertEqual(self.successResultOf(d), None)
        self.assertTrue(client.transport.stopped)  # type: ignore[union-attr]
        self.deliver(client)
        self.assertEqual([(e.session_id, e.reason) for e in self.sink.closed],
                         [(sid, "disconnect")])
        self.assertEqual(self.successResultOf(client.closed), "closed")

    def test_host_closes_a_session(self) -> None:
        client, sid = self.connected_client()
        self.host.close_session(sid)
        self.assertEqual([(e.session_id, e.reason) for e in self.sink.closed], [(sid, "closed")])
        self.deliver(client)
        self.assertEqual(self.successResultOf(client.closed), "disconnect")

    def test_sink_failures_are_counted_not_raised(self) -> None:
        client, sid = self.connected_client()
        self.sink.explode_on = b"boom"
        client.send(RELIABLE, b"boom")
        client.send(RELIABLE, b"after")
        self.deliver(client)
        self.assertEqual(self.host.errors, 1)
        self.assertEqual(self.sink.messages, [(sid, RELIABLE, b"after")])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_a_datagram_fed_from_inside_the_sink_waits_for_the_delivering_loop(self) -> None:
        """The sink feeding the host a datagram (a nested read) is not handed that
        datagram's events inside its own call, and the batch in progress keeps
        holding its replies until it ends."""
        client, _sid = self.connected_client()
        depth = [0]
        heard: list[tuple[bytes, int, bool]] = []

        def reentrant(session_id: int, channel: int, data: bytes) -> None:
            depth[0] += 1
            heard.append((data, depth[0], self.host._dispatching))
            if data == b"outer":
                nested, source, _ = self.wire.queue.pop(0)
                self.host.datagramReceived(nested, source)
                heard.append((b"back", depth[0], self.host._dispatching))
            depth[0] -= 1

        self.patch(self.sink, "message_received", reentrant)
        client.send(RELIABLE, b"outer")
        client.send(RELIABLE, b"inner")
        self.assertEqual(len(self.wire.queue), 2)  # one datagram each
        data, source, _ = self.wire.queue.pop(0)
        self.host.datagramReceived(data, source)
        self.assertEqual(heard, [(b"outer", 1, True), (b"back", 1, True), (b"inner", 1, True)])
        self.assertFalse(self.host._dispatching)

    def test_a_sink_missing_a_method_is_refused_when_the_host_is_made(self) -> None:
        class HalfSink:
            def session_connected(self, event: SessionConnected) -> None:
                pass

        self.assertRaises(Invalid, GameHostProtocol, self.endpoint, HalfSink(), self.clock)

    def test_endpoint_failures_are_counted_not_raised(self) -> None:
        class Broken(Counter[str]):
            """A drop counter that fails: a bug inside the endpoint's own code."""

            def __missing__(self, key: str) -> int:
                raise ValueError("endpoint bug")

        self.patch(self.endpoint, "drops", Broken())
        self.host.datagramReceived(b"\x05" + bytes(30), CLIENT_ADDR)  # no session: a drop
        self.assertEqual(self.host.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_garbage_is_dropped_silently(self) -> None:
        for data in (b"", b"\x00", b"\x07" * 100, bytes(1200)):
            self.host.datagramReceived(data, CLIENT_ADDR)
        self.assertEqual(self.host_transport.written, [])
        self.assertEqual(self.host.errors, 0)
        self.assertEqual(sum(self.endpoint.drops.values()), 4)

    def test_send_errors_are_counted(self) -> None:
        _client, sid = self.connected_client()
        self.wire.fail_writes = True
        self.host.send_message(sid, RELIABLE, b"x")
        self.assertEqual(self.host.send_errors, 1)

    def test_stopping_cancels_the_timer(self) -> None:
        client, _ = self.connected_client()
        self.host.doStop()
        client.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
