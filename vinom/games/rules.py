"""`GameRules`: one game's facts as the rest of vinom reads them, and `GameCatalogue`, a server's.

A game (`IGame`) declares its player counts, tick and the optional attributes
(`display_name`, `team_size`, `rating_window`, `action_rate` ...) its own way:
attributes a plain game may leave out, read with `getattr`. `GameRules.of`
is the one place they are read and their defaults applied; everything past
the game registry (rooms, both matchmakers, the lobby, the server) reads the
frozen record, so a new per-game setting is a field here and a line in `of`,
not a parameter added to every constructor it passes through. Code that needs
a game object's rules for every match (a room, a game host) asks `rules_of`,
which reads them once per game object, as the registry does.

`GameCatalogue` is the rules of the games one server offers, by name: the
game registry builds it once (`GameRegistry.rules`), the server applies its
operator's overrides (`--match-size`, `--rating-window`: `overridden`), and
the matchmakers and the lobby take it whole. Built by hand (`GameCatalogue.sized`)
it needs no game at all: a matchmaker or lobby test names games and sizes.
"""

from __future__ import annotations

import math
import types
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from attrs import Factory, evolve, field, frozen

from vinom.errors import UnknownGame

#: Actions per second per player for a game that declares no `action_rate`:
#: plenty for turn-based play and bots, while a flood costs the host little.
DEFAULT_ACTION_RATE = 20.0
#: Seconds of ticks a room keeps by default for a game that says nothing
#: (`history_ticks`): one second, enough for a 300 ms round trip plus an
#: interpolation delay of a few ticks.
DEFAULT_HISTORY_SECONDS = 1.0


def _not_negative(instance: object, attribute: object, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"a rating window's {getattr(attribute, 'name', '')} must not be negative")


@frozen
class RatingWindow:
    """How far apart two ratings may be: `base` points, `growth` more per second waited.

    A game declares one as its `rating_window` (any object with `base`, `growth`
    and `max` will do); the matchmakers apply it (vinom.matchmaking.windows)."""

    base: float = field(default=100.0, validator=_not_negative)
    growth: float = field(default=20.0, validator=_not_negative)
    max: float | None = field(default=None, validator=_not_negative)

    def width(self, waited: float) -> float:
        """The window after `waited` seconds in the queue."""
        width = self.base + self.growth * max(0.0, waited)
        return width if self.max is None else min(width, self.max)


#: The smallest `SnapshotBudget.bytes`: less leaves no room for an entity past the
#: snap's header. Checked with the game (`check_game`), not when the budget is made:
#: a game module's class body makes it, and an error there would lose every game
#: of the module, unnamed.
MIN_SNAPSHOT_BUDGET = 64

#: `SnapshotBudget.max_wait`'s default: 4 snapshots (200 ms at 20 a second), so a
#: deferred entity is at most 5 snapshot intervals old on a client.
DEFAULT_MAX_WAIT = 4


def _every_entity_alike(view: Any, key: str) -> float:
    return 1.0


@frozen
class SnapshotBudget:
    """The most bytes a real-time game's snapshot (a snap's ``d``) takes per client,
    and how its entities share them (docs/games.md, "A byte budget").

    `entities` names the rows field of the game's `view_schema` whose rows (entities,
    keyed by their id) may wait: when the changed ones do not all fit, those of the
    highest priority go and the others wait, their priority added up each snapshot
    they wait (Fiedler's priority accumulators); a snapshot says which wait, and the
    client carries them on. `priority(view, key)` rates the entity `key` of a
    player's view (nearer, more relevant: higher); `math.inf` never waits, even
    past the budget. Default: all alike. `bytes`: whole bytes, at least
    `MIN_SNAPSHOT_BUDGET`. `max_wait`: the most snapshots in a row a changed entity
    waits; the next one sends it even past the budget, so that no client sees it
    frozen, then jump, by more than that (None: the budget is a hard ceiling, and a
    low-priority entity may wait as long as higher ones keep filling it)."""

    bytes: int
    entities: str = "entities"
    priority: Any = _every_entity_alike
    max_wait: int | None = DEFAULT_MAX_WAIT


def default_display_name(name: str) -> str:
    """The display name of a game that declares none: its registry name in words,
    capitalised ("dice" -> "Dice", "tic_tac-toe" -> "Tic tac toe")."""
    words = name.replace("_", " ").replace("-", " ").split()
    return " ".join(words).capitalize()


def _check_sizes(rules: GameRules, attribute: object, value: object) -> None:
    if not 1 <= rules.min_players <= rules.match_size <= rules.max_players:
        raise ValueError(
            f"game {rules.name!r}: need 1 <= min_players ({rules.min_players}) <= "
            f"match_size ({rules.match_size}) <= max_players ({rules.max_players})"
        )


def _check_team_size(rules: GameRules, attribute: object, value: int | None) -> None:
    if value is not None and (value < 1 or rules.match_size % value):
        raise ValueError(
            f"game {rules.name!r} has teams of {value}; its match size "
            f"{rules.match_size} must be a multiple of it"
        )


@frozen
class GameRules:
    """What one game is to a server: its size, teams, ranked window, tick and names.

    Built from a game by `of` (defaults applied), or by hand with a `name` and a
    `match_size` (the player range defaults to exactly the match size).

    - `title`: the name people read ("Owe Drahn"), sent in `welcome`s.
    - `min_players`, `max_players`: the players a room of the game may start
      with and seat; `match_size`: the players the matchmaker puts in a match.
    - `team_size`: players per team (a divisor of `match_size`), or None for a
      game without teams, where each player's `team` is their seat.
    - `rating_window`: the game's ranked window, or None for the matchmaker's
      default.
    - `tick_rate` (0: no tick), `snapshot_rate` (states per second a playing
      room sends: 0 without a tick), `history_ticks` (past ticks' states kept
      for lag compensation: 0 without a tick).
    - `time_limit`, `countdown`: seconds of play, and between everyone
      connected and play (0 in rules built by hand for a matchmaker or lobby).
    - `action_rate` (0: unlimited), `shared_view`, `idle_timeout` (0: no idle
      rule), `records_matches`, `offered_by_default`, `snapshot_budget` (None:
      none; always None without a tick): as `IGame` says.
    """

    name: str
    match_size: int
    min_players: int = Factory(lambda rules: rules.match_size, takes_self=True)
    max_players: int = field(
        default=Factory(lambda rules: rules.match_size, takes_self=True), validator=_check_sizes
    )
    title: str = Factory(lambda rules: default_display_name(rules.name), takes_self=True)
    team_size: int | None = field(default=None, validator=_check_team_size)
    rating_window: RatingWindow | None = None
    tick_rate: float = 0.0
    snapshot_rate: float = 0.0
    history_ticks: int = 0
    time_limit: float = 0.0
    countdown: float = 0.0
    action_rate: float = DEFAULT_ACTION_RATE
    shared_view: bool = False
    idle_timeout: float = 0.0
    records_matches: bool = True
    offered_by_default: bool = True
    snapshot_budget: SnapshotBudget | None = None
    description: str = ""
    version: str = ""

    @property
    def player_range(self) -> tuple[int, int]:
        """(`min_players`, `max_players`): the players a room of the game takes."""
        return self.min_players, self.max_players

    @classmethod
    def of(cls, game: object) -> GameRules:
        """The rules `game` (an `IGame`) declares, each optional attribute it leaves
        out given its default. The values are taken as they are: the game registry's
        `check_game` refuses a game with bad ones before any rules are made of it."""
        name = str(getattr(game, "name", ""))
        shown = getattr(game, "display_name", None)
        tick_rate = float(getattr(game, "tick_rate", 0.0) or 0.0)
        snapshot_rate = getattr(game, "snapshot_rate", None)
        history_ticks = getattr(game, "history_ticks", None)
        team_size = getattr(game, "team_size", None)
        return cls(
            name=name,
            title=shown if isinstance(shown, str) and shown.strip() else default_display_name(name),
            description=str(getattr(game, "description", "")),
            version=str(getattr(game, "version", "")),
            min_players=int(getattr(game, "min_players", 1)),
            max_players=int(getattr(game, "max_players", 1)),
            match_size=int(getattr(game, "match_size", 1)),
            team_size=None if team_size is None else int(team_size),
            rating_window=_window_of(getattr(game, "rating_window", None)),
            tick_rate=tick_rate,
            # A game without a tick sends a state after every change; one with a
            # tick at most one per tick, by default exactly one.
            snapshot_rate=(
                0.0 if tick_rate <= 0
                else tick_rate if snapshot_rate is None else float(snapshot_rate)
            ),
            # A negative history is taken as none.
            history_ticks=(
                0 if tick_rate <= 0
                else math.ceil(tick_rate * DEFAULT_HISTORY_SECONDS) if history_ticks is None
                else max(0, int(history_ticks))
            ),
            time_limit=float(getattr(game, "time_limit", 0.0)),
            countdown=float(getattr(game, "countdown", 0.0)),
            action_rate=float(getattr(game, "action_rate", DEFAULT_ACTION_RATE)),
            shared_view=getattr(game, "shared_view", False) is True,
            idle_timeout=float(getattr(game, "idle_timeout", 0.0)),
            records_matches=bool(getattr(game, "record_matches", True)),
            offered_by_default=bool(getattr(game, "offered_by_default", True)),
            snapshot_budget=getattr(game, "snapshot_budget", None) if tick_rate > 0 else None,
        )  # fmt: skip


# The rules read by `rules_of`, by the game object's id while it lives (the weak
# reference's callback drops the entry when the game goes, before its id can be
# taken by another object).
_rules_by_game: dict[int, tuple[weakref.ref[Any], GameRules]] = {}


def rules_of(game: object) -> GameRules:
    """`GameRules.of(game)`, read once per game object: a room and a game host need
    a game's rules for every match (reading them takes about as long as the rest of
    making a room's state), and a game's rules are fixed once it serves, as the
    registry reads them once (`GameRegistry`). A game object that cannot be weakly
    referenced is read each time."""
    key = id(game)
    known = _rules_by_game.get(key)
    if known is not None and known[0]() is game:
        return known[1]
    rules = GameRules.of(game)
    try:
        reference = weakref.ref(game, lambda _: _rules_by_game.pop(key, None))
    except TypeError:
        return rules
    _rules_by_game[key] = (reference, rules)
    return rules


def _window_of(window: Any) -> RatingWindow | None:
    """A game's `rating_window`, read by duck typing (base, growth, max)."""
    if window is None:
        return None
    maximum = window.max
    return RatingWindow(
        float(window.base), float(window.growth), None if maximum is None else float(maximum)
    )


def _by_name(rules: Iterable[GameRules]) -> tuple[GameRules, ...]:
    ordered: dict[str, GameRules] = {}
    for game in rules:
        if game.name in ordered:
            raise ValueError(f"two games are named {game.name!r}")
        ordered[game.name] = game
    return tuple(ordered[name] for name in sorted(ordered))


@frozen
class GameCatalogue(Mapping[str, GameRules]):
    """The `GameRules` of a server's games, by name (sorted); read-only.

    A lookup of a game not here raises `UnknownGame` (a `KeyError`)."""

    rules: tuple[GameRules, ...] = field(converter=_by_name)
    _by_name: Mapping[str, GameRules] = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_name = types.MappingProxyType({rules.name: rules for rules in self.rules})
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def sized(
        cls,
        match_sizes: Mapping[str, int],
        *,
        team_sizes: Mapping[str, int] | None = None,
        windows: Mapping[str, RatingWindow] | None = None,
    ) -> GameCatalogue:
        """Rules made by hand: each game of `match_sizes` with that many players per
        match (and room), its team size and ranked window if given."""
        return cls(
            GameRules(
                name,
                size,
                team_size=(team_sizes or {}).get(name),
                rating_window=(windows or {}).get(name),
            )
            for name, size in match_sizes.items()
        )

    def overridden(
        self,
        *,
        match_sizes: Mapping[str, int] | None = None,
        windows: Mapping[str, RatingWindow] | None = None,
    ) -> GameCatalogue:
        """These rules with an operator's match sizes and ranked windows (`--match-size`,
        `--rating-window`) in place of the games' own; each named game must be here."""
        sizes, windows = match_sizes or {}, windows or {}
        unknown = [name for name in [*sizes, *windows] if name not in self]
        if unknown:
            raise UnknownGame(unknown[0], list(self))
        return GameCatalogue(
            evolve(
                rules,
                match_size=sizes.get(rules.name, rules.match_size),
                rating_window=windows.get(rules.name, rules.rating_window),
            )
            for rules in self.rules
        )

    @property
    def largest_match(self) -> int:
        """The most players any game puts in a match (0 without games)."""
        return max((rules.match_size for rules in self.rules), default=0)

    def match_sizes(self) -> dict[str, int]:
        """Game name -> players per match (the `welcome`'s `games`)."""
        return {rules.name: rules.match_size for rules in self.rules}

    def titles(self) -> dict[str, str]:
        """Game name -> the name people read (the `welcome`'s `titles`)."""
        return {rules.name: rules.title for rules in self.rules}

    def __getitem__(self, name: str) -> GameRules:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise UnknownGame(str(name), list(self._by_name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
