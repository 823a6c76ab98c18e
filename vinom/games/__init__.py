"""Games: the pluggable rules that rooms run.

Write a game by subclassing `Game` (see docs/games.md)::

    from vinom.games import Game, GameEvent, IllegalAction, Outcome, Seat, option_int
"""

from vinom.games.base import Game
from vinom.games.common import option_int
from vinom.games.history import TickHistory
from vinom.games.interfaces import GameEvent, IBot, IGame, IllegalAction, Outcome, Seat
from vinom.games.rules import SnapshotBudget

__all__ = [
    "Game",
    "GameEvent",
    "IBot",
    "IGame",
    "IllegalAction",
    "Outcome",
    "Seat",
    "SnapshotBudget",
    "TickHistory",
    "option_int",
]
