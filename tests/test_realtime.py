"""A real-time game on a real `twistd -n vinom` process: at most one state per tick per client.

The game is a plugin written only with vinom's public game API (`Game`,
`Outcome`, `IBot`), installed the way a user installs one: a module in a
`twisted/plugins/` directory on the server's path. Two bots play it through
the whole client stack (TLS lobby, connect token, UDP session), each acting
as soon as it sees its previous action applied, far faster than the game
ticks; what each client receives is counted.
"""

from __future__ import annotations

import os
import random
import sys
import textwrap
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.server.test_twistd import RUN_TWISTD, Collect
from tests.support.ports import free_tcp_port, free_udp_range
from vinom.client.bots import play_bot
from vinom.client.game import GameSession
from vinom.client.lobby import LobbyAddress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK_RATE = 20
TIME_LIMIT = 2.5  # the plugin game's

PLUGIN = textwrap.dedent(
    '''
    """A small real-time game: two dots moving at the velocity their players set."""

    import random

    from attrs import evolve, frozen
    from zope.interface import implementer

    from vinom.games.base import Game
    from vinom.games.interfaces import IBot, Outcome


    @frozen
    class Dots:
        players: tuple
        pos: tuple
        vel: tuple
        over: bool = False


    class DotsGame(Game):
        name = "rt-dots"
        description = "test: real-time dots"
        min_players = max_players = match_size = 2
        tick_rate = 20.0
        time_limit = 2.5
        countdown = 0.0
        action_rate = 100.0
        idle_timeout = 0.0
        offered_by_default = False

        def create(self, seats, options, rng):
            n = len(seats)
            return Dots(tuple(s.player_id for s in seats), (0.0,) * n, (0.0,) * n)

        def check_join(self, state, seat):
            return None

        def on_move(self, state, seat, action, rng):
            vel = list(state.vel)
            vel[seat.index] = float(action["move"])
            return Outcome(evolve(state, vel=tuple(vel)))

        def tick(self, state, dt, rng):
            pos = tuple(p + v * dt for p, v in zip(state.pos, state.vel))
            return Outcome(evolve(state, pos=pos))

        def time_up(self, state):
            return Outcome(evolve(state, over=True))

        def view(self, state, player_id):
            return {"pos": list(state.pos), "vel": list(state.vel)}

        def is_finished(self, state):
            return state.over

        def result(self, state):
            return {"winners": [], "reason": "time"}

        def make_bot(self, player_id, rng):
            return DotsBot(rng)


    @implementer(IBot)
    class DotsBot:
        def __init__(self, rng):
            self.rng = rng

        def choose_action(self, view):
            return {"move": self.rng.uniform(-5, 5)}


    dots = DotsGame()
    '''
)


class RealTimeServerTests(TestCase):
    timeout = 90

    async def start_twistd(self) -> tuple[int, str]:
        data_dir = os.path.abspath(self.mktemp())
        plugins = os.path.join(data_dir, "path", "twisted", "plugins")
        os.makedirs(plugins)
        with open(os.path.join(plugins, "rt_dots.py"), "w") as f:
            f.write(PLUGIN)
        port = free_tcp_port()
        udp = free_udp_range(2)
        process = Collect()
        env = dict(os.environ)
        path = [ROOT, os.path.join(data_dir, "path"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        transport = reactor.spawnProcess(
            process, sys.executable,
            [
                sys.executable, "-c", RUN_TWISTD, "-n", "--pidfile=", "vinom",
                "--lobby", f"ssl:{port}:interface=127.0.0.1",
                "--udp-ports", f"{udp}-{udp + 1}", "--udp-interface", "127.0.0.1",
                "--public-host", "127.0.0.1", "--data-dir", data_dir, "--ops-port", "none",
                "--websocket", "none", "--games", "rt-dots", "--drain-timeout", "0",
            ],
            env=env, path=data_dir,
        )  # fmt: skip

        async def stop() -> None:
            if not process.ended.called:
                transport.signalProcess("KILL")
            await process.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        waited = 0.0
        while b"starting on" not in process.output:
            output = process.output.decode(errors="replace")
            self.assertFalse(process.ended.called, output)
            self.assertLess(waited, 30.0, output)
            await _sleep(0.05)
            waited += 0.05
        return port, os.path.join(data_dir, "dev-cert.pem")

    async def test_each_client_gets_at_most_one_state_per_tick(self) -> None:
        port, cert = await self.start_twistd()
        lobby = LobbyAddress("127.0.0.1", port, cert)
        seen: list[list[tuple[float, dict[str, Any]]]] = []
        sessions: list[GameSession] = []

        def count(session: GameSession) -> None:
            states: list[tuple[float, dict[str, Any]]] = []
            seen.append(states)
            sessions.append(session)
            inner = session.on_state

            def on_state(message: dict[str, Any]) -> None:
                if message["p"] == "playing":
                    states.append((reactor.seconds(), message))
                if inner is not None:
                    inner(message)

            session.on_state = on_state

        game = _PlayedGame()
        reports = await gatherResults(
            [
                Deferred.fromCoroutine(
                    play_bot(reactor, lobby, game, f"b{n}", rng=random.Random(n), on_session=count)
                )
                for n in range(2)
            ]
        )
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"], reports)
        for report in reports:
            # The bots acted far more often than the game ticks...
            self.assertGreater(report.actions_sent, 10)
        for states in seen:
            # ...yet each client got at most one state per tick: tick numbers never
            # repeat, and over the match no more than the tick rate per second.
            self.assertGreater(len(states), 20)
            # The match plays for its time limit: at most one state per tick in
            # it, and the one that opened play...
            self.assertLessEqual(len(states), TICK_RATE * TIME_LIMIT + 1)
            # ...and exactly, by the server's tick numbers and times.
            ticks = [m["k"] for _, m in states]
            self.assertEqual(ticks, sorted(set(ticks)))
            span = (states[-1][1]["ts"] - states[0][1]["ts"]) / 1000.0
            self.assertLessEqual(len(states), TICK_RATE * span + 1)
            # Every state is built after a tick: its time is on the tick grid.
            times = [m["ts"] for _, m in states]
            self.assertEqual(times, sorted(set(times)))
        # The welcome told each client the game's step and its rate of states.
        for session in sessions:
            self.assertEqual((session.tick_rate, session.snapshot_rate), (TICK_RATE, TICK_RATE))


class _PlayedGame:
    """What `play_bot` needs of the game it queues for: its name and a bot."""

    name = "rt-dots"

    def make_bot(self, player_id: str, rng: random.Random) -> Any:
        return _Bot(rng)


class _Bot:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose_action(self, view: Any) -> dict[str, Any]:
        return {"move": self.rng.uniform(-5, 5)}


def _sleep(seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)
