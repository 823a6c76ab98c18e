"""A real-time game's byte budget per snapshot (vinom.rooms.budget), in a room of 64.

The game is written with the public API only: 64 players circling on a plane,
each one's view every player's position, keyed by id; its `SnapshotBudget` rates
a player within `NEAR` of the viewer `math.inf` (never waits) and the others by
nearness. Every client acknowledges what it applied three ticks late (a 150 ms
round trip at 20 Hz), and decodes its snaps as a client does
(`RecordingOutbox`: a `SnapshotReceiver` per session, checksums verified).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, make_match
from tests.rooms.test_rooms_snapshots import ClockHost
from vinom.games import Game, Outcome, Seat, SnapshotBudget
from vinom.games.registry import check_game
from vinom.games.rules import DEFAULT_MAX_WAIT, MIN_SNAPSHOT_BUDGET
from vinom.rooms.budget import PriorityQueue
from vinom.rooms.delta import Quantisation
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import Phase
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.schema import SCHEMA_FORMAT

PLAYERS = 64
BUDGET = 400
NEAR = 150.0
RATE = 20
ACK_LAG = 3  # ticks between a snap and its acknowledgement
QUANTISATION = {"players.*.*": 0.01}


@frozen
class Circles:
    players: tuple[str, ...]
    # Each player's centre, radius, angular speed and phase.
    orbits: tuple[tuple[float, float, float, float, float], ...]
    ticks: int = 0
    finished: bool = False


def position(orbit: tuple[float, float, float, float, float], tick: int) -> list[float]:
    cx, cy, r, w, phase = orbit
    angle = phase + w * tick / RATE
    return [round(cx + r * math.cos(angle), 2), round(cy + r * math.sin(angle), 2)]


def near_or_far(view: Mapping[str, Any], key: str) -> float:
    """The viewer itself and anyone within NEAR: never waits; the others by nearness."""
    me = view["players"][view["me"]]
    them = view["players"][key]
    distance = math.dist(me, them)
    return math.inf if distance <= NEAR else 1.0 / (1.0 + distance)


class CirclesGame(Game[Circles]):
    name = "circles"
    min_players = max_players = match_size = PLAYERS
    tick_rate = RATE
    time_limit = 600.0
    idle_timeout = 0.0
    quantisation = QUANTISATION

    def __init__(self, budget: int | None = BUDGET,
                 max_wait: int | None = DEFAULT_MAX_WAIT) -> None:  # fmt: skip
        super().__init__()
        if budget is not None:
            self.snapshot_budget = SnapshotBudget(budget, "players", near_or_far, max_wait)

    def create(self, seats: Sequence[Seat], options: Any, rng: random.Random) -> Circles:
        orbits = tuple(
            (rng.uniform(0, 1000), rng.uniform(0, 1000), rng.uniform(20, 80),
             rng.choice((-1, 1)) * rng.uniform(0.5, 1.5), rng.uniform(0, 6.3))
            for _ in seats
        )  # fmt: skip
        return Circles(tuple(s.player_id for s in seats), orbits)

    def tick(self, state: Circles, dt: float, rng: random.Random) -> Outcome:
        return Outcome(Circles(state.players, state.orbits, state.ticks + 1))

    def view(self, state: Circles, player_id: str | None) -> Mapping[str, Any]:
        places = zip(state.players, state.orbits, strict=True)
        return {"me": player_id, "players": {p: position(o, state.ticks) for p, o in places}}

    def is_finished(self, state: Circles) -> bool:
        return state.finished

    def result(self, state: Circles) -> Mapping[str, Any]:
        return {"winners": [], "reason": "time"}


class SchemaCircles(CirclesGame):
    """The same plane with a view schema: the players are rows ``[seat, x, y]`` and the
    budget's entities those rows, each known by its seat."""

    view_schema = [
        ["me", ["int", 0, PLAYERS - 1]],
        ["players", ["rows", [["int", 0, PLAYERS - 1], ["fixed", -100, 1100, 0.01],
                              ["fixed", -100, 1100, 0.01]]]],
    ]  # fmt: skip

    def __init__(self, budget: int | None = BUDGET,
                 max_wait: int | None = DEFAULT_MAX_WAIT) -> None:  # fmt: skip
        super().__init__(None)
        if budget is not None:
            self.snapshot_budget = SnapshotBudget(budget, "players", self.near_or_far, max_wait)
        self._rows: tuple[Any, dict[int, list[float]]] = (None, {})

    def view(self, state: Circles, player_id: str | None) -> Mapping[str, Any]:
        places = enumerate(state.orbits)
        return {"me": state.players.index(player_id) if player_id else 0,
                "players": [[n, *position(o, state.ticks)] for n, o in places]}  # fmt: skip

    def near_or_far(self, view: Mapping[str, Any], key: int) -> float:
        """As `near_or_far`, a row known by its seat (the rows of the last view, kept)."""
        if self._rows[0] is not view:
            self._rows = (view, {row[0]: row[1:] for row in view["players"]})
        rows = self._rows[1]
        distance = math.dist(rows[view["me"]], rows[key])
        return math.inf if distance <= NEAR else 1.0 / (1.0 + distance)


def play(
    game: CirclesGame, ticks: int
) -> tuple[Room, RecordingOutbox, dict[int, str]]:
    """A room of 64 playing `ticks` ticks, each client acknowledging ACK_LAG ticks late."""
    host, sender = ClockHost(), RecordingOutbox()
    players = [f"p{n:02d}" for n in range(PLAYERS)]
    room = Room(match=make_match(players=players, game=game.name), game=game, outbox=sender,
                timers=host.timers, config=RoomConfig(snapshot_checksums=True),
                rng=random.Random(5))  # fmt: skip
    now = host.clock.seconds
    room.start(now())
    sessions = {100 + n: p for n, p in enumerate(players)}
    for session, player in sessions.items():
        assert room.player_connected(player, session, now())
    assert room.phase is Phase.PLAYING, room.phase
    host.rearm()
    seen = 0
    for _ in range(ticks):
        host.advance(1 / RATE)
        for session, _ in sender.snaps[seen:]:
            tick = sender.receivers[session].newest
            if tick is not None and tick > ACK_LAG:
                room.handle_inputs(sessions[session], tick - ACK_LAG, (), now())
        seen = len(sender.snaps)
    return room, sender, sessions


class SnapshotBudgetTests(SynchronousTestCase):
    def test_64_players_each_within_the_budget_the_nearest_never_deferred(self) -> None:
        game = CirclesGame()
        room, sender, sessions = play(game, 3 * RATE)
        quantise = Quantisation(QUANTISATION).quantise
        orbits = dict(zip(room.state.players, room.state.orbits, strict=True))
        # When each client last had each player where the game had it.
        current: dict[tuple[int, str], int] = {}
        stalest, near_checked = 0, 0
        self.assertGreater(len(sender.snaps), PLAYERS * 2 * RATE)
        for session, _, message in sender.sent:
            if "snap" not in message:
                continue
            # Within the budget: the snapshot, each snap, each client.
            snap = decode_server_message(message["snap"])
            assert snap is not None
            self.assertLessEqual(len(snap["d"]), BUDGET)
            tick, drawn = message["k"], message["s"]["players"]
            truth = quantise({p: position(o, tick) for p, o in orbits.items()})
            me = truth[sessions[session]]
            for player, where in truth.items():
                if drawn.get(player) == where:
                    current[session, player] = tick
                if math.dist(me, where) <= NEAR:
                    # The nearest: never deferred, as the game has them at this tick.
                    self.assertEqual(drawn.get(player), where, (session, player, tick))
                    near_checked += 1
                elif tick > RATE:
                    # The others wait, but not for ever.
                    stalest = max(stalest, tick - current.get((session, player), 0))
        self.assertGreater(near_checked, PLAYERS * 3 * RATE)
        self.assertLess(stalest, RATE // 2)
        # Counted: the changed players sent, and each snap's waits.
        self.assertGreater(room.entity_counts["sent"], PLAYERS * 3 * RATE)
        self.assertGreater(room.entity_counts["deferred"], PLAYERS * 3 * RATE)

    def test_a_budget_below_the_changes_holds_no_entity_longer_than_max_wait(self) -> None:
        """64 bytes cannot carry 63 moving players: without `max_wait` a far one stays
        where the client last had it for seconds, then jumps; with the default
        bound none is behind the game by more than `DEFAULT_MAX_WAIT` snaps, the
        overdue ones sent past the budget and counted."""
        def stalest(game: CirclesGame) -> tuple[int, Room, list[int]]:
            room, sender, _ = play(game, 3 * RATE)
            quantise = Quantisation(QUANTISATION).quantise
            orbits = dict(zip(room.state.players, room.state.orbits, strict=True))
            current: dict[tuple[int, str], int] = {}
            worst, sizes = 0, []
            for session, _, message in sender.sent:
                if "snap" not in message:
                    continue
                tick, drawn = message["k"], message["s"]["players"]
                sizes.append(len(message["snap"]))
                for player, where in quantise(
                        {p: position(o, tick) for p, o in orbits.items()}).items():  # fmt: skip
                    if drawn.get(player) == where:
                        current[session, player] = tick
                    elif tick > RATE:
                        worst = max(worst, tick - current.get((session, player), 0))
            return worst, room, sizes

        unbounded, room, sizes = stalest(CirclesGame(MIN_SNAPSHOT_BUDGET, max_wait=None))
        self.assertGreater(unbounded, 5 * DEFAULT_MAX_WAIT)
        self.assertNotIn("overdue", room.entity_counts)
        bounded, room, bounded_sizes = stalest(CirclesGame(MIN_SNAPSHOT_BUDGET))
        self.assertLessEqual(bounded, DEFAULT_MAX_WAIT)
        self.assertGreater(room.entity_counts["overdue"], PLAYERS * RATE)
        # The price: the overdue ones' bytes, past the budget.
        self.assertGreater(max(bounded_sizes), 2 * max(sizes))

    def test_a_schema_view_gets_the_budget_and_carries_more_in_it(self) -> None:
        """A view schema and a budget compose: the rows of `entities` wait by priority
        as the map's entries do, every schema snapshot within the budget and the
        nearest current; bit-packed, the same 160 bytes carry more than twice the
        changes msgpack's do."""
        def run(game: CirclesGame) -> tuple[Room, list[int]]:
            room, sender, sessions = play(game, 3 * RATE)
            rows = isinstance(game, SchemaCircles)
            sizes = []
            for session, _, message in sender.sent:
                if "snap" not in message:
                    continue
                data = decode_server_message(message["snap"])
                assert data is not None
                self.assertEqual(data["d"][0] == SCHEMA_FORMAT, rows)
                sizes.append(len(data["d"]))
                players = {row[0]: row[1:] for row in message["s"]["players"]} if rows \
                    else {int(k[1:]): v for k, v in message["s"]["players"].items()}
                me = players[int(sessions[session][1:])]
                tick = message["k"]
                for n, orbit in enumerate(room.state.orbits):
                    where = position(orbit, tick)
                    if math.dist(me, where) <= NEAR:
                        self.assertEqual(players.get(n), where, (session, n, tick))
            return room, sizes

        schema_room, schema_sizes = run(SchemaCircles(160, max_wait=None))
        self.assertGreater(len(schema_sizes), PLAYERS * 2 * RATE)
        self.assertLessEqual(max(schema_sizes), 160)
        plain_room, _ = run(CirclesGame(160, max_wait=None))
        def waits(room: Room) -> float:
            counts = room.entity_counts
            return counts["deferred"] / (counts["sent"] + counts["deferred"])

        # Measured: 122,795 sent against 37,268; 46% of the changes wait against 85%.
        self.assertGreater(schema_room.entity_counts["sent"],
                           2 * plain_room.entity_counts["sent"])  # fmt: skip
        self.assertLess(waits(schema_room), 0.7 * waits(plain_room))

    def test_without_a_budget_the_same_room_sends_more(self) -> None:
        """The budget is what holds the snaps down: the same room without one sends
        snapshots of more than twice as many bytes."""
        _, sender, _ = play(CirclesGame(budget=None), RATE)
        sizes = [len(m["d"]) for _, m in sender.snaps[PLAYERS * 5:]]
        self.assertGreater(min(sizes), 2 * BUDGET)


class PriorityQueueTests(SynchronousTestCase):
    def test_a_budget_is_at_least_64_whole_bytes(self) -> None:
        # Refused with the game that declares it, both named; a room checks its game.
        for bad in (63, 100.0, True, "400"):
            with self.subTest(budget=bad):
                e = self.assertRaises(ValueError, check_game, CirclesGame(bad))  # type: ignore[arg-type]
                self.assertEqual(str(e), (
                    "game 'circles': snapshot_budget must be whole bytes, at least 64 (room "
                    f"for an entity past a snap's header), not {bad!r}"
                ))  # fmt: skip
                self.assertRaises(ValueError, self.room_of, CirclesGame(bad))  # type: ignore[arg-type]
        check_game(CirclesGame(MIN_SNAPSHOT_BUDGET))
        self.assertEqual((MIN_SNAPSHOT_BUDGET, SnapshotBudget(64).entities), (64, "entities"))
        for bad in (0, 2.0, True, "4"):
            with self.subTest(max_wait=bad):
                e = self.assertRaises(ValueError, check_game, CirclesGame(max_wait=bad))  # type: ignore[arg-type]
                self.assertEqual(str(e), (
                    "game 'circles': snapshot_budget's max_wait must be None or whole "
                    f"snapshots, at least 1, not {bad!r}"
                ))  # fmt: skip
        check_game(CirclesGame(max_wait=1))
        self.assertEqual(SnapshotBudget(64).max_wait, DEFAULT_MAX_WAIT)
        doc = (Path(__file__).resolve().parents[2] / "docs" / "games.md").read_text("utf-8")
        words = " ".join(doc.split())
        self.assertIn(
            f'`SnapshotBudget(bytes, entities="entities", priority, max_wait={DEFAULT_MAX_WAIT})`',
            doc)  # fmt: skip
        self.assertIn(f"`bytes` is at least {MIN_SNAPSHOT_BUDGET}", words)
        self.assertIn(f"(default {DEFAULT_MAX_WAIT}, `DEFAULT_MAX_WAIT`;", words)

    def room_of(self, game: CirclesGame) -> Room:
        return Room(match=make_match(players=["p-0", "p-1"], game=game.name), game=game,
                    outbox=RecordingOutbox(), timers=ClockHost().timers)  # fmt: skip

    def test_a_view_without_the_entity_map_is_sent_as_it_is(self) -> None:
        queue = PriorityQueue(SnapshotBudget(64, "players"))
        prepared = Quantisation().prepare({"me": 1, "others": list(range(100))})
        self.assertIs(queue.fit({"me": 1}, prepared, None, 8, Quantisation(), False), prepared)
