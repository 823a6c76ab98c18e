"""What a terminal game view draws with: the `Canvas`, its styles, the `GameUI`
protocol and the generic text view.

A game's own terminal view (vinom.client.game_views for the built-in games,
or a plugin's module: docs/games.md, "Terminal views") follows `GameUI`: it
draws the game's view on a `Canvas` inside an `Area` and turns keys into
actions. The terminal client (vinom.client.tui) copies the canvas to the
screen. This module imports nothing of the client, so views and the client
both build on it.
"""

from __future__ import annotations

import curses
import json
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from attrs import frozen

# Styles of canvas cells; CursesScreen maps them to colours and attributes.
NORMAL, BOLD, DIM, REVERSE, ME, OTHER, REWARD, BIG_REWARD, WALL, ERROR, GOOD = range(11)

KEY_ENTER = (10, 13, curses.KEY_ENTER)


class Canvas:
    """A grid of characters and styles the size of the screen; writes are clipped."""

    def __init__(self, height: int, width: int) -> None:
        self.height = max(0, height)
        self.width = max(0, width)
        self._chars = [[" "] * self.width for _ in range(self.height)]
        self._styles = [[NORMAL] * self.width for _ in range(self.height)]

    def put(self, y: int, x: int, text: str, style: int = NORMAL) -> None:
        """Write `text` at row `y`, column `x`; whatever falls off the canvas is dropped."""
        if not 0 <= y < self.height:
            return
        chars, styles = self._chars[y], self._styles[y]
        for i, char in enumerate(text):
            column = x + i
            if column >= self.width:
                break
            if column >= 0:
                chars[column] = char if char.isprintable() else "?"
                styles[column] = style

    def fill(self, y: int, style: int) -> None:
        """Give a whole row one style (a header bar)."""
        if 0 <= y < self.height:
            self._styles[y] = [style] * self.width

    def char(self, y: int, x: int) -> str:
        if 0 <= y < self.height and 0 <= x < self.width:
            return self._chars[y][x]
        return " "

    def style(self, y: int, x: int) -> int:
        return self._styles[y][x]

    def blit(self, other: Canvas, y: int, x: int, src_y: int = 0, src_x: int = 0) -> None:
        """Copy `other` (from its row src_y, column src_x) onto this canvas at (y, x)."""
        for row in range(max(0, src_y), other.height):
            for column in range(max(0, src_x), other.width):
                ty, tx = y + row - src_y, x + column - src_x
                if 0 <= ty < self.height and 0 <= tx < self.width:
                    self._chars[ty][tx] = other.char(row, column)
                    self._styles[ty][tx] = other.style(row, column)

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self._chars]

    def text(self) -> str:
        return "\n".join(self.lines()).rstrip("\n")

    def runs(self, y: int) -> Iterator[tuple[int, str, int]]:
        """Row `y` as (column, text, style) runs of one style each."""
        chars, styles = self._chars[y], self._styles[y]
        start = 0
        for x in range(1, self.width + 1):
            if x == self.width or styles[x] != styles[start]:
                yield start, "".join(chars[start:x]), styles[start]
                start = x


@frozen
class Area:
    """The rows and columns of the canvas a game UI may draw in."""

    top: int
    left: int
    height: int
    width: int


@frozen
class PlayerContext:
    """Who is playing: this client's player id and everyone's names by id."""

    player_id: str | None
    names: Mapping[str, str]

    def name(self, player_id: object) -> str:
        """The name a person reads for a player id: "you", their name, never the id."""
        if player_id == self.player_id:
            return "you"
        if player_id is None:
            return "nobody"
        return self.names.get(str(player_id), "a player")

    def is_player(self, value: object) -> bool:
        return isinstance(value, str) and (value in self.names or value == self.player_id)


# What a game UI makes of a key: an action to send, a notice for the user, or nothing.
KeyResult = Mapping[str, Any] | str | None


class GameUI(Protocol):
    """Draws one game's view and turns keys into its actions. A UI that needs none of
    `sent`, `settled` and `rejected` subclasses it for their do-nothing defaults."""

    help: str

    def draw(self, canvas: Canvas, area: Area, view: Mapping[str, Any], ctx: PlayerContext) -> None:
        ...

    def key(self, key: int, view: Mapping[str, Any], ctx: PlayerContext) -> KeyResult:
        ...

    def sent(self, action: Mapping[str, Any]) -> None:
        """An action (from a key, the bot or the prompt) went out."""
        return None

    def settled(self) -> None:
        """Every action sent has been applied or rejected."""
        return None

    def rejected(self, error: Mapping[str, Any]) -> None:
        """The server rejected an action."""
        return None


def me_in(view: Mapping[str, Any], player_id: str | None) -> Mapping[str, Any] | None:
    players = view.get("players")
    if not isinstance(players, list):
        return None
    return next((p for p in players if isinstance(p, dict) and p.get("id") == player_id), None)


# -- any other game -----------------------------------------------------------


def format_view(view: Mapping[str, Any], ctx: PlayerContext) -> list[str]:
    """A game's view as text lines: `key: value`, lists of maps one item per line."""
    lines = []
    for key, value in view.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{key}:")
            for item in value:
                lines.append("  " + "  ".join(
                    f"{k}={value_text(k, v, ctx)}" for k, v in item.items()))
        else:
            lines.append(f"{key}: {value_text(key, value, ctx)}")
    return lines


def value_text(key: str, value: Any, ctx: PlayerContext) -> str:
    """A value of a view or an event as a person reads it: player ids as names."""
    if ctx.is_player(value):
        return ctx.name(value)
    return json.dumps(_with_names(value, ctx), separators=(",", ":"), default=repr)


def _with_names(value: Any, ctx: PlayerContext) -> Any:
    """`value` with every player id in it (map keys included) replaced by the player's
    name: a person reads names, never ids."""
    if ctx.is_player(value):
        return ctx.name(value)
    if isinstance(value, dict):
        return {
            (ctx.name(k) if ctx.is_player(k) else k): _with_names(v, ctx) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_with_names(v, ctx) for v in value]
    return value


class GenericUI(GameUI):
    """Every game without a UI of its own: its view as text, actions by bot or as JSON."""

    help = "b bot move  B autopilot  : type an action (JSON)  q quit"

    def __init__(self) -> None:
        self.events: deque[str] = deque(maxlen=5)

    def key(self, key: int, view: Mapping[str, Any], ctx: PlayerContext) -> KeyResult:
        return None

    def draw(self, canvas: Canvas, area: Area, view: Mapping[str, Any], ctx: PlayerContext) -> None:
        lines = format_view(view, ctx)
        room = area.height - (len(self.events) + 1 if self.events else 0)
        for i, line in enumerate(lines[: max(0, room)]):
            canvas.put(area.top + i, area.left, line)
        if self.events:
            top = area.top + area.height - len(self.events)
            canvas.put(top - 1, area.left, "events:", DIM)
            for i, event in enumerate(self.events):
                canvas.put(top + i, area.left + 2, event, DIM)
