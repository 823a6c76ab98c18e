"""The game session over WebTransport (`--webtransport`, vinom.hosting.webtransport),
against a whole server, with aioquic's client on real UDP sockets
(tests/support/webtransport_client.py)."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from tests.hosting.test_websocket_game import GameSocketTestCase
from tests.lobby.test_websocket_lobby import PAGE
from tests.support.ports import free_udp_range
from tests.support.webtransport_client import WebTransportPlayer, connect_webtransport
from vinom.hosting.websocket import CLOSE_TOKEN_REFUSED


def within(d: Deferred[Any], seconds: float = 10.0) -> Deferred[Any]:
    return d.addTimeout(seconds, reactor)


class WebTransportTestCase(GameSocketTestCase):
    async def start_webtransport(self, *args: str) -> int:
        port = free_udp_range(1)
        await self.start("--webtransport", str(port), *args)
        return port

    async def player(self, port: int, origin: str | None = PAGE,
                     path: str = "/game") -> WebTransportPlayer:  # fmt: skip
        player = await connect_webtransport(self, port, origin=origin, path=path)
        self.assertEqual(await within(player.status), 200 if path == "/game" else 404)
        return player

    async def webtransport_refusals(self) -> dict[str, float]:
        text = await self.metrics()
        return {
            m.group(1): float(m.group(2))
            for m in re.finditer(
                r'^vinom_webtransport_sessions_refused_total\{reason="([^"]+)"\} (\S+)$',
                text, re.M,
            )
        }


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
        # The real token opens the session: the welcome on the stream.
        good = await self.player(port)
        good.send_token(token)
        welcome = await within(good.welcomed)
        self.assertEqual(welcome["t"], "welcome")
        self.assertEqual(
            await self.webtransport_refusals(), {"token_invalid": 1, "request_size": 1}
        )
        self.assertIn("vinom_webtransport_sessions_opened_total 1.0", await self.metrics())
