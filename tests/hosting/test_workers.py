"""Game hosts in real child processes: worker pools, a child per match, crashes and hangs.

A whole server (makeService) runs in the test process on free loopback ports
and starts its game-host processes with `reactor.spawnProcess`; bots play over
the real TLS lobby and real UDP to those processes. Processes are killed and
stopped with real signals.
"""

# slow: starts child processes

from __future__ import annotations

import os
import random
import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutput
from twisted.trial.unittest import TestCase

from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from tests.test_e2e import SOURCE_ROOT
from vinom.client.bots import BotDriver, BotReport, play_bot
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import Queued, connect_lobby
from vinom.games.registry import GameRegistry
from vinom.hosting.interfaces import IHostingStatistics
from vinom.hosting.workers.child import (
    HEARTBEAT_TIMEOUT,
    WorkerGameHost,
    WorkerGone,
    WorkerSettings,
)
from vinom.hosting.workers.per_match import ProcessPerMatch
from vinom.hosting.workers.pool import WorkerPool
from vinom.protocol.config import ProtocolConfig
from vinom.rooms.room import RoomConfig

GAMES = GameRegistry.from_plugins()


def processes(server: RunningServer) -> Any:
    factory = server.service("game-host-processes")
    assert IHostingStatistics.providedBy(factory)
    return factory


def hosting_pid(server: RunningServer, match_id: str) -> int | None:
    host = server.hosting.host_of(match_id)
    return host.worker.pid if isinstance(host, WorkerGameHost) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def play_matches(
    server: RunningServer, game_name: str, matches: int, pids: dict[str, int | None] | None = None
) -> list[BotReport]:
    """Bots queue for `matches` matches of a game at once and play them to their result."""
    game = GAMES.get(game_name)

    def record(session: GameSession) -> None:
        if pids is not None and session.protocol is not None and session.protocol.session:
            match_id = session.protocol.session.match_id
            pids[match_id] = hosting_pid(server, match_id)

    bots = [
        Deferred.fromCoroutine(
            play_bot(reactor, server.lobby, game, f"{game_name}{i}", rng=random.Random(i),
                     on_session=record)
        )
        for i in range(matches * game.match_size)
    ]
    return list(await gatherResults(bots))


async def live_workers(server: RunningServer, count: int) -> list[Any]:
    await until(lambda: sum(w.live for w in processes(server).workers()) == count, timeout=30)
    return list(processes(server).workers())


class WorkerPools(TestCase):
    timeout = 120

    async def test_two_workers_play_six_matches_and_every_port_returns(self) -> None:
        server = await start_server(self, "--host-workers", "2", ports=6)
        workers = await live_workers(server, 2)
        self.assertEqual(len({w.pid for w in workers}), 2)
        self.assertNotIn(os.getpid(), {w.pid for w in workers})
        pids: dict[str, int | None] = {}
        reports = await play_matches(server, "tictactoe", 6, pids)
        for report in reports:
            self.assertEqual(report.outcome, "finished", report)
        self.assertEqual(len({r.match_id for r in reports}), 6)
        # Least loaded first: the six matches are spread over both workers.
        self.assertEqual(set(pids.values()), {w.pid for w in workers})
        await until(lambda: server.hosting.allocator.available == 6)
        self.assertEqual(server.hosting.running_games, 0)
        placer = server.service("lobby").placer
        self.assertEqual(placer.matches_ended["finished", ""], 6)
        # The workers' counters reach the lobby process with their heartbeats.
        await until(lambda: processes(server).totals()["welcomes_sent"] >= 12)
        self.assertGreater(processes(server).totals()["datagrams_received"], 0)

    async def test_a_killed_worker_is_reaped_and_replaced(self) -> None:
        server = await start_server(self, "--host-workers", "2", "--limit", "session-timeout=1",
                                    ports=4)
        await live_workers(server, 2)
        game = GAMES.get("tictactoe")
        # Two matches whose players connect and wait: one on each worker.
        players = []
        for i in range(4):
            lobby = await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                        trust=server.lobby.trust)
            welcome = await lobby.hello(f"p{i}")
            players.append((lobby, welcome, lobby.queue("tictactoe")))
        founds = [await queued for _, _, queued in players]
        sessions = [await connect_game(reactor, found) for found in founds]
        match_ids = sorted({found.game_id for found in founds})
        self.assertEqual(len(match_ids), 2)
        victim_pid = hosting_pid(server, match_ids[0])
        survivor_pid = hosting_pid(server, match_ids[1])
        assert victim_pid is not None and survivor_pid is not None
        self.assertNotEqual(victim_pid, survivor_pid)

        os.kill(victim_pid, signal.SIGKILL)
        # Its port returns and its match is recorded as aborted.
        await until(lambda: server.hosting.allocator.available == 3)
        placer = server.service("lobby").placer
        self.assertEqual(placer.matches_ended["aborted", "host_crashed"], 1)
        # Its players are told when they ask the lobby, and are queued again at the head.
        victims = [(w, s) for (_, w, _), s, f in zip(players, sessions, founds, strict=True)
                   if f.game_id == match_ids[0]]
        told: list[Queued] = []
        rematches = []
        for welcome, session in victims:
            await session.disconnect()
            again = await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                        trust=server.lobby.trust)
            rematches.append(
                again.reconnect(welcome.player_id, welcome.secret, on_queued=told.append)
            )
        # Both came back, so they are matched again (on the live worker).
        refound = await gatherResults(rematches)
        self.assertEqual([(q.requeued, q.reason) for q in told], [(True, "host_crashed")] * 2)
        self.assertEqual(refound[0].game_id, refound[1].game_id)
        self.assertNotIn(refound[0].game_id, match_ids)
        self.assertEqual(hosting_pid(server, refound[0].game_id), survivor_pid)

        # The other worker's match plays on to its result.
        survivors = [(w, s) for (_, w, _), s, f in zip(players, sessions, founds, strict=True)
                     if f.game_id == match_ids[1]]
        drivers = [BotDriver(s, game.make_bot(w.player_id, random.Random(n)), clock=reactor)
                   for n, (w, s) in enumerate(survivors)]
        for driver in drivers:
            driver.attach()
        finals = [await s.finished for _, s in survivors]
        self.assertEqual([f["p"] for f in finals], ["finished", "finished"])
        for driver in drivers:
            driver.cancel()
        for _, session in survivors:
            await session.disconnect()
        for lobby, _, _ in players:
            lobby.close()

        # The killed worker is replaced and new matches are placed.
        workers = await live_workers(server, 2)
        self.assertEqual(sum(w.restarts for w in workers), 1)
        self.assertNotIn(victim_pid, {w.pid for w in workers})
        self.assertFalse(alive(victim_pid))
        self.assertIn(survivor_pid, {w.pid for w in workers})
        reports = await play_matches(server, "tictactoe", 1)
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])

    async def test_a_stopped_worker_is_found_by_its_heartbeat_and_replaced(self) -> None:
        server = await start_server(self, "--host-workers", "1", ports=2)
        (worker,) = await live_workers(server, 1)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGSTOP)
        self.addCleanup(lambda: alive(worker.pid) and os.kill(worker.pid, signal.SIGKILL))
        stopped_at = reactor.seconds()
        await until(lambda: processes(server).workers()[0].restarts == 1, timeout=15)
        # Found by its silence: no sooner than the heartbeat timeout less the one
        # heartbeat interval it may have sent just before it stopped (a stopped
        # process sends no exit for the pool to see; how late on a busy machine is
        # no matter of the code's).
        self.assertEqual(HEARTBEAT_TIMEOUT, 3.0)  # as docs/operations.md says
        self.assertGreaterEqual(reactor.seconds() - stopped_at, HEARTBEAT_TIMEOUT - 1.0)
        await until(lambda: not alive(worker.pid))
        (replacement,) = await live_workers(server, 1)
        self.assertNotEqual(replacement.pid, worker.pid)
        reports = await play_matches(server, "tictactoe", 1)
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])


WORKER_IMPORTS = """
import sys
from twisted.internet import reactor
from vinom.hosting.workers.main import WorkerProtocol
WorkerProtocol(reactor).configure(
    token_key=bytes(32), application_id=0, public_host="127.0.0.1", interface="127.0.0.1",
    games=["tictactoe", "maze"], room_config={"connect_deadline": 1, "reconnect_grace": 1},
    one_shot=False,
)
print(" ".join(sorted(sys.modules)))
"""


# Before a worker's imports: plugin discovery as on a fresh or read-only install, with
# no plugin cache to read or write, so that it imports every plugin module.
NO_PLUGIN_CACHE = """
import errno, twisted.plugin
class NoCache:
    @staticmethod
    def load(f):
        raise EOFError("no plugin cache")
    @staticmethod
    def dumps(obj):
        raise OSError(errno.EROFS, "a read-only install")
twisted.plugin.pickle = NoCache
"""


async def worker_modules(*, cold: bool = False) -> set[str]:
    """The modules a worker process has imported once configured (`cold`: with no
    plugin cache)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SOURCE_ROOT, *sys.path]))
    program = (NO_PLUGIN_CACHE if cold else "") + WORKER_IMPORTS
    output = await getProcessOutput(sys.executable, ["-c", program], env=env)
    return set(output.decode().split())


# What a game-host worker never needs: the lobby's side, the web server, the operations
# endpoint, the authenticators and the TLS listeners.
NOT_IN_A_WORKER = ("vinom.lobby", "vinom.server.tap", "vinom.store", "vinom.client",
                   "vinom.server.ops", "vinom.matchmaking.memory", "prometheus_client",
                   "twisted.web", "vinom.accounts.oidc", "vinom.accounts.device",
                   "vinom.server.endpoints", "vinom.server.tls")  # fmt: skip


class WorkerProgram(TestCase):
    def assertNoneImported(self, modules: set[str], unwanted: tuple[str, ...]) -> None:
        for name in unwanted:
            self.assertFalse([m for m in modules if m == name or m.startswith(name + ".")], name)

    async def test_a_worker_imports_what_hosting_needs_and_not_the_lobby(self) -> None:
        modules = await worker_modules()
        self.assertIn("vinom.hosting.core", modules)
        self.assertIn("vinom.games.tictactoe", modules)
        self.assertNoneImported(modules, NOT_IN_A_WORKER)

    async def test_finding_the_games_imports_nothing_of_the_fleet(self) -> None:
        # With no plugin cache (a fresh or read-only install), finding the games imports
        # every plugin module, the fleet's too, which names its module and imports it
        # only when it is used.
        modules = await worker_modules(cold=True)
        self.assertIn("twisted.plugins.vinom_fleet", modules)
        self.assertIn("twisted.plugins.vinom_auth", modules)
        self.assertIn("vinom.games.tictactoe", modules)
        self.assertNoneImported(
            modules, ("vinom.fleet", "vinom.server.options", "vinom.cluster", *NOT_IN_A_WORKER)
        )


class ChildPerMatch(TestCase):
    timeout = 120

    async def test_four_matches_in_four_children(self) -> None:
        server = await start_server(self, "--matches", "per-match", ports=4)
        pids: dict[str, int | None] = {}
        reports = await play_matches(server, "tictactoe", 4, pids)
        self.assertEqual([r.outcome for r in reports], ["finished"] * 8)
        self.assertEqual(len(pids), 4)
        self.assertEqual(len(set(pids.values())), 4)
        self.assertNotIn(os.getpid(), set(pids.values()))
        await until(lambda: server.hosting.allocator.available == 4)
        # Each child exits once its match's host has stopped.
        await until(lambda: not any(alive(p) for p in pids.values() if p), timeout=15)
        self.assertEqual(processes(server).spawn_latency().count, 4)

    async def test_five_matches_on_two_ports_complete_in_turn(self) -> None:
        server = await start_server(self, "--matches", "per-match", "--process-pool", "1",
                                    ports=2)
        pids: dict[str, int | None] = {}
        reports = await play_matches(server, "tictactoe", 5, pids)
        self.assertEqual([r.outcome for r in reports], ["finished"] * 10)
        self.assertEqual(len(set(pids.values())), 5)
        await until(lambda: server.hosting.allocator.available == 2)
        placer = server.service("lobby").placer
        self.assertEqual(placer.matches_ended["finished", ""], 5)


class BrokenChildren(TestCase):
    """A game-host program that cannot start (a broken install) is retried with back-off."""

    timeout = 30

    def settings(self) -> WorkerSettings:
        return WorkerSettings(
            protocol=ProtocolConfig(token_key=bytes(32)), public_host="127.0.0.1",
            interface="127.0.0.1", game_names=("tictactoe",), room_config=RoomConfig(),
            executable="/bin/false",
        )

    async def test_workers_that_die_at_once_are_restarted_ever_more_slowly(self) -> None:
        pool = WorkerPool(self.settings(), 1, reactor, restart_delay=0.1)
        started = reactor.seconds()
        pool.startService()
        self.addCleanup(pool.stopService)
        # Restarted after 0.1, 0.2, 0.4, 0.8 and 1.6 s: the third restart is due 0.3 s
        # in at the earliest (later on a loaded machine, where each /bin/false takes
        # its time), and there are at most five in 1.6 s, not hundreds.
        await until(lambda: pool.workers()[0].restarts >= 3, timeout=10)
        self.assertGreaterEqual(reactor.seconds() - started, 0.1 + 0.2)
        await deferLater(reactor, max(0.0, 1.6 - (reactor.seconds() - started)), lambda: None)
        (status,) = pool.workers()
        self.assertLessEqual(status.restarts, 5)
        self.assertFalse(status.live)

    async def test_a_pool_of_children_that_die_at_once_backs_off(self) -> None:
        pool = ProcessPerMatch(self.settings(), 2, reactor, restart_delay=0.1)
        started = reactor.seconds()
        pool.startService()
        self.addCleanup(pool.stopService)
        # Two children, then two more after 0.1 s, two more 0.4 s later, and the next
        # two 1.6 s after that: at most eight in 1.6 s, not hundreds.
        await until(lambda: pool.children_started >= 4, timeout=10)
        self.assertGreaterEqual(reactor.seconds() - started, 0.1)
        await deferLater(reactor, max(0.0, 1.6 - (reactor.seconds() - started)), lambda: None)
        self.assertLessEqual(pool.children_started, 8)
        with self.assertRaises(WorkerGone):
            await pool.start_host(1)
