"""The client-side netcode helpers (vinom.client.netcode): clock sync, snapshot
interpolation, prediction with reconciliation, on simulated links (seeded:
jitter, loss, reordering) and with the benchmark arena's own rules."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import msgpack
from twisted.trial.unittest import SynchronousTestCase

from vinom.client.game import GameSession
from vinom.client.netcode import (
    BUFFER_SIZE,
    EVENT_WAIT_TICKS,
    MAX_PREDICTED_TICKS,
    EventsSettled,
    Interpolation,
    PredictedEvents,
    Predictor,
    ServerClock,
    SnapshotBuffer,
    blend,
)
from vinom.games.arena import ArenaGame
from vinom.games.interfaces import Seat
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.delta import SnapshotHistory
from vinom.rooms.messages import SnapFields, encode_snap, encode_welcome

RATE = 20.0


def link(seed: int, *, delay: float, jitter: float, loss: float, seconds: float = 30.0
         ) -> list[tuple[float, int]]:  # fmt: skip
    """(arrival time, tick) of the snapshots of a 20 Hz server whose play started at
    local time 0, over a link of `delay` ± `jitter` s one way losing `loss` of them."""
    rng = random.Random(seed)
    arrivals = []
    for k in range(int(seconds * RATE)):
        if rng.random() < loss:
            continue
        arrivals.append((k / RATE + delay + rng.uniform(-jitter, jitter), k))
    return sorted(arrivals)


class ServerClockTests(SynchronousTestCase):
    def test_within_one_tick_under_jitter_and_loss(self) -> None:
        """100 ms ± 20 ms each way and 5% loss, the round trip measured 200 ms ± 40 ms:
        after 2 s the estimate of the server's tick stays within one tick of the truth,
        measured at every 10 ms of a 30 s run, for several seeds."""
        for seed in range(5):
            rng = random.Random(100 + seed)
            clock = ServerClock(RATE)
            arrivals = link(seed, delay=0.1, jitter=0.02, loss=0.05)
            worst = 0.0
            i = 0
            for step in range(1, 3000):
                now = step / 100
                while i < len(arrivals) and arrivals[i][0] <= now:
                    clock.observe(arrivals[i][1], arrivals[i][1] * 50.0, arrivals[i][0])
                    i += 1
                estimate = clock.tick(now, 0.2 + rng.uniform(-0.04, 0.04))
                if now >= 2.0:
                    assert estimate is not None
                    worst = max(worst, abs(estimate - now * RATE))
            self.assertLess(worst, 1.0, f"seed {seed}")

    def test_the_fastest_trip_wins_not_the_newest(self) -> None:
        clock = ServerClock(RATE)
        clock.observe(10, 500.0, 0.55)  # 50 ms on the way
        clock.observe(11, 550.0, 0.70)  # 150 ms: a slow one
        self.assertAlmostEqual(clock.tick(0.70), 13.0)  # type: ignore[arg-type]
        self.assertAlmostEqual(clock.time(0.70), 0.65)  # type: ignore[arg-type]
        # Half the round trip is added: the server ran on while the snapshot came.
        self.assertAlmostEqual(clock.tick(0.70, 0.1), 14.0)  # type: ignore[arg-type]

    def test_a_stalled_server_is_followed_within_the_window(self) -> None:
        clock = ServerClock(RATE)
        for k in range(40):
            clock.observe(k, None, k / RATE)
        # The server's grid moved on by 10 ticks (a stall): after the window, the
        # old samples are gone and the estimate follows.
        for k in range(50, 100):
            clock.observe(k, None, (k - 10) / RATE)
        self.assertAlmostEqual(clock.tick(89 / RATE), 99.0)  # type: ignore[arg-type]
        self.assertIsNone(clock.time(1.0))  # no ts was given

    def test_an_estimate_that_must_come_down_slews_never_steps_back(self) -> None:
        clock = ServerClock(RATE)
        clock.observe(0, None, 0.0)  # a trip of 0 (the fastest)...
        readings = []
        for k in range(1, 80):  # ...then every one 20 ms longer
            clock.observe(k, None, k / RATE + 0.02)
            readings.append(clock.tick(k / RATE + 0.02))
        # While the fast sample is in the window, the estimate is its: 0.4 tick ahead
        # of the others'.
        self.assertAlmostEqual(readings[38], 39.4)  # type: ignore[arg-type]
        # Once it left (2 s on), the estimate comes down by 5% of the time passing
        # (a 0.95-tick step a snapshot, not 0.6), until it agrees with the rest.
        steps = [b - a for a, b in pairwise(readings)]  # type: ignore[operator]
        self.assertTrue(all(step > 0.95 - 1e-9 for step in steps), steps)
        self.assertIn(True, [abs(step - 0.95) < 1e-9 for step in steps])
        self.assertAlmostEqual(readings[-1], 79.0)  # type: ignore[arg-type]

    def test_nothing_before_the_first_snapshot(self) -> None:
        clock = ServerClock(RATE)
        self.assertFalse(clock.synced)
        self.assertIsNone(clock.tick(1.0))
        self.assertIsNone(clock.time(1.0))


ARENA = Interpolation(
    fields=("players.*.1", "players.*.2"),
    keys={"players": "0"},
    wrap={"players.*.1": 600.0, "players.*.2": 600.0},
)


def view(*players: list[Any], me: int = 0) -> dict[str, Any]:
    return {"me": me, "players": [list(p) for p in players]}


class InterpolationTests(SynchronousTestCase):
    def test_named_fields_move_the_rest_snaps(self) -> None:
        a = {"x": 0.0, "hp": 10, "name": "a"}
        b = {"x": 10.0, "hp": 7, "name": "b"}
        self.assertEqual(
            blend(a, b, 0.25, Interpolation(fields=("x",))), {"x": 2.5, "hp": 7, "name": "b"}
        )

    def test_list_items_are_matched_by_their_key(self) -> None:
        a = view([0, 100.0, 100.0], [3, 200.0, 200.0])
        b = view([3, 210.0, 200.0], [5, 50.0, 50.0], [0, 110.0, 100.0])
        mid = blend(a, b, 0.5, ARENA)
        self.assertEqual(mid["players"], [[3, 205.0, 200.0], [5, 50.0, 50.0], [0, 105.0, 100.0]])

    def test_a_wrapping_field_goes_the_shorter_way_round(self) -> None:
        a, b = view([0, 595.0, 10.0]), view([0, 5.0, 10.0])
        self.assertAlmostEqual(blend(a, b, 0.25, ARENA)["players"][0][1], 597.5)
        self.assertAlmostEqual(blend(a, b, 0.75, ARENA)["players"][0][1], 2.5)

    def test_rendered_at_server_time_minus_two_snapshot_intervals(self) -> None:
        buffer = SnapshotBuffer(20.0, ARENA)
        self.assertAlmostEqual(buffer.delay, 0.1)  # type: ignore[arg-type]
        self.assertIsNone(SnapshotBuffer(20.0).render(1.0))
        for k in range(10):
            buffer.push(k / 20, view([0, 10.0 * k, 0.0]))
        # At 0.4 s the render is at 0.3 s, a quarter of the way from 0.3 to 0.35.
        self.assertAlmostEqual(buffer.render(0.4)["players"][0][1], 60.0)
        self.assertAlmostEqual(buffer.render(0.4125)["players"][0][1], 62.5)
        # The estimate stepping back holds the render where it was.
        self.assertAlmostEqual(buffer.render(0.41)["players"][0][1], 62.5)

    def test_a_lost_snapshot_is_bridged(self) -> None:
        buffer = SnapshotBuffer(20.0, ARENA)
        for k in (0, 1, 3, 4):  # 2 was lost
            buffer.push(k / 20, view([0, 10.0 * k, 0.0]))
        self.assertAlmostEqual(buffer.sample(0.1)["players"][0][1], 20.0)

    def test_extrapolation_is_bounded(self) -> None:
        buffer = SnapshotBuffer(20.0, ARENA)
        for k in range(3):
            buffer.push(k / 20, view([0, 10.0 * k, 0.0]))
        # Past the newest (0.1 s, x=20) the velocity goes on for one interval...
        self.assertAlmostEqual(buffer.sample(0.125)["players"][0][1], 25.0)
        self.assertEqual(buffer.extrapolated, 1)
        # ...then holds.
        self.assertAlmostEqual(buffer.sample(0.5)["players"][0][1], 30.0)
        self.assertEqual(buffer.held, 1)
        # A late snapshot fills in: it is placed by its time, not its arrival.
        buffer.push(0.075, view([0, 15.0, 0.0]))
        self.assertAlmostEqual(buffer.sample(0.0625)["players"][0][1], 12.5)

    def test_the_last_32_views_are_kept(self) -> None:
        buffer = SnapshotBuffer(20.0, ARENA)
        for k in range(BUFFER_SIZE + 1):
            buffer.push(k / 20, view([0, float(k), 0.0]))
        self.assertEqual(len(buffer.views), 32)
        # The oldest went: before the oldest kept, the oldest kept is drawn.
        self.assertEqual(buffer.sample(0.0)["players"][0][1], 1.0)
        self.assertEqual(buffer.early, 1)

    def test_the_delay_is_adjustable(self) -> None:
        buffer = SnapshotBuffer(10.0, delay=0.05, max_extrapolation=0.0)
        self.assertEqual((buffer.delay, buffer.max_extrapolation), (0.05, 0.0))
        self.assertAlmostEqual(SnapshotBuffer(10.0).delay, 0.2)  # type: ignore[arg-type]


# -- prediction with the arena's own rules -----------------------------------


def arena_run(seed: int, loss: float, ticks: int = 200, lag: int = 3) -> tuple[Any, ...]:
    """Two players in ArenaGame(2), played through the game's public hooks. Player
    0's inputs (a new velocity every few ticks) are stamped `lag` ticks ahead
    and predicted; its views arrive `lag` ticks late, `loss` of them lost, and
    reconcile the prediction. Returns the server's own state by tick, the
    predictions checked after each snapshot, and the predictor."""
    rng = random.Random(seed)
    game = ArenaGame(2)
    seats = [Seat("p0", "P0", 0), Seat("p1", "P1", 1)]
    state = game.create(seats, {}, random.Random(seed))
    wrap = {"x": game.size, "y": game.size}
    predictor: Predictor[Any] = Predictor(game.step, RATE, ("x", "y"), wrap)
    inputs: dict[int, Mapping[str, Any]] = {}
    truth: dict[int, dict[str, float]] = {}
    in_flight: list[tuple[int, dict[str, Any]]] = []
    checked = []
    n = 0
    for k in range(1, ticks + 1):
        # The client, at the server's tick k - lag: maybe an input, for tick k + lag.
        if rng.random() < 0.3:
            n += 1
            # Velocities to 0.1, within MAX_SPEED: as the view carries them.
            move = [round(rng.uniform(-80, 80), 1), round(rng.uniform(-80, 80), 1)]
            value = {"move": move, "n": n}
            inputs[k + lag] = value
            predictor.add(k + lag, value)
        # The server: the input for tick k (the room applies it just before the tick).
        if k in inputs:
            state = game.on_move(state, seats[0], inputs[k], rng).state
        state = game.tick(state, 1 / RATE, rng).state
        truth[k] = {"x": state.x[0], "y": state.y[0]}
        if rng.random() >= loss:
            in_flight.append((k, dict(game.view(state, "p0"))))
        # Views sent `lag` ticks ago arrive now.
        while in_flight and in_flight[0][0] <= k - lag:
            tick, seen = in_flight.pop(0)
            own = game.own(seen)
            assert own is not None
            predictor.reconcile(tick, own, k / RATE)
            checked.append((tick, k + lag, predictor.state_at(k + lag)))
    return truth, checked, predictor


def distance(a: Mapping[str, float], b: Mapping[str, float], size: float) -> float:
    def one(u: float, v: float) -> float:
        d = abs(u - v) % size
        return min(d, size - d)

    return max(one(a["x"], b["x"]), one(a["y"], b["y"]))


class PredictionTests(SynchronousTestCase):
    def test_the_prediction_equals_the_server_once_acknowledged(self) -> None:
        """Across random loss, each snapshot rewinds the prediction to the server's
        state and replays the later inputs: the predicted position of a tick is
        the server's (to the view's 0.01 quantisation), ticks before it shows."""
        size = ArenaGame(2).size
        for seed, loss in ((1, 0.0), (2, 0.1), (3, 0.3)):
            truth, checked, predictor = arena_run(seed, loss)
            self.assertGreater(len(checked), 100)
            for _tick, ahead, predicted in checked:
                if ahead not in truth:
                    continue  # after the run
                self.assertLess(distance(predicted, truth[ahead], size), 0.011, (seed, ahead))
            # The inputs were all on time: nothing to correct beyond the rounding.
            self.assertLess(predictor.last_error, 0.011)

    def test_a_late_input_is_corrected_smoothly_and_counted(self) -> None:
        game = ArenaGame(2)
        predictor: Predictor[Any] = Predictor(game.step, RATE, ("x", "y"))
        still = {"x": 100.0, "y": 100.0, "vx": 0.0, "vy": 0.0}
        predictor.reconcile(10, still, 0.0)
        predictor.add(12, {"move": [100.0, 0.0], "n": 1})
        self.assertEqual(predictor.state_at(14)["x"], 115.0)  # type: ignore[index]
        self.assertEqual(predictor.render(14.0, 0.0)["x"], 115.0)  # type: ignore[index]
        # The input reached the host late: at tick 12 the player still stood. The
        # rewind forgets the input (the next snapshot shows where it took effect),
        # and the prediction shown at tick 14 drops from 115 to 100.
        self.assertEqual(predictor.reconcile(12, still, 1.0), 15.0)
        self.assertEqual((predictor.corrections, predictor.last_error), (1, 15.0))
        # Not snapped: what was shown (115) stays shown, then fades (time constant 0.1 s).
        self.assertAlmostEqual(predictor.render(14.0, 1.0)["x"], 115.0)  # type: ignore[index]
        faded = predictor.render(14.0, 1.1)["x"]  # type: ignore[index]
        self.assertAlmostEqual(faded, 100.0 + 15.0 * math.exp(-1.0))
        self.assertAlmostEqual(predictor.render(14.0, 2.0)["x"], 100.0, places=2)  # type: ignore[index]
        # The next snapshot: the input took effect at tick 13 (x 105 at 13).
        moving = {"x": 105.0, "y": 100.0, "vx": 100.0, "vy": 0.0}
        predictor.reconcile(13, moving, 2.0)
        self.assertEqual(predictor.state_at(14)["x"], 110.0)  # type: ignore[index]

    def test_at_most_64_ticks_predicted_past_the_snapshot(self) -> None:
        predictor: Predictor[Any] = Predictor(ArenaGame(2).step, RATE, ("x",))
        predictor.reconcile(0, {"x": 0.0, "y": 0.0, "vx": 10.0, "vy": 0.0}, 0.0)
        self.assertEqual(MAX_PREDICTED_TICKS, 64)
        self.assertAlmostEqual(predictor.state_at(64)["x"], 32.0)  # type: ignore[index]
        self.assertAlmostEqual(predictor.state_at(100)["x"], 32.0)  # type: ignore[index]

    def test_a_correction_beyond_teleport_is_shown_at_once(self) -> None:
        """A respawn in the same snapshot (no snapshot without the entity between):
        beyond `teleport` it is drawn where it is, counted as a teleport; below
        it a correction is smoothed as ever."""
        predictor: Predictor[Any] = Predictor(ArenaGame(2).step, RATE, ("x", "y"), teleport=50.0)
        self.assertEqual(Predictor(ArenaGame(2).step, RATE).teleport, math.inf)
        here = {"x": 100.0, "y": 100.0, "vx": 0.0, "vy": 0.0}
        predictor.reconcile(10, here, 0.0)
        self.assertEqual(predictor.render(12.0, 0.0)["x"], 100.0)  # type: ignore[index]
        predictor.reconcile(11, {**here, "x": 110.0}, 1.0)  # 10 off: smoothed
        self.assertAlmostEqual(predictor.render(12.0, 1.0)["x"], 100.0)  # type: ignore[index]
        self.assertEqual((predictor.corrections, predictor.teleports), (1, 0))
        predictor.reconcile(12, {**here, "x": 250.0}, 2.0)  # respawned: shown there
        self.assertEqual(predictor.render(12.0, 2.0)["x"], 250.0)  # type: ignore[index]
        self.assertEqual((predictor.corrections, predictor.teleports), (1, 1))

    def test_reset_forgets_or_starts_over_from_a_state(self) -> None:
        predictor: Predictor[Any] = Predictor(ArenaGame(2).step, RATE, ("x",))
        predictor.reconcile(10, {"x": 0.0, "y": 0.0, "vx": 10.0, "vy": 0.0}, 0.0)
        predictor.add(12, {"move": [20.0, 0.0]})
        predictor.reset()
        self.assertIsNone(predictor.state_at(20))
        self.assertIsNone(predictor.render(20.0, 0.0))
        self.assertEqual(predictor.inputs, {})
        # A teleport the game knows of: predicted from there at once, later inputs kept.
        predictor.add(12, {"move": [20.0, 0.0]})
        predictor.add(14, {"move": [40.0, 0.0]})
        predictor.reset(12, {"x": 200.0, "y": 0.0, "vx": 0.0, "vy": 0.0})
        self.assertEqual(list(predictor.inputs), [14])
        self.assertAlmostEqual(predictor.render(14.0, 0.0)["x"], 202.0)  # type: ignore[index]
        self.assertEqual(predictor.corrections, 0)

    def test_an_older_snapshot_changes_nothing(self) -> None:
        predictor: Predictor[Any] = Predictor(ArenaGame(2).step, RATE, ("x",))
        self.assertIsNone(predictor.state_at(3))
        predictor.reconcile(10, {"x": 1.0, "y": 0.0, "vx": 0.0, "vy": 0.0}, 0.0)
        older = {"x": 5.0, "y": 0.0, "vx": 0.0, "vy": 0.0}
        self.assertEqual(predictor.reconcile(9, older, 0.0), 0.0)
        self.assertEqual(predictor.state_at(11)["x"], 1.0)  # type: ignore[index]



# -- GameSession: the helpers fed from its snaps ------------------------------


class PredictedEventsTests(SynchronousTestCase):
    """Events shown before the host's word, settled by the snapshots' views."""

    def test_confirmed_refused_and_waited_out(self) -> None:
        events = PredictedEvents(lambda view: view["seen"], lambda view: view["refused"])
        for n, tick in ((1, 10), (2, 11), (3, 12)):
            events.predict(n, tick, f"shot {n}")
        self.assertEqual(events.shown(), [(1, "shot 1"), (2, "shot 2"), (3, "shot 3")])
        # A view naming shot 2 confirms it, one refusing shot 3 retracts it at once.
        settled = events.settle(12, {"seen": [2], "refused": [3]})
        self.assertEqual(settled, EventsSettled(((2, "shot 2"),), ((3, "shot 3"),)))
        # Shot 1 waits for its input's tick plus EVENT_WAIT_TICKS, then goes.
        self.assertEqual(events.settle(10 + EVENT_WAIT_TICKS, {"seen": [], "refused": []}),
                         EventsSettled())  # fmt: skip
        settled = events.settle(11 + EVENT_WAIT_TICKS, {"seen": [], "refused": []})
        self.assertEqual(settled.retracted, ((1, "shot 1"),))
        self.assertEqual((events.confirmed, events.retracted, events.shown()), (1, 2, []))

    def test_no_pending_event_asks_nothing_of_the_view(self) -> None:
        def confirms(view: Any) -> list[Any]:
            raise AssertionError("asked")

        self.assertEqual(PredictedEvents(confirms).settle(5, None), EventsSettled())


class Wire:
    """Stands in for the session's UDP protocol: records what is sent, a fixed round trip."""

    def __init__(self, rtt: float) -> None:
        self.round_trip_time = rtt
        self.sent: list[tuple[int, dict[str, Any]]] = []

    def send(self, channel: int, data: bytes) -> None:
        self.sent.append((channel, msgpack.unpackb(data)))

    def set_ack_delays(self, own: float, peer: float) -> None:
        pass


class Arrivals:
    """A session of ArenaGame(2)'s player 0, its clock in our hands; snaps built by
    the room's own encoders from the game's views."""

    def __init__(self, rtt: float = 0.1) -> None:
        self.now = 10.0
        self.session = GameSession(clock=lambda: self.now)
        self.wire = Wire(rtt)
        self.session.protocol = self.wire  # type: ignore[assignment]
        self.history = SnapshotHistory()
        self.version = 0
        # Each snap's numbers by tick, for the snaps against it (docs/protocol.md §14).
        self.fields: dict[int, SnapFields] = {}

    def welcome(self) -> None:
        self.session.message_received(RELIABLE, encode_welcome(
            "m-1", "arena", 0, SEATS, False, "Arena", RATE, RATE))  # fmt: skip

    def snap(
        self, tick: int, x0: float | None, x1: float, vx0: float = 0.0
    ) -> None:
        """A snap of `tick`; player 0 is not in it when `x0` is None (dead)."""
        self.version += 1
        players = [[1, x1, 80.0, 0.0, 0.0]]
        if x0 is not None:
            players.insert(0, [0, x0, 50.0, vx0, 0.0])
        view = {"me": 0, "ack": 0, "ticks": tick, "players": players}
        data = self.history.encode_for(tick, view)
        fields = self.fields[tick] = (self.version, tick * 50, None)
        base = self.history.base_tick
        against = None if base is None else self.fields[base]
        self.session.message_received(
            UNRELIABLE, encode_snap(fields, None, None, tick, against, data))


SEATS = [Seat("p-a", "ada", 0), Seat("p-b", "bob", 1)]
ARENA2 = ArenaGame(2)


class GameSessionNetcodeTests(SynchronousTestCase):
    def test_a_dead_entity_is_not_driven_on_and_its_respawn_does_not_slide(self) -> None:
        """A snap without the own entity (dead) resets the prediction: nothing is
        drawn for it (not the dead one driven on at its last velocity for up to 64
        ticks); the respawn, across the map, is drawn where it is at once."""
        match = Arrivals(rtt=0.1)
        match.welcome()
        prediction = match.session.predict(ARENA2.step, ARENA2.own, smooth=("x", "y"))
        match.snap(40, 10.0, 20.0, vx0=100.0)
        self.assertIsNotNone(match.session.predicted())
        match.now += 0.05
        match.snap(41, None, 20.0)  # killed
        self.assertIsNone(match.session.predicted())
        match.now += 0.5
        self.assertIsNone(match.session.predicted())
        match.snap(51, 250.0, 20.0)  # respawned far away
        self.assertAlmostEqual(match.session.predicted()["x"], 250.0)  # type: ignore[index]
        self.assertEqual((prediction.corrections, prediction.offset(match.now)), (0, {}))

    def test_nothing_before_the_welcome_of_a_game_with_a_tick(self) -> None:
        session = GameSession()
        self.assertIsNone(session.server_tick_now)
        self.assertIsNone(session.server_time_now)
        self.assertRaises(ValueError, session.interpolate)
        self.assertRaises(ValueError, session.predict, ARENA2.step, ARENA2.own)
        session.message_received(RELIABLE, encode_welcome("m-1", "duel", 0, SEATS, False))
        self.assertRaises(ValueError, session.interpolate)  # no tick
        self.assertIsNone(session.rendered())
        self.assertIsNone(session.predicted())

    def test_the_clock_from_the_snaps(self) -> None:
        match = Arrivals(rtt=0.1)
        match.welcome()
        self.assertIsNone(match.session.server_tick_now)
        match.snap(40, 10.0, 20.0)
        # Tick 40 just came; the server ran on for half the round trip (one tick).
        self.assertAlmostEqual(match.session.server_tick_now, 41.0)  # type: ignore[arg-type]
        self.assertAlmostEqual(match.session.server_time_now, 2.05)  # type: ignore[arg-type]
        match.now += 0.1
        self.assertAlmostEqual(match.session.server_tick_now, 43.0)  # type: ignore[arg-type]
        # A slow snap (50 ms late) does not move it back.
        match.now += 0.1
        match.snap(43, 10.0, 20.0)
        self.assertAlmostEqual(match.session.server_tick_now, 45.0)  # type: ignore[arg-type]

    def test_the_others_interpolated_two_snapshot_intervals_behind_arrival(self) -> None:
        match = Arrivals()
        match.welcome()
        buffer = match.session.interpolate(ARENA)
        self.assertAlmostEqual(buffer.delay, 0.1)  # type: ignore[arg-type]
        for k in range(10):
            match.snap(k, 10.0, 20.0 + k)
            match.now += 0.05
        match.now -= 0.05
        # The newest (tick 9) just came: drawn at tick 7 (two intervals back).
        rendered = match.session.rendered()
        self.assertAlmostEqual(rendered["players"][0][1], 10.0)
        self.assertAlmostEqual(rendered["players"][1][1], 27.0)
        match.now += 0.025
        rendered = match.session.rendered()
        self.assertAlmostEqual(rendered["players"][1][1], 27.5)

    def test_inputs_predicted_at_once_and_reconciled(self) -> None:
        match = Arrivals(rtt=0.1)
        match.welcome()
        prediction = match.session.predict(ARENA2.step, ARENA2.own, smooth=("x", "y"))
        match.snap(40, 10.0, 20.0)
        self.assertEqual(match.session.predicted()["x"], 10.0)  # type: ignore[index]
        # The input reaches the host a half round trip on: tick 42 (41 + 1).
        self.assertAlmostEqual(match.session.prediction_tick, 42.0)  # type: ignore[arg-type]
        match.now += 0.01
        tick = match.session.send_input({"move": [100.0, 0.0], "n": 1})
        self.assertEqual(tick, 43)
        channel, sent = match.wire.sent[-1]
        self.assertEqual((channel, sent["x"]), (UNRELIABLE, [[43, {"move": [100.0, 0.0], "n": 1}]]))
        # Drawn moving at once: 20 ms later, 0.6 of the way through tick 43.
        match.now += 0.02
        self.assertAlmostEqual(match.session.predicted()["x"], 13.0)  # type: ignore[index]
        # Tick 43's snap (as long on the way as tick 40's): the server agrees (moved
        # 5), nothing to correct; drawn at tick 45, two more ticks on.
        match.now = 10.15
        match.snap(43, 15.0, 20.0, vx0=100.0)
        self.assertEqual(prediction.corrections, 0)
        self.assertAlmostEqual(match.session.prediction_tick, 45.0)  # type: ignore[arg-type]
        self.assertAlmostEqual(match.session.predicted()["x"], 25.0)  # type: ignore[index]
        # The server disagrees (at tick 44 it has 15, not 20): what is drawn does not
        # jump; the 5 becomes an offset that fades from here, and is counted.
        match.now = 10.20
        match.snap(44, 15.0, 20.0, vx0=100.0)
        self.assertEqual((prediction.corrections, prediction.last_error), (1, 5.0))
        self.assertAlmostEqual(match.session.predicted()["x"], 30.0)  # type: ignore[index]
