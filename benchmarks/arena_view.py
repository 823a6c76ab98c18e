"""The arena's terminal view (`vinom play arena`; `ArenaGame.terminal_view`):
the arena scaled to the terminal, your dot `@`, the others their seat number.

Built on the client library's netcode (docs/client.md, "Clock, interpolation
and prediction"), as the browser board is: at the welcome it asks the session
to interpolate the views (the others drawn between snapshots, 20 frames a
second) and to predict your own dot with the arena's rules (`ArenaGame.own`,
`ArenaGame.step`), so that an arrow key moves it on the next frame. A
terminal reports no key releases: an arrow sets the direction, the space bar
stops. Each is an input (`{"move": [vx, vy], "n": k}`), which the terminal
client sends as a real-time input in a game with a tick.
"""

from __future__ import annotations

import curses
from collections.abc import Mapping
from typing import Any

from benchmarks.arena import ArenaGame
from vinom.client.canvas import DIM, ME, OTHER, Area, Canvas, GameUI, KeyResult, PlayerContext
from vinom.client.game import GameSession
from vinom.client.netcode import Interpolation

#: Units per second an arrow gives (the browser board's speed).
SPEED = 100.0
ARROWS = {
    curses.KEY_UP: (0.0, -SPEED), curses.KEY_DOWN: (0.0, SPEED),
    curses.KEY_LEFT: (-SPEED, 0.0), curses.KEY_RIGHT: (SPEED, 0.0),
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
        velocity = ARROWS.get(key)
        if velocity is None:
            return None
        self.inputs += 1
        return {"move": list(velocity), "n": self.inputs}
