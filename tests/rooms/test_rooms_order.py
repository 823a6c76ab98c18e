"""The order a player's session opens in, over real sockets (docs/protocol.md section 14).

Every seat's first message is its `welcome`, and the states it receives never
go back in version: not for the player whose arrival starts the match (the
room's state changes while that player's welcome is still queued), nor for
the players who came before, in every built-in game. Players are bots on the
public client library (TLS lobby, UDP game sessions) against a whole server;
each records every message in the order its session delivered them.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.servers import start_server
from vinom.client.bots import BotDriver
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry
from vinom.rooms.message_reading import decode_server_message

REGISTRY = GameRegistry.from_plugins()
# What a person reads for each game: the `title` of the welcome.
TITLES = {"tictactoe": "Tic-tac-toe", "dice": "Dice", "owedrahn": "Owe Drahn", "maze": "Maze"}


class RecordingSession(GameSession):
    """A `GameSession` that keeps every message, in the order it was delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[dict[str, Any]] = []

    def message_received(self, channel: int, data: bytes) -> None:
        message = decode_server_message(data)
        if message is not None:
            self.delivered.append(message)
        super().message_received(channel, data)


class OpeningOrderTests(TestCase):
    timeout = 60

    async def play(self, game_name: str, players: int, matches: int = 2) -> None:
        game = REGISTRY.get(game_name)
        server = await start_server(
            self, "--match-size", f"{game_name}={players}", ports=matches
        )

        async def player(index: int) -> RecordingSession:
            lobby = await connect_lobby(
                reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust
            )
            welcome = await lobby.hello(f"{game_name}{index}")
            found = await lobby.queue(game_name)
            session = RecordingSession()
            await connect_game(reactor, found, session=session)
            driver = BotDriver(
                session, game.make_bot(welcome.player_id, random.Random(index)), 0.0, reactor
            )
            driver.attach()
            await session.finished
            driver.cancel()
            await session.disconnect()
            return session

        # Everyone at once: the last of each match connects while the others'
        # opening messages may still be on their way.
        sessions: list[RecordingSession] = await gatherResults(
            [Deferred.fromCoroutine(player(i)) for i in range(players * matches)]
        )
        for session in sessions:
            kinds = [m["t"] for m in session.delivered]
            self.assertEqual(kinds[0], "welcome", f"{game_name}: first messages {kinds[:4]}")
            self.assertEqual(kinds.count("welcome"), 1)
            self.assertEqual(session.delivered[0]["title"], TITLES[game_name])
            versions = [m["v"] for m in session.delivered if m["t"] == "state"]
            self.assertTrue(versions, game_name)
            self.assertEqual(
                versions, sorted(versions), f"{game_name}: state versions went back: {versions}"
            )
            self.assertEqual(session.phase, "finished")

    async def test_tictactoe(self) -> None:
        await self.play("tictactoe", 2, matches=4)

    async def test_dice(self) -> None:
        await self.play("dice", 4, matches=1)

    async def test_owedrahn(self) -> None:
        await self.play("owedrahn", 4, matches=1)

    async def test_maze(self) -> None:
        await self.play("maze", 4, matches=1)
