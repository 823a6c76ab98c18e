"""A real-time game on a real `twistd -n vinom` process: at most one state per tick per client.

The game is a plugin written only with vinom's public game API (`Game`,
`Outcome`, `IBot`), installed the way a user installs one: a module in a
`twisted/plugins/` directory on the server's path. Two bots play it through
the whole client stack (TLS lobby, connect token, UDP session), each acting
as soon as it sees its previous action applied, far faster than the game
ticks; what each client receives is counted.
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import random
import textwrap
from typing import Any

import msgpack
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase

from tests.support.servers import start_twistd
from tests.support.waiting import until
from vinom.client.bots import play_bot
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession
from vinom.client.lobby import LobbyAddress
from vinom.client.udp import GameClientProtocol
from vinom.protocol.tokens import PublicToken
from vinom.rooms.message_reading import decode_server_message

INPUT_PLUGIN = textwrap.dedent(
    '''
    """Real-time inputs: each player's applied input numbers are in their view."""

    from attrs import evolve, frozen

    from vinom.games.base import Game
    from vinom.games.interfaces import Outcome


    @frozen
    class Track:
        players: tuple
        pos: tuple
        vel: tuple
        got: tuple
        over: bool = False


    class InputGame(Game):
        name = "rt-inputs"
        description = "test: real-time inputs"
        min_players = max_players = match_size = 2
        tick_rate = 20.0
        time_limit = 3.0
        countdown = 0.0
        action_rate = 0.0
        idle_timeout = 0.0
        offered_by_default = False
        quantisation = {"pos.*": 0.01, "vel.*": 0.1}

        def create(self, seats, options, rng):
            n = len(seats)
            return Track(tuple(s.player_id for s in seats), (0.0,) * n, (0.0,) * n, ((),) * n)

        def check_join(self, state, seat):
            return None

        def on_move(self, state, seat, action, rng):
            i = seat.index
            got = list(state.got)
            got[i] = got[i] + (action["n"],)
            vel = list(state.vel)
            vel[i] = float(action["move"])
            return Outcome(evolve(state, got=tuple(got), vel=tuple(vel)))

        def tick(self, state, dt, rng):
            pos = tuple(p + v * dt for p, v in zip(state.pos, state.vel))
            return Outcome(evolve(state, pos=pos))

        def time_up(self, state):
            return Outcome(evolve(state, over=True))

        def view(self, state, player_id):
            me = state.players.index(player_id)
            return {"pos": list(state.pos), "vel": list(state.vel), "got": list(state.got[me])}

        def is_finished(self, state):
            return state.over

        def result(self, state):
            return {"winners": [], "reason": "time"}


    inputs = InputGame()
    '''
)
LOSS = 0.1


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

    async def start_twistd(
        self, plugin: str = PLUGIN, game: str = "rt-dots", *more: str
    ) -> tuple[int, str]:
        server = await start_twistd(
            self, {"twisted/plugins/rt_test_game.py": plugin}, "--games", game, *more
        )
        assert server.lobby_port is not None
        return server.lobby_port, server.cert

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


    async def test_inputs_and_delta_states_through_a_lossy_link(self) -> None:
        """Two players send an input per state through a link losing 10% of the
        datagrams each way: no input is lost or applied twice, every state is
        the server's (checksums), they keep coming, and they cost far fewer
        bytes than the view they rebuild."""
        port, cert = await self.start_twistd(
            INPUT_PLUGIN, "rt-inputs", "--snapshot-checksums"
        )
        lobby = LobbyAddress("127.0.0.1", port, cert)
        players = await gatherResults(
            [Deferred.fromCoroutine(_lossy_player(lobby, f"p{n}", n)) for n in range(2)]
        )
        for player in players:
            session = player.session
            await session.finished
            # The final state follows the final phase, reliably.
            await until(lambda s=session: s.state is not None and s.state["p"] == "finished")
            self.assertEqual(session.result, {"winners": [], "reason": "time"})
            # Inputs: the game applied exactly what was sent, once each, in order;
            # only the last few (sent as the match ended) may be missing.
            assert session.view is not None
            got = session.view["got"]
            self.assertEqual(got, player.sent[: len(got)])
            self.assertGreater(len(got), 30)
            self.assertGreaterEqual(len(got), len(player.sent) - 4)
            # The link lost datagrams both ways, and the redundant copies made up for it.
            self.assertGreater(player.proxy.dropped, 3)
            # Every snapshot came with its checksum, and none failed it.
            self.assertTrue(player.snaps)
            self.assertTrue(all(msgpack.unpackb(d)[2] is not None for d in player.snaps))
            drops = session.snap_drops
            self.assertEqual((drops.get("checksum", 0), drops.get("corrupt", 0)), (0, 0), drops)
            # States keep coming at the snapshot rate, less what the link lost.
            states = player.states
            span = (states[-1]["ts"] - states[0]["ts"]) / 1000.0
            self.assertGreater(span, 2.0)
            self.assertGreater(len(states), 0.75 * TICK_RATE * span)
            # No ack-only datagrams: the host's acks ride on its snaps, the client's
            # on its inputs (one a state here), so each way carries about one
            # datagram a tick (the handshake, welcome, phases and the end aside).
            self.assertLess(player.proxy.from_host, TICK_RATE * span + 20,
                            (player.proxy.from_host, span))  # fmt: skip
            self.assertLess(player.proxy.from_client, TICK_RATE * span + 20,
                            (player.proxy.from_client, span))  # fmt: skip
            # Most are deltas, far smaller than the view they rebuild: compared tick
            # for tick over the second half of play (the view grows by an input a
            # tick, a delta does not: over the whole match the two averages came
            # within 0.2% of the half, run 69).
            deltas = [d for d in player.snaps if msgpack.unpackb(d)[1] is not None]
            self.assertGreater(len(deltas), len(player.snaps) / 2)
            full_at = {m["k"]: len(msgpack.packb(m["s"])) for m in states}
            pairs = [(len(d), full_at[tick]) for d in deltas
                     if (tick := msgpack.unpackb(d)[0]) in full_at]  # fmt: skip
            late = pairs[len(pairs) // 2 :]
            self.assertGreater(len(late), 10)
            delta_bytes, full_bytes = sum(a for a, _ in late), sum(b for _, b in late)
            self.assertLess(delta_bytes, full_bytes / 2, (delta_bytes, full_bytes))


class _LossyLink(DatagramProtocol):
    """A UDP proxy between one client and the host that drops a share of the
    datagrams each way (deterministic: its own seeded generator)."""

    def __init__(self, host: tuple[str, int], loss: float, seed: int) -> None:
        self.host = host
        self.loss = loss
        self.rng = random.Random(seed)
        self.client: Any = None
        self.dropped = 0
        # Datagrams each way, lost or not.
        self.from_host = 0
        self.from_client = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        to = self.client if addr == self.host else self.host
        if addr != self.host:
            self.client = addr
            self.from_client += 1
        else:
            self.from_host += 1
        if to is None:
            return
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.transport.write(data, to)


class _LossyPlayer:
    def __init__(self, session: GameSession, proxy: _LossyLink) -> None:
        self.session = session
        self.proxy = proxy
        self.sent: list[int] = []
        self.snaps: list[bytes] = []
        self.states: list[dict[str, Any]] = []


async def _lossy_player(lobby: LobbyAddress, name: str, seed: int) -> _LossyPlayer:
    """Queue, then play through a `_LossyLink`: one input (numbered) per state."""
    found = await LobbyPlayer(reactor, lobby, name).find_match("rt-inputs")
    host = found.token["hosts"][0]
    proxy = _LossyLink((host["host"], host["port"]), LOSS, seed)
    proxy_port = reactor.listenUDP(0, proxy, interface="127.0.0.1")
    session = GameSession()
    player = _LossyPlayer(session, proxy)
    rng = random.Random(seed)

    def on_message(channel: int, data: bytes) -> None:
        message = decode_server_message(data)
        if message is not None and message["t"] == "snap":
            player.snaps.append(message["d"])
        session.message_received(channel, data)

    def on_state(message: dict[str, Any]) -> None:
        if message["p"] != "playing" or "got" not in message["s"]:
            return
        player.states.append(message)
        n = len(player.sent) + 1
        player.sent.append(n)
        session.send_input({"move": round(rng.uniform(-5, 5), 1), "n": n})

    session.on_state = on_state
    protocol = GameClientProtocol(
        reactor,
        PublicToken.from_json(found.token),
        addresses=[("127.0.0.1", proxy_port.getHost().port)],
        on_message=on_message,
    )
    reactor.listenUDP(0, protocol, interface="127.0.0.1")
    session.protocol = await protocol.connected
    session.finished.addBoth(lambda result: (proxy_port.stopListening(), result)[1])
    session.finished.addBoth(lambda result: (protocol.disconnect(), result)[1])
    return player


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

