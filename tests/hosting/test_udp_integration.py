"""Real UDP sockets on 127.0.0.1: handshake, 10,000 reliable messages, disconnect, cleanup."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.protocol.test_protocol_support import FakeAdmission
from tests.support.doubles import EchoCore
from tests.support.waiting import until
from vinom.client.udp import ConnectFailedError, GameClientProtocol, connect_game_client
from vinom.hosting.datagrams import DatagramReader
from vinom.hosting.udp import SOCKET_BUFFER, listen_game_host
from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import (
    ClientConfig,
    HostConfig,
    IssuerConfig,
    ProtocolConfig,
    generate_token_key,
)
from vinom.protocol.events import RELIABLE, MessageReceived, SessionClosed
from vinom.protocol.interfaces import Admission
from vinom.protocol.reliability import Reliability
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.tokens import TokenIssuer

MESSAGES = 10_000


class WatchedEchoCore(EchoCore):
    """An `EchoCore` whose first closed session fires `closed_session`."""

    def __init__(self, endpoint: ServerEndpoint) -> None:
        super().__init__(endpoint)
        self.closed_session: Deferred[SessionClosed] = Deferred()

    def _take_events(self, now: float) -> None:
        closed = len(self.closed)
        super()._take_events(now)
        if len(self.closed) > closed and not self.closed_session.called:
            self.closed_session.callback(self.closed[closed])


class RealUDPTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.protocol = ProtocolConfig(token_key=generate_token_key())
        self.admission = FakeAdmission()
        # Addresses are set once the port-0 socket is bound.
        self.endpoint = ServerEndpoint(
            HostConfig(self.protocol, (HostAddress("127.0.0.1", 1),)), self.admission
        )
        self.core = WatchedEchoCore(self.endpoint)
        self.host, self.port = listen_game_host(reactor, 0, self.core, reactor,
                                                interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.address = HostAddress("127.0.0.1", self.port.getHost().port)
        self.endpoint.set_addresses((self.address,))
        self.issuer = TokenIssuer(IssuerConfig(self.protocol))

    def token(self, player_id: str = "p-1") -> dict[str, Any]:
        return dict(
            self.issuer.issue(player_id, "m-1", self.address, time.time(), name="Ada",
                              rating=1500.0)
        )


    @inlineCallbacks
    def test_handshake_ten_thousand_messages_disconnect(self) -> Any:
        received: list[bytes] = []
        all_back: Deferred[None] = Deferred()

        def on_message(channel: int, data: bytes) -> None:
            self.assertEqual(channel, RELIABLE)
            received.append(data)
            if len(received) == MESSAGES:
                all_back.callback(None)

        client: GameClientProtocol = yield connect_game_client(reactor, self.token(),
                                                               on_message=on_message)
        self.addCleanup(client.disconnect)
        self.assertEqual(len(self.core.connected), 1)
        self.assertEqual(self.core.connected[0].player_id, "p-1")
        self.assertEqual(self.endpoint.session_count, 1)

        for i in range(MESSAGES):
            client.send(RELIABLE, b"message %d" % i)
        yield all_back
        self.assertEqual(received, [b"message %d" % i for i in range(MESSAGES)])
        self.assertEqual(len(self.core.messages), MESSAGES)

        yield client.disconnect()
        closed = yield self.core.closed_session
        self.assertEqual(closed.reason, "disconnect")
        self.assertEqual(self.endpoint.session_count, 0)
        self.assertEqual(self.host.errors, 0)

    @inlineCallbacks
    def test_the_rtt_leaves_out_a_host_holding_its_acks_for_a_tick(self) -> Any:
        """A host that holds each ack one tick (50 ms) before sending it: the RTT the
        client reports stays near the loopback RTT, not 50 ms above it.

        Read without a bound a busy machine can break: the smoothed RTT after each
        of the last eight pings, at its lowest, is held to half the tick (without
        the hold taken out every one of them would be 35 ms and more, 16 samples of
        50 ms in), not each figure to a few milliseconds of loopback."""
        self.core.echo = False  # no replies: each ack goes out alone, when due
        client: GameClientProtocol = yield connect_game_client(reactor, self.token())
        self.addCleanup(client.disconnect)
        assert client.connection is not None
        layer = client.connection.reliability
        assert isinstance(layer, Reliability)
        session_id = self.core.connected[0].session_id

        def rtt_after(pings: int) -> Deferred[list[float]]:
            """The smoothed RTT after each new sample, until `pings` samples came."""
            start, seen = layer.rtt_samples, [layer.rtt_samples]
            trace: list[float] = []

            def ping(_: object = None) -> Any:
                if layer.rtt_samples != seen[-1]:
                    seen.append(layer.rtt_samples)
                    trace.append(layer.rtt_s)
                if layer.rtt_samples - start >= pings:
                    return trace
                client.send(RELIABLE, b"ping")
                return deferLater(reactor, 0.12, lambda: None).addCallback(ping)

            return ping()

        # The loopback RTT first: the host acks at once.
        self.assertTrue(self.endpoint.set_ack_delays(session_id, 0.0, 0.0))
        loopback = yield rtt_after(8)
        # Now the host holds each ack a tick, as in a 20 Hz room; the client knows.
        self.assertTrue(self.endpoint.set_ack_delays(session_id, 0.05, 0.0))
        client.set_ack_delays(0.0, 0.05)
        held = yield rtt_after(16)
        self.assertLess(min(held[-8:]), 0.025, (held, loopback))
        self.assertAlmostEqual(layer.rto_s, max(0.02, layer.rtt_s + 4 * layer.rttvar + 0.05))
        self.assertFalse(self.endpoint.set_ack_delays(session_id + 1, 0.05, 0.05))

    @inlineCallbacks
    def test_host_writes_to_its_socket_directly_and_counts_refusals(self) -> Any:
        written: list[bytes] = []
        self.patch(self.port, "write", lambda data, addr=None: written.append(data))
        client: GameClientProtocol = yield connect_game_client(reactor, self.token())
        self.addCleanup(client.disconnect)
        self.assertEqual(written, [])  # the handshake went out through sendto
        sid = self.core.connected[0].session_id

        class Refusing:
            def __init__(self, error: int) -> None:
                self.error = error

            def sendto(self, data: bytes, addr: object) -> int:
                raise OSError(self.error, os.strerror(self.error))

        real = self.host._socket
        for number, error in enumerate(
            (errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EMSGSIZE), 1
        ):
            self.host._socket = Refusing(error)  # type: ignore[assignment]
            self.endpoint.send_message(sid, RELIABLE, b"lost %d" % number)
            self.host.transmit()
            self.assertEqual(self.host.send_errors, number)
        self.host._socket = real
        self.assertEqual(self.host.errors, 0)
        # The reliable messages are resent once the socket takes datagrams again.
        received: list[bytes] = []
        done: Deferred[None] = Deferred()

        def on_message(channel: int, data: bytes) -> None:
            received.append(data)
            if len(received) == 4:
                done.callback(None)

        client._on_message = on_message
        yield done
        self.assertEqual(received, [b"lost %d" % n for n in range(1, 5)])

    def raw_session(self) -> tuple[ClientConnection, Callable[[], int], Callable[[], None]]:
        """A sans-I/O client on a plain socket, connected: the connection, `exchange`
        (its datagrams to the host, one read by the host, replies back: how many)
        and `send` (its datagrams to the host, nothing read yet)."""
        server = ("127.0.0.1", self.address.port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        token = self.issuer.issue_token(player_id="p-1", match_id="m-1",
                                        hosts=(self.address,), now=time.time())
        conn = ClientConnection(token, time.time(), addresses=[server])

        def send() -> None:
            for datagram, _ in conn.datagrams_to_send(time.time()):
                sock.sendto(datagram, server)

        def exchange() -> int:
            send()
            self.port.doRead()  # type: ignore[attr-defined]
            replies = 0
            while True:
                try:
                    datagram = sock.recv(2048)
                except BlockingIOError:
                    return replies
                replies += 1
                conn.receive_datagram(datagram, server, time.time())

        for _ in range(3):
            exchange()
        self.assertTrue(conn.is_connected)
        sid = self.core.connected[0].session_id

        def close() -> None:
            self.core.close_session(sid, time.time())
            self.host.transmit()

        self.addCleanup(close)
        return conn, exchange, send

    def test_replies_to_a_batch_of_datagrams_share_packets(self) -> None:
        """Datagrams already queued are handled together; what one session is owed
        for all of them leaves in one packet."""
        conn, exchange, send = self.raw_session()
        for n in range(5):
            conn.send_message(RELIABLE, b"message %d" % n)
            send()  # one datagram each
        self.assertEqual(exchange(), 1)  # five echoes and the ack in one packet
        echoes = []
        while (event := conn.next_event()) is not None:
            if isinstance(event, MessageReceived):
                echoes.append(event.data)
        self.assertEqual(echoes, [b"message %d" % n for n in range(5)])
        self.assertEqual(len(self.core.messages), 5)

    def test_a_batch_is_timed_once_and_survives_a_core_failure(self) -> None:
        """Every datagram of a batch is handed to the core with the time the batch was
        read (each had arrived by then); a failure of the core on one datagram
        spares the others."""
        conn, exchange, send = self.raw_session()
        self.core.explode_on = b"boom"
        for data in (b"first", b"boom", b"last"):
            conn.send_message(RELIABLE, data)
            send()  # one datagram each
        self.assertEqual(exchange(), 1)
        self.assertEqual([m[2] for m in self.core.messages], [b"first", b"last"])
        self.assertEqual(len({m[3] for m in self.core.messages}), 1)
        self.assertEqual(self.host.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        echoes = []
        while (event := conn.next_event()) is not None:
            if isinstance(event, MessageReceived):
                echoes.append(event.data)
        self.assertEqual(echoes, [b"first", b"last"])

    def test_a_session_the_core_closes_is_closed_within_the_batch(self) -> None:
        """The core closing a session on the batch's last datagram: the disconnects go
        out with the batch's replies."""
        conn, exchange, send = self.raw_session()
        self.core.close_on = b"bye"
        conn.send_message(RELIABLE, b"hello")
        send()
        conn.send_message(RELIABLE, b"bye")
        self.assertGreaterEqual(exchange(), 1)
        closed = self.successResultOf(self.core.closed_session)
        self.assertEqual(closed.reason, "closed")
        self.assertEqual(self.endpoint.session_count, 0)
        self.assertFalse(conn.is_connected)
        ends = []
        while (event := conn.next_event()) is not None:
            if isinstance(event, SessionClosed):
                ends.append(event.reason)
        self.assertEqual(ends, ["disconnect"])  # the host's disconnect reached it

    def test_the_port_reads_in_batches_with_one_empty_read(self) -> None:
        """Without recvmmsg: five queued datagrams, five reads and one that finds
        nothing, not two."""
        reading = self.host.reading
        assert reading is not None
        real = reading.sock

        class Counting:
            family = real.family

            def __init__(self) -> None:
                self.reads = 0
                self.fail: int | None = None

            def recvfrom(self, size: int) -> tuple[bytes, Any]:
                self.reads += 1
                if self.fail is not None:
                    raise OSError(self.fail, os.strerror(self.fail))
                assert real is not None
                return real.recvfrom(size)

            def sendto(self, data: bytes, addr: Any) -> int:
                assert real is not None
                return real.sendto(data, addr)

        # A reader of the host's socket, by recvfrom, handing batches to the host.
        counting = Counting()
        reader = DatagramReader(counting, reading.handle, recvmmsg=False)  # type: ignore[arg-type]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in range(5):
                sock.sendto(b"\x05junk %d" % n + bytes(30), ("127.0.0.1", self.address.port))
            reader.read_waiting()
        self.assertEqual(counting.reads, 6)
        self.assertEqual(self.endpoint.datagrams_received, 5)
        self.assertEqual(self.endpoint.drops["no_session"], 5)
        # A failed read is counted and ends the read; nothing raises.
        counting.fail = errno.EBADF
        reader.read_waiting()
        self.assertEqual(reader.read_errors, 1)
        counting.fail = errno.EAGAIN
        reader.read_waiting()
        self.assertEqual(reader.read_errors, 1)

    def test_the_port_reads_a_batch_with_one_recvmmsg(self) -> None:
        """On Linux (IPv4): five queued datagrams are one read call, and the short
        batch says the socket is drained, so no read fails."""
        assert self.host.reading is not None
        reader = self.host.reading.mmsg
        if not sys.platform.startswith("linux"):
            self.assertIsNone(reader)
            return
        assert reader is not None
        calls = []
        real_read = reader.read

        def counting_read(fd: int) -> list[tuple[bytes, Any]]:
            batch = real_read(fd)
            calls.append(len(batch))
            return batch

        # The reader is shared by every IPv4 host of the process: patched, so restored.
        self.patch(reader, "read", counting_read)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in range(5):
                sock.sendto(b"\x05junk %d" % n + bytes(30), ("127.0.0.1", self.address.port))
            self.port.doRead()  # type: ignore[attr-defined]
        self.assertEqual(calls, [5])
        self.assertEqual(self.endpoint.datagrams_received, 5)
        self.assertEqual(self.endpoint.drops["no_session"], 5)
        self.assertEqual(self.host.read_errors, 0)

        def failing_read(fd: int) -> list[tuple[bytes, Any]]:
            raise OSError(errno.EBADF, "bad")

        self.patch(reader, "read", failing_read)
        self.port.doRead()  # type: ignore[attr-defined]
        self.assertEqual(self.host.read_errors, 1)

    def test_a_full_batch_is_followed_by_another_read(self) -> None:
        """Ten datagrams, batches of four: all ten handled in one doRead (a full batch
        means more may wait); the read limit ends a wake-up early, the rest waits."""
        reading = self.host.reading
        assert reading is not None
        if reading.mmsg is None:
            self.assertFalse(sys.platform.startswith("linux"))
            return
        from vinom.hosting.mmsg import BatchReader

        self.patch(reading, "mmsg", BatchReader(4, 2048))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in range(10):
                sock.sendto(b"\x05junk %d" % n + bytes(30), ("127.0.0.1", self.address.port))
            self.port.doRead()  # type: ignore[attr-defined]
            self.assertEqual(self.endpoint.datagrams_received, 10)
            self.patch(reading, "read_limit", 100)  # bytes: about two datagrams
            for n in range(10):
                sock.sendto(b"\x05junk %d" % n + bytes(30), ("127.0.0.1", self.address.port))
            self.port.doRead()  # type: ignore[attr-defined]
            self.assertEqual(self.endpoint.datagrams_received, 14)  # one batch, then stop
            self.port.doRead()  # type: ignore[attr-defined]
            self.assertEqual(self.endpoint.datagrams_received, 18)

    def test_host_socket_buffers_are_raised(self) -> None:
        sock = self.port.socket  # type: ignore[attr-defined]
        assert sock is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                fresh.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, option),
                                 fresh.getsockopt(socket.SOL_SOCKET, option))

    @inlineCallbacks
    def test_refused_player_times_out(self) -> Any:
        self.admission.verdict = Admission.REFUSE
        d = connect_game_client(reactor, self.token(), config=ClientConfig(attempt_timeout=0.3))
        failure = yield self.assertFailure(d, ConnectFailedError)
        self.assertEqual(failure.reason, "timeout")
        self.assertEqual(self.endpoint.session_count, 0)
        self.assertGreaterEqual(self.endpoint.drops["not_admitted"], 2)

    async def test_a_cancelled_connect_releases_its_port(self) -> None:
        # The host never answers; the player gives up mid-handshake (a closing UI, a
        # test's cleanup). Trial's check for a clean reactor is the rest of the
        # assertion: the client's socket and its resend timer must both be gone.
        self.admission.verdict = Admission.REFUSE
        d = connect_game_client(reactor, self.token())
        await until(lambda: self.endpoint.drops["not_admitted"] >= 1)
        d.cancel()
        failure = await self.assertFailure(d, CancelledError)
        self.assertIsInstance(failure, CancelledError)
        await deferLater(reactor, 0, lambda: None)  # the port closes on the next turn

    @inlineCallbacks
    def test_full_room_is_denied(self) -> Any:
        self.admission.verdict = Admission.FULL
        failure = yield self.assertFailure(connect_game_client(reactor, self.token()),
                                           ConnectFailedError)
        self.assertEqual(failure.reason, "denied")

    @inlineCallbacks
    def test_host_closes_the_session(self) -> Any:
        client: GameClientProtocol = yield connect_game_client(reactor, self.token())
        self.addCleanup(client.disconnect)
        self.core.close_session(self.core.connected[0].session_id, time.time())
        self.host.transmit()
        reason = yield client.closed
        self.assertEqual(reason, "disconnect")
        closed = yield self.core.closed_session
        self.assertEqual(closed.reason, "closed")

    def test_malformed_token(self) -> None:
        self.failureResultOf(connect_game_client(reactor, {"version": 1}), ValueError)
