"""End to end over real TLS and real UDP: bots queue, are matched, connect and play to a result.

A whole server (makeService) runs in the test process on free loopback ports;
the bots use the public client library (TLS lobby client with certificate
verification, connect tokens, the UDP session protocol).
"""

# slow: starts child processes

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support.servers import start_server
from tests.support.waiting import until
from vinom.client.bots import BotDriver, BotReport, play_bot
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry
from vinom.hosting.core import GameHostCore
from vinom.hosting.inline import InlineGameHost
from vinom.protocol.tokens import PublicToken

SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)
REGISTRY = GameRegistry.from_plugins()


class BotsPlayEveryGame(TestCase):
    timeout = 90

    async def play(self, game_name: str, players: int | None = None) -> None:
        game = REGISTRY.get(game_name)
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
        await until(lambda: server.hosting.running_games == 0)
        await until(lambda: server.hosting.allocator.available == 4)
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

    async def test_bots_cancelled_mid_match_release_their_ports(self) -> None:
        # A runner's deadline (`vinom bots --timeout`) cancels bots mid-match. Trial's
        # check for a clean reactor is the rest of the assertion: no socket and no
        # resend or think timer outlives a cancelled bot.
        game = REGISTRY.get("tictactoe")
        server = await start_server(self, ports=4)
        sessions: list[GameSession] = []
        bots = [
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, game, f"slow{i}", rng=random.Random(i),
                         think_time=60.0, on_session=sessions.append)
            )
            for i in range(2)
        ]
        await until(lambda: len(sessions) == 2 and all(s.connected for s in sessions))
        for bot in bots:
            bot.cancel()
        for bot in bots:
            await self.assertFailure(bot, CancelledError)
        self.assertEqual([s.connected for s in sessions], [False, False])


class Reconnection(TestCase):
    timeout = 60

    async def test_socket_closed_mid_game_reconnects_and_finishes(self) -> None:
        server = await start_server(self, "--limit", "session-timeout=1", ports=2)
        game = REGISTRY.get("tictactoe")
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
        await until(lambda: driver.actions_sent >= 1 and driver.in_flight is None)
        self.assertEqual(session.phase, "playing")
        driver.cancel()
        assert session.protocol is not None and session.protocol.transport is not None
        await session.protocol.transport.stopListening()
        host = server.hosting.host_of(found.game_id)
        assert isinstance(host, InlineGameHost)
        room = host.core.room(found.game_id)
        assert room is not None
        await until(lambda: room.in_grace(welcome.player_id))
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
        await until(lambda: session.welcome is not None and session.welcome["reconnected"])

        final = await session.finished
        driver.cancel()
        self.assertEqual(final["p"], "finished")
        theirs = await other
        self.assertEqual(theirs.outcome, "finished")
        self.assertEqual(theirs.result, final["result"])
        await session.disconnect()
        await until(lambda: server.hosting.running_games == 0)


class GhostTickets(TestCase):
    """#12: a queued player who never connects must not cost an honest one their game."""

    timeout = 60

    async def test_players_missing_puts_the_connected_player_back_at_the_head(self) -> None:
        server = await start_server(self, "--limit", "connect-deadline=1", ports=2)
        lobby_address = ("127.0.0.1", server.lobby.port)
        trust = server.lobby.trust
        honest = await connect_lobby(reactor, *lobby_address, trust=trust)
        welcome = await honest.hello("honest")
        ghost = await connect_lobby(reactor, *lobby_address, trust=trust)
        await ghost.hello("ghost")
        found_d = honest.queue("tictactoe")
        await ghost.queue("tictactoe")  # matched; the ghost never connects over UDP
        found = await found_d
        session = await connect_game(reactor, found)
        final = await session.finished
        self.assertEqual((final["p"], final["reason"]), ("aborted", "players_missing"))
        await session.disconnect()
        # Back to the lobby: the place kept at the head of the queue, then a match with
        # the next player who queues.
        back = await connect_lobby(reactor, *lobby_address, trust=trust)
        queued: list[Any] = []
        refound_d = back.reconnect(welcome.player_id, welcome.secret, on_queued=queued.append)
        await until(lambda: bool(queued))
        self.assertEqual((queued[0].status, queued[0].position), ("searching", 1))
        nxt = await connect_lobby(reactor, *lobby_address, trust=trust)
        await nxt.hello("next")
        their_found = await nxt.queue("tictactoe")
        refound = await refound_d
        self.assertEqual(refound.game_id, their_found.game_id)
        self.assertNotEqual(refound.game_id, found.game_id)
        session = await connect_game(reactor, refound)
        await until(lambda: session.welcome is not None)
        assert session.welcome is not None
        self.assertEqual(session.welcome["seat"], 0, "the requeued player was first in line")
        await session.disconnect()

    async def test_a_stopped_queued_client_is_found_and_never_matched(self) -> None:
        """A real client process queues, then is stopped (SIGSTOP: its socket stays
        open, it answers nothing). The lobby finds it within ping interval + timeout,
        and the honest players who queue next are matched with each other."""
        server = await start_server(
            self, "--limit", "lobby-ping-interval=0.5", "--limit", "lobby-ping-timeout=0.5", ports=2
        )
        ghost = _QueuedClient()
        script = (
            "import sys\n"
            "from twisted.internet import reactor\n"
            "from vinom.client.lobby import connect_lobby\n"
            "async def main():\n"
            f"    lobby = await connect_lobby(reactor, '127.0.0.1', {server.lobby.port},"
            f" trust={server.lobby.trust!r})\n"
            "    me = await lobby.hello('ghost')\n"
            "    lobby.queue('tictactoe',"
            " on_queued=lambda q: print('queued', me.player_id, flush=True))\n"
            "from twisted.internet.defer import Deferred\n"
            "reactor.callWhenRunning(lambda: Deferred.fromCoroutine(main()))\n"
            "reactor.run()\n"
        )
        env = {**os.environ, "PYTHONPATH": SOURCE_ROOT}
        process = reactor.spawnProcess(ghost, sys.executable, [sys.executable, "-c", script], env)
        self.addCleanup(ghost.kill)
        await ghost.queued
        ghost_id = ghost.output.split()[ghost.output.split().index(b"queued") + 1].decode()
        lobby = server.service("lobby")
        self.assertEqual(lobby.connection_count, 1)
        self.assertIsNotNone(lobby.state_of(ghost_id))
        os.kill(process.pid, signal.SIGSTOP)
        stopped_at = reactor.seconds()
        # The lobby lets go of the player (its ticket withdrawn) at once; its socket,
        # whose close the stopped peer never completes, counts against its address
        # until the close times out.
        # Found by the lobby's pings (interval plus timeout, 1 s): nothing else could
        # find it, as TCP never times out a peer that holds its socket open, so the
        # outcome is the proof; how soon is a figure, printed, not a bound.
        await until(lambda: lobby.state_of(ghost_id) is None, "the ghost let go", timeout=15.0)
        print(f"\nthe stopped client let go {reactor.seconds() - stopped_at:.2f} s after SIGSTOP",
              file=sys.stderr)  # fmt: skip
        pair = [await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                    trust=server.lobby.trust) for _ in range(2)]
        welcomes = [await client.hello(f"honest{n}") for n, client in enumerate(pair)]
        found = await gatherResults([client.queue("tictactoe") for client in pair])
        self.assertEqual(found[0].game_id, found[1].game_id)
        tokens = {PublicToken.from_json(f.token).player_id for f in found}
        self.assertEqual(tokens, {w.player_id for w in welcomes})


class _QueuedClient(ProcessProtocol):
    def __init__(self) -> None:
        self.queued: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        self.output += data
        # The whole line: "queued PLAYER_ID".
        line = self.output.partition(b"queued")[2]
        if b"\n" in line and not self.queued.called:
            self.queued.callback(None)

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        if not self.queued.called:
            self.queued.errback(RuntimeError(self.output.decode(errors="replace")))
        self.ended.callback(None)

    def kill(self) -> Deferred[None]:
        if not self.ended.called and self.transport is not None:
            pid = self.transport.pid
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            self.transport.signalProcess("KILL")
        return self.ended


class RoomsWithBots(TestCase):
    """A person opens a room, the game's bot takes the other seat on the game host, and
    they play to a result over real TLS and UDP: in this process and in a worker."""

    timeout = 90

    async def play_against_a_bot(self, *args: str) -> None:
        server = await start_server(self, *args, ports=2)
        game = REGISTRY.get("tictactoe")
        lobby = await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                    trust=server.lobby.trust)
        welcome = await lobby.hello("Ann")
        room = await lobby.create_room("tictactoe")
        self.assertEqual((room["taken"], room["seats"]), (1, 2))
        room = await lobby.add_bot()
        self.assertEqual([p["bot"] for p in room["players"]], [False, True])
        found = await lobby.room_match()
        session = await connect_game(reactor, found)
        driver = BotDriver(session, game.make_bot(welcome.player_id, random.Random(5)),
                           clock=reactor)
        driver.attach()
        final = await session.finished
        driver.cancel()
        self.assertEqual(final["p"], "finished")
        self.assertGreater(driver.actions_sent, 0)
        # Both seats played: the bot's moves came from the game host.
        assert session.welcome is not None
        self.assertEqual([p["name"] for p in session.welcome["players"]], ["Ann", "Bot"])
        await session.disconnect()
        await until(lambda: server.hosting.running_games == 0)

    async def test_in_this_process(self) -> None:
        await self.play_against_a_bot()

    async def test_in_a_worker_process(self) -> None:
        await self.play_against_a_bot("--host-workers", "1")
