"""The game registry: the games this installation can host, by name.

Games are Twisted plugins: any module in a `twisted/plugins/` directory on the
Python path may hold objects providing both `IPlugin` and `IGame`, so a
third-party package adds a game by shipping such a module, without touching
vinom (see docs/games.md). `GameRegistry.from_plugins()` collects them;
`GameRegistry(games)` takes an explicit list, for tests and embedding.
"""

from __future__ import annotations

import contextlib
import math
import re
import types
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from twisted.logger import Logger
from twisted.plugin import getPlugins
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from vinom.errors import UnknownGame
from vinom.games.interfaces import IGame
from vinom.games.rules import MIN_SNAPSHOT_BUDGET, GameCatalogue, GameRules, SnapshotBudget

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_log = Logger()


def check_game(game: object) -> None:
    """Raise `ValueError` unless `game` is a usable `IGame` provider."""
    try:
        verifyObject(IGame, game)
    except Invalid as error:
        raise ValueError(f"{game!r} does not provide IGame: {error}") from error
    assert IGame.providedBy(game)
    name = game.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"game name {name!r} must be lower case: letters, digits, '-', '_'")
    low, high, size = game.min_players, game.max_players, game.match_size
    if not (isinstance(low, int) and isinstance(high, int) and isinstance(size, int)):
        raise ValueError(f"game {name!r}: player counts must be integers")
    if not 1 <= low <= size <= high:
        raise ValueError(
            f"game {name!r}: need 1 <= min_players ({low}) <= match_size ({size}) "
            f"<= max_players ({high})"
        )
    for attribute in ("tick_rate", "time_limit", "countdown"):
        value = getattr(game, attribute)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"game {name!r}: {attribute} must be a number, not {value!r}")
    if game.tick_rate and not 1 <= game.tick_rate <= 60:
        raise ValueError(f"game {name!r}: tick_rate must be 0 or from 1 to 60")
    if not game.time_limit > 0 or game.countdown < 0:
        raise ValueError(f"game {name!r}: time_limit must be positive, countdown not negative")
    # Optional attributes (see `IGame`): checked only when the game has them.
    rate = getattr(game, "action_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < math.inf:
        raise ValueError(
            f"game {name!r}: action_rate must be 0 (unlimited) or actions per second, not {rate!r}"
        )
    snapshot_rate = getattr(game, "snapshot_rate", None)
    if snapshot_rate is not None:
        if not game.tick_rate:
            raise ValueError(
                f"game {name!r}: snapshot_rate is for games with a tick_rate; leave it None "
                f"(a game without a tick sends a state after every change), not {snapshot_rate!r}"
            )
        if (
            isinstance(snapshot_rate, bool)
            or not isinstance(snapshot_rate, int | float)
            or not 0 < snapshot_rate <= game.tick_rate
        ):
            raise ValueError(
                f"game {name!r}: snapshot_rate must be None (one state per tick) or states "
                f"per second above 0 and at most tick_rate ({game.tick_rate:g}), "
                f"not {snapshot_rate!r}"
            )
    budget = getattr(game, "snapshot_budget", None)
    if budget is not None and (not game.tick_rate or not isinstance(budget, SnapshotBudget)):
        raise ValueError(
            f"game {name!r}: snapshot_budget must be None or a "
            f"vinom.games.rules.SnapshotBudget, for a game with a tick_rate; not {budget!r}"
        )
    room = getattr(budget, "bytes", MIN_SNAPSHOT_BUDGET)
    if isinstance(room, bool) or not isinstance(room, int) or room < MIN_SNAPSHOT_BUDGET:
        raise ValueError(
            f"game {name!r}: snapshot_budget must be whole bytes, at least "
            f"{MIN_SNAPSHOT_BUDGET} (room for an entity past a snap's header), not {room!r}"
        )
    wait = getattr(budget, "max_wait", None)
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int) or wait < 1):
        raise ValueError(
            f"game {name!r}: snapshot_budget's max_wait must be None or whole snapshots, "
            f"at least 1, not {wait!r}"
        )
    if budget is not None and not getattr(game, "view_schema", None):
        raise ValueError(
            f"game {name!r}: snapshot_budget needs a view_schema: the entities that may "
            f"wait are one of its rows fields (docs/games.md, \"A byte budget\")"
        )
    if not isinstance(getattr(game, "shared_view", False), bool):
        raise ValueError(f"game {name!r}: shared_view must be true or false")
    shown = getattr(game, "display_name", None)
    if shown is not None and not (isinstance(shown, str) and shown.strip() and len(shown) <= 64):
        raise ValueError(
            f"game {name!r}: display_name must be None or a name of 1 to 64 characters, "
            f"not {shown!r}"
        )
    _check_rating_window(name, getattr(game, "rating_window", None))
    team_size = getattr(game, "team_size", None)
    if team_size is not None and (
        isinstance(team_size, bool)
        or not isinstance(team_size, int)
        or team_size < 1
        or size % team_size
    ):
        raise ValueError(
            f"game {name!r}: team_size must be None or a whole number of players that "
            f"divides match_size ({size}), not {team_size!r}"
        )


# Games that passed `check_game` (by id, while they live): checking costs about
# 0.1 ms, and a game object serves many rooms.
_checked_games: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def check_game_once(game: object) -> None:
    """`check_game`, once per game object (a room checks the game it is given)."""
    if _checked_games.get(id(game)) is game:
        return
    check_game(game)
    # A game that cannot be weakly referenced is checked every time.
    with contextlib.suppress(TypeError):
        _checked_games[id(game)] = game


def _check_rating_window(name: str, window: object) -> None:
    if window is None:
        return
    values = {part: getattr(window, part, "absent") for part in ("base", "growth", "max")}
    for part, value in values.items():
        if value is None and part == "max":
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value < math.inf
        ):
            raise ValueError(
                f"game {name!r}: rating_window needs base and growth (and max, or None) "
                f"as numbers of at least 0, not {part}={value!r}"
            )


class GameRegistry:
    """Games by name, and their rules (`rules`). Read-only once built."""

    def __init__(self, games: Iterable[IGame]) -> None:
        self._games: dict[str, IGame] = {}
        for game in games:
            check_game(game)
            if game.name in self._games:
                raise ValueError(f"two games are named {game.name!r}")
            self._games[game.name] = game
        # Each game's optional attributes are read once, here, into its rules.
        self._rules = GameCatalogue(GameRules.of(game) for game in self._games.values())

    @classmethod
    def from_plugins(cls, package: types.ModuleType | None = None) -> GameRegistry:
        """Every installed game: `IGame` plugins found in `package` (`twisted.plugins`).

        A plugin module on the path twice (a source tree and an installed copy)
        yields the same game twice; the first of a name is kept. A plugin that
        is not a usable game is logged and skipped so that one broken package
        does not take every other game down with it.
        """
        if package is None:
            import twisted.plugins as package
        games: dict[str, IGame] = {}
        for game in getPlugins(IGame, package):
            try:
                check_game(game)
            except ValueError as error:
                _log.warn("Skipping game plugin {game!r}: {error}", game=game, error=str(error))
                continue
            games.setdefault(game.name, game)
        return cls(games.values())

    def offered(self, names: Iterable[str] | None = None) -> GameRegistry:
        """The games a server offers: those `names` (UnknownGame for a name not
        installed), or with None every game that is offered by default."""
        if names is None:
            return GameRegistry(
                g for g in self._games.values() if self._rules[g.name].offered_by_default
            )
        return GameRegistry(self.get(name) for name in dict.fromkeys(names))

    def get(self, name: str) -> IGame:
        """The game called `name`; `UnknownGame` (a `KeyError`) if none is."""
        try:
            return self._games[name]
        except (KeyError, TypeError):
            raise UnknownGame(str(name), self.names()) from None

    def names(self) -> list[str]:
        """Installed game names, sorted."""
        return sorted(self._games)

    def rules(self) -> GameCatalogue:
        """The rules of every game here, by name: what the matchmakers, the lobby and
        the server read of the games (`GameRules`)."""
        return self._rules

    def describe(self) -> list[dict[str, Any]]:
        """One row per game for `vinom games` (msgpack/JSON-safe)."""
        rows = []
        for rules in self._rules.values():
            window = rules.rating_window
            rows.append(
                {
                    "name": rules.name,
                    "display_name": rules.title,
                    "description": rules.description,
                    "version": rules.version,
                    "players": [rules.min_players, rules.max_players],
                    "match_size": rules.match_size,
                    "tick_rate": self._games[rules.name].tick_rate,
                    # What the room sends: 0 for a game without a tick (a state
                    # after every change), else the game's rate or its tick rate.
                    "snapshot_rate": rules.snapshot_rate,
                    "time_limit": self._games[rules.name].time_limit,
                    "countdown": self._games[rules.name].countdown,
                    "action_rate": rules.action_rate,
                    "shared_view": rules.shared_view,
                    "rating_window": (
                        None if window is None else (window.base, window.growth, window.max)
                    ),
                    "team_size": rules.team_size,
                    "offered_by_default": rules.offered_by_default,
                    "module": type(self._games[rules.name]).__module__,
                }
            )
        return rows

    def __contains__(self, name: object) -> bool:
        return name in self._games

    def __iter__(self) -> Iterator[IGame]:
        return iter([self._games[name] for name in self.names()])

    def __len__(self) -> int:
        return len(self._games)

    def as_mapping(self) -> Mapping[str, IGame]:
        """A read-only view of the games by name."""
        return types.MappingProxyType(self._games)


#: What `vinom games` writes after a game a server offers only when `--games` names it.
NOT_OFFERED_MARK = "*"


def format_games(registry: GameRegistry, every: bool = False) -> str:
    """The table `vinom games` prints: a game's registry name (what `--game` and
    `queue` take) and its display name. The games a server does not offer unless
    `--games` names them (test and benchmark games, such as duel) are counted under
    the table, not listed: a newcomer cannot play them; with `every` (`--all`) they
    are listed, marked, and the mark explained."""
    rows = [("NAME", "GAME", "PLAYERS", "MATCH", "TIME", "DESCRIPTION")]
    marked = False
    hidden = 0
    for row in registry.describe():
        low, high = row["players"]
        name = row["name"]
        if not row["offered_by_default"]:
            if not every:
                hidden += 1
                continue
            name += NOT_OFFERED_MARK
            marked = True
        rows.append(
            (
                name,
                row["display_name"],
                f"{low}" if low == high else f"{low}-{high}",
                str(row["match_size"]),
                f"{row['time_limit']:g}s",
                row["description"],
            )
        )
    columns = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(columns)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r[:columns], widths, strict=True))
        + "  "
        + r[columns]
        for r in rows
    ]
    if marked:
        lines.append("")
        lines.append(
            f"{NOT_OFFERED_MARK} not offered by a server unless named: "
            "twistd vinom --games NAME,..."
        )
    if hidden:
        lines.append("")
        lines.append(
            f"({hidden} more installed game{'s' if hidden > 1 else ''}, offered only when a "
            "server's --games names it: vinom games --all)"
        )
    return "\n".join(lines)
