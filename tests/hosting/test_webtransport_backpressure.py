"""Slow readers on WebTransport: what aioquic holds for a browser that does not read is
bounded as on the game WebSocket (vinom.hosting.webtransport, `backlog`).

A real game host (`InlineGameHost` on a UDP port of 127.0.0.1) runs a tictactoe
match whose room sends its state every 2 ms; the WebTransport listener serves it
on another UDP port, its sessions admitted by a `/game` factory with a small
`held_limit`; both players are aioquic clients on real UDP sockets
(tests/support/webtransport_client.py). One of them stops reading its socket (a
frozen tab, a dead link): QUIC's congestion control stops what the server sends
it, the rest would wait in aioquic. What is checked is what peers see: the
other player keeps playing and sees the first one's seat disconnected, the
first one's connection is closed with H3_EXCESSIVE_LOAD and `too_slow`, and
the drop is counted and logged.

And batching: the datagrams waiting on the listener's socket are handled
together, and what the server owes one connection for all of them leaves in
one packet (`BatchTests`).
"""

from __future__ import annotations

import time
from typing import Any

from aioquic.h3.connection import ErrorCode
from twisted.internet import reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.rooms.test_rooms_fixtures import make_match
from tests.support.ports import free_udp_range
from tests.support.waiting import until
from tests.support.webtransport_client import WebTransportPlayer
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.interfaces import IGameHost
from vinom.hosting.websocket import GameSocketConfig, GameSocketFactory
from vinom.hosting.webtransport import WebTransportServer, listen_webtransport
from vinom.net.origins import OriginPolicy
from vinom.protocol.address import HostAddress
from vinom.protocol.config import ProtocolConfig
from vinom.protocol.tokens import IssuerConfig, TokenIssuer
from vinom.rooms.client_messages import encode_sync
from vinom.rooms.room import RoomConfig
from vinom.server.certs import RenewingCertificate
from vinom.server.webtransport import WebTransportCredentials

# States every 2 ms: about 50 KB/s of states for each player.
STATE_INTERVAL = 0.002
HELD_LIMIT = 16 * 1024


class _OneMatch:
    def __init__(self, host: IGameHost) -> None:
        self.host = host

    def host_of(self, match_id: str) -> IGameHost | None:
        return self.host


class _CountingPlayer(WebTransportPlayer):
    """A player that notes how many messages each UDP datagram it received carried."""

    def __init__(self, port: int, origin: str | None) -> None:
        super().__init__(port, origin)
        self.carried: list[int] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        before = len(self.messages)
        super().datagramReceived(data, addr)
        self.carried.append(len(self.messages) - before)


class ServedMatch(TestCase):
    """A tictactoe match on a real game host, served over WebTransport on 127.0.0.1."""

    timeout = 60

    async def start(self, state_interval: float = STATE_INTERVAL) -> None:
        protocol = ProtocolConfig(token_key=b"k" * 32)
        self.issuer = TokenIssuer(IssuerConfig(protocol))
        hosts = InlineGameHostFactory(
            reactor=reactor,
            find_game=GameRegistry.from_plugins().get,
            protocol_config=protocol,
            public_host="127.0.0.1",
            interface="127.0.0.1",
            room_config=RoomConfig(state_interval=state_interval, reconnect_grace=30.0),
        )
        port = free_udp_range(1)
        self.address = HostAddress("127.0.0.1", port)
        host = await hosts.start_host(port)
        self.addCleanup(host.stop)
        await host.add_match(make_match("m-1", ("p-a", "p-b"), "tictactoe"))
        gate = GameSocketFactory(_OneMatch(host), protocol, OriginPolicy(("*",)),
                                 reactor=reactor,
                                 config=GameSocketConfig(held_limit=HELD_LIMIT))  # fmt: skip
        credentials = WebTransportCredentials(None, None, RenewingCertificate(time.time))

        self.server = WebTransportServer(gate, credentials, clock=reactor)
        listening = listen_webtransport(reactor, 0, self.server, "127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port  # type: ignore[attr-defined]
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    async def player(self, player_id: str, kind: type[WebTransportPlayer] = WebTransportPlayer,
                     ) -> tuple[WebTransportPlayer, Any]:  # fmt: skip
        """A player with its session open and welcomed; and its UDP port."""
        player = kind(self.port, None)
        listening = reactor.listenUDP(0, player, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.assertEqual(await player.status.addTimeout(10, reactor), 200)
        token = self.issuer.issue_token(player_id=player_id, match_id="m-1",
                                        hosts=(self.address,), now=time.time())  # fmt: skip
        player.send_token(token)
        await player.welcomed.addTimeout(10, reactor)
        return player, listening


class SlowReaderTests(ServedMatch):
    async def test_a_browser_that_stops_reading_is_dropped_and_the_match_goes_on(
        self,
    ) -> None:
        await self.start()
        (a, a_port), (b, _b_port) = await self.player("p-a"), await self.player("p-b")

        def states(player: WebTransportPlayer) -> int:
            return sum(1 for _, m in player.messages if m["t"] == "state")

        await until(lambda: states(b) > 20, "states reach b")
        # a stops reading its socket: nothing it is sent is acknowledged any more.
        a_port.stopReading()
        gone = {"t": "presence", "id": "p-a", "status": "disconnected"}
        await until(lambda: any(m == gone for _, m in b.messages), "b sees a's seat go")
        self.assertEqual(self.server.refusals["too_slow"], 1)
        dropped = [e for e in self.logged
                   if "waited for its peer to read" in str(e.get("log_format"))]  # fmt: skip
        self.assertEqual(len(dropped), 1, dropped)
        self.assertGreater(dropped[0]["held"], HELD_LIMIT)
        # b, reading the same states, plays on: it is never dropped.
        seen = states(b)
        await until(lambda: states(b) > seen + 100, "states keep reaching b")
        self.assertFalse(b.closed.called or b.terminated.called)
        # a reads again: its connection was closed with the slow reader's code.
        a_port.startReading()
        await a.terminated.addTimeout(10, reactor)
        self.assertEqual(a.termination, (ErrorCode.H3_EXCESSIVE_LOAD, "too_slow"))
        self.assertEqual(self.server.open_connections, 1)


class BatchTests(ServedMatch):
    async def test_the_replies_to_datagrams_read_together_leave_in_one_packet(self) -> None:
        # No periodic state: what the player receives is what it asks for.
        await self.start(state_interval=3600.0)
        a, _port = await self.player("p-a", _CountingPlayer)
        assert isinstance(a, _CountingPlayer)

        def states() -> int:
            return sum(1 for _, m in a.messages if m["t"] == "state")

        await until(lambda: states() >= 1, "the first state")
        seen, before = states(), len(a.carried)
        # Two requests, two QUIC packets sent in one turn of the reactor: both wait on
        # the server's socket when it reads, and are handled in one batch.
        a.send(encode_sync())
        a.send(encode_sync())
        await until(lambda: states() >= seen + 2, "both states")
        # The two states (on the stream) came in one packet, not one each.
        self.assertEqual([n for n in a.carried[before:] if n], [2])
