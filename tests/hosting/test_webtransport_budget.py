"""What one QUIC connection can make a `--webtransport` listener hold
(vinom.hosting.quic, "Receive budget"), attacked with its own packets.

The window chase: a client completes the handshake, sends no CONNECT, and then
each round trip one 10-byte STREAM frame just below the window the server gave
it, leaving everything before it a gap. aioquic alone holds the whole gap
(zero-filled) and doubles the window each time, so the server's memory doubles
each round trip. With vinom's budget the windows slide with what was read
(nothing, here): the chase holds one stream's budget at most, and the
connection is closed when it has opened no session in time; a client that
sends past its windows anyway is closed at once with FLOW_CONTROL_ERROR. Both
are counted. The server is a real `twistd -n vinom` child process, its RSS read
from /proc.
"""

# slow: starts a `twistd -n vinom` child process (tests/support/servers.py)

from __future__ import annotations

from aioquic.h3.connection import ErrorCode
from aioquic.quic.packet import QuicErrorCode
from twisted.trial.unittest import TestCase

from tests.hosting.test_webtransport_game import WebTransportTestCase, within
from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import start_twistd
from tests.support.waiting import until
from tests.support.webtransport_client import connect_quic
from vinom.hosting.webtransport import WebTransportConfig

MiB = 1024 * 1024
# The frames the chase sends: aioquic alone would then hold 2**6 MiB from its
# default 1 MiB window (enough to see, not enough to hurt a shared machine).
ROUNDS = 7
# What the server process may grow by beside the budget: one handshake's and one
# connection's objects, the metrics page, the allocator's rounding.
SLACK = 6 * MiB
OVER = (QuicErrorCode.FLOW_CONTROL_ERROR, "over the receive budget")


def rss(pid: int) -> int:
    """The resident set of process `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class WindowChaseTests(TestCase):
    timeout = 60

    async def test_the_window_chase_holds_no_more_than_the_budget_and_is_closed(
        self,
    ) -> None:
        udp, ops = free_udp_range(1), free_tcp_port()
        # No session in 3 s (the token timeout) closes a connection.
        server = await start_twistd(self, {}, "--webtransport", str(udp),
                                    "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
                                    "--limit", "lobby-hello-timeout=3", web=True)  # fmt: skip
        pid = server.process.transport.pid
        config = WebTransportConfig()
        peer = await connect_quic(self, udp)
        before = peak = rss(pid)
        windows = []
        for _ in range(ROUNDS):
            window = peer.window(0)
            windows.append(window)
            peer.send_at(0, window - 10, b"0123456789")
            await within(peer.round_trip())
            peak = max(peak, rss(pid))
        self.assertLess(peak - before, config.receive_budget + SLACK, f"RSS {before} -> {peak}")
        # The window never grew: nothing of the stream was read.
        self.assertEqual(set(windows), {config.stream_receive_budget})
        self.assertEqual(peer.window(0), config.stream_receive_budget)
        # No session in time: closed, and what it held given back.
        self.assertEqual(await within(peer.terminated),
                         (ErrorCode.H3_NO_ERROR, "no session in time"))  # fmt: skip
        # One that sends past its window is closed at once.
        past = await connect_quic(self, udp)
        past.send_at(0, 2 * config.stream_receive_budget, b"0123456789", past_windows=True)
        self.assertEqual(await within(past.terminated), OVER)

        async def closed() -> dict[str, float]:
            text = await fetch_metrics(ops)
            if samples(text, "vinom_webtransport_connections") != {(): 0.0}:
                return {}
            return samples(text, "vinom_webtransport_connections_closed_total", "reason")

        self.assertEqual(await until(closed, "the connections gone and counted"),
                         {"no_session": 1.0, "receive_budget": 1.0})  # fmt: skip
        self.assertLess(rss(pid) - before, config.receive_budget + SLACK)
        # Counted, not logged: a peer decides how often it is closed.
        self.assertNotIn(b"receive budget", server.output)
        self.assertNotIn(b"stderr", server.output)


class ReceiveBudgetTests(WebTransportTestCase):
    """The other ways to make a connection hold data, on a server in this process."""

    async def test_gaps_on_many_streams_are_bounded_in_all(self) -> None:
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        config = server.config
        peer = await connect_quic(self, port)
        # Each stream's gap as large as a stream's window, until the connection's
        # window is used up: then no window is left for another stream.
        streams = config.receive_budget // config.stream_receive_budget
        for n in range(streams):
            peer.send_at(4 * (n + 1), config.stream_receive_budget - 10, b"0123456789")
        await within(peer.round_trip())
        self.assertEqual(peer.window(4 * (streams + 1)), 0)
        self.assertFalse(peer.terminated.called)
        # Past it anyway: closed.
        peer.send_at(4 * (streams + 1), 10, b"0123456789", past_windows=True)
        self.assertEqual(await within(peer.terminated), OVER)
        self.assertEqual(server.closes, {"receive_budget": 1})

    async def test_saying_it_is_blocked_gives_a_peer_no_more_window(self) -> None:
        # DATA_BLOCKED and STREAM_DATA_BLOCKED are hints (RFC 9000 4.1): a stack that
        # answers them with credit (qh3 1.x doubles the window) would let the chase's
        # gap grow without anything sent past a window. Here the windows stay what was
        # read plus the budget.
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        config = server.config
        peer = await connect_quic(self, port)
        peer.send_at(0, config.stream_receive_budget - 10, b"0123456789")
        for _ in range(4):
            await within(peer.say_blocked(0))
        self.assertEqual(peer.window(0), config.stream_receive_budget)
        self.assertEqual(peer.connection_window(), config.receive_budget)
        self.assertFalse(peer.terminated.called)
        self.assertEqual(server.closes, {})

    async def test_a_window_slides_with_what_was_read(self) -> None:
        # A peer that sends in order has its window raised as the server reads: it
        # may send any amount, a window's worth at a time.
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        budget = server.config.stream_receive_budget
        peer = await connect_quic(self, port)
        stream_id = 4 * 7
        # A WebTransport stream (its signal 0x41, then a session ID) of a session never
        # opened: HTTP/3 hands its bytes on as they come, and they are dropped.
        header = bytes([0x40, 0x41, 0x00])
        peer.quic.send_stream_data(stream_id, header + bytes(4 * budget))
        peer.transmit()
        await until(lambda: peer.window(stream_id) >= 4 * budget, "the window raised")
        self.assertLessEqual(peer.window(stream_id), 4 * budget + len(header) + budget)
        self.assertEqual(server.closes, {})
        self.assertGreater(server.drops["stream_without_session"], 0)

    async def test_a_window_moves_when_a_gap_is_filled(self) -> None:
        # The end of the stream's window first, then what comes before it: nothing
        # new past the highest offset, but all of it read, so the window moves.
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        budget = server.config.stream_receive_budget
        peer = await connect_quic(self, port)
        stream_id = 4 * 7
        header = bytes([0x40, 0x41, 0x00])  # a session never opened: dropped
        peer.send_at(stream_id, budget // 2, bytes(budget // 2))
        await within(peer.round_trip())
        self.assertEqual(peer.window(stream_id), budget)
        peer.send_at(stream_id, 0, header + bytes(budget // 2 - len(header)))
        await until(lambda: peer.window(stream_id) > budget, "the window moved")
        self.assertEqual(server.closes, {})

    async def test_the_streams_a_peer_may_open_stay_as_many(self) -> None:
        # qh3 alone doubles them once half were ever opened, closed or not.
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        peer = await connect_quic(self, port)
        allowed = peer.streams_allowed()
        for n in range(allowed // 2 + 10):
            peer.quic.send_stream_data(4 * n + 4, bytes([0x40, 0x41, 0x00]))
        peer.transmit()
        for _ in range(3):
            await within(peer.round_trip())
        self.assertEqual(peer.streams_allowed(), allowed)
        self.assertFalse(peer.terminated.called)
        self.assertEqual(server.closes, {})

    async def test_handshake_data_past_a_streams_budget_closes(self) -> None:
        # In order, so little is unread at any time; but qh3's TLS keeps all of a
        # message until it is whole, and this one says it is 16 MiB long.
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        budget = server.config.stream_receive_budget
        peer = await connect_quic(self, port)
        chunk = 1000
        message = bytes([0x04, 0xFF, 0xFF, 0xFF]) + bytes(chunk - 4)
        offset = 0
        while offset <= budget and not peer.terminated.called:
            sent = peer.send_crypto(offset, message if offset == 0 else bytes(chunk))
            await until(lambda sent=sent: sent.called or peer.terminated.called,
                        "the round trip, or the close")  # fmt: skip
            offset += chunk
        self.assertEqual(await within(peer.terminated),
                         (QuicErrorCode.CRYPTO_BUFFER_EXCEEDED, "over the receive budget"))
        self.assertEqual(server.closes, {"receive_budget": 1})

    async def test_an_http3_frame_never_whole_is_bounded(self) -> None:
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        peer = await connect_quic(self, port)
        # A HEADERS frame (type 1) said to be 1 MiB long, sent in order: HTTP/3 keeps
        # what came until the frame is whole.
        header = bytes([0x01, 0x80 | 0x00, 0x10, 0x00, 0x00])
        peer.quic.send_stream_data(0, header + bytes(server.config.stream_receive_budget + 1))
        peer.transmit()
        self.assertEqual(await within(peer.terminated),
                         (ErrorCode.H3_EXCESSIVE_LOAD, "over the receive budget"))
        self.assertEqual(server.closes, {"receive_budget": 1})
