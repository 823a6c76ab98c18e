"""End to end over real TLS and real UDP: bots queue, are matched, connect and play to a result.

A whole server (makeService) runs in the test process on free loopback ports;
the bots use the public client library (TLS lobby client with certificate
verification, connect tokens, the UDP session protocol).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.servers import start_server
from vinom.client.bots import BotDriver, BotReport, play_bot
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry
from vinom.hosting.core import GameHostCore
from vinom.hosting.inline import InlineGameHost

GAMES = GameRegistry.from_plugins()


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


class BotsPlayEveryGame(TestCase):
    timeout = 90

    async def play(self, game_name: str, players: int | None = None) -> None:
        game = GAMES.get(game_name)
        players = players or game.match_size
        server = await start_server(self, "--match-size", f"{game_name}={players}", ports=4)
        cores: list[GameHostCore] = []

        def capture(session: GameSession) -> None:
            match_id = session.protocol.session.match_id if session.protocol else ""
            host = server.hosting.host_of(match_id)
            assert isinstance(host, InlineGameHost)
            cores.append(host.core)

        bots = [
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, game, f"{game_name}{i}",
                         rng=random.Random(i), on_session=capture)
            )
            for i in range(players)
        ]
        reports: list[BotReport] = await gatherResults(bots)
        for report in reports:
            self.assertEqual(report.outcome, "finished", report)
            self.assertIsNone(report.error, report)
            self.assertGreater(report.actions_sent, 0)
        self.assertEqual(len({r.match_id for r in reports}), 1)
        results = [r.result for r in reports]
        self.assertTrue(all(r == results[0] for r in results))
        assert results[0] is not None
        self.assertTrue(set(results[0]["winners"]) <= {r.player_id for r in reports})
        # The port returns to the allocator (once the host has stopped: a moment
        # after the match leaves running_games) and the room is removed.
        await wait_until(lambda: server.hosting.running_games == 0)
        await wait_until(lambda: server.hosting.allocator.available == 4)
        self.assertEqual(len(cores), players)
        self.assertEqual(cores[0].room_count, 0)

    async def test_maze(self) -> None:
        await self.play("maze")

    async def test_maze_with_four_players(self) -> None:
        await self.play("maze", 4)

    async def test_tictactoe(self) -> None:
        await self.play("tictactoe")

    async def test_dice(self) -> None:
        await self.play("dice")

    async def test_owedrahn(self) -> None:
        await self.play("owedrahn")


class Reconnection(TestCase):
    timeout = 60

    async def test_socket_closed_mid_game_reconnects_and_finishes(self) -> None:
        server = await start_server(self, "--session-timeout", "1", ports=2)
        game = GAMES.get("tictactoe")
        other = Deferred.fromCoroutine(
            play_bot(reactor, server.lobby, game, "steady", rng=random.Random(1))
        )

        lobby = await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                    trust=server.lobby.trust)
        welcome = await lobby.hello("flaky")
        found = await lobby.queue("tictactoe")
        session = await connect_game(reactor, found)
        # A slow player, so the game is still running when its socket goes.
        driver = BotDriver(session, game.make_bot(welcome.player_id, random.Random(2)),
                           think_time=0.2, clock=reactor)
        driver.attach()
        first_session_id = session.protocol.session.session_id if session.protocol else None

        # Play a little, then lose the socket without a word to the host.
        await wait_until(lambda: driver.actions_sent >= 1 and driver.in_flight is None)
        self.assertEqual(session.phase, "playing")
        driver.cancel()
        assert session.protocol is not None and session.protocol.transport is not None
        await session.protocol.transport.stopListening()
        host = server.hosting.host_of(found.game_id)
        assert isinstance(host, InlineGameHost)
        room = host.core.room(found.game_id)
        assert room is not None
        await wait_until(lambda: room.in_grace(welcome.player_id))
        self.assertFalse(session.finished.called)

        # Back through the lobby with the reconnection secret: a fresh token, same seat.
        again = await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                    trust=server.lobby.trust)
        refound = await again.reconnect(welcome.player_id, welcome.secret)
        self.assertEqual(refound.game_id, found.game_id)
        self.assertNotEqual(refound.token["token"], found.token["token"])
        resumed = await connect_game(reactor, refound, session=session)
        self.assertIs(resumed, session)
        assert session.protocol is not None and session.protocol.session is not None
        self.assertNotEqual(session.protocol.session.session_id, first_session_id)
        await wait_until(lambda: session.welcome is not None and session.welcome["reconnected"])

        final = await session.finished
        driver.cancel()
        self.assertEqual(final["p"], "finished")
        theirs = await other
        self.assertEqual(theirs.outcome, "finished")
        self.assertEqual(theirs.result, final["result"])
        await session.disconnect()
        await wait_until(lambda: server.hosting.running_games == 0)
