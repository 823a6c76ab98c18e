"""A real-time game's byte budget per snapshot (vinom.rooms.budget), in a room of 64.

The game is written with the public API only: 64 players circling on a plane,
each one's view every player's position, rows ``[seat, x, y]`` of its view
schema; its `SnapshotBudget` rates a player within `NEAR` of the viewer
`math.inf` (never waits) and the others by nearness. Every client acknowledges
what it applied three ticks late (a 150 ms round trip at 20 Hz), and decodes its
snaps as a client does (`RecordingOutbox`: a `SnapshotReceiver` per session,
checksums verified, the rows that wait carried on).
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
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import Phase
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.schema import ViewSchema
from vinom.rooms.schema_frames import WAITS, parse_frame

PLAYERS = 64
BUDGET = 200
NEAR = 150.0
RATE = 20
ACK_LAG = 3  # ticks between a snap and its acknowledgement


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


def speed(orbit: tuple[float, float, float, float, float]) -> float:
    """How far a player on `orbit` travels a tick."""
    return orbit[2] * abs(orbit[3]) / RATE


class CirclesGame(Game[Circles]):
    name = "circles"
    min_players = max_players = match_size = PLAYERS
    tick_rate = RATE
    time_limit = 600.0
    idle_timeout = 0.0
    view_schema = [
        ["me", ["int", 0, PLAYERS - 1]],
        ["players", ["rows", [["int", 0, PLAYERS - 1], ["fixed", -100, 1100, 0.01],
                              ["fixed", -100, 1100, 0.01]]]],
    ]  # fmt: skip

    def __init__(self, budget: int | None = BUDGET,
                 max_wait: int | None = DEFAULT_MAX_WAIT) -> None:  # fmt: skip
        super().__init__()
        if budget is not None:
            self.snapshot_budget = SnapshotBudget(budget, "players", self.near_or_far, max_wait)
        self._rows: tuple[Any, dict[int, list[float]]] = (None, {})

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
        places = enumerate(state.orbits)
        return {"me": state.players.index(player_id) if player_id else 0,
                "players": [[n, *position(o, state.ticks)] for n, o in places]}  # fmt: skip

    def near_or_far(self, view: Mapping[str, Any], key: int) -> float:
        """The viewer itself and anyone within NEAR: never waits; the others by nearness
        (the rows of the last view kept by seat)."""
        if self._rows[0] is not view:
            self._rows = (view, {row[0]: row[1:] for row in view["players"]})
        rows = self._rows[1]
        distance = math.dist(rows[view["me"]], rows[key])
        return math.inf if distance <= NEAR else 1.0 / (1.0 + distance)

    def is_finished(self, state: Circles) -> bool:
        return state.finished

    def result(self, state: Circles) -> Mapping[str, Any]:
        return {"winners": [], "reason": "time"}


def drawn(message: Mapping[str, Any]) -> dict[int, list[float]]:
    """The players a client shows for a snap: seat -> [x, y]."""
    return {row[0]: row[1:] for row in message["s"]["players"]}


def truth(orbits: Sequence[Any], tick: int) -> dict[int, list[float]]:
    """Where the game has each player at `tick`, as the schema's 0.01 steps round it."""
    return {n: [round(v, 2) for v in position(o, tick)] for n, o in enumerate(orbits)}


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
        room, sender, _ = play(CirclesGame(), 3 * RATE)
        orbits = room.state.orbits
        # When each client last had each player where the game had it.
        current: dict[tuple[int, int], int] = {}
        stalest, near_checked, waited = 0, 0, 0
        self.assertGreater(len(sender.snaps), PLAYERS * 2 * RATE)
        for session, _, message in sender.sent:
            if "snap" not in message:
                continue
            # Within the budget: the snapshot, each snap, each client.
            snap = decode_server_message(message["snap"])
            assert snap is not None
            self.assertLessEqual(len(snap["d"]), BUDGET)
            waited += bool(parse_frame(snap["d"])[4])
            tick, shown = message["k"], drawn(message)
            now = truth(orbits, tick)
            me = now[int(message["s"]["me"])]
            for player, where in now.items():
                if shown.get(player) == where:
                    current[session, player] = tick
                if math.dist(me, where) <= NEAR:
                    # The nearest: never deferred, as the game has them at this tick.
                    self.assertEqual(shown.get(player), where, (session, player, tick))
                    near_checked += 1
                elif tick > RATE:
                    # The others wait, but not for ever.
                    stalest = max(stalest, tick - current.get((session, player), 0))
        self.assertGreater(near_checked, PLAYERS * 3 * RATE)
        self.assertLess(stalest, RATE // 2)
        # Counted: the changed players sent, and each snap's waits; the snaps say so.
        self.assertGreater(room.entity_counts["sent"], PLAYERS * 3 * RATE)
        self.assertGreater(room.entity_counts["deferred"], PLAYERS * 3 * RATE)
        self.assertGreater(waited, len(sender.snaps) // 2)

    def test_a_waiting_player_is_carried_on_never_stepped_back(self) -> None:
        """Between two snaps a client applies, no player it shows moves more than twice
        as far as the game moved them: a row that waits is carried on from the
        client's newest samples, not shown at its older baseline (a step back, then a
        jump). Shown as the wire has them (the baseline's rows), the same snaps break
        that bound: what carrying them on is for."""
        room, sender, _ = play(CirclesGame(), 3 * RATE)
        orbits = room.state.orbits
        schema = ViewSchema(CirclesGame.view_schema)
        last: dict[int, tuple[int, dict[int, list[float]], dict[int, list[float]]]] = {}
        worst = worst_uncarried = 0.0
        for session, _, message in sender.sent:
            if "snap" not in message:
                continue
            tick = message["k"]
            shown = drawn(message)
            wire = sender.receivers[session].wires[tick]
            as_sent = {row[0]: row[1:] for row in schema.rebuild(wire)["players"]}
            before = last.get(session)
            last[session] = (tick, shown, as_sent)
            if before is None or tick <= RATE:
                continue
            then, shown_then, sent_then = before
            for n, orbit in enumerate(orbits):
                allowed = 2 * speed(orbit) * (tick - then) + 0.02
                if n in shown and n in shown_then:
                    worst = max(worst, math.dist(shown[n], shown_then[n]) / allowed)
                if n in as_sent and n in sent_then:
                    moved = math.dist(as_sent[n], sent_then[n])
                    worst_uncarried = max(worst_uncarried, moved / allowed)
        self.assertLessEqual(worst, 1.0)
        self.assertGreater(worst_uncarried, 1.0)

    def test_a_budget_below_the_changes_holds_no_entity_longer_than_max_wait(self) -> None:
        """64 bytes cannot carry 63 moving players: without `max_wait` a far one is
        behind the game for seconds; with the default bound none is sent later than
        `DEFAULT_MAX_WAIT` snaps after its last, the overdue ones past the budget and
        counted."""
        def stalest(game: CirclesGame) -> tuple[int, Room, list[int]]:
            room, sender, _ = play(game, 3 * RATE)
            orbits = room.state.orbits
            schema = ViewSchema(CirclesGame.view_schema)
            current: dict[tuple[int, int], int] = {}
            worst, sizes = 0, []
            for session, _, message in sender.sent:
                if "snap" not in message:
                    continue
                tick = message["k"]
                sizes.append(len(message["snap"]))
                # What the host sent (the rows that wait as their baseline has them).
                wire = sender.receivers[session].wires[tick]
                sent = {row[0]: row[1:] for row in schema.rebuild(wire)["players"]}
                for player, where in truth(orbits, tick).items():
                    if sent.get(player) == where:
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

    def test_without_a_budget_the_same_room_sends_more(self) -> None:
        """The budget is what holds the snaps down: the same room without one sends
        every snapshot over it, and each client gets fewer bytes with the budget."""
        _, plain, _ = play(CirclesGame(budget=None), RATE)
        sizes = [len(m["d"]) for _, m in plain.snaps[PLAYERS * 5:]]
        self.assertGreater(min(sizes), BUDGET)
        _, cut, _ = play(CirclesGame(), RATE)
        per_client = {n: sum(len(m["d"]) for s, m in sender.snaps if s == 100 + n)
                      for n, sender in ((0, plain), (1, cut))}  # fmt: skip
        self.assertLess(per_client[1], per_client[0])


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

    def test_a_budget_naming_no_rows_field_fails_the_room(self) -> None:
        game = CirclesGame()
        game.snapshot_budget = SnapshotBudget(BUDGET, "me")
        e = self.assertRaises(ValueError, self.room_of, game)
        self.assertIn("its snapshot_budget's entities ('me') must name a rows field", str(e))

    def test_nothing_waits_when_every_change_fits(self) -> None:
        schema = ViewSchema(CirclesGame.view_schema)
        queue = PriorityQueue(SnapshotBudget(1000, "players"))
        view = {"me": 0, "players": [[0, 1.0, 2.0], [1, 3.0, 4.0]]}
        wire = schema.wire(view)
        self.assertEqual(queue.fit_rows(view, wire, None, schema, 4), (wire, None))
        moved = schema.wire({"me": 0, "players": [[0, 1.5, 2.0], [1, 3.0, 4.5]]})
        self.assertEqual(queue.fit_rows(view, moved, wire, schema, 4), (moved, None))
        self.assertEqual((queue.sent, queue.deferred), (4, 0))
        self.assertNotEqual(WAITS, 0)
