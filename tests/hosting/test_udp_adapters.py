"""The Twisted adapters over the sans-I/O endpoints, with a `Clock` and in-memory transports."""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Invalid

from tests.protocol.test_protocol_support import (
    APPLICATION_ID,
    CLIENT_ADDR,
    HOST,
    SERVER_ADDR,
    TOKEN_KEY,
    WALL,
    FakeAdmission,
)
from tests.support.doubles import EchoCore
from vinom.client.udp import ConnectFailedError, GameClientProtocol
from vinom.hosting.udp import GameHostProtocol
from vinom.protocol.config import ClientConfig, HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import RELIABLE, UNRELIABLE, SessionConnected
from vinom.protocol.interfaces import Admission
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


class AdapterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        protocol = ProtocolConfig(token_key=TOKEN_KEY, application_id=APPLICATION_ID)
        self.admission = FakeAdmission()
        self.endpoint = ServerEndpoint(HostConfig(protocol, (HOST,)), self.admission,
                                       wall_clock=lambda: WALL)
        self.core = EchoCore(self.endpoint, prefix=b"echo ")
        self.core.echo = False
        self.host_events: list[object] = []
        self.host = GameHostProtocol(self.core, self.clock, on_event=self.host_events.append)
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
        self.assertEqual(len(self.core.connected), 1)
        return client, self.core.connected[0].session_id

    def test_handshake_and_messages_through_the_adapters(self) -> None:
        client, sid = self.connected_client()
        results: list[object] = []
        client.connected.addCallback(results.append)
        self.assertEqual(results, [client])
        assert client.session is not None
        self.assertEqual(client.session.session_id, sid)
        client.send(RELIABLE, b"hello")
        self.deliver(client)
        self.assertEqual(self.core.messages, [(sid, RELIABLE, b"hello", 1000.0)])
        self.endpoint.send_message(sid, UNRELIABLE, b"state")
        self.host.transmit()
        self.deliver(client)
        self.assertEqual(self.received, [(UNRELIABLE, b"state")])

    def test_the_cores_events_reach_the_layer_above(self) -> None:
        _client, sid = self.connected_client()
        self.assertEqual([e.session_id for e in self.host_events], [sid])  # type: ignore[attr-defined]

    def test_replies_from_the_core_share_the_ack_packet(self) -> None:
        client, _sid = self.connected_client()
        self.core.echo = True
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
        self.assertEqual([(e.session_id, e.reason) for e in self.core.closed], [(sid, "timeout")])
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
        self.assertEqual([(e.session_id, e.reason) for e in self.core.closed],
                         [(sid, "disconnect")])
        self.assertEqual(self.successResultOf(client.closed), "closed")

    def test_host_closes_a_session(self) -> None:
        client, sid = self.connected_client()
        self.core.close_session(sid, self.clock.seconds())
        self.host.transmit()
        self.assertEqual([(e.session_id, e.reason) for e in self.core.closed], [(sid, "closed")])
        self.deliver(client)
        self.assertEqual(self.successResultOf(client.closed), "disconnect")

    def test_the_layer_above_may_call_the_core_and_transmit_from_an_event(self) -> None:
        """No re-entrancy guard is needed: the handler closes the new session and
        transmits; the disconnects go out and the outer transmit finds nothing left."""

        def close_at_once(event: object) -> None:
            assert isinstance(event, SessionConnected)
            self.core.close_session(event.session_id, self.clock.seconds())
            self.host.transmit()

        self.host.on_event = close_at_once
        client = self.start_client()
        self.deliver(client)
        self.deliver(client)
        self.assertEqual([e.reason for e in self.core.closed], ["closed"])
        self.assertEqual(self.successResultOf(client.closed), "disconnect")
        self.assertEqual(self.host.errors, 0)

    def test_core_failures_are_counted_not_raised(self) -> None:
        client, _sid = self.connected_client()
        self.core.explode_on = b"boom"
        client.send(RELIABLE, b"boom")
        self.deliver(client)
        self.assertEqual(self.host.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        # The adapter goes on: the next datagram is handled.
        client.send(RELIABLE, b"after")
        self.deliver(client)
        self.assertEqual([m[2] for m in self.core.messages], [b"after"])

    def test_event_handler_failures_are_counted_not_raised(self) -> None:
        def broken(event: object) -> None:
            raise RuntimeError("a bug above the adapter")

        self.host.on_event = broken
        self.connected_client()
        self.assertEqual(self.host.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_a_core_missing_a_method_is_refused_when_the_host_is_made(self) -> None:
        class HalfCore:
            def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
                pass

        self.assertRaises(Invalid, GameHostProtocol, HalfCore(), self.clock)

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
        self.endpoint.send_message(sid, RELIABLE, b"x")
        self.host.transmit()
        self.assertEqual(self.host.send_errors, 1)

    def test_a_core_with_nothing_due_leaves_no_timer(self) -> None:
        # The host's last session closes (its match ended): nothing is due, so the
        # reactor keeps no wake-up for it, though its port listens on (a reused host).
        client, sid = self.connected_client()
        client.doStop()
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        self.endpoint.close_session(sid)
        self.host.transmit()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopping_cancels_the_timer(self) -> None:
        client, _ = self.connected_client()
        self.host.doStop()
        client.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
