"""A real-time room's fixed timestep and its lag compensation (vinom.rooms.room).

Time is a `twisted.internet.testing.Clock` (`ClockHost`): the room's timer
fires as a game host core's does. What is asserted is what a game author or a
client sees: the `dt` a game's tick gets, the `k` and `ts` of the states, the
welcome, and the hits a shooter written only with the public API judges.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import evolve, frozen
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame, SeqState, make_match
from tests.rooms.test_rooms_snapshots import SA, SB, A, B, ClockHost, SnapshotTestCase
from vinom.games import Game, IllegalAction, Outcome, Seat, TickHistory
from vinom.games.rules import DEFAULT_HISTORY_SECONDS, GameRules
from vinom.protocol.events import RELIABLE
from vinom.rooms.messages import Phase
from vinom.rooms.record import MatchRecorder, record_header, state_hash
from vinom.rooms.replay import Replay, read_record
from vinom.rooms.room import MAX_CATCH_UP_TICKS, Room, RoomConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


class StepGame(SeqGame):
    """SeqGame that records every `dt` its tick is given."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dts: list[float] = []

    def tick(self, state: SeqState, dt: float, rng: random.Random) -> Outcome:
        self.dts.append(dt)
        return super().tick(state, dt, rng)


class FixedStepTests(SnapshotTestCase):
    def start(self, rate: float) -> StepGame:
        game = StepGame(tick_rate=rate, time_limit=600.0)
        self.playing(game, state_interval=0)
        return game

    def last_state(self) -> dict[str, Any]:
        return self.states(SA)[-1]

    def test_dt_is_always_one_over_the_tick_rate(self) -> None:
        for rate in (20, 30, 60, 7):
            game = self.start(rate)
            # Wake-ups at uneven times, early and late, and a stall.
            for seconds in (0.013, 0.2, 0.37, 0.004, 1 / rate, 0.61, 0.05):
                self.host.advance(seconds)
            self.host.clock.advance(0.17)
            self.assertTrue(game.dts)
            self.assertEqual(set(game.dts), {1.0 / rate})

    def test_k_is_a_clock(self) -> None:
        """Tick k falls at the start of play plus k / tick_rate: every state's `k`
        is the whole ticks elapsed since play began, and its `ts` that tick's time."""
        rate = 20
        self.start(rate)
        for elapsed in (0.05, 0.5, 1.0, 2.35, 10.0, 61.2):
            self.host.advance(self.started_at + elapsed - self.now)
            state = self.last_state()
            self.assertEqual(state["k"], math.floor(elapsed * rate + 1e-9), elapsed)
            self.assertEqual(self.room.tick_number, state["k"])
            self.assertEqual(state["ts"], round(state["k"] * 1000 / rate))
        self.assertEqual(self.room.dropped_ticks, 0)

    def test_no_drift_over_a_long_match(self) -> None:
        """Nine minutes of 60 Hz ticks, one wake-up per tick: no tick lost or gained."""
        self.start(60)
        self.host.advance(540.0)
        self.assertEqual(self.room.tick_number, 540 * 60)

    def test_a_stall_catches_up_by_whole_steps(self) -> None:
        """After a stall of X seconds, one wake-up runs floor(X * rate) ticks,
        each with the same dt, and sends one state."""
        rate = 8  # 1/8 s is exact in binary: the count is floor(X * rate) exactly
        for stall in (0.125, 0.3, 0.5, 0.625, 0.65):
            game = self.start(rate)
            self.host.clock.advance(stall)  # one wake-up, `stall` late
            expected = math.floor(stall * rate)
            self.assertLessEqual(expected, MAX_CATCH_UP_TICKS)
            self.assertEqual(len(game.dts), expected, stall)
            self.assertEqual(self.room.state.elapsed, expected / rate)
            [state] = self.states(SA)
            self.assertEqual(state["k"], expected)
            self.assertEqual(self.room.dropped_ticks, 0)

    def test_a_long_stall_runs_the_bound_and_drops_the_rest(self) -> None:
        rate = 8
        game = self.start(rate)
        self.host.advance(1.0)  # 8 ticks on time
        self.host.clock.advance(2.0)  # a 2 s stall: 16 steps due at once
        self.assertEqual(len(game.dts), 8 + MAX_CATCH_UP_TICKS)
        self.assertEqual(self.room.dropped_ticks, 16 - MAX_CATCH_UP_TICKS)
        self.assertEqual(self.last_state()["k"], 8 + MAX_CATCH_UP_TICKS)
        # The grid moved on by the dropped steps: the next tick is one step
        # after the wake-up, and ticks keep their rate from there.
        self.host.advance(1 / rate - 1e-3)
        self.assertEqual(len(game.dts), 8 + MAX_CATCH_UP_TICKS)
        self.host.advance(1e-3)
        self.assertEqual(len(game.dts), 8 + MAX_CATCH_UP_TICKS + 1)
        self.host.advance(1.0)
        self.assertEqual(len(game.dts), 8 + MAX_CATCH_UP_TICKS + 1 + rate)
        self.assertEqual(set(game.dts), {1 / rate})

    def test_a_tick_that_ends_the_game_stops_the_catch_up(self) -> None:
        game = StepGame(tick_rate=8, time_limit=600.0)
        self.playing(game, state_interval=0)
        self.room.handle_action(A, {"win": True}, 1, self.now)  # finished: no tick after
        self.assertEqual(self.room.phase, Phase.FINISHED)
        self.host.clock.advance(0.5)
        self.assertEqual(game.dts, [])

    def test_the_catch_up_bound_is_documented(self) -> None:
        self.assertEqual(MAX_CATCH_UP_TICKS, 5)
        text = (DOCS / "games.md").read_text(encoding="utf-8")
        self.assertIn(f"`MAX_CATCH_UP_TICKS` ({MAX_CATCH_UP_TICKS}, `vinom.rooms.room`)", text)
        self.assertIn("`dt = 1 / tick_rate` exactly", text)


class WelcomeTests(SnapshotTestCase):
    def welcome(self, game: SeqGame) -> dict[str, Any]:
        host = ClockHost()
        sender = RecordingOutbox()
        room = Room(
            match=make_match(),
            game=game,
            outbox=sender,
            timers=host.timers,
            config=RoomConfig(),
            rng=random.Random(1),
        )
        room.start(host.clock.seconds())
        room.player_connected(A, SA, host.clock.seconds())
        [welcome] = sender.to(SA, "welcome", RELIABLE)
        return welcome

    def test_the_welcome_tells_the_tick_and_snapshot_rates(self) -> None:
        from tests.rooms.test_rooms_snapshots import SnapshotGame

        welcome = self.welcome(SnapshotGame(tick_rate=20, snapshot_rate=10))
        self.assertEqual((welcome["tick_rate"], welcome["snapshot_rate"]), (20, 10))
        welcome = self.welcome(SnapshotGame(tick_rate=30))
        self.assertEqual((welcome["tick_rate"], welcome["snapshot_rate"]), (30, 30))
        # A turn-based game: no tick, a state after every change.
        welcome = self.welcome(SeqGame())
        self.assertEqual((welcome["tick_rate"], welcome["snapshot_rate"]), (0, 0))


# -- lag compensation, with a game written only with the public API -------------


@frozen
class World:
    """A target walking along a line (Shooter's one step a tick); who hit it, in
    order (and the fields `Game`'s default hooks read)."""

    players: tuple[str, ...]
    left: tuple[bool, ...]
    target: float = 0
    hits: tuple[str, ...] = ()
    finished: bool = False
    reason: str | None = None
    winners: tuple[str, ...] = ()

    @property
    def scores(self) -> tuple[int, ...]:
        return tuple(self.hits.count(p) for p in self.players)


class Shooter(Game[World]):
    """Shoot the walking target: a shot names the tick the shooter saw and where
    they saw the target; it hits if the target was there at that tick."""

    name = "shooter"
    tick_rate = 20
    history_ticks = 10
    offered_by_default = False

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: Any) -> World:
        return World(players=tuple(s.player_id for s in seats), left=(False,) * len(seats))

    def tick(self, state: World, dt: float, rng: Any) -> Outcome:
        return Outcome(evolve(state, target=state.target + 1))

    def view(self, state: World, player_id: str | None) -> Mapping[str, Any]:
        return {"target": state.target, "hits": list(state.hits)}

    def apply_action_at(
        self,
        state: World,
        seat: Seat,
        action: Mapping[str, Any],
        rng: Any,
        history: TickHistory,
    ) -> Outcome:
        shot = action.get("shoot")
        if not isinstance(shot, Mapping):
            raise IllegalAction("bad_action", "shoot: {k, at}")
        seen = history.state_at(shot.get("k"))
        if seen is None:
            raise IllegalAction("too_late", "that tick is no longer kept")
        if seen.target != shot.get("at"):
            return Outcome(state)  # a miss
        return Outcome(evolve(state, hits=(*state.hits, seat.player_id)))


class LagCompensationTests(SnapshotTestCase):
    def setUp(self) -> None:
        self.playing(Shooter(), state_interval=0)  # type: ignore[arg-type]

    def shoot(self, player: str, k: Any, at: Any, action_id: int) -> bool:
        return self.room.handle_action(player, {"shoot": {"k": k, "at": at}}, action_id, self.now)

    def test_a_shot_is_judged_at_the_tick_the_shooter_saw(self) -> None:
        self.host.advance(0.25)
        seen = self.states(SA)[-1]  # what A draws: the state of tick k
        # The shot arrives four ticks later: the target has walked on.
        self.host.advance(0.2)
        now = self.states(SB)[-1]
        self.assertEqual(now["k"], seen["k"] + 4)
        self.assertNotEqual(now["s"]["target"], seen["s"]["target"])
        self.assertTrue(self.shoot(A, seen["k"], seen["s"]["target"], 1))
        # Aimed where the target is now but from the old tick: a miss.
        self.assertTrue(self.shoot(B, seen["k"], now["s"]["target"], 1))
        self.host.advance(0.05)
        self.assertEqual(self.states(SA)[-1]["s"]["hits"], [A])

    def test_a_shot_at_a_tick_older_than_the_history_is_refused(self) -> None:
        self.host.advance(0.1)
        seen = self.states(SA)[-1]
        # history_ticks = 10: once 10 newer ticks ran, the tick is gone.
        self.host.advance(10 / 20)
        self.sender.clear()
        self.assertFalse(self.shoot(A, seen["k"], seen["s"]["target"], 7))
        [error] = self.sender.to(SA, "error", RELIABLE)
        self.assertEqual((error["code"], error["i"]), ("too_late", 7))

    def test_the_oldest_kept_tick_still_counts(self) -> None:
        self.host.advance(1.0)
        k = self.room.tick_number - 9  # the tenth newest: still kept
        self.assertTrue(self.shoot(A, k, k, 1))  # the target stood at x = k at tick k
        self.assertFalse(self.shoot(A, k - 1, k - 1, 2))

    def test_ticks_not_run_yet_and_bad_ticks_are_refused(self) -> None:
        self.host.advance(0.5)
        k = self.room.tick_number
        for bad in (k + 1, -1, "3", None, 2.0, True):
            self.sender.clear()
            self.assertFalse(self.shoot(A, bad, 0, 1), bad)
            [error] = self.sender.to(SA, "error", RELIABLE)
            self.assertEqual(error["code"], "too_late")

    def test_tick_zero_is_the_state_play_started_from(self) -> None:
        self.assertTrue(self.shoot(A, 0, 0, 1))
        self.host.advance(0.05)
        self.assertEqual(self.states(SA)[-1]["s"]["hits"], [A])


class HistoryDefaultsTests(SnapshotTestCase):
    def test_the_default_is_one_second_of_ticks(self) -> None:
        self.assertEqual(DEFAULT_HISTORY_SECONDS, 1.0)
        self.assertEqual(GameRules.of(SeqGame(tick_rate=20)).history_ticks, 20)
        self.assertEqual(GameRules.of(SeqGame(tick_rate=7.5)).history_ticks, 8)
        self.assertEqual(GameRules.of(SeqGame()).history_ticks, 0)
        self.assertEqual(GameRules.of(Shooter()).history_ticks, 10)
        text = (DOCS / "games.md").read_text(encoding="utf-8")
        self.assertIn("default `None`: one second's worth, `ceil(tick_rate)`", text)

    def test_a_game_without_apply_action_at_is_unchanged(self) -> None:
        room = self.playing(SeqGame(tick_rate=20), state_interval=0)
        self.assertTrue(self.act(A, 1, 1))
        self.assertEqual(room.state.seqs[0], 1)


@frozen
class Range(World):
    """SubTickRange's state: Shooter's, its target walking 3 a tick, and shots in
    flight."""

    # (shooter, aimed x, the tick they saw, ticks flown)
    flying: tuple[tuple[str, float, float, int], ...] = ()


class SubTickRange(Game[Range]):
    """Shoot the walking target with real-time inputs `{"at": x}`: a shot flies
    `FLIGHT` ticks and hits if the target was at `x` as far from when its shooter
    saw it; judged between ticks (`history.around`), in `tick_at`."""

    name = "range"
    tick_rate = 20
    offered_by_default = False
    FLIGHT = 2

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: Any) -> Range:
        return Range(tuple(s.player_id for s in seats), (False,) * len(seats))

    def apply_action_at(
        self, state: Range, seat: Seat, action: Mapping[str, Any], rng: Any, history: TickHistory
    ) -> Outcome:
        if history.seen is None:
            raise IllegalAction("bad_action", "say when you saw it")
        shot = (seat.player_id, float(action["at"]), history.seen, 0)
        return Outcome(evolve(state, flying=(*state.flying, shot)))

    def tick_at(self, state: Range, dt: float, rng: Any, history: TickHistory) -> Outcome:
        flying, hits = [], list(state.hits)
        for shooter, at, seen, flown in state.flying:
            if flown + 1 < self.FLIGHT:
                flying.append((shooter, at, seen, flown + 1))
                continue
            around = history.around(seen + self.FLIGHT)
            if around is not None:
                before, after, f = around
                if abs(before.target + (after.target - before.target) * f - at) < 0.1:
                    hits.append(shooter)
        return Outcome(
            evolve(state, target=state.target + 3.0, flying=tuple(flying), hits=tuple(hits))
        )

    def tick(self, state: Range, dt: float, rng: Any) -> Outcome:
        raise AssertionError("a game with tick_at is ticked through it")

    def view(self, state: Range, player_id: str | None) -> Mapping[str, Any]:
        return {"target": state.target, "hits": list(state.hits)}


class SubTickTests(SnapshotTestCase):
    """An input that says the moment its player saw (docs/protocol.md §14, `input`)
    is judged there, between ticks, by `apply_action_at` and `tick_at`."""

    def setUp(self) -> None:
        self.playing(SubTickRange(), state_interval=0)  # type: ignore[arg-type]
        self.host.advance(0.5)

    def fire(self, player: str, at: float, seen: float | None) -> None:
        k = self.room.tick_number + 1
        self.room.handle_inputs(player, None, ((k, {"at": at}),), self.now,
                                None if seen is None else {k: seen})  # fmt: skip
        self.host.advance(0.05 * (SubTickRange.FLIGHT + 1))

    def hits(self) -> list[str]:
        return list(self.states(SA)[-1]["s"]["hits"])

    def test_a_shot_is_judged_between_the_ticks_its_shooter_saw(self) -> None:
        # Seen 40% of the way from tick 4 to 5, the target then at 13.2; where it
        # is two ticks on, as far between tick 6 and 7: 19.2.
        seen = 4 + 0.4
        self.fire(A, 3.0 * (seen + SubTickRange.FLIGHT), seen)
        self.assertEqual(self.hits(), [A])
        # Judged at whole ticks the same aim misses by more than a unit.
        self.fire(B, 3.0 * (seen + SubTickRange.FLIGHT), 4.0)
        self.assertEqual(self.hits(), [A])

    def test_an_input_that_says_nothing_has_no_seen(self) -> None:
        self.fire(A, 0.0, None)
        self.assertEqual(self.room.realtime.input_counts["rejected"], 1)  # type: ignore[union-attr]

    def test_a_moment_older_than_the_history_misses(self) -> None:
        self.host.advance(1.5)
        self.fire(A, 3.0 * 2.4, 0.4)
        self.assertEqual(self.hits(), [])


class SubTickReplayTests(SnapshotTestCase):
    def test_a_match_of_drawn_inputs_replays_exactly(self) -> None:
        """The moment each input says goes into the match record, so the replay
        judges its shots as the room did."""
        game = SubTickRange()
        seats = [Seat(t.player_id, t.name, i) for i, t in enumerate(make_match().players)]
        recorder = MatchRecorder(
            record_header(
                match_id="m-1", game=game.name, game_version=game.version, options={},
                seats=seats, bots=[False, False], seed=1, tick_rate=20.0, hash_every=5,
                started=0.0, vinom_version="test",
            ),
            hash_every=5,
        )  # fmt: skip
        room = self.playing(game, recorder, state_interval=0)  # type: ignore[arg-type]
        data = recorder.take()
        self.host.advance(0.5)
        for n in range(10):
            self.host.advance(0.05)
            k = room.tick_number + 1
            seen = k - 5.5 - n / 10
            room.handle_inputs(A, None, ((k, {"at": 3.0 * (seen + 2)}),), self.now,
                               {k: seen})  # fmt: skip
        self.host.advance(0.5)
        self.assertEqual(room.state.hits, (A,) * 10)
        room.abort("test_over", self.now)
        replay = Replay(read_record(data + recorder.take()), SubTickRange())
        replay.run()  # raises ReplayMismatch at the first hash that differs
        self.assertEqual(state_hash(replay.state), state_hash(room.state))
        self.assertEqual(replay.state.hits, room.state.hits)


class TickHistoryAroundTests(SynchronousTestCase):
    def test_around(self) -> None:
        history = TickHistory(3)
        for k in range(5):
            history.record(k, f"s{k}")
        self.assertEqual(history.around(3.25), ("s3", "s4", 0.25))
        self.assertEqual(history.around(2), ("s2", "s3", 0))
        # Past the newest tick, the newest state on both sides.
        self.assertEqual(history.around(4.5), ("s4", "s4", 0.5))
        for bad in (1.9, 5.0, math.nan, math.inf, "3", None, True):
            self.assertIsNone(history.around(bad), bad)  # type: ignore[arg-type]
        self.assertIsNone(history.seen)
