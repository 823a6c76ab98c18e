"""A snapshot byte budget from where a player stands: a game with a
`SnapshotBudget`, installed as a plugin on a real `twistd -n vinom` process,
played by two `GameSession`s over UDP through proxies that delay each datagram
75 ms each way. The game's 64 walkers circle the plane, rows of its view
schema; each player is one of them, and its view holds all 64. Every snap a
client receives carries a snapshot within the budget, and the walkers near the
player are, in every view it rebuilds, where the game has them at that tick, the
others sent at most `max_wait` snapshots apart and, while they wait, carried on
(drawn nearer where they are than where they were last sent); the host counts
the entities sent and deferred on its /metrics.
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import math
import textwrap
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port
from tests.support.servers import start_twistd
from tests.support.waiting import until
from tests.test_netcode_play import DelayLink
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession
from vinom.client.lobby import LobbyAddress
from vinom.client.udp import GameClientProtocol
from vinom.games.rules import DEFAULT_MAX_WAIT
from vinom.protocol.tokens import PublicToken
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.schema_frames import SCHEMA_FORMAT, parse_frame

BUDGET, SMALL, NEAR, RATE, WALKERS = 200, 64, 150.0, 20, 64
PLUGIN = textwrap.dedent(
    f'''
    """64 walkers circling; each player is one of them and sees them all."""

    import math
    import random

    from attrs import evolve, frozen

    from vinom.games import Game, Outcome, SnapshotBudget


    def place(orbit, tick):
        cx, cy, r, w, phase = orbit
        angle = phase + w * tick / {RATE}
        return [round(cx + r * math.cos(angle), 2), round(cy + r * math.sin(angle), 2)]


    def nearest_row(view, key):
        rows = {{row[0]: row[1:] for row in view["walkers"]}}
        d = math.dist(rows[view["me"]], rows[key])
        return math.inf if d <= {NEAR} else 1 / (1 + d)


    @frozen
    class Plane:
        players: tuple
        ticks: int = 0
        over: bool = False


    ORBITS = {{f"w{{n:02d}}": (rng.uniform(0, 1000), rng.uniform(0, 1000), rng.uniform(20, 80),
               rng.choice((-1, 1)) * rng.uniform(0.5, 1.5), rng.uniform(0, 6.3))
              for rng in [random.Random(3)] for n in range({WALKERS})}}


    class Walkers(Game):
        name = "walkers"
        min_players = max_players = match_size = 2
        tick_rate = {RATE}
        time_limit = 60.0
        idle_timeout = 0.0
        offered_by_default = False
        view_schema = [
            ["me", ["int", 0, {WALKERS - 1}]],
            ["walkers", ["rows", [["int", 0, {WALKERS - 1}], ["fixed", -100, 1100, 0.01],
                                  ["fixed", -100, 1100, 0.01]]]],
        ]
        snapshot_budget = SnapshotBudget({BUDGET}, "walkers", nearest_row)

        def create(self, seats, options, rng):
            return Plane(tuple(s.player_id for s in seats))

        def tick(self, state, dt, rng):
            return Outcome(evolve(state, ticks=state.ticks + 1))

        def time_up(self, state):
            return Outcome(evolve(state, over=True))

        def is_finished(self, state):
            return state.over

        def result(self, state):
            return {{"winners": [], "reason": "time"}}

        def view(self, state, player_id):
            return {{"me": state.players.index(player_id),
                    "walkers": [[n, *place(o, state.ticks)]
                                for n, o in enumerate(ORBITS.values())]}}


    walkers = Walkers()


    class Crowd(Walkers):
        """The walkers under a budget far below what their changes take."""

        name = "crowd"
        snapshot_budget = SnapshotBudget({SMALL}, "walkers", nearest_row)


    crowd = Crowd()
    '''
)


class Player:
    def __init__(self) -> None:
        self.session = GameSession()
        self.sizes: list[int] = []
        self.waits = 0  # snapshots that said some walkers wait
        # (tick, the view as shown) of every snapshot applied.
        self.views: list[tuple[int, dict[str, Any]]] = []
        # The snapshots the receiver had dropped by each view (a loaded host's two sent
        # close together and reordered by the link's jitter: the older is stale).
        self.drops: list[int] = []


async def join(lobby: LobbyAddress, game: str, name: str, seed: int) -> Player:
    found = await LobbyPlayer(reactor, lobby, name).find_match(game)
    host = found.token["hosts"][0]
    link = DelayLink((host["host"], host["port"]), seed, 0.075, 0.005, 0.0)
    proxy = reactor.listenUDP(0, link, interface="127.0.0.1")
    player = Player()
    session = player.session

    def on_message(channel: int, data: bytes) -> None:
        receiver = session.snapshots
        held = None if receiver is None else receiver.newest
        session.message_received(channel, data)
        message = decode_server_message(data)
        if message is not None and message["t"] == "snap":
            player.sizes.append(len(message["d"]))
            assert message["d"][:1] == bytes((SCHEMA_FORMAT,))
            player.waits += parse_frame(message["d"])[4]
            # Every snapshot the receiver applied, as it shows it (the session's state
            # skips one whose version a reliable state passed); none before the welcome.
            receiver = session.snapshots
            if receiver is not None and receiver.newest is not None and receiver.newest != held:
                player.views.append((receiver.newest, receiver.views[receiver.newest]))
                player.drops.append(sum(receiver.drops.values()))

    protocol = GameClientProtocol(
        reactor, PublicToken.from_json(found.token),
        addresses=[("127.0.0.1", proxy.getHost().port)], on_message=on_message,
    )  # fmt: skip
    reactor.listenUDP(0, protocol, interface="127.0.0.1")
    session.protocol = await protocol.connected

    async def stop() -> None:
        await protocol.disconnect()
        for call in link.pending:
            call.cancel()
        await proxy.stopListening()

    player.stop = stop  # type: ignore[attr-defined]
    return player


class SnapshotBudgetOnRealSocketsTests(TestCase):
    timeout = 120

    async def play(self, game: str) -> tuple[list[Player], dict[str, float]]:
        """Two players of `game` on a real server for 3 s of snaps: the players, and
        the server's entity counts by outcome."""
        ops = free_tcp_port()
        server = await start_twistd(self, {"twisted/plugins/walkers_games.py": PLUGIN},
                                    "--games", game,
                                    "--ops-port", f"tcp:{ops}:interface=127.0.0.1")  # fmt: skip
        players = await gatherResults(
            [Deferred.fromCoroutine(join(server.lobby, game, f"p{n}", n)) for n in range(2)]
        )
        for player in players:
            self.addCleanup(lambda p=player: Deferred.fromCoroutine(p.stop()))
        await until(lambda: all(len(p.views) >= 3 * RATE for p in players),
                    lambda: f"3 s of snaps: {[len(p.views) for p in players]}",
                    timeout=60)  # fmt: skip
        counted = samples(await fetch_metrics(ops), "vinom_snapshot_entities_total", "outcome")
        return players, counted

    def stalest(self, player: Player) -> int:
        """The most snaps in a row any walker's place in `player`'s views was not the
        game's (counted in snaps: a loaded host may run two ticks before one);
        each walker within NEAR is, in every view, where the game has it; a walker
        that waits is drawn carried on: nearer where the game has it than where it
        was last current, by a tenth of that distance at least (a frozen row is that
        far; carrying a circle on from samples 10 ticks apart errs by at most 0.69 of
        it, 12 ticks apart 0.83, by a simulation of `carry_waiting`)."""
        namespace: dict[str, Any] = {}
        exec(PLUGIN, namespace)
        orbits, place = namespace["ORBITS"], namespace["place"]
        numbers = list(orbits)
        me = numbers[player.session.welcome["seat"]]  # type: ignore[index]
        near = waited = stalest = 0
        # When each walker was last current: the view's number, the drops and skipped
        # ticks by then, and where it was.
        current: dict[str, tuple[int, int, list[float]]] = {}
        skipped, last_tick = 0, None
        for count, ((tick, view), dropped) in enumerate(zip(player.views, player.drops,
                                                            strict=True)):  # fmt: skip
            # A tick with no snap seen: the host ran ticks together, or replaced a snap
            # still queued unsent with the next (docs/protocol.md §13.1, channel 0).
            if last_tick is not None:
                skipped += tick - last_tick - 1
            last_tick = tick
            drops = dropped + skipped
            truth = {k: place(o, tick) for k, o in orbits.items()}
            walkers = {numbers[int(row[0])]: row[1:] for row in view["walkers"]}
            for key, where in truth.items():
                drawn = walkers.get(key)
                if math.dist(truth[me], where) <= NEAR:
                    self.assertEqual(drawn, where, (key, tick))
                    near += 1
                if drawn == where:
                    current[key] = (count, drops, where)
                else:
                    waited += 1
                    if drawn is not None and key in current:
                        frozen = math.dist(current[key][2], where)
                        carried = math.dist(drawn, where)
                        self.assertLessEqual(carried, 0.9 * frozen + 0.02, (key, tick))
                    # A snap the session dropped, or never got, since may be the one
                    # that had it current: the host's bound is on the snaps it sent.
                    if key in current and current[key][1] == drops:
                        stalest = max(stalest, count - current[key][0])
        self.assertGreater(near, len(player.views))  # itself, and its neighbours
        self.assertGreater(waited, 0)  # the others took turns
        self.assertGreater(stalest, 0, "no wait was measured")
        return stalest

    async def test_each_snap_within_the_budget_the_nearest_walkers_current(self) -> None:
        """Bit-packed snapshots within a budget their 64 changes exceed (about 260
        bytes), the nearest current, none waiting past `max_wait`, the others
        carried on while they wait."""
        players, counted = await self.play("walkers")
        for player in players:
            self.assertEqual(player.session.welcome["vs"][1][0], "walkers")  # type: ignore[index]
            self.assertLessEqual(max(player.sizes), BUDGET)
            self.assertGreater(player.waits, RATE)
            self.assertLessEqual(self.stalest(player), DEFAULT_MAX_WAIT, player.session.snap_drops)
        # Counted for the operator.
        self.assertGreater(counted.get("sent", 0), 0, counted)
        self.assertGreater(counted.get("deferred", 0), 0, counted)

    async def test_a_budget_below_the_changes_keeps_no_walker_behind_past_max_wait(
        self,
    ) -> None:
        """64 bytes carry a few of the 64 walkers a snap: none waits more than
        `max_wait` snaps in a row, the overdue ones sent past the budget, counted."""
        players, counted = await self.play("crowd")
        for player in players:
            self.assertLessEqual(self.stalest(player), DEFAULT_MAX_WAIT, player.session.snap_drops)
            self.assertGreater(max(player.sizes), SMALL)
        self.assertGreater(counted.get("overdue", 0), 0, counted)
