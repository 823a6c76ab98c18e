"""The maze game: collect rewards in a maze made with Wilson's algorithm.

A maze of `width` x `height` cells (3 to 20 each, default 10 x 10) is a
uniform spanning tree of the grid graph, made with Wilson's algorithm (loop
erased random walks). 2 to 4 players start in the corners; every other cell
holds a reward of 1 or 5, fives being likelier near the centre. Moving into a
cell collects its reward. The game ends when every reward is taken or on the
time limit; the highest score wins and everyone tied for it wins.

Per-player versions: a move names the position it is made from and is applied
only if that is still the mover's position. A player's position changes only
through that player's own moves, so moves of different players made in the same
instant never invalidate each other, while a retransmitted or reordered move of
the same player is rejected as `stale`.

Coordinates: `x` grows east, `y` grows south, `[0, 0]` is the north-west
corner. Cells are stored row-major (index `y * width + x`) as one small integer
each: the low four bits are the walls (N=1, E=2, S=4, W=8, set = wall), the
rest is the reward (`cell >> 4`: 0, 1 or 5).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve, frozen
from twisted.plugin import IPlugin
from zope.interface import implementer

from vinom.games import common
from vinom.games.base import Game
from vinom.games.interfaces import IBot, IGame, IllegalAction, Outcome, Seat

NORTH, EAST, SOUTH, WEST = 1, 2, 4, 8
ALL_WALLS = NORTH | EAST | SOUTH | WEST
WALL_MASK = 0x0F
REWARD_SHIFT = 4

#: Direction name -> (wall bit, dx, dy, wall bit on the other side).
DIRECTIONS: dict[str, tuple[int, int, int, int]] = {
    "N": (NORTH, 0, -1, SOUTH),
    "E": (EAST, 1, 0, WEST),
    "S": (SOUTH, 0, 1, NORTH),
    "W": (WEST, -1, 0, EAST),
}

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 3, 20, 10
SMALL, BIG = 1, 5


def corners(width: int, height: int) -> tuple[tuple[int, int], ...]:
    """Start positions by seat: two players face each other across the maze."""
    return ((0, 0), (width - 1, height - 1), (width - 1, 0), (0, height - 1))


def cell_walls(cell: int) -> int:
    """The wall bits of a cell value."""
    return cell & WALL_MASK


def cell_reward(cell: int) -> int:
    """The reward in a cell value (0 once collected)."""
    return cell >> REWARD_SHIFT


def wilson_walls(width: int, height: int, rng: random.Random) -> list[int]:
    """Wall bits per cell (row-major) of a uniformly random spanning tree.

    Wilson's algorithm: start the tree with one random cell; from each cell
    not yet in the tree walk randomly until the walk meets the tree, then add
    the walk with its loops erased. Remembering only the last exit taken from
    each cell erases the loops for free.
    """
    count = width * height
    walls = [ALL_WALLS] * count
    steps: list[list[tuple[str, int]]] = []
    for index in range(count):
        x, y = index % width, index // width
        steps.append(
            [
                (name, (y + dy) * width + x + dx)
                for name, (_, dx, dy, _) in DIRECTIONS.items()
                if 0 <= x + dx < width and 0 <= y + dy < height
            ]
        )
    in_tree = [False] * count
    in_tree[rng.randrange(count)] = True
    exits: dict[int, tuple[str, int]] = {}
    for start in range(count):
        cell = start
        while not in_tree[cell]:
            exits[cell] = step = rng.choice(steps[cell])
            cell = step[1]
        cell = start
        while not in_tree[cell]:
            name, after = exits[cell]
            bit, _, _, back = DIRECTIONS[name]
            walls[cell] &= ~bit
            walls[after] &= ~back
            in_tree[cell] = True
            cell = after
    return walls


def place_rewards(
    width: int, height: int, starts: Sequence[tuple[int, int]], rng: random.Random
) -> list[int]:
    """Rewards per cell: start cells empty, else 1 or 5 with fives likelier centrally.

    The chance of a five falls linearly from 60% at the centre to 10% at the
    farthest corner.
    """
    cx, cy = (width - 1) / 2, (height - 1) / 2
    farthest = math.hypot(cx, cy) or 1.0
    start_set = set(starts)
    rewards = []
    for index in range(width * height):
        x, y = index % width, index // width
        if (x, y) in start_set:
            rewards.append(0)
            continue
        closeness = 1.0 - math.hypot(x - cx, y - cy) / farthest
        rewards.append(BIG if rng.random() < 0.1 + 0.5 * closeness else SMALL)
    return rewards


@frozen
class MazeState:
    """The whole maze game; immutable, changed with `attrs.evolve`."""

    width: int
    height: int
    cells: tuple[int, ...]
    players: tuple[str, ...]
    positions: tuple[tuple[int, int], ...]
    scores: tuple[int, ...]
    left: tuple[bool, ...]
    remaining: int
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()


@implementer(IBot)
class MazeBot:
    """Walks the shortest path to the nearest reward, preferring fives nearby.

    The plan is kept between calls and recomputed only when the bot is not
    where the plan expects it or its target has been taken.
    """

    def __init__(self, player_id: str, rng: random.Random) -> None:
        self.player_id = player_id
        self.rng = rng
        self._plan: list[str] = []
        self._expect: tuple[int, int] | None = None
        self._target: int = -1

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if view.get("finished"):
            return None
        me = next((p for p in view["players"] if p["id"] == self.player_id), None)
        if me is None or me["left"]:
            return None
        x, y = me["pos"]
        width, cells = view["width"], view["cells"]
        if not self._plan or self._expect != (x, y) or cell_reward(cells[self._target]) == 0:
            self._replan(x, y, width, view["height"], cells)
            if not self._plan:
                return None
        step = self._plan[0]
        _, dx, dy, _ = DIRECTIONS[step]
        self._plan = self._plan[1:]
        self._expect = (x + dx, y + dy)
        return {"move": step, "from": [x, y]}

    def _replan(self, x: int, y: int, width: int, height: int, cells: Sequence[int]) -> None:
        # Breadth-first search from here; a five counts as if it were two
        # steps nearer, so the bot detours a little for it.
        start = y * width + x
        came: dict[int, tuple[int, str]] = {start: (start, "")}
        dist = {start: 0}
        queue = deque([start])
        best, best_score = -1, math.inf
        while queue:
            cell = queue.popleft()
            reward = cell_reward(cells[cell])
            if reward:
                score = dist[cell] - (2 if reward == BIG else 0) + self.rng.random() * 0.5
                if score < best_score:
                    best, best_score = cell, score
            cx, cy = cell % width, cell // width
            for name, (bit, dx, dy, _) in DIRECTIONS.items():
                if cells[cell] & bit:
                    continue
                after = (cy + dy) * width + cx + dx
                if after not in came:
                    came[after] = (cell, name)
                    dist[after] = dist[cell] + 1
                    queue.append(after)
        self._plan = []
        self._target = best
        if best < 0:
            return
        cell = best
        while cell != start:
            cell, name = came[cell]
            self._plan.append(name)
        self._plan.reverse()


@implementer(IPlugin, IGame)
class MazeGame(Game[MazeState]):
    """Collect the rewards of a Wilson maze; highest score wins."""

    name = "maze"
    display_name = "Maze"
    description = "Collect rewards in a random maze; 2-4 players, highest score wins"
    # Nothing is hidden: every player gets the same view, built once per change.
    shared_view = True
    max_players = 4
    time_limit = 300.0
    countdown = 3.0
    # Actions per second per player (a rule of the game: nobody outruns a fast human).
    action_rate = 10.0

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Any:
        players = common.check_seats(seats, self.min_players, self.max_players, self.name)
        width = common.option_int(options, "width", DEFAULT_SIZE, MIN_SIZE, MAX_SIZE)
        height = common.option_int(options, "height", DEFAULT_SIZE, MIN_SIZE, MAX_SIZE)
        starts = corners(width, height)[: len(players)]
        walls = wilson_walls(width, height, rng)
        rewards = place_rewards(width, height, starts, rng)
        return MazeState(
            width=width,
            height=height,
            cells=tuple(w | (r << REWARD_SHIFT) for w, r in zip(walls, rewards, strict=True)),
            players=players,
            positions=starts,
            scores=(0,) * len(players),
            left=(False,) * len(players),
            remaining=sum(1 for r in rewards if r),
        )

    # Real time: every player still in the maze is expected to move.
    idle_timeout = 60.0

    def leave(self, state: MazeState, seat: Seat) -> Outcome:
        # Leaving forfeits: the score stays visible but cannot win.
        index = common.leaving(state.players, state.left, state.finished, seat)
        if index is None:
            return Outcome(state)
        state = evolve(state, left=common.replace_at(state.left, index, True))
        ended = self._last_standing(state, state.left, "opponents_left")
        return Outcome(state if ended is None else ended)

    def apply_action(
        self, state: MazeState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        if state.finished:
            raise IllegalAction(common.FINISHED, "the game is over")
        index = common.seat_index(state.players, seat)
        if state.left[index]:
            raise IllegalAction(common.FINISHED, "you left the game")
        action = common.as_mapping(action)
        direction = action.get("move")
        if not isinstance(direction, str) or direction not in DIRECTIONS:
            raise common.bad_action("'move' must be one of N, E, S, W")
        basis = action.get("from")
        if not (
            isinstance(basis, list | tuple)
            and len(basis) == 2
            and common.is_int(basis[0])
            and common.is_int(basis[1])
        ):
            raise common.bad_action("'from' must be [x, y], your current position")
        x, y = state.positions[index]
        if basis[0] != x or basis[1] != y:
            raise IllegalAction(common.STALE, f"you are at [{x}, {y}], not {list(basis)}")
        bit, dx, dy, _ = DIRECTIONS[direction]
        here = y * state.width + x
        if state.cells[here] & bit:
            raise IllegalAction(common.ILLEGAL_MOVE, f"a wall blocks {direction} from [{x}, {y}]")
        x, y = x + dx, y + dy
        there = here + dx + dy * state.width
        cell = state.cells[there]
        reward = cell >> REWARD_SHIFT
        positions = common.replace_at(state.positions, index, (x, y))
        if not reward:
            return Outcome(evolve(state, positions=positions))
        remaining = state.remaining - 1
        state = evolve(
            state,
            positions=positions,
            cells=common.replace_at(state.cells, there, cell & WALL_MASK),
            scores=common.replace_at(state.scores, index, state.scores[index] + reward),
            remaining=remaining,
        )
        if remaining == 0:
            state = self._end(state, "all_collected")
        return Outcome(state)

    def view(self, state: MazeState, player_id: str | None) -> Mapping[str, Any]:
        # Nothing is hidden in the maze, so every player sees the same view.
        return {
            "width": state.width,
            "height": state.height,
            "cells": list(state.cells),
            "players": [
                {"id": pid, "pos": [pos[0], pos[1]], "score": score, "left": gone}
                for pid, pos, score, gone in zip(
                    state.players, state.positions, state.scores, state.left, strict=True
                )
            ],
            "remaining": state.remaining,
            "finished": state.finished,
        }

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        return MazeBot(player_id, rng)
