"""The lobby over WebSocket (vinom.lobby.websocket, vinom.server.web), against a whole server.

A whole server (makeService) runs in the test process with its web server on
a free loopback port; the clients are autobahn's WebSocket client over TLS
that verifies the dev certificate (tests/support/websocket_client.py), the TCP
lobby's client library, and the UDP game client. Origin parsing, which
needs no socket, is tested on its own.
"""

from __future__ import annotations

import json
import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.ssl import Certificate
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, readBody

from tests.lobby import hello, reconnect
from tests.support.lobby_players import connect_raw
from tests.support.metrics import fetch_metrics, samples
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from tests.support.websocket_client import HandshakeRefused, WebSocketPlayer, connect_websocket
from vinom.client.bots import BotDriver
from vinom.client.game import connect_game
from vinom.client.lobby import MatchFound, connect_lobby
from vinom.games.registry import GameRegistry
from vinom.lobby import errors
from vinom.net.origins import OriginPolicy, page_origins, parse_origin
from vinom.protocol.tokens import PublicToken

WEB = ("--websocket", "ssl:0:interface=127.0.0.1")
PAGE = "https://play.example.com"
ORIGINS = ("--websocket-origins", f"{PAGE}, https://localhost:8443")


def is_type(kind: str) -> Any:
    return lambda frame: frame["type"] == kind


def error_code(frame: dict[str, Any]) -> str | None:
    return frame.get("code") if frame["type"] == "error" else None


class OriginTests(SynchronousTestCase):
    def test_origins_compare_without_case_or_default_ports(self) -> None:
        self.assertEqual(parse_origin("HTTPS://Example.COM"), ("https", "example.com", 443))
        self.assertEqual(parse_origin("http://example.com:80/"), ("http", "example.com", 80))
        self.assertEqual(parse_origin("https://[::1]:7380"), ("https", "::1", 7380))
        for bad in ("null", "example.com", "ftp://example.com", "https://a.example/path",
                    "https://", "https://a.example:99999", "https://u@a.example"):  # fmt: skip
            with self.subTest(bad=bad):
                self.assertRaises(ValueError, parse_origin, bad)

    def test_a_policy_allows_its_origins_only(self) -> None:
        policy = OriginPolicy.from_list(["https://play.example.com", "http://localhost:8000"])
        self.assertTrue(policy.allows("https://play.example.com:443"))
        self.assertTrue(policy.allows("http://LOCALHOST:8000"))
        for other in ("http://play.example.com", "https://play.example.com:8443",
                      "https://evil.example", "null", "garbage"):  # fmt: skip
            with self.subTest(other=other):
                self.assertFalse(policy.allows(other))
        self.assertTrue(OriginPolicy.from_list(["*"]).allows("null"))
        self.assertFalse(OriginPolicy.from_list([]).allows("https://play.example.com"))
        self.assertRaises(ValueError, OriginPolicy.from_list, ["play.example.com"])

    def test_page_origins(self) -> None:
        self.assertEqual(
            page_origins(["localhost", "127.0.0.1", "::1", "localhost"], 7380),
            ("https://localhost:7380", "https://127.0.0.1:7380", "https://[::1]:7380"),
        )
        self.assertEqual(page_origins(["games.example"], 443), ("https://games.example",))


class WebSocketLobbyTests(TestCase):
    timeout = 60

    async def start(self, *args: str, ports: int = 2) -> RunningServer:
        self.server = await start_server(self, *WEB, *ORIGINS, *args, ports=ports)
        return self.server

    async def player(
        self, origin: str | None = None, headers: dict[str, str] | None = None
    ) -> WebSocketPlayer:
        port = self.server.websocket_port
        assert port is not None and self.server.lobby.trust is not None
        return await connect_websocket(
            self, port, self.server.lobby.trust, origin=origin, headers=headers
        )

    async def welcomed(self, name: str) -> tuple[WebSocketPlayer, dict[str, Any]]:
        player = await self.player()
        welcome = await player.request(hello(name, id="h"))
        self.assertEqual(welcome["type"], "welcome", welcome)
        return player, welcome

    async def test_every_request_and_a_match_of_two_websocket_players(self) -> None:
        await self.start()
        ann, welcome = await self.welcomed("Ann")
        self.assertTrue(welcome["player_id"].startswith("p-"))
        self.assertEqual(welcome["games"]["tictactoe"], 2)
        pong = await ann.request({"type": "ping", "id": 7})
        self.assertEqual(pong["type"], "pong")
        queued = await ann.request({"type": "queue", "game": "tictactoe", "id": 2})
        self.assertEqual(
            (queued["type"], queued["position"], queued["status"]), ("queued", 1, "searching")
        )
        cancelled = await ann.request({"type": "cancel", "id": 3})
        self.assertEqual((cancelled["type"], cancelled["game"]), ("cancelled", "tictactoe"))
        not_queued = await ann.request({"type": "cancel", "id": 4})
        self.assertEqual(error_code(not_queued), errors.NOT_QUEUED)
        await ann.request({"type": "queue", "game": "tictactoe", "id": 5})

        bob, _ = await self.welcomed("Bob")
        await bob.request({"type": "queue", "game": "tictactoe", "id": 2})
        found = await gatherResults([p.when(is_type("match_found")) for p in (ann, bob)])
        self.assertEqual(found[0]["game_id"], found[1]["game_id"])
        self.assertEqual(sorted(f["seat"] for f in found), [0, 1])
        token = PublicToken.from_json(found[0]["token"])
        self.assertEqual(token.player_id, welcome["player_id"])
        # Then the server closes the WebSocket, cleanly and normally.
        for player in (ann, bob):
            closed = await player.closed
            self.assertEqual((closed.was_clean, closed.code), (True, 1000), closed)
        lobby = self.server.service("lobby")
        await until(lambda: lobby.connection_count == 0, "every connection forgotten")

    async def test_a_websocket_player_and_a_tcp_player_share_the_queue(self) -> None:
        await self.start()
        web, welcome = await self.welcomed("web")
        await web.request({"type": "queue", "game": "tictactoe", "id": 1})
        tcp = await connect_lobby(
            reactor, "127.0.0.1", self.server.lobby.port, trust=self.server.lobby.trust
        )
        tcp_welcome = await tcp.hello("tcp")
        tcp_found = await tcp.queue("tictactoe")
        web_found = await web.when(is_type("match_found"))
        self.assertEqual(web_found["game_id"], tcp_found.game_id)
        self.assertEqual(web_found["seat"], 0)
        self.assertEqual(
            PublicToken.from_json(tcp_found.token).player_id, tcp_welcome.player_id
        )
        self.assertEqual(PublicToken.from_json(web_found["token"]).player_id,
                         welcome["player_id"])  # fmt: skip

    async def test_a_player_slow_to_answer_the_close_still_gets_its_match_and_a_clean_close(
        self,
    ) -> None:
        # The server closes after match_found. A peer that takes 2 s to answer the
        # close (a busy phone, a stalled tab) is well within the lobby's close timeout
        # (10 s): it must get both, not a dropped connection. (autobahn's own close
        # timer, 1 s rounded down to the second, dropped such a peer at random.)
        await self.start()
        web, _ = await self.welcomed("web")
        await web.request({"type": "queue", "game": "tictactoe", "id": 1})
        assert web.transport is not None
        web.transport.pauseProducing()
        tcp = await connect_lobby(
            reactor, "127.0.0.1", self.server.lobby.port, trust=self.server.lobby.trust
        )
        await tcp.hello("tcp")
        found = await tcp.queue("tictactoe")
        lobby = self.server.service("lobby")
        await until(lambda: lobby.connection_count == 1, "the TCP player's connection closed")
        # The server waits for the close to be answered, its buffer flushed.
        await deferLater(reactor, 2.0)
        self.assertEqual(lobby.connection_count, 1)
        web.transport.resumeProducing()
        web_found = await web.when(is_type("match_found"))
        self.assertEqual(web_found["game_id"], found.game_id)
        closed = await web.closed
        self.assertEqual((closed.was_clean, closed.code), (True, 1000), closed)
        await until(lambda: lobby.connection_count == 0, "every connection forgotten")

    async def test_a_websocket_player_queues_ranked_and_meets_a_tcp_player(self) -> None:
        await self.start("--rating-window", "tictactoe=10,100")
        web, _ = await self.welcomed("web")
        unknown = await web.request({"type": "queue", "game": "tictactoe", "queue": "x", "id": 1})
        self.assertEqual(error_code(unknown), errors.UNKNOWN_QUEUE)
        queued = await web.request(
            {"type": "queue", "game": "tictactoe", "queue": "ranked", "rating": 1500, "id": 2}
        )
        self.assertEqual((queued["type"], queued["queue"]), ("queued", "ranked"))
        tcp = await connect_lobby(
            reactor, "127.0.0.1", self.server.lobby.port, trust=self.server.lobby.trust
        )
        await tcp.hello("tcp")
        # 5 apart: within the 10-point window at once.
        tcp_found = await tcp.queue("tictactoe", 1505, queue="ranked")
        web_found = await web.when(is_type("match_found"))
        self.assertEqual(web_found["game_id"], tcp_found.game_id)

    async def test_players_matched_over_websocket_play_a_whole_match_over_udp(self) -> None:
        await self.start()
        game = GameRegistry.from_plugins().get("tictactoe")
        players = [await self.welcomed(name) for name in ("ann", "bob")]
        for player, _ in players:
            await player.request({"type": "queue", "game": "tictactoe", "id": 1})
        drivers = []
        for player, welcome in players:
            frame = await player.when(is_type("match_found"))
            session = await connect_game(reactor, MatchFound.from_frame(frame))
            bot = game.make_bot(welcome["player_id"], random.Random(welcome["player_id"]))
            driver = BotDriver(session, bot, clock=reactor)
            driver.attach()
            drivers.append(driver)
        finals = [await driver.session.finished for driver in drivers]
        for driver, final in zip(drivers, finals, strict=True):
            driver.cancel()
            self.assertEqual(final["p"], "finished", final)
            self.assertGreater(driver.actions_sent, 0)
            await driver.session.disconnect()
        self.assertEqual(finals[0]["result"], finals[1]["result"])

    async def test_reconnect_over_a_new_websocket(self) -> None:
        await self.start()
        ann, welcome = await self.welcomed("ann")
        bob, _ = await self.welcomed("bob")
        for player in (ann, bob):
            await player.request({"type": "queue", "game": "tictactoe", "id": 1})
        first = await ann.when(is_type("match_found"))
        await ann.closed
        again = await self.player()
        refound = await again.request(reconnect(welcome["player_id"], welcome["secret"], id=9))
        self.assertEqual(refound["type"], "match_found", refound)
        self.assertEqual((refound["game_id"], refound["seat"]), (first["game_id"], first["seat"]))
        self.assertNotEqual(refound["token"], first["token"])
        wrong = await self.player()
        refused = await wrong.request(reconnect(welcome["player_id"], "not the secret", id=1))
        self.assertEqual(error_code(refused), errors.BAD_SECRET)

    async def test_bad_messages_get_the_tcp_lobbys_errors_and_count(self) -> None:
        await self.start("--limit", "max-protocol-errors=5")
        player = await self.player()
        player.sendMessage(b'{"type": "hello", "name":', isBinary=False)
        player.sendMessage(b'{"type":"ping"}\n', isBinary=False)
        player.sendMessage(b'{"type":"ping"}', isBinary=True)
        pong = await player.request({"type": "ping", "id": "still here"})
        self.assertEqual(pong["type"], "pong")
        self.assertEqual(
            [error_code(f) for f in player.frames[:3]], [errors.MALFORMED_JSON] * 3
        )
        self.assertIn("newline", player.frames[1]["message"])
        self.assertIn("binary", player.frames[2]["message"])
        self.assertTrue(all(f["id"] is None for f in player.frames[:3]))
        for n in (3, 4):
            unknown = await player.request({"type": "dance", "id": n})
            self.assertEqual((error_code(unknown), unknown["id"]), (errors.UNKNOWN_TYPE, n))
        # The fifth protocol error closes the connection with a final too_many_errors.
        final = await player.when(lambda f: error_code(f) == errors.TOO_MANY_ERRORS)
        self.assertEqual(final["id"], None)
        closed = await player.closed
        self.assertEqual((closed.was_clean, closed.code), (True, 1000))

    async def test_text_that_is_not_utf8_fails_the_connection_with_1007(self) -> None:
        await self.start()
        player, _ = await self.welcomed("bad")
        player.sendMessage(b'{"type":"ping","x":"\xff\xfe"}', isBinary=False)
        closed = await player.closed
        self.assertEqual((closed.was_clean, closed.code), (True, 1007), closed)

    async def test_a_message_over_the_frame_limit_closes_with_1009_not_over_tls(self) -> None:
        """Over WebSocket; the same frame over the TLS lobby of the same server is one
        `frame_too_large`, and that connection goes on (docs/lobby.md, "Framing")."""
        await self.start()
        tls = await connect_raw(self, self.server.lobby)
        tls.sendLine(json.dumps({"type": "ping", "pad": "x" * 4096}).encode())
        too_large = await tls.when(lambda f: error_code(f) == errors.FRAME_TOO_LARGE)
        self.assertIsNone(too_large["id"])
        self.assertEqual((await tls.request({"type": "ping"}))["type"], "pong")
        self.assertFalse(tls.closed.called)
        player, _ = await self.welcomed("big")
        pad = "x" * 4096
        player.send({"type": "ping", "pad": pad})
        closed = await player.closed
        self.assertEqual((closed.was_clean, closed.code), (True, 1009), closed)
        self.assertIn("4096", closed.reason or "")
        # A frame of exactly the limit is served.
        other = await self.player()
        frame = '{"type":"ping","id":1,"pad":"' + "x" * (4096 - 31) + '"}'
        self.assertEqual(len(frame), 4096)
        other.sendMessage(frame.encode(), isBinary=False)
        pong = await other.when(is_type("pong"))
        self.assertEqual(pong["id"], 1)

    async def test_a_peer_that_never_answers_a_1009_close_is_dropped_after_the_close_timeout(
        self,
    ) -> None:
        await self.start()
        lobby = self.server.service("lobby")
        player, _ = await self.welcomed("big")
        player.send({"type": "ping", "pad": "x" * 4096})
        # It reads no more, so never answers the close autobahn began: the lobby's
        # close timeout (10 s, docs/lobby.md "Limits") bounds it, not its idle timeout.
        assert player.transport is not None
        player.transport.pauseProducing()
        await deferLater(reactor, 2.0)
        self.assertEqual(lobby.connection_count, 1)
        await until(lambda: lobby.connection_count == 0, "the connection dropped", 12)
        player.transport.resumeProducing()
        closed = await player.closed
        self.assertEqual(closed.code, 1009, closed)

    async def test_too_fast_messages_are_rate_limited(self) -> None:
        await self.start("--limit", "frame-rate=1", "--limit", "frame-burst=3")
        player = await self.player()
        for n in range(5):
            player.send({"type": "ping", "id": n})
        limited = await player.when(lambda f: error_code(f) == errors.RATE_LIMITED)
        await player.when(lambda f: f.get("id") == 4)
        self.assertEqual([f["type"] for f in player.frames[:3]], ["pong"] * 3)
        self.assertEqual(limited["id"], 3)
        self.assertEqual([error_code(f) for f in player.frames[3:]], [errors.RATE_LIMITED] * 2)

    async def test_origins_other_than_the_allowed_pages_are_refused_with_403(self) -> None:
        await self.start("--ops-port", "tcp:0:interface=127.0.0.1")
        for origin in ("https://evil.example", "http://play.example.com", "null"):
            with self.assertRaises(HandshakeRefused) as caught:
                await self.player(origin=origin)
            self.assertIn("[403]", str(caught.exception))
        lobby = self.server.service("lobby")
        self.assertEqual(lobby.connection_count, 0)
        # The allowed pages, and programs that send no Origin, are let in.
        for origin in (PAGE, "https://LOCALHOST:8443", None):
            player = await self.player(origin=origin)
            pong = await player.request({"type": "ping", "id": 1})
            self.assertEqual(pong["type"], "pong")
        # Refusals are counted on /metrics.
        ops = await self.server.service("ops").port()
        text = await fetch_metrics(ops.getHost().port)
        self.assertEqual(samples(text, "vinom_websocket_origins_refused_total"), {(): 3.0})

    async def test_the_connection_caps_count_websocket_and_tcp_connections(self) -> None:
        await self.start("--limit", "max-connections-per-ip=2")
        first = await self.player()
        await first.request({"type": "ping", "id": 1})
        tcp = await connect_lobby(
            reactor, "127.0.0.1", self.server.lobby.port, trust=self.server.lobby.trust
        )
        await tcp.hello("tcp")
        third = await self.player()
        closed = await third.closed
        self.assertEqual([error_code(f) for f in third.frames], [errors.TOO_MANY_CONNECTIONS])
        self.assertEqual((closed.was_clean, closed.code), (True, 1000))
        await tcp.close()

    async def test_behind_a_trusted_proxy_the_forwarded_address_counts(self) -> None:
        await self.start("--websocket-proxies", "1", "--limit", "max-connections-per-ip=1")
        lobby = self.server.service("lobby")
        first = await self.player(headers={"X-Forwarded-For": "198.51.100.7"})
        await first.request({"type": "ping", "id": 1})
        second = await self.player(headers={"X-Forwarded-For": "203.0.113.9"})
        await second.request({"type": "ping", "id": 1})
        self.assertEqual(
            (lobby.connections_from("198.51.100.7"), lobby.connections_from("203.0.113.9")),
            (1, 1),
        )
        # What the client wrote before the proxy's entry is not believed.
        spoofed = await self.player(headers={"X-Forwarded-For": "192.0.2.1, 198.51.100.7"})
        await spoofed.closed
        self.assertEqual([error_code(f) for f in spoofed.frames], [errors.TOO_MANY_CONNECTIONS])
        # A request that did not come through the proxy counts as its own peer.
        direct = await self.player()
        await direct.request({"type": "ping", "id": 1})
        self.assertEqual(lobby.connections_from("127.0.0.1"), 1)

    async def test_a_silent_websocket_is_dropped_after_the_hello_timeout(self) -> None:
        await self.start("--limit", "lobby-hello-timeout=0.3")
        silent = await self.player()
        closed = await silent.closed
        # Dropped without a word (as on TCP): no frame, no close handshake.
        self.assertEqual(silent.frames, [])
        self.assertFalse(closed.was_clean)
        lobby = self.server.service("lobby")
        await until(lambda: lobby.connection_count == 0, "every connection forgotten")

    async def test_a_queued_websocket_player_is_pinged_and_told_of_the_drain(self) -> None:
        await self.start("--limit", "lobby-ping-interval=0.2")
        player, _ = await self.welcomed("ann")
        await player.request({"type": "queue", "game": "tictactoe", "id": 1})
        await player.when(lambda f: f == {"type": "ping"})
        await player.request({"type": "ping", "id": 2})
        self.server.service("lobby").drain()
        told = await player.when(lambda f: error_code(f) == errors.SERVER_DRAINING)
        self.assertIsNone(told["id"])
        closed = await player.closed
        self.assertEqual((closed.was_clean, closed.code), (True, 1000))
        # Later players still talk to the lobby but cannot queue.
        late, _ = await self.welcomed("late")
        refused = await late.request({"type": "queue", "game": "tictactoe", "id": 1})
        self.assertEqual(error_code(refused), errors.SERVER_DRAINING)

    async def test_the_site_serves_the_web_client_at_the_root_and_404_elsewhere(self) -> None:
        await self.start()
        trust = self.server.lobby.trust
        assert trust is not None
        with open(trust, "rb") as f:
            policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(f.read()))
        agent = Agent(reactor, contextFactory=policy)
        base = f"https://localhost:{self.server.websocket_port}"
        response = await agent.request(b"GET", f"{base}/".encode())
        body = await readBody(response)
        self.assertEqual(response.code, 200)
        self.assertIn(b'<script type="module" src="app.js"></script>', body)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"]
        )
        missing = await agent.request(b"GET", f"{base}/nothing-here".encode())
        await readBody(missing)
        self.assertEqual(missing.code, 404)
        # /lobby wants a WebSocket upgrade, not a page.
        plain = await agent.request(b"GET", f"{base}/lobby".encode())
        self.assertEqual(plain.code, 426)
