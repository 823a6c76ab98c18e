"""The arena: vinom's real-time built-in game, written only with its public game API.

Two players (the built-in game, `twisted/plugins/vinom_games.py`), or eight
for the benchmarks' `play --game arena` (`ArenaGame(players)`: as many, the
arena's area growing with them so that each still sees about as many others)
move about a square arena. The room ticks 20 times a second; each player
sends a velocity input (`{"move": [vx, vy], "n": k}`, k counting the
player's inputs) about 20 times a second; every tick moves each
player by its velocity. A player sees itself and every player within `RADIUS`
of it (a per-player view, as a real-time game cuts what it sends to what is
near), plus `ack`: its latest input that a tick has applied to the world, so a
client can tell when an input's effect shows (its input-to-state latency).
Views find the players near each one with `vinom.games.interest.Grid` (built
once per tick), so the views of N players cost about N·k, not N².

It uses nothing but `vinom.games.base.Game`, `vinom.games.interfaces` and
`vinom.games.interest`, as a game from docs/games.md would. Its browser board
is `vinom/webclient/boards/arena.js`, its terminal view
`vinom.client.game_views.ArenaView`; `python -m benchmarks play --game arena
[--players 64]` plays it with the load process's bots. `make_bot` gives the
same players to rooms and the terminal client.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from attrs import evolve, field, frozen
from twisted.plugin import IPlugin
from zope.interface import implementer

from vinom.games.base import Game
from vinom.games.interest import Grid
from vinom.games.interfaces import IBot, IGame, IllegalAction, Outcome, Seat

#: The arena of eight players is a square of this side; players wrap around its edges.
SIZE = 600.0
#: Players in an arena room unless told otherwise.
PLAYERS = 8
#: A player sees the players within this distance (itself included).
RADIUS = 300.0
#: The fastest a player may move, in units per second.
MAX_SPEED = 120.0
TICK_RATE = 20.0
#: Inputs per second per player the load sends (the bots of `play --game arena`).
INPUT_RATE = 20.0


#: A player as a view shows it: index, x, y, vx, vy.
Row = tuple[int, float, float, float, float]


@frozen
class ArenaState:
    players: tuple[str, ...]
    # Per seat: position, velocity, the latest input number received, and the
    # latest one a tick has applied.
    x: tuple[float, ...]
    y: tuple[float, ...]
    vx: tuple[float, ...]
    vy: tuple[float, ...]
    received: tuple[int, ...]
    applied: tuple[int, ...]
    # The players' cells, from x and y (so not compared): built once a tick for
    # every view of that tick.
    grid: Grid = field(eq=False, repr=False)
    ticks: int = 0
    over: bool = False

    @cached_property
    def rows(self) -> tuple[Row, ...]:
        """Each seat's row as views show it: one tuple per player, made on the first view
        of this state and shared by every view, so that the host makes each wire once
        (docs/games.md, "Only what a player can see")."""
        return tuple(map(_row, range(len(self.x)), self.x, self.y, self.vx, self.vy))


def _row(i: int, x: float, y: float, vx: float, vy: float) -> Row:
    """Player `i`'s row as views show it: ``(index, x, y, vx, vy)``, rounded as quantised."""
    return (i, round(x, 2), round(y, 2), round(vx, 1), round(vy, 1))


def _set(values: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    return (*values[:index], value, *values[index + 1 :])


@implementer(IPlugin, IGame)
class ArenaGame(Game[ArenaState]):
    """The arena of `players` players (each match), a square of side `size`."""

    name = "arena"
    display_name = "Arena"
    description = "Real-time: move your dot about a wrapping square, 20 ticks a second"
    version = "1"
    min_players = 2
    max_players = PLAYERS
    match_size = PLAYERS
    tick_rate = TICK_RATE
    time_limit = 3600.0
    countdown = 0.0
    # Inputs come at INPUT_RATE; jitter on a busy machine must not have them refused.
    action_rate = 2 * INPUT_RATE
    idle_timeout = 0.0
    # How precisely the views' numbers travel (docs/games.md, "Quantisation"): the
    # view rounds them so already; saying so lets snaps send them as integers.
    # Each seen player is (index, x, y, vx, vy).
    quantisation = {
        "players.*.1": 0.01,
        "players.*.2": 0.01,
        "players.*.3": 0.1,
        "players.*.4": 0.1,
    }

    def __init__(self, players: int = PLAYERS) -> None:
        self.max_players = self.match_size = players
        # The same density of players whatever their number: a player sees about
        # as many others (~6 of 8 at 8 players) in a room of 64 as in one of 8.
        self.size = SIZE * math.sqrt(players / PLAYERS)
        # The view field by field (docs/games.md, "View schema"): snaps to a client
        # that reads schema snapshots are bit-packed against its baseline.
        position = ["fixed", 0, self.size, 0.01]
        speed = ["fixed", -MAX_SPEED, MAX_SPEED, 0.1]
        self.view_schema = [
            ["me", ["int", -1, players - 1]],
            ["ack", ["int", 0, 2**32 - 1]],
            ["ticks", ["int", 0, 2**32 - 1]],
            ["players", ["rows", [["int", 0, players - 1], position, position, speed, speed]]],
        ]

    def grid(self, x: tuple[float, ...], y: tuple[float, ...]) -> Grid:
        # Cells about the view's radius: a view then looks into about nine cells.
        return Grid.build(x, y, cell=RADIUS, wrap=self.size)

    def create(
        self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random
    ) -> ArenaState:
        n = len(seats)
        x = tuple(rng.uniform(0, self.size) for _ in range(n))
        y = tuple(rng.uniform(0, self.size) for _ in range(n))
        return ArenaState(
            players=tuple(s.player_id for s in seats),
            x=x,
            y=y,
            vx=(0.0,) * n,
            vy=(0.0,) * n,
            received=(0,) * n,
            applied=(0,) * n,
            grid=self.grid(x, y),
        )

    def check_join(self, state: ArenaState, seat: Seat) -> str | None:
        return "the match is over" if state.over else None

    def join(self, state: ArenaState, seat: Seat) -> Outcome:
        return Outcome(state)

    def reconnect(self, state: ArenaState, seat: Seat) -> Outcome:
        return Outcome(state)

    def on_move(
        self, state: ArenaState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        move, number = action.get("move"), action.get("n")
        if (
            not isinstance(move, list)
            or len(move) != 2
            or not all(type(v) in (int, float) and math.isfinite(v) for v in move)
            or type(number) is not int
        ):
            raise IllegalAction("bad_action", 'a move is {"move": [vx, vy], "n": input number}')
        vx, vy = capped(move)
        i = seat.index
        return Outcome(
            evolve(
                state,
                vx=_set(state.vx, i, vx),
                vy=_set(state.vy, i, vy),
                received=_set(state.received, i, max(number, state.received[i])),
            )
        )

    def tick(self, state: ArenaState, dt: float, rng: random.Random) -> Outcome:
        size = self.size
        x = tuple((x + vx * dt) % size for x, vx in zip(state.x, state.vx, strict=True))
        y = tuple((y + vy * dt) % size for y, vy in zip(state.y, state.vy, strict=True))
        return Outcome(
            evolve(
                state,
                x=x,
                y=y,
                grid=self.grid(x, y),
                applied=state.received,
                ticks=state.ticks + 1,
            )
        )

    def time_up(self, state: ArenaState) -> Outcome:
        return Outcome(evolve(state, over=True))

    def view(self, state: ArenaState, player_id: str | None) -> Mapping[str, Any]:
        players = state.players
        me = players.index(player_id) if player_id in players else -1
        if me < 0:
            near: Sequence[int] = range(len(players))  # a spectator sees everyone
        else:
            near = state.grid.near(state.x[me], state.y[me], RADIUS)
        rows = state.rows
        seen = [rows[i] for i in near]
        return {
            "me": me,
            "ack": state.applied[me] if me >= 0 else 0,
            "ticks": state.ticks,
            "players": seen,
        }

    def is_finished(self, state: ArenaState) -> bool:
        return state.over

    def result(self, state: ArenaState) -> Mapping[str, Any]:
        return {"winners": [], "reason": "time"}

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        return ArenaBot(rng)

    # -- the client's prediction (docs/games.md, "Prediction and reconciliation"):
    # the own player's part of the view, and one tick of the same rules as
    # on_move and tick for it. vinom/webclient/boards/arena.js has their twins.

    def own(self, view: Mapping[str, Any]) -> dict[str, float] | None:
        """The viewing player's own `{x, y, vx, vy}` in its view (None: a spectator)."""
        me = view.get("me")
        for seen in view.get("players", ()):
            if seen[0] == me:
                return {"x": seen[1], "y": seen[2], "vx": seen[3], "vy": seen[4]}
        return None

    def step(
        self, own: Mapping[str, float], inputs: Sequence[Mapping[str, Any]], dt: float
    ) -> dict[str, float]:
        """`own` after one tick: its inputs for the tick applied (as on_move), then
        the move of `dt` seconds (as tick). A malformed input is skipped, as the
        room refuses it."""
        vx, vy = own["vx"], own["vy"]
        for value in inputs:
            move = value.get("move")
            if isinstance(move, list) and len(move) == 2:
                vx, vy = capped(move)
        size = self.size
        return {"x": (own["x"] + vx * dt) % size, "y": (own["y"] + vy * dt) % size,
                "vx": vx, "vy": vy}  # fmt: skip


@implementer(IBot)
class ArenaBot:
    """Turns now and then; every action is a new velocity (one input)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.inputs = 0
        self.heading = rng.uniform(0, 2 * math.pi)

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        self.inputs += 1
        return {"move": velocity(self.rng, self), "n": self.inputs}


def capped(move: Sequence[float]) -> tuple[float, float]:
    """A velocity input as the arena takes it: at most MAX_SPEED."""
    vx, vy = float(move[0]), float(move[1])
    speed = math.hypot(vx, vy)
    if speed > MAX_SPEED:
        vx, vy = vx * MAX_SPEED / speed, vy * MAX_SPEED / speed
    return vx, vy


def velocity(rng: random.Random, bot: Any) -> list[float]:
    """A bot's next velocity: mostly straight on, sometimes a turn."""
    bot.heading += rng.uniform(-0.6, 0.6)
    speed = MAX_SPEED * 0.8
    return [round(speed * math.cos(bot.heading), 1), round(speed * math.sin(bot.heading), 1)]
