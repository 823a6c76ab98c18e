"""Interest management: `Grid.near` keeps exactly what a loop over every entity keeps."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve, frozen
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.games.test_games_support import seats
from vinom.games.arena import RADIUS, ArenaGame, ArenaState
from vinom.games.base import Game
from vinom.games.interest import Grid
from vinom.games.interfaces import Outcome, Seat


def naive(
    xs: Sequence[float], ys: Sequence[float], x: float, y: float, radius: float, wrap: float = 0.0
) -> list[int]:
    """The N² way: every entity, its distance the shorter way round on a torus."""
    kept = []
    for i in range(len(xs)):
        dx, dy = abs(xs[i] - x), abs(ys[i] - y)
        if wrap:
            dx, dy = abs(xs[i] % wrap - x % wrap), abs(ys[i] % wrap - y % wrap)
            dx, dy = min(dx, wrap - dx), min(dy, wrap - dy)
        if dx * dx + dy * dy <= radius * radius:
            kept.append(i)
    return kept


# Coordinates on cell boundaries (multiples of the cell side) as often as off them.
CELLS = st.sampled_from([0.5, 1.0, 3.0, 7.5, 50.0, 0.1])


@st.composite
def scenes(
    draw: st.DrawFn,
) -> tuple[list[float], list[float], float, float, list[tuple[float, float]]]:
    cell = draw(CELLS)
    wrap = draw(st.sampled_from([0.0, 0.0, 10.0, 64.0, 7.3, cell]))

    def coordinate() -> st.SearchStrategy[float]:
        return st.one_of(
            st.integers(-40, 40).map(lambda k: k * cell),
            st.floats(-200, 200, allow_nan=False),
            st.integers(-40, 40).map(lambda k: math.nextafter(k * cell, math.inf)),
        )

    count = draw(st.integers(0, 40))
    xs = draw(st.lists(coordinate(), min_size=count, max_size=count))
    ys = draw(st.lists(coordinate(), min_size=count, max_size=count))
    # Queries at entities (as views are) and anywhere.
    points = st.one_of(
        st.tuples(coordinate(), coordinate()),
        *([st.sampled_from(list(zip(xs, ys, strict=True)))] if xs else []),
    )
    queries = draw(st.lists(points, min_size=1, max_size=5))
    return xs, ys, cell, wrap, queries


# Radii: zero, a cell's multiple, between, and far larger than a cell.
RADII = st.one_of(
    st.just(0.0),
    st.integers(0, 12).map(lambda k: k * 0.5),
    st.floats(0, 400, allow_nan=False),
)


class GridTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(scenes(), st.lists(RADII, min_size=1, max_size=3))
    def test_near_is_the_naive_filter(
        self,
        scene: tuple[list[float], list[float], float, float, list[tuple[float, float]]],
        radii: list[float],
    ) -> None:
        xs, ys, cell, wrap, queries = scene
        grid = Grid.build(xs, ys, cell, wrap)
        for x, y in queries:
            for radius in radii:
                self.assertEqual(
                    grid.near(x, y, radius), naive(xs, ys, x, y, radius, wrap), (x, y, radius)
                )

    def test_a_query_visits_only_the_cells_around_it(self) -> None:
        """Far entities are never looked at: only the 3x3 cells round a radius of one cell."""
        xs = [float(i) for i in range(100)]
        grid = Grid.build(xs, [0.0] * 100, cell=1.0)
        buckets = grid._buckets(50.5, 0.0, 1.0)
        self.assertEqual(sorted(i for bucket in buckets for i in bucket), [49, 50, 51])
        self.assertEqual(grid.near(50.5, 0.0, 1.0), [50, 51])

    def test_bad_sizes_are_refused(self) -> None:
        for cell in (0.0, -1.0, math.inf, math.nan):
            self.assertRaises(ValueError, Grid.build, [0.0], [0.0], cell)
        for wrap in (-1.0, math.inf, math.nan):
            self.assertRaises(ValueError, Grid.build, [0.0], [0.0], 1.0, wrap)
        self.assertRaises(ValueError, Grid.build, [0.0], [0.0, 1.0], 1.0)
        self.assertRaises(ValueError, Grid.build([0.0], [0.0], 1.0).near, 0.0, 0.0, -1.0)

    def test_a_grid_is_a_value(self) -> None:
        """Built from the same positions, two grids are equal, as states are."""
        self.assertEqual(
            Grid.build([1.0, 2.0], [3.0, 4.0], 1.0), Grid.build((1.0, 2.0), (3.0, 4.0), 1.0)
        )
        self.assertNotEqual(Grid.build([1.0], [3.0], 1.0), Grid.build([1.5], [3.0], 1.0))
        self.assertNotEqual(Grid.build([1.0], [3.0], 1.0), (1.0, 3.0))
        grid = Grid.build([1.0, 2.0], [3.0, 4.0], 1.0, wrap=10.0)
        self.assertEqual(hash(grid), hash(Grid.build([1.0, 2.0], [3.0, 4.0], 1.0, wrap=10.0)))
        self.assertEqual(
            repr(grid), "Grid(xs=(1.0, 2.0), ys=(3.0, 4.0), cell=1.0, wrap=10.0, count=10)"
        )
        # Immutable, as a state holding it is.
        with self.assertRaises(AttributeError):
            grid.xs = (5.0, 6.0)  # type: ignore[misc]
        self.assertEqual(grid.near(1.0, 3.0, 0.5), [0])


def arena_view_before(game: ArenaGame, state: ArenaState, player_id: str | None) -> dict[str, Any]:
    """The arena's view as it was before the grid and the rows kept with the state:
    every player against every other, each row made for this view."""
    players = state.players
    me = players.index(player_id) if player_id in players else -1
    xs, ys, vxs, vys = state.x, state.y, state.vx, state.vy
    size = game.size
    seen = []
    for i in range(len(players)):
        if me >= 0:
            dx = abs(xs[i] - xs[me])
            dy = abs(ys[i] - ys[me])
            dx, dy = min(dx, size - dx), min(dy, size - dy)
            if dx * dx + dy * dy > RADIUS * RADIUS:
                continue
        seen.append((i, round(xs[i], 2), round(ys[i], 2), round(vxs[i], 1), round(vys[i], 1)))
    return {
        "me": me,
        "ack": state.applied[me] if me >= 0 else 0,
        "ticks": state.ticks,
        "players": seen,
    }


class ArenaViewTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from([2, 8, 64]), st.integers(0, 2**32), st.integers(0, 5))
    def test_views_are_those_of_the_loop_over_every_player(
        self, players: int, seed: int, ticks: int
    ) -> None:
        rng = random.Random(seed)
        game = ArenaGame(players)
        table = seats(players)
        state = game.create(table, {}, rng)
        for _ in range(ticks):
            for seat in table:
                move = [rng.uniform(-200, 200), rng.uniform(-200, 200)]
                state = game.apply_action(state, seat, {"move": move, "n": 1}, rng).state
            state = game.tick(state, rng.choice([0.05, 0.5, 3.0]), rng).state
        # The views below come from the helper, not the arena's fallback loop.
        self.assertIsInstance(state.grid, Grid)
        # Between two ticks too, where one input changed one row (the rows of the
        # state before it already made: an evolved state makes its own).
        self.assertEqual(len(state.rows), players)
        moved = game.apply_action(state, table[0], {"move": [3.0, -4.0], "n": 9}, rng).state
        for at in (state, moved):
            for who in [*(s.player_id for s in table), None, "stranger"]:
                self.assertEqual(game.view(at, who), arena_view_before(game, at, who))

    def test_points_on_the_radius_and_across_the_seam(self) -> None:
        game = ArenaGame(8)
        table = seats(3)
        state = evolve(
            game.create(table, {}, random.Random(0)),
            x=(0.0, RADIUS, game.size - 1.0),
            y=(0.0, 0.0, game.size - 1.0),
        )
        state = game.tick(state, 0.0, random.Random(0)).state
        seen = [row[0] for row in game.view(state, table[0].player_id)["players"]]
        self.assertEqual(seen, [0, 1, 2])
        self.assertEqual(
            game.view(state, table[0].player_id), arena_view_before(game, state, table[0].player_id)
        )


@frozen
class Herd:
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    grid: Grid


class HerdGame(Game[Herd]):
    """A game written from docs/games.md alone: each player sees the sheep near it."""

    name = "herd"
    min_players = 1
    max_players = 4
    match_size = 4
    tick_rate = 10.0

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Herd:
        xs = tuple(float(i * 10) for i in range(len(seats)))
        ys = (0.0,) * len(seats)
        return Herd(xs, ys, Grid.build(xs, ys, cell=15.0))

    def tick(self, state: Herd, dt: float, rng: random.Random) -> Outcome:
        xs = tuple(x + 1.0 for x in state.xs)
        return Outcome(evolve(state, xs=xs, grid=Grid.build(xs, state.ys, cell=15.0)))

    def view(self, state: Herd, player_id: str | None) -> Mapping[str, Any]:
        me = int(player_id or "0")
        return {"near": state.grid.near(state.xs[me], state.ys[me], 15.0)}


class PublicApiTests(SynchronousTestCase):
    def test_a_game_of_the_public_api_uses_it(self) -> None:
        game = HerdGame()
        state = game.create([Seat(str(i), f"p{i}", i) for i in range(4)], {}, random.Random(0))
        self.assertEqual([game.view(state, str(i))["near"] for i in range(4)],
                         [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]])  # fmt: skip
        state = game.tick(state, 0.1, random.Random(0)).state
        self.assertEqual(game.view(state, "3")["near"], [2, 3])
