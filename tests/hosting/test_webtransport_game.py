"""The game session over WebTransport (`--webtransport`, vinom.hosting.webtransport),
against a whole server, with aioquic's client on real UDP sockets
(tests/support/webtransport_client.py)."""

from __future__ import annotations

import random
from typing import Any

import msgpack
from aioquic.h3.connection import H3_ALPN, ErrorCode
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from attrs import evolve
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall, deferLater

from tests.lobby import reconnect
from tests.lobby.test_websocket_lobby import PAGE
from tests.support.game_sockets import GameSocketTestCase
from tests.support.ports import free_udp_range
from tests.support.waiting import until
from tests.support.websocket_client import connect_websocket
from tests.support.webtransport_client import (
    WebTransportPlayer,
    connect_quic,
    connect_webtransport,
)
from vinom.client.game import GameSession, connect_game
from vinom.hosting.game_stream import CLOSE_NORMAL, CLOSE_TOKEN_REFUSED, CLOSE_TOKEN_TIMEOUT
from vinom.protocol.tokens import PublicToken


def within(d: Deferred[Any], seconds: float = 10.0) -> Deferred[Any]:
    return d.addTimeout(seconds, reactor)


class WebTransportTestCase(GameSocketTestCase):
    async def start_webtransport(self, *args: str) -> int:
        port = free_udp_range(1)
        await self.start("--webtransport", str(port), *args)
        return port

    async def player(self, port: int, origin: str | None = PAGE, path: str = "/game",
                     reads_to_end: bool = True) -> WebTransportPlayer:  # fmt: skip
        player = await connect_webtransport(self, port, origin=origin, path=path,
                                            reads_to_end=reads_to_end)  # fmt: skip
        self.assertEqual(await within(player.status), 200 if path == "/game" else 404)
        return player

    async def webtransport_refusals(self) -> dict[str, float]:
        return await self.by_reason("vinom_webtransport_sessions_refused_total")

    async def seated(
        self, reads_to_end: bool = True
    ) -> tuple[WebTransportPlayer, PublicToken, GameSession]:
        """A player welcomed over WebTransport, the match's other player connected on
        UDP: that player, its token and the UDP session."""
        port = await self.start_webtransport()
        token, found, _web, _welcome = await self.match()
        player = await self.player(port, reads_to_end=reads_to_end)
        player.send_token(token)
        await within(player.welcomed)
        udp = await connect_game(reactor, found)
        self.addCleanup(udp.disconnect)
        return player, token, udp

    async def playing(self, reads_to_end: bool = True) -> tuple[WebTransportPlayer, GameSession]:
        """`seated`, once the match plays: the WebTransport player and the UDP session."""
        player, _token, udp = await self.seated(reads_to_end)
        await until(lambda: udp.phase == "playing", "the match to play")
        return player, udp


class WebTransportSessionTests(WebTransportTestCase):
    async def test_a_bad_token_is_refused_with_4001_and_counted(self) -> None:
        port = await self.start_webtransport()
        token, _found, _web, _welcome = await self.match()
        forged = bytearray(token.request_packet())
        forged[200] ^= 1
        bad = await self.player(port)
        bad.send(bytes(forged))
        self.assertEqual(await within(bad.closed), (CLOSE_TOKEN_REFUSED, "token_invalid"))
        short = await self.player(port)
        short.send(b"not a token")
        self.assertEqual(await within(short.closed), (CLOSE_TOKEN_REFUSED, "request_size"))
        expired = await self.player(port)
        expired.send(evolve(token, expires_at=1).request_packet())
        self.assertEqual(await within(expired.closed), (CLOSE_TOKEN_REFUSED, "token_expired"))
        # The real token opens the session: the welcome on the stream.
        good = await self.player(port)
        good.send_token(token)
        welcome = await within(good.welcomed)
        self.assertEqual(welcome["t"], "welcome")
        self.assertEqual(
            await self.webtransport_refusals(),
            {"token_invalid": 1, "request_size": 1, "token_expired": 1},
        )
        self.assertIn("vinom_webtransport_sessions_opened_total 1.0", await self.metrics())

    async def test_states_come_as_datagrams_and_reliable_messages_on_the_stream(self) -> None:
        player, token, udp = await self.seated()
        # Until the browser speaks after its token, states follow the welcome on the
        # stream (a datagram could overtake it).
        await until(lambda: any(m["t"] == "state" for _how, m in player.messages), "a state")
        self.assertEqual([(how, m["t"]) for how, m in player.messages][:2],
                         [("stream", "welcome"), ("stream", "state")])  # fmt: skip
        # A message the browser sends as a datagram reaches the room: a sync's
        # answer (on the stream, as on channel 1).
        before = len(player.messages)
        player.send_datagram(msgpack.packb({"t": "sync"}))
        await until(lambda: any(m["t"] == "state" and how == "stream"
                                for how, m in player.messages[before:]),
                    "a state on the stream")  # fmt: skip
        # From then on, states come as datagrams: the UDP player's first move makes one.
        view = [m for _, m in player.messages if m["t"] == "state"][-1]["s"]
        if view["turn"] == token.player_id:
            player.send(msgpack.packb({"t": "action", "a": {"cell": 4}, "i": 1}))
        else:
            await until(lambda: udp.view is not None, "the UDP player's view")
            udp.send_action({"cell": 4})
        await until(lambda: any(m["t"] == "state" and how == "datagram"
                                for how, m in player.messages),
                    "a state as a datagram")  # fmt: skip

    async def test_a_closed_session_holds_the_seat_and_a_new_token_takes_it_back(self) -> None:
        port = await self.start_webtransport()
        token, found, web, welcome = await self.match()
        await web.closed  # the lobby closes after match_found
        first = await self.player(port)
        first.send_token(token)
        self.assertFalse((await within(first.welcomed))["reconnected"])
        udp = await connect_game(reactor, found)
        self.addCleanup(udp.disconnect)
        presence: list[dict[str, Any]] = []
        udp.on_presence = presence.append
        await until(lambda: udp.phase == "playing", "the match to play")
        # The browser ends its stream: the session closes, the seat waits for it.
        first.end_stream()
        self.assertEqual(await within(first.closed), (CLOSE_NORMAL, "stream ended"))
        gone = {"t": "presence", "id": welcome["player_id"], "status": "disconnected"}
        await until(lambda: gone in presence, "the other player told of the disconnection")
        # A fresh token from the lobby opens a new session on the same seat.
        port_web, trust = self.server.websocket_port, self.server.lobby.trust
        assert port_web is not None and trust is not None
        lobby = await connect_websocket(self, port_web, trust)
        refound = await lobby.request(reconnect(welcome["player_id"], welcome["secret"], id=1))
        self.assertEqual(refound["type"], "match_found", refound)
        again = await self.player(port)
        again.send_token(PublicToken.from_json(refound["token"]))
        self.assertTrue((await within(again.welcomed))["reconnected"])

    async def test_a_stopping_server_tells_its_players_then_closes(self) -> None:
        player, _udp = await self.playing()
        # The root stops the game hosts before the WebTransport listener (it stops
        # last): the match is aborted and the browser hears it, then the connection
        # closes at once (not after an idle timeout).
        await self.server.service("hosting").stopService()
        await until(lambda: any(m["t"] == "phase" and m.get("p") == "aborted"
                                for _, m in player.messages), "the match aborted")  # fmt: skip
        await self.server.service("webtransport").stopService()
        await within(player.terminated, 2.0)


    async def aborted_match(self, reads_to_end: bool) -> WebTransportPlayer:
        """A player in a match whose game host stops (the match is aborted)."""
        player, _udp = await self.playing(reads_to_end)
        await self.server.service("hosting").stopService()
        return player

    async def test_the_close_waits_until_the_browser_read_the_final_messages(self) -> None:
        # A browser drops what it has not read of a stream when its session closes:
        # the server ends its side of the stream behind the last messages, and its
        # close capsule waits until the browser ends its own (docs/protocol.md 17).
        player = await self.aborted_match(reads_to_end=False)
        await within(player.stream_end)
        aborted = {"t": "phase", "p": "aborted"}
        self.assertIn(aborted, [{"t": m["t"], "p": m.get("p")} for _, m in player.messages])
        await deferLater(reactor, 0, lambda: None)  # what came with the end is handled
        self.assertFalse(player.closed.called, "closed before the browser read to the end")
        player.end_stream()
        code, _reason = await within(player.closed)
        self.assertEqual(code, CLOSE_NORMAL)

    async def test_a_browser_that_does_not_read_to_the_end_is_closed_all_the_same(
        self,
    ) -> None:
        player = await self.aborted_match(reads_to_end=False)
        await within(player.stream_end)
        # It never ends its side: the capsule goes after close_wait (1 s).
        code, _reason = await within(player.closed)
        self.assertEqual(code, CLOSE_NORMAL)
        self.assertFalse(player.ended_own)


class WebTransportAbuseTests(WebTransportTestCase):
    async def test_garbage_datagrams_are_dropped_and_counted_and_a_session_still_plays(
        self,
    ) -> None:
        port = await self.start_webtransport()
        token, _found, _web, _welcome = await self.match()
        rng = random.Random(37)
        sender = DatagramProtocol()
        sending = reactor.listenUDP(0, sender, interface="127.0.0.1")
        self.addCleanup(sending.stopListening)
        assert sender.transport is not None
        garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500)))
                   for _ in range(200)]  # fmt: skip
        # A real client's first packet, cut short: an Initial too small to start anything.
        fresh = QuicConnection(configuration=QuicConfiguration(is_client=True,
                                                               alpn_protocols=H3_ALPN))
        fresh.connect(("127.0.0.1", port), now=reactor.seconds())
        [(initial, _)] = fresh.datagrams_to_send(now=reactor.seconds())
        garbage += [initial[:n] for n in (1, 5, 20, 600)]
        probe = await connect_webtransport(self, port, origin=PAGE)
        # In batches, each read before the next is sent: a burst of hundreds would
        # overflow the socket's receive buffer and be lost before it is read.
        server = self.server.service("webtransport").server
        for start in range(0, len(garbage), 20):
            batch = garbage[start : start + 20]
            read = sum(server.drops.values()) + len(batch)
            for data in batch:
                sender.transport.write(data, ("127.0.0.1", port))
            await until(lambda read=read: sum(server.drops.values()) >= read,
                        "the batch read", every=0.01)  # fmt: skip
        self.assertEqual(await within(probe.status), 200)
        # A stream for a session never opened, and a datagram for one.
        probe.send_on_unknown_session(b"\x00\x00\x00\x01x")
        good = await self.player(port)
        good.send_token(token)
        await within(good.welcomed)
        # An oversize datagram after the token: dropped, the session stays.
        good.send_datagram(b"\x81" * 3000)
        good.send_datagram(msgpack.packb({"t": "sync"}))
        before = len(good.messages)
        await until(lambda: len(good.messages) > before, "an answer to the sync")
        drops = await self.by_reason("vinom_webtransport_datagrams_dropped_total")
        self.assertEqual(sum(drops.values()), len(garbage) + 2, drops)
        self.assertEqual(set(drops) - {"malformed", "unknown_connection", "unknown_version",
                                       "stream_without_session", "datagram_without_session",
                                       "datagram_too_large"}, set())  # fmt: skip
        self.assertGreaterEqual(drops.get("stream_without_session", 0), 1, drops)
        self.assertLessEqual(drops.get("datagram_too_large", 0), 1, drops)
        self.assertEqual(server.errors, 0)

    async def test_a_token_used_twice_a_wrong_origin_and_path_are_refused(self) -> None:
        port = await self.start_webtransport()
        token, _found, _web, _welcome = await self.match()
        first = await self.player(port)
        first.send_token(token)
        await within(first.welcomed)
        again = await self.player(port)
        again.send_token(token)
        self.assertEqual(await within(again.closed), (CLOSE_TOKEN_REFUSED, "token_reused"))
        stranger = await connect_webtransport(self, port, origin="https://evil.example")
        self.assertEqual(await within(stranger.status), 403)
        lost = await connect_webtransport(self, port, origin=PAGE, path="/lobby")
        self.assertEqual(await within(lost.status), 404)
        self.assertEqual(await self.webtransport_refusals(),
                         {"token_reused": 1, "origin": 1, "not_found": 1})  # fmt: skip
        # The first session was not disturbed: it still hears the room.
        before = len(first.messages)
        first.send(msgpack.packb({"t": "sync"}))
        await until(lambda: len(first.messages) > before, "an answer to the sync")

    async def test_connections_per_address_are_capped(self) -> None:
        port = await self.start_webtransport("--limit", "max-connections-per-ip=2")
        players = [await self.player(port) for _ in range(2)]
        server = self.server.service("webtransport").server
        third = await connect_webtransport(self, port, origin=PAGE)
        await until(lambda: server.drops["too_many_connections"], "the third refused")
        # Its Initial started nothing: no answer, and the two others still open.
        self.assertFalse(third.status.called)
        self.assertEqual(server.open_connections, 2)
        self.assertIn(
            'vinom_webtransport_datagrams_dropped_total{reason="too_many_connections"}',
            await self.metrics(),
        )
        self.assertIn("vinom_webtransport_connections 2.0", await self.metrics())
        del players

    async def test_no_token_in_time_closes_the_session(self) -> None:
        port = await self.start_webtransport("--limit", "lobby-hello-timeout=0.5")
        silent = await self.player(port)
        self.assertEqual(await within(silent.closed), (CLOSE_TOKEN_TIMEOUT, "no token in time"))

    async def test_a_connection_without_a_session_in_time_is_closed_and_counted(self) -> None:
        # Connections that complete the handshake and then only ping hold every slot of
        # their address; a session must open within the token timeout (1 s here).
        port = await self.start_webtransport("--limit", "lobby-hello-timeout=1",
                                             "--limit", "max-connections-per-ip=2")  # fmt: skip
        server = self.server.service("webtransport").server
        token, _found, _web, _welcome = await self.match()
        idle = [await connect_quic(self, port) for _ in range(2)]
        pinging = LoopingCall(lambda: [peer.ping() for peer in idle])
        pinging.start(0.2)
        self.addCleanup(pinging.stop)
        # A player's handshake finds no slot: its Initial starts nothing (aioquic's
        # client sends it again, with a growing delay, as a browser's does).
        player = await connect_webtransport(self, port, origin=PAGE)
        await until(lambda: server.drops["too_many_connections"], "the player's Initial dropped")
        self.assertFalse(player.status.called)
        for peer in idle:
            self.assertEqual(await within(peer.terminated),
                             (ErrorCode.H3_NO_ERROR, "no session in time"))  # fmt: skip
        self.assertEqual(server.closes, {"no_session": 2})
        self.assertIn('vinom_webtransport_connections_closed_total{reason="no_session"} 2.0',
                      await self.metrics())  # fmt: skip
        # The slots are free again: the player's handshake succeeds and it plays.
        self.assertEqual(await within(player.status), 200)
        player.send_token(token)
        await within(player.welcomed)
