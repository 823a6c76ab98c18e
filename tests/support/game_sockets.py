"""A whole server with its web server and operations port for the game-session tests
(`/game` over WebSocket, WebTransport, spectators): players matched through the
lobby, a `/game` socket, bots to play a match out, and /metrics by reason."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.lobby import hello
from tests.lobby.test_websocket_lobby import ORIGINS, WEB, is_type
from tests.support.metrics import fetch_metrics, samples
from tests.support.servers import RunningServer, start_server
from tests.support.websocket_client import (
    GameSocketPlayer,
    WebSocketPlayer,
    connect_game_socket,
    connect_websocket,
)
from vinom.client.bots import BotDriver
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import MatchFound, connect_lobby
from vinom.games.registry import GameRegistry
from vinom.protocol.tokens import PublicToken

OPS = ("--ops-port", "tcp:0:interface=127.0.0.1")


class GameSocketTestCase(TestCase):
    timeout = 60
    # Extra server options (a worker process in the subclass).
    hosting: tuple[str, ...] = ()

    async def start(self, *args: str, ports: int = 2) -> RunningServer:
        self.server = await start_server(self, *WEB, *ORIGINS, *OPS, *self.hosting, *args,
                                         ports=ports)  # fmt: skip
        return self.server

    async def web_player(self) -> tuple[WebSocketPlayer, dict[str, Any]]:
        port, trust = self.server.websocket_port, self.server.lobby.trust
        assert port is not None and trust is not None
        player = await connect_websocket(self, port, trust)
        welcome = await player.request(hello("web", id="h"))
        return player, welcome

    async def match(self) -> tuple[PublicToken, MatchFound, Any, dict[str, Any]]:
        """A tictactoe match of a WebSocket-lobby player (its token) and a TCP one."""
        web, welcome = await self.web_player()
        queued = await web.request({"type": "queue", "game": "tictactoe", "id": 1})
        self.assertEqual(queued["type"], "queued", queued)
        tcp = await connect_lobby(
            reactor, "127.0.0.1", self.server.lobby.port, trust=self.server.lobby.trust
        )
        await tcp.hello("udp")
        found = await tcp.queue("tictactoe")
        frame = await web.when(is_type("match_found"))
        return PublicToken.from_json(frame["token"]), found, web, welcome

    async def game_socket(
        self,
        token: PublicToken | None,
        *,
        origin: str | None = None,
        first: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> GameSocketPlayer:
        port, trust = self.server.websocket_port, self.server.lobby.trust
        assert port is not None and trust is not None
        return await connect_game_socket(self, port, trust, token, origin=origin, first=first,
                                         headers=headers)  # fmt: skip

    async def metrics(self) -> str:
        ops = await self.server.service("ops").port()
        return await fetch_metrics(ops.getHost().port)

    async def by_reason(self, name: str) -> dict[str, float]:
        """The counter `name`'s figures by their `reason` label, from /metrics now."""
        return samples(await self.metrics(), name, "reason")

    async def refusals(self) -> dict[str, float]:
        return await self.by_reason("vinom_game_sockets_refused_total")

    async def message_drops(self) -> dict[str, float]:
        return await self.by_reason("vinom_messages_dropped_total")

    def bot(self, session: GameSession, player_id: str) -> BotDriver:
        game = GameRegistry.from_plugins().get("tictactoe")
        driver = BotDriver(session, game.make_bot(player_id, random.Random(player_id)),
                           clock=reactor)  # fmt: skip
        driver.attach()
        return driver

    async def bots_play(
        self, token: PublicToken, found: MatchFound, welcome: dict[str, Any]
    ) -> tuple[GameSocketPlayer, GameSession, list[dict[str, Any]], list[BotDriver]]:
        """`match()`'s match played to its end by bots: the WebSocket lobby's player on
        `/game` with `token`, the other on UDP. Its socket, the UDP session, each
        one's last message and their drivers (stopped)."""
        # The bot listens before the token goes: the first states may come at once.
        socket = await self.game_socket(None)
        drivers = [self.bot(socket.session, welcome["player_id"])]
        socket.attach(token)
        udp = await connect_game(reactor, found)
        drivers.append(self.bot(udp, PublicToken.from_json(found.token).player_id))
        finals = [await driver.session.finished for driver in drivers]
        for driver in drivers:
            driver.cancel()
        return socket, udp, finals, drivers
