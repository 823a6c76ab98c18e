"""The game session over WebSocket (`/game`, vinom.hosting.websocket), against a whole server.

A whole server (makeService) with its web server on a free loopback port;
players get `match_found` from the lobby (over WebSocket or TCP), then one
plays over `wss://localhost:PORT/game` (tests/support/websocket_client.py) and the
other over UDP (vinom.client.game), in the same room, with game hosts in this
process and in a worker process.
"""

# slow: starts game-host worker processes

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgpack
from attrs import evolve
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python import usage

from tests.lobby import reconnect
from tests.lobby.test_websocket_lobby import PAGE
from tests.support.game_sockets import GameSocketTestCase
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from tests.support.websocket_client import (
    GameSocketPlayer,
    HandshakeRefused,
    connect_websocket,
)
from vinom.client.game import connect_game
from vinom.hosting.game_stream import (
    CLOSE_NORMAL,
    CLOSE_TEXT_MESSAGE,
    CLOSE_TOKEN_REFUSED,
    CLOSE_TOKEN_TIMEOUT,
    CLOSE_TOO_FAST,
)
from vinom.protocol.tokens import PublicToken
from vinom.server.tap import Options


class WebSocketMatchTests(GameSocketTestCase):
    async def test_a_tictactoe_match_one_player_on_websocket_one_on_udp(self) -> None:
        await self.start()
        token, found, _web, welcome = await self.match()
        socket, udp, finals, drivers = await self.bots_play(token, found, welcome)
        for driver, final in zip(drivers, finals, strict=True):
            self.assertEqual(final["p"], "finished", final)
            self.assertGreater(driver.actions_sent, 0)
        self.assertEqual(finals[0]["result"], finals[1]["result"])
        # The same messages reached both: a welcome naming both seats, states, events.
        assert socket.session.welcome is not None and udp.welcome is not None
        self.assertEqual(socket.session.welcome["players"], udp.welcome["players"])
        assert socket.session.state is not None and udp.state is not None
        self.assertEqual(socket.session.state["s"]["board"], udp.state["s"]["board"])
        # The room lingers, then the host closes the stream: a normal close.
        closed = await socket.closed
        self.assertEqual(closed.code, CLOSE_NORMAL)
        await udp.disconnect()
        self.assertIn("vinom_game_sockets_opened_total 1.0", await self.metrics())

    async def test_a_websocket_player_reconnects_after_closing_its_socket(self) -> None:
        await self.start()
        token, found, web, welcome = await self.match()
        await web.closed  # the lobby closes after match_found
        first = await self.game_socket(token)
        # (Through a worker process, with workers.)
        await until(lambda: first.session.welcome is not None, "the welcome")
        self.assertFalse(first.session.welcome["reconnected"])
        udp = await connect_game(reactor, found)
        presence: list[dict[str, Any]] = []
        udp_bot = self.bot(udp, PublicToken.from_json(found.token).player_id)
        udp.on_presence = presence.append
        await until(lambda: udp.phase == "playing", "the match to play")
        # The browser's socket goes; its seat is held for the reconnection grace.
        first.sendClose(1000)
        await first.closed
        gone = {"t": "presence", "id": welcome["player_id"], "status": "disconnected"}
        await until(lambda: gone in presence, "the other player told of the disconnection")
        # It asks the lobby for a fresh token and opens /game again.
        port, trust = self.server.websocket_port, self.server.lobby.trust
        assert port is not None and trust is not None
        lobby = await connect_websocket(self, port, trust)
        refound = await lobby.request(reconnect(welcome["player_id"], welcome["secret"], id=1))
        self.assertEqual(refound["type"], "match_found", refound)
        again = await self.game_socket(None)
        drivers = [self.bot(again.session, welcome["player_id"]), udp_bot]
        again.attach(PublicToken.from_json(refound["token"]))
        finals = [await driver.session.finished for driver in drivers]
        for driver in drivers:
            driver.cancel()
        assert again.session.welcome is not None
        self.assertTrue(again.session.welcome["reconnected"])
        self.assertEqual(finals[0]["result"], finals[1]["result"])
        self.assertEqual(finals[0]["p"], "finished")
        await udp.disconnect()


class WorkerWebSocketMatchTests(WebSocketMatchTests):
    """The same, with the game hosted in a worker process (streams over AMP)."""

    hosting = ("--host-workers", "1")


class GameUrlTests(GameSocketTestCase):
    async def test_the_all_in_one_server_names_its_own_game_socket(self) -> None:
        # No proxy, TLS on a known port: match_found says where browsers play,
        # here on this very web server, and a reconnect's match_found says the same.
        port = free_tcp_port()
        await self.start("--websocket", f"ssl:{port}:interface=127.0.0.1")
        _token, found, web, welcome = await self.match()
        frame = web.of_type("match_found")[0]
        self.assertEqual(frame["game_url"], f"wss://127.0.0.1:{port}/game")
        again = await self.reconnected(welcome)
        self.assertEqual(again["game_url"], frame["game_url"])
        self.assertEqual(again["game_id"], found.game_id)

    async def reconnected(self, welcome: dict[str, Any]) -> dict[str, Any]:
        """The match_found a reconnect over a new WebSocket gets."""
        port, trust = self.server.websocket_port, self.server.lobby.trust
        assert port is not None and trust is not None
        player = await connect_websocket(self, port, trust)
        frame = await player.request(reconnect(welcome["player_id"], welcome["secret"], id="r"))
        self.assertEqual(frame["type"], "match_found", frame)
        return frame


class GameSocketLimitTests(GameSocketTestCase):
    async def test_bad_and_expired_tokens_are_refused_with_4001_and_counted(self) -> None:
        await self.start()
        token, _found, _web, _welcome = await self.match()
        garbage = await self.game_socket(None, first=b"not a token")
        closed = await garbage.closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_REFUSED, "request_size"))
        forged = bytearray(token.request_packet())
        forged[200] ^= 1
        closed = await (await self.game_socket(None, first=bytes(forged))).closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_REFUSED, "token_invalid"))
        # A client of protocol version 1 (8-byte body headers) is told so.
        old = evolve(token, protocol_version=1)
        closed = await (await self.game_socket(None, first=old.request_packet())).closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_REFUSED, "wrong_version"))
        expired = evolve(token, expires_at=1)
        closed = await (await self.game_socket(None, first=expired.request_packet())).closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_REFUSED, "token_expired"))
        # The real token still opens the session; used twice, it is refused.
        ok = await self.game_socket(token)
        await until(lambda: ok.session.welcome is not None, "the welcome")
        ok.sendClose(1000)
        await ok.closed
        closed = await (await self.game_socket(token)).closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_REFUSED, "token_reused"))
        self.assertEqual(
            await self.refusals(),
            {"request_size": 1, "token_invalid": 1, "wrong_version": 1, "token_expired": 1,
             "token_reused": 1},
        )

    async def test_oversize_text_and_too_fast_messages_close_the_socket(self) -> None:
        await self.start(ports=3)
        token, _found, _web, _welcome = await self.match()
        socket = await self.game_socket(token)
        await until(lambda: socket.session.welcome is not None, "the welcome")
        socket.sendMessage(b"\x81" + b"x" * 4096, isBinary=True)
        self.assertEqual((await socket.closed).code, 1009)
        # A text message.
        token2, _, _, _ = await self.match()
        text = await self.game_socket(token2)
        text.sendMessage(b'{"t": "a"}', isBinary=False)
        self.assertEqual((await text.closed).code, CLOSE_TEXT_MESSAGE)
        # Too many messages: the token, then a flood of syncs.
        token3, _, _, _ = await self.match()
        fast = await self.game_socket(token3)
        for _ in range(100):
            fast.sendMessage(b"\x81\xa1t\xa1s", isBinary=True)
        closed = await fast.closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOO_FAST, "too many messages"))
        refusals = await self.refusals()
        self.assertEqual((refusals["text_message"], refusals["too_fast"]), (1, 1))

    async def test_no_token_in_time(self) -> None:
        await self.start("--limit", "lobby-hello-timeout=0.5")
        late = await self.game_socket(None)
        closed = await late.closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_TIMEOUT, "no token in time"))

    async def test_wrong_origin_is_refused_with_403(self) -> None:
        await self.start()
        with self.assertRaises(HandshakeRefused) as caught:
            await self.game_socket(None, origin="https://evil.example")
        self.assertIn("[403]", str(caught.exception))
        allowed = await self.game_socket(None, origin=PAGE)
        allowed.sendClose(1000)
        await allowed.closed
        self.assertEqual(await self.refusals(), {"origin": 1})

    async def test_malformed_messages_after_the_token_are_dropped_and_counted(self) -> None:
        # As on UDP: garbage from a player is dropped silently and counted by reason;
        # the socket stays open and the match plays on to its end.
        await self.start()
        token, found, _web, welcome = await self.match()
        socket = await self.game_socket(None)
        driver = self.bot(socket.session, welcome["player_id"])
        socket.attach(token)
        await until(lambda: socket.session.welcome is not None, "the welcome")
        for garbage in (b"\xc1", b"\x01", b"\x81\xa1t\xa4zzzz"):
            socket.sendMessage(garbage, isBinary=True)
        udp = await connect_game(reactor, found)
        other = self.bot(udp, PublicToken.from_json(found.token).player_id)
        finals = [await session.finished for session in (socket.session, udp)]
        driver.cancel()
        other.cancel()
        self.assertEqual([final["p"] for final in finals], ["finished", "finished"])
        self.assertEqual((await socket.closed).code, CLOSE_NORMAL)
        await udp.disconnect()
        drops = await self.message_drops()
        self.assertEqual(
            {reason: drops.get(reason) for reason in ("not_msgpack", "not_a_map", "unknown_type")},
            {"not_msgpack": 1, "not_a_map": 1, "unknown_type": 1},
        )
        self.assertEqual(await self.refusals(), {})

    async def test_open_sockets_per_address_are_capped_with_429(self) -> None:
        # The lobby's per-address cap applies to game sockets too: sockets that send
        # no token are held until the token timeout, so they must be counted.
        await self.start("--limit", "max-connections-per-ip=2")
        first = await self.game_socket(None)
        await self.game_socket(None)
        with self.assertRaises(HandshakeRefused) as caught:
            await self.game_socket(None)
        self.assertIn("[429]", str(caught.exception))
        self.assertIn("too many game sockets from this address", str(caught.exception))
        first.sendClose(1000)
        await first.closed
        # Its place is free once the server has seen it go.
        third, retries = await self.eventually_open()
        self.assertEqual(third.state, GameSocketPlayer.STATE_OPEN)
        self.assertEqual(await self.refusals(), {"too_many_sockets": 1 + retries})

    async def test_behind_a_trusted_proxy_the_forwarded_address_is_capped(self) -> None:
        await self.start("--limit", "max-connections-per-ip=1", "--websocket-proxies", "1")
        await self.game_socket(None, headers={"X-Forwarded-For": "203.0.113.7"})
        # Another client behind the same proxy has its own share.
        await self.game_socket(None, headers={"X-Forwarded-For": "203.0.113.8"})
        with self.assertRaises(HandshakeRefused) as caught:
            await self.game_socket(None, headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
        self.assertIn("[429]", str(caught.exception))
        self.assertEqual(await self.refusals(), {"too_many_sockets": 1})

    async def eventually_open(self, limit: float = 10.0) -> tuple[GameSocketPlayer, int]:
        """A socket, once the server has a place for it; and how many times it refused."""
        refused = 0
        while True:
            try:
                return await self.game_socket(None), refused
            except HandshakeRefused:
                refused += 1
                self.assertLess(refused * 0.05, limit)
                await deferLater(reactor, 0.05, lambda: None)


# The frame docs/web.md's `/game` example sends, as written there.
DOC_FRAME = re.compile(r"game\.send\(msgpack\.encode\((\{.*\})\)\);")


def js_object(text: str) -> Any:
    """A JavaScript object literal of plain keys, numbers and strings, as Python."""
    return json.loads(re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text))


class DocumentedFrameTests(GameSocketTestCase):
    async def test_the_frame_of_the_web_md_example_is_an_action_the_room_applies(self) -> None:
        # docs/web.md shows a browser sending an action over /game; that frame, sent
        # as written, reaches the game (applied, or refused by the game with its id),
        # never dropped as an unknown message.
        docs = (Path(__file__).resolve().parents[2] / "docs" / "web.md").read_text()
        [literal] = DOC_FRAME.findall(docs)
        frame = js_object(literal)
        await self.start()
        token, found, _web, _welcome = await self.match()
        socket = await self.game_socket(token)
        udp = await connect_game(reactor, found)
        await until(lambda: socket.session.state is not None
                    and socket.session.phase == "playing", "the match to play")  # fmt: skip
        errors: list[dict[str, Any]] = []
        socket.session.on_error = errors.append
        socket.sendMessage(msgpack.packb(frame), isBinary=True)
        cell = frame["a"]["cell"]
        await until(lambda: errors or (socket.session.view or {})["board"][cell] != "",
                    "the documented frame to do something")  # fmt: skip
        if errors:  # not this player's turn: the game answered the action by its id
            self.assertEqual((errors[0]["i"], errors[0]["code"]), (frame["i"], "not_your_turn"))
        else:
            self.assertEqual(socket.session.state["i"], frame["i"])
        self.assertEqual((await self.message_drops()).get("unknown_type"), None)
        await udp.disconnect()


class WebGameRateTests(GameSocketTestCase):
    """`--limit web-game-rate`: the messages per second a /game socket may send."""

    async def send_for(self, socket: GameSocketPlayer, rate: float, seconds: float) -> None:
        """Send syncs at `rate` per second for `seconds`, or until the socket closes (or
        begins to: a client sends nothing after the server's close frame)."""
        start = reactor.seconds()
        sent = 0
        while reactor.seconds() - start < seconds and socket.state == socket.STATE_OPEN:
            due = int((reactor.seconds() - start) * rate) + 1
            while sent < due:
                socket.sendMessage(b"\x81\xa1t\xa4sync", isBinary=True)
                sent += 1
            await deferLater(reactor, 0.01, lambda: None)

    async def test_a_socket_below_the_configured_rate_stays_open_and_above_it_closes(self) -> None:
        # 45 messages a second for 3 s is over the default (20/s, a burst of 40)
        # and under a configured 60/s (a burst of 120): a real-time game's pace.
        await self.start("--limit", "web-game-rate=60", ports=3)
        token, _found, _web, _welcome = await self.match()
        socket = await self.game_socket(token)
        await self.send_for(socket, 45, 3.0)
        self.assertFalse(socket.closed.called, "closed below the configured rate")
        await self.send_for(socket, 400, 1.0)
        closed = await socket.closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOO_FAST, "too many messages"))

    async def test_the_default_rate_closes_a_socket_at_that_pace(self) -> None:
        await self.start(ports=3)
        token, _found, _web, _welcome = await self.match()
        socket = await self.game_socket(token)
        await self.send_for(socket, 45, 3.0)
        self.assertEqual((await socket.closed).code, CLOSE_TOO_FAST)

    def test_a_rate_that_is_not_a_positive_number_is_refused_in_one_line(self) -> None:
        for bad in ("0", "-5", "fast", "inf"):
            with self.assertRaises(usage.UsageError) as caught:
                Options().parseOptions(["--limit", f"web-game-rate={bad}"])
            self.assertRegex(
                str(caught.exception),
                rf"^--limit web-game-rate must be a number( greater than 0)?, not '{bad}'$",
            )
        options = Options()
        options.parseOptions(["--limit", "web-game-rate=60"])
        self.assertEqual(options["web-game-rate"], 60.0)
