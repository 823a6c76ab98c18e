"""QUIC address validation on the `--webtransport` port (RFC 9000 8.1.2): while
`retry_above` connections are in their handshake, a new client's Initial gets a
Retry (a token, smaller than the Initial) and no state, and only an Initial that
brings the token back from its own address starts a connection. Spoofed Initials
(sent from sockets that never answer) and a real player, on real sockets."""

from __future__ import annotations

from typing import Any

from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from attrs import evolve
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase

from tests.hosting.test_webtransport_game import WebTransportTestCase, within
from tests.support.waiting import until
from vinom.hosting.quic import RetryTokens
from vinom.hosting.webtransport import WebTransportConfig

ADDR = ("192.0.2.7", 4433)


class Spoofer(DatagramProtocol):
    """Sends a client's first Initial and never answers: what comes back to its
    address is all a spoofed victim would get."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append(data)

    def initial(self, port: int, token: bytes = b"") -> int:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, token=token)
        client = QuicConnection(configuration=configuration)
        client.connect(("127.0.0.1", port), now=reactor.seconds())
        [(data, _addr)] = client.datagrams_to_send(now=reactor.seconds())
        assert self.transport is not None
        self.transport.write(data, ("127.0.0.1", port))
        return len(data)


def packet_type(data: bytes) -> Any:
    return pull_quic_header(Buffer(data=data), host_cid_length=8).packet_type


class RetryTests(WebTransportTestCase):
    async def spoofer(self) -> Spoofer:
        spoofer = Spoofer()
        listening = reactor.listenUDP(0, spoofer, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        return spoofer

    async def test_under_load_a_spoofed_initial_gets_a_small_retry_and_a_player_plays(
        self,
    ) -> None:
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        server.config = evolve(server.config, retry_above=2)
        token, _found, _web, _welcome = await self.match()
        # Two spoofed Initials below the mark: each starts a handshake (the server's
        # first flight, within aioquic's 3x) that nobody completes.
        loads = [await self.spoofer() for _ in range(2)]
        for spoofer in loads:
            spoofer.initial(port)
        await until(lambda: all(s.received for s in loads), "the handshakes answered")
        self.assertEqual((server.handshakes, server.retries), (2, 0))
        self.assertEqual(packet_type(loads[0].received[0]), QuicPacketType.INITIAL)
        # At the mark, a spoofed Initial gets one Retry, smaller than itself, and
        # starts no connection and no handshake.
        spoofed = await self.spoofer()
        sent = spoofed.initial(port)
        await until(lambda: spoofed.received, "the Retry")
        [retry] = spoofed.received
        self.assertEqual(packet_type(retry), QuicPacketType.RETRY)
        self.assertLess(len(retry), sent)
        self.assertEqual((server.open_connections, server.handshakes, server.retries), (2, 2, 1))
        self.assertIn("vinom_webtransport_retries_total 1.0", await self.metrics())
        # A real player answers its Retry with the token from its own address: its
        # handshake completes and it plays.
        player = await self.player(port)
        player.send_token(token)
        await within(player.welcomed)
        self.assertEqual(server.retries, 2)

    async def test_a_forged_token_starts_nothing_and_is_counted(self) -> None:
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        spoofed = await self.spoofer()
        spoofed.initial(port, token=bytes(40))
        await until(lambda: server.drops["invalid_token"], "the forged token dropped")
        self.assertEqual((server.open_connections, spoofed.received), (0, []))

    async def test_an_unanswered_initial_gets_at_most_three_times_its_bytes(self) -> None:
        """RFC 9000 8.1: until the client's address is validated, the server sends it
        at most 3x what it received: the first flight, its resends, and no
        CONNECTION_CLOSE beyond that when the connection is given up (no session
        within the token timeout, 1 s here)."""
        port = await self.start_webtransport("--limit", "lobby-hello-timeout=3")
        server = self.server.service("webtransport").server
        spoofed = await self.spoofer()
        sent = spoofed.initial(port)
        await until(lambda: server.open_connections == 1, "the handshake started")
        await until(lambda: server.open_connections == 0, "the connection given up", 10.0)
        self.assertEqual(server.closes, {"no_session": 1})
        received = sum(len(data) for data in spoofed.received)
        self.assertGreater(received, 0)
        self.assertLessEqual(received, 3 * sent, [len(data) for data in spoofed.received])

    async def test_below_the_mark_there_is_no_retry(self) -> None:
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        player = await self.player(port)
        self.assertEqual(server.retries, 0)
        del player


class RetryTokenTests(SynchronousTestCase):
    def test_a_token_is_good_from_its_address_for_its_retry_in_its_lifetime(self) -> None:
        tokens = RetryTokens(b"k" * 32, lifetime=10.0)
        token = tokens.issue(ADDR, b"original", b"retrycid", 100.0)
        self.assertEqual(tokens.check(ADDR, token, b"retrycid", 109.0), b"original")
        for addr, cid, now in (
            (("192.0.2.8", 4433), b"retrycid", 101.0),  # another address
            (("192.0.2.7", 4434), b"retrycid", 101.0),  # another port
            (ADDR, b"othercid", 101.0),  # another Retry's connection ID
            (ADDR, b"retrycid", 110.5),  # too late
            (ADDR, b"retrycid", 99.0),  # before it was issued
        ):
            self.assertIsNone(tokens.check(addr, token, cid, now), (addr, cid, now))
        forged = bytearray(token)
        forged[3] ^= 1
        self.assertIsNone(tokens.check(ADDR, bytes(forged), b"retrycid", 101.0))
        self.assertIsNone(tokens.check(ADDR, b"short", b"retrycid", 101.0))
        self.assertIsNone(RetryTokens(b"j" * 32).check(ADDR, token, b"retrycid", 101.0))

    def test_the_documented_mark(self) -> None:
        # docs/web.md: Retry while 64 connections or more are in their handshake.
        config = WebTransportConfig()
        self.assertEqual((config.retry_above, config.retry_token_lifetime), (64, 10.0))
