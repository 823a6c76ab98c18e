"""The terminal client's views of games, and how it picks one for a game.

`ui_for(game)` gives a game's view: the one the game names in its
`terminal_view` attribute (how a plugin game ships its own: docs/games.md,
"Terminal views"), else the client's own view for the game's class in
`TERMINAL_VIEWS` (the built-in maze, tic-tac-toe and arena games, and games
derived from them), else the generic text view. The client maps games to views, not
the other way round: the game layer never names the client (tests/test_layers.py).
"""

from __future__ import annotations

import curses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, cast

from twisted.logger import Logger

from vinom.client.canvas import (
    BIG_REWARD,
    BOLD,
    DIM,
    GOOD,
    KEY_ENTER,
    ME,
    NORMAL,
    OTHER,
    REVERSE,
    REWARD,
    WALL,
    Area,
    Canvas,
    GameUI,
    GenericUI,
    KeyResult,
    PlayerContext,
    me_in,
)
from vinom.client.game import GameSession
from vinom.client.netcode import Interpolation
from vinom.games.arena import ArenaGame
from vinom.games.interfaces import IGame
from vinom.games.maze import DIRECTIONS, MazeGame, cell_reward
from vinom.games.tictactoe import TicTacToeGame

_log = Logger()

# -- maze ---------------------------------------------------------------------

MAZE_KEYS: dict[int, str] = {
    curses.KEY_UP: "N",
    ord("k"): "N",
    curses.KEY_DOWN: "S",
    ord("j"): "S",
    curses.KEY_LEFT: "W",
    ord("h"): "W",
    curses.KEY_RIGHT: "E",
    ord("l"): "E",
}
# A cell is 4 columns by 2 rows of the drawing: a post and a wall, then its inside.
CELL_W, CELL_H = 4, 2


class MazeUI:
    """The maze: walls, rewards (`.` is 1, `$` is 5), you (`@`) and others (their seat)."""

    help = "arrows/hjkl move  b bot move  B autopilot  : action  q quit"

    def __init__(self) -> None:
        # Where our own moves will have taken us once the server applies them.
        self.predicted: tuple[int, int] | None = None

    def position(self, view: Mapping[str, Any], ctx: PlayerContext) -> tuple[int, int] | None:
        """Our position: the predicted one while moves are in flight, else the server's."""
        if self.predicted is not None:
            return self.predicted
        me = me_in(view, ctx.player_id)
        if me is None:
            return None
        x, y = me["pos"]
        return int(x), int(y)

    def key(self, key: int, view: Mapping[str, Any], ctx: PlayerContext) -> KeyResult:
        direction = MAZE_KEYS.get(key)
        if direction is None:
            return None
        position = self.position(view, ctx)
        if position is None:
            return "you are not in this maze"
        x, y = position
        bit = DIRECTIONS[direction][0]
        if view["cells"][y * view["width"] + x] & bit:
            return "a wall is in the way"
        return {"move": direction, "from": [x, y]}

    def sent(self, action: Mapping[str, Any]) -> None:
        direction, basis = action.get("move"), action.get("from")
        if direction in DIRECTIONS and isinstance(basis, list | tuple) and len(basis) == 2:
            _, dx, dy, _ = DIRECTIONS[direction]
            self.predicted = (int(basis[0]) + dx, int(basis[1]) + dy)

    def settled(self) -> None:
        self.predicted = None

    def rejected(self, error: Mapping[str, Any]) -> None:
        self.predicted = None

    def render(self, view: Mapping[str, Any], ctx: PlayerContext) -> Canvas:
        """The whole maze, one character per drawing cell."""
        width, height, cells = view["width"], view["height"], view["cells"]
        maze = Canvas(height * CELL_H + 1, width * CELL_W + 1)
        for index, cell in enumerate(cells):
            x, y = index % width, index // width
            top, left = y * CELL_H, x * CELL_W
            if cell & DIRECTIONS["N"][0]:
                maze.put(top, left + 1, "---", WALL)
            if cell & DIRECTIONS["S"][0]:
                maze.put(top + CELL_H, left + 1, "---", WALL)
            if cell & DIRECTIONS["W"][0]:
                maze.put(top + 1, left, "|", WALL)
            if cell & DIRECTIONS["E"][0]:
                maze.put(top + 1, left + CELL_W, "|", WALL)
            reward = cell_reward(cell)
            if reward:
                maze.put(top + 1, left + 2, "$" if reward > 1 else ".",
                         BIG_REWARD if reward > 1 else REWARD)
        # Posts only where a wall meets them, so open areas stay open.
        for py in range(0, maze.height, CELL_H):
            for px in range(0, maze.width, CELL_W):
                if (maze.char(py, px - 1) == "-" or maze.char(py, px + 1) == "-"
                        or maze.char(py - 1, px) == "|" or maze.char(py + 1, px) == "|"):
                    maze.put(py, px, "+", WALL)
        for seat, player in enumerate(view["players"]):
            if player.get("left") or player.get("id") == ctx.player_id:
                continue
            px, py = player["pos"]
            maze.put(py * CELL_H + 1, px * CELL_W + 2, str(seat + 1), OTHER)
        mine = self.position(view, ctx)
        if mine is not None:
            maze.put(mine[1] * CELL_H + 1, mine[0] * CELL_W + 2, "@", ME)
        return maze

    def draw(self, canvas: Canvas, area: Area, view: Mapping[str, Any], ctx: PlayerContext) -> None:
        scores = []
        for seat, player in enumerate(view["players"]):
            mark = "@" if player.get("id") == ctx.player_id else str(seat + 1)
            gone = " (left)" if player.get("left") else ""
            scores.append((f"{mark} {ctx.name(player['id'])} {player['score']}{gone}",
                           ME if mark == "@" else OTHER))
        x = area.left
        for text, style in scores:
            canvas.put(area.top, x, text, style)
            x += len(text) + 3
        canvas.put(area.top, x, f"rewards left {view.get('remaining', '?')}", DIM)
        maze = self.render(view, ctx)
        top, height = area.top + 2, area.height - 2
        if height <= 0:
            return
        # Centre the maze; when it does not fit, scroll it so that we stay in sight.
        mine = self.position(view, ctx) or (0, 0)
        dest_y, src_y = _viewport(maze.height, height, mine[1] * CELL_H + 1)
        dest_x, src_x = _viewport(maze.width, area.width, mine[0] * CELL_W + 2)
        clipped = Canvas(min(height, maze.height - src_y), min(area.width, maze.width - src_x))
        clipped.blit(maze, 0, 0, src_y, src_x)
        canvas.blit(clipped, top + dest_y, area.left + dest_x)


def _viewport(size: int, room: int, focus: int) -> tuple[int, int]:
    """(offset on screen, first row/column of the drawing) showing `focus` in `room`."""
    if size <= room:
        return (room - size) // 2, 0
    return 0, min(max(0, focus - room // 2), size - room)


# -- tic-tac-toe --------------------------------------------------------------

CURSOR_KEYS: dict[int, tuple[int, int]] = {
    curses.KEY_UP: (0, -1),
    ord("k"): (0, -1),
    curses.KEY_DOWN: (0, 1),
    ord("j"): (0, 1),
    curses.KEY_LEFT: (-1, 0),
    ord("h"): (-1, 0),
    curses.KEY_RIGHT: (1, 0),
    ord("l"): (1, 0),
}


class TicTacToeUI(GameUI):
    """A 3x3 board with a cursor; 1-9 name the cells in reading order."""

    help = "arrows/hjkl cursor  Enter/space or 1-9 mark  y/n rematch  b bot  q quit"

    def __init__(self) -> None:
        self.cursor = 4

    def key(self, key: int, view: Mapping[str, Any], ctx: PlayerContext) -> KeyResult:
        if key in CURSOR_KEYS:
            dx, dy = CURSOR_KEYS[key]
            x, y = self.cursor % 3, self.cursor // 3
            self.cursor = min(2, max(0, y + dy)) * 3 + min(2, max(0, x + dx))
            return None
        if key in (ord("y"), ord("n")):
            if not view.get("round_over"):
                return "the round is still being played"
            return {"rematch": key == ord("y")}
        if ord("1") <= key <= ord("9"):
            cell = key - ord("1")
            self.cursor = cell
        elif key in (*KEY_ENTER, ord(" ")):
            cell = self.cursor
        else:
            return None
        if view.get("round_over"):
            return "the round is over: y asks for a rematch, n ends the match"
        if view.get("turn") != ctx.player_id:
            return "it is not your turn"
        if view["board"][cell]:
            return f"cell {cell + 1} is taken"
        return {"cell": cell}

    def draw(self, canvas: Canvas, area: Area, view: Mapping[str, Any], ctx: PlayerContext) -> None:
        me = me_in(view, ctx.player_id)
        mark = me["mark"] if me else "?"
        others = [p for p in view["players"] if p is not me]
        line = set(view.get("line") or ())
        top, left = area.top + 1, area.left + 2
        for row in range(3):
            for column in range(3):
                cell = row * 3 + column
                text = f" {view['board'][cell] or ' '} "
                style = NORMAL
                if cell in line:
                    style = GOOD
                if cell == self.cursor:
                    style = REVERSE
                canvas.put(top + row * 2, left + column * 4, text, style)
                if column < 2:
                    canvas.put(top + row * 2, left + column * 4 + 3, "|")
            if row < 2:
                canvas.put(top + row * 2 + 1, left, "---+---+---")
        info = left + 16
        canvas.put(top, info, f"you play {mark or '?'}", ME)
        for other in others:
            canvas.put(top + 1, info, f"{ctx.name(other['id'])} plays {other['mark'] or '?'}",
                       OTHER)
        wins = "  ".join(f"{ctx.name(p['id'])} {p['wins']}" for p in view["players"])
        canvas.put(top + 2, info, f"round {view['round']}  wins: {wins}  draws {view['draws']}")
        canvas.put(top + 4, info, *self._turn_line(view, ctx, me))

    def _turn_line(
        self, view: Mapping[str, Any], ctx: PlayerContext, me: Mapping[str, Any] | None
    ) -> tuple[str, int]:
        if view.get("finished"):
            return "the match is over", BOLD
        if view.get("round_over"):
            winner = view.get("round_winner")
            said = "a draw" if winner is None else (
                "you won the round" if winner == ctx.player_id
                else f"{ctx.name(winner)} won the round")
            if me is not None and me.get("rematch"):
                return f"{said}; waiting for the rematch answer", BOLD
            asked = any(p.get("rematch") for p in view["players"] if p is not me)
            offer = "rematch offered: " if asked else ""
            return f"{said}; {offer}y = rematch, n = end the match", GOOD
        if view.get("turn") == ctx.player_id:
            return "your turn", GOOD
        return f"waiting for {ctx.name(view.get('turn'))}", DIM


# -- which view for which game ------------------------------------------------

# -- arena ---------------------------------------------------------------------
# The arena scaled to the terminal, your dot `@`, the others their seat number.
# Built on the client library's netcode (docs/client.md, "Clock, interpolation
# and prediction"), as the browser board is: at the welcome it asks the session
# to interpolate the views and to predict your own dot with the arena's rules
# (`ArenaGame.own`, `step`), so that an arrow moves it on the next frame. A
# terminal reports no key releases: an arrow sets the direction, space stops.

#: Units per second an arrow gives (the browser board's speed).
ARENA_SPEED = 100.0
ARENA_KEYS = {
    curses.KEY_UP: (0.0, -ARENA_SPEED), curses.KEY_DOWN: (0.0, ARENA_SPEED),
    curses.KEY_LEFT: (-ARENA_SPEED, 0.0), curses.KEY_RIGHT: (ARENA_SPEED, 0.0),
    ord(" "): (0.0, 0.0),
}  # fmt: skip


class ArenaView(GameUI):
    """The arena drawn from the session's interpolated views and predicted own dot."""

    help = "arrows move  space stops  q quit"

    def __init__(self) -> None:
        self.session: GameSession | None = None
        self.game = ArenaGame()
        self.inputs = 0

    def realtime(self, session: GameSession) -> None:
        """The welcome of a match: the arena of its players, interpolated and predicted."""
        players = len(session.welcome["players"]) if session.welcome else 0
        self.game = game = ArenaGame(players or 8)
        self.session = session
        size = game.size
        session.predict(game.step, game.own, smooth=("x", "y"), wrap={"x": size, "y": size},
                        tolerance=0.011)
        session.interpolate(
            Interpolation(
                fields=("players.*.1", "players.*.2"),
                keys={"players": "0"},
                wrap={"players.*.1": size, "players.*.2": size},
            )
        )

    def draw(self, canvas: Canvas, area: Area, view: Mapping[str, Any], ctx: PlayerContext) -> None:
        session = self.session
        rendered = session.rendered() if session is not None else None
        shown = rendered if isinstance(rendered, Mapping) else view
        mine = session.predicted() if session is not None else None
        if mine is None:
            mine = self.game.own(view)
        rows, columns = max(1, area.height - 1), max(1, area.width)
        size = self.game.size

        def place(x: float, y: float) -> tuple[int, int]:
            return (area.top + min(rows - 1, int(y / size * rows)),
                    area.left + min(columns - 1, int(x / size * columns)))  # fmt: skip

        for row in range(rows):
            canvas.put(area.top + row, area.left, "." * columns, DIM)
        me = shown.get("me")
        for seen in shown.get("players", ()):
            if seen[0] != me:
                y, x = place(seen[1], seen[2])
                canvas.put(y, x, str((seen[0] + 1) % 10), OTHER)
        if mine is not None:
            y, x = place(mine["x"], mine["y"])
            canvas.put(y, x, "@", ME)
            canvas.put(area.top + rows, area.left,
                       f"you at {mine['x']:.1f}, {mine['y']:.1f}", DIM)  # fmt: skip

    def key(self, key: int, view: Mapping[str, Any], ctx: PlayerContext) -> KeyResult:
        velocity = ARENA_KEYS.get(key)
        if velocity is None:
            return None
        self.inputs += 1
        return {"move": list(velocity), "n": self.inputs}


TERMINAL_VIEWS: dict[type, Callable[[], GameUI]] = {
    MazeGame: MazeUI,
    TicTacToeGame: TicTacToeUI,
    ArenaGame: ArenaView,
}
"""The client's own views, by game class (a subclass gets its base's view)."""


def ui_for(game: IGame) -> GameUI:
    """The terminal view of a game: its own, else the client's for its class, else
    the generic text view.

    A game names its own view in its `terminal_view` attribute as
    "module:attribute", a `GameUI` class or factory (see docs/games.md); a
    name that cannot be loaded gives the generic view (logged). None (the
    `vinom.games.Game` default) means the client's view in `TERMINAL_VIEWS`
    for the game's class or one of its bases, if it has one.
    """
    name = getattr(game, "terminal_view", None)
    if isinstance(name, str):
        module, _, attribute = name.partition(":")
        try:
            return cast(GameUI, getattr(importlib.import_module(module), attribute)())
        except Exception:
            _log.failure("cannot load the terminal view {name} of {game}", name=name,
                         game=game.name)
        return GenericUI()
    for cls in type(game).__mro__:
        view = TERMINAL_VIEWS.get(cls)
        if view is not None:
            return view()
    return GenericUI()
