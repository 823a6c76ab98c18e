"""What one QUIC connection can make a `--webtransport` listener hold
(vinom.hosting.webtransport, "Receive budget"), attacked with its own packets.

The window chase: a client completes the handshake, sends no CONNECT, and then
each round trip one 10-byte STREAM frame just below the window the server gave
it, leaving everything before it a gap. aioquic alone holds the whole gap
(zero-filled) and doubles the window each time, so the server's memory doubles
each round trip; with vinom's budget the connection is closed the first time
a frame would hold more than a stream may, with FLOW_CONTROL_ERROR, and counted.
The server is a real `twistd -n vinom` child process, its RSS read from /proc.
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
from tests.support.webtransport_client import QuicPeer, connect_quic
from vinom.hosting.webtransport import WebTransportConfig

MiB = 1024 * 1024
# The frames the chase sends at most: aioquic alone would then hold 2**6 MiB from
# its default 1 MiB window (enough to see, not enough to hurt a shared machine).
ROUNDS = 7
# What the server process may grow by beside the budget: one handshake's and one
# connection's objects, the metrics page, the allocator's rounding.
SLACK = 6 * MiB


def rss(pid: int) -> int:
    """The resident set of process `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def chase(peer: QuicPeer) -> None:
    """One 10-byte frame just below the window of stream 0, then the server's answer:
    a raised window or the connection's end."""
    window = peer.window(0)
    peer.send_at(0, window - 10, b"0123456789")
    await until(lambda: peer.terminated.called or peer.window(0) > window,
                "the server to raise the window or end the connection")  # fmt: skip


class WindowChaseTests(TestCase):
    timeout = 60

    async def test_the_window_chase_is_closed_counted_and_holds_no_more_than_the_budget(
        self,
    ) -> None:
        udp, ops = free_udp_range(1), free_tcp_port()
        server = await start_twistd(self, {}, "--webtransport", str(udp),
                                    "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
                                    web=True)  # fmt: skip
        pid = server.process.transport.pid
        peer = await connect_quic(self, udp)
        before = rss(pid)
        peak = before
        sent = 0
        for _ in range(ROUNDS):
            if peer.terminated.called:
                break
            await chase(peer)
            sent += 1
            peak = max(peak, rss(pid))
        budget = WebTransportConfig().receive_budget
        self.assertLess(peak - before, budget + SLACK, f"RSS {before} -> {peak}")
        self.assertTrue(peer.terminated.called, f"still open after {sent} frames")
        code, reason = await peer.terminated
        self.assertEqual((code, reason), (QuicErrorCode.FLOW_CONTROL_ERROR,
                                          "over the receive budget"))  # fmt: skip
        # The first frame held a gap of one stream's budget; the second, which would
        # have held twice that, closed the connection.
        self.assertEqual(sent, 2)

        async def closed() -> dict[str, float]:
            text = await fetch_metrics(ops)
            if samples(text, "vinom_webtransport_connections") != {(): 0.0}:
                return {}
            return samples(text, "vinom_webtransport_connections_closed_total", "reason")

        self.assertEqual(await until(closed, "the connection gone and counted"),
                         {"receive_budget": 1.0})  # fmt: skip
        self.assertLess(rss(pid) - before, budget + SLACK)


class ReceiveBudgetTests(WebTransportTestCase):
    """The other ways to make a connection hold data, on a server in this process."""

    async def test_gaps_on_many_streams_are_bounded_in_all(self) -> None:
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        config = server.config
        peer = await connect_quic(self, port)
        # Each stream's gap within its budget; together over the connection's.
        streams = config.receive_budget // config.stream_receive_budget + 1
        for n in range(streams):
            peer.send_at(4 * (n + 1), config.stream_receive_budget - 10, b"0123456789")
        self.assertEqual(await within(peer.terminated),
                         (QuicErrorCode.FLOW_CONTROL_ERROR, "over the receive budget"))
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
