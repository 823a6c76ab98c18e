"""The game seam: what a pluggable game provides to rooms, the matchmaker and bots.

A game is a set of pure functions over immutable state (attrs `@frozen`,
changed with `evolve`). Rooms own the lifecycle (connect deadline, countdown,
play, time limit, finished), the state version counter and the randomness;
games own the rules. Games are discovered as Twisted plugins providing `IGame`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen
from zope.interface import Attribute, Interface


@frozen
class Seat:
    """A player's place in a game: `index` is 0-based in match order."""

    player_id: str
    name: str
    index: int


@frozen
class GameEvent:
    """Something that happened, sent on the reliable channel.

    `to` limits the recipients to those player ids; None means everyone.
    """

    name: str
    data: Mapping[str, Any] = field(factory=dict)
    to: tuple[str, ...] | None = None


@frozen
class Outcome:
    """The new state after an action or tick, and the events it produced."""

    state: Any
    events: tuple[GameEvent, ...] = ()


class IllegalAction(Exception):
    """An action that is stale or against the rules; it changes nothing.

    `code` is stable and machine-readable (for example `stale`, `not_your_turn`,
    `illegal_move`, `bad_action`); `message` is for humans.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


#: The burst a player may send at once, in seconds of their game's action rate.
ACTION_BURST = 2.0


class IBot(Interface):
    """A player that makes legal moves from its own view of the game."""

    def choose_action(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The next action to send, or None to wait for the state to change."""


class IGame(Interface):
    """A game definition. Every method is a pure function of its arguments.

    Optional attributes (read with `getattr`, so a game without them still
    works; `vinom.games.rules.GameRules.of` reads them and gives the defaults):

    - `action_rate` (float): actions per second per player the room applies;
      a player may spend a burst of `ACTION_BURST` seconds' worth at once.
      0 means unlimited. Default `vinom.games.rules.DEFAULT_ACTION_RATE`.
    - `shared_view` (bool): True if `view(state, player_id)` is the same for
      every player (no hidden information), so the room builds and encodes
      it once per change instead of once per player. Default False.
    - `snapshot_rate` (float or None): for a game with a tick, how many
      states per second the room sends each player while playing: at most
      one per tick, built after the tick from everything applied since the
      last one (actions only mark the state changed). Must be above 0 and
      at most `tick_rate`; a game without a tick must leave it None. Default
      None: `tick_rate` (`GameRules.snapshot_rate`). A game without a tick sends a
      state after every change.
    - `history_ticks` (int or None): for a game with a tick, how many past
      ticks' states the room keeps for lag compensation. Default None: one
      second's worth, `ceil(tick_rate)` (`GameRules.history_ticks`).
    - `apply_action_at(state, seat, action, rng, history) -> Outcome`: if the
      game defines it, the room calls it for every action instead of
      `apply_action`, with a read-only `vinom.games.history.TickHistory`:
      `history.state_at(k)` is the state right after tick `k` (the state the
      snapshot numbered `k` showed), None once older than `history_ticks`, so
      the game can judge a shot against the world the shooter saw (lag
      compensation; docs/games.md). While a real-time input that says when
      its player drew is applied, `history.seen` is that moment in
      fractional ticks (else None), and `history.around(t)` the two states
      and the fraction between them.
    - `tick_at(state, dt, rng, history) -> Outcome`: if the game defines it,
      the room calls it for every tick instead of `tick`, with the same
      history (its newest tick the one before this), so a projectile in
      flight can be judged in its shooter's past.
    - `snapshot_budget` (`vinom.games.rules.SnapshotBudget` or None): for a
      game with a tick and a `view_schema`, the most bytes of a snapshot per
      client, the rows field whose entities may wait when they do not all fit,
      and their priority (docs/games.md, "A byte budget"). Default None: no budget.
    - `record_matches` (bool): False for a game whose matches the game hosts
      do not record (docs/operations.md, "Match records"), e.g. one that
      cannot replay exactly. Default True (`GameRules.records_matches`).
    - `display_name` (str): the name people read ("Owe Drahn"), shown by
      `vinom games`, the terminal client and sent in the room's `welcome`.
      Default: the registry name in words, capitalised (`GameRules.title`).
    - `offered_by_default` (bool): False for a game a server offers only when
      `--games` names it (a test or benchmark game). Default True.
    - `idle_timeout` (float) with the hooks `idle_players(state)` and
      `idle(state, seat) -> Outcome`: a player named by `idle_players` who
      sends no action for `idle_timeout` seconds is handed to `idle` (the
      `Game` base class forfeits them) and counts as gone. Default 0: no
      idle rule.
    - `rating_window` (`vinom.games.rules.RatingWindow`, or any
      object with numbers `base` and `growth` and `max` a number or None):
      how far apart the ratings of players matched in the game's ranked
      queue may be, widening while they wait. Default None: the
      matchmaker's default window.
    - `team_size` (int or None): players per team. The match size must be a
      multiple of it; teams are seats [0, team_size), [team_size,
      2 * team_size), ... The matchmaker seats every party within one team
      (a party larger than a team is refused) and the lobby gives each
      player `team` = seat // team_size. Default None: no teams, each
      player's `team` is their seat.
    - `board` and `board_stylesheet` (`importlib.resources.abc.Traversable`
      or None): the web client's board for the game, a JavaScript module, and
      its style sheet, as package data of the game's own package (e.g.
      `files(__package__) / "board" / "nim.js"`). The web server reads them
      when it starts and serves them at `/boards/<name>.js` and
      `/boards/<name>.css` (docs/web.md). Default None: the board vinom ships
      for the game, if any, else the generic board.
    """

    name: str = Attribute("Registry name, lower case, e.g. 'maze'.")
    description: str = Attribute("One line for `vinom games`.")
    version: str = Attribute("Rules version, e.g. '1'.")
    min_players: int = Attribute("Fewest players a match can start with.")
    max_players: int = Attribute("Most players a room can seat.")
    match_size: int = Attribute("Players the matchmaker puts in one match.")
    tick_rate: float = Attribute("Ticks per second (1 to 60), or 0 for no tick.")
    time_limit: float = Attribute("Seconds of play before the game ends.")
    countdown: float = Attribute("Seconds between all players connected and play.")

    def create(seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Any:
        """The initial state for these seats."""

    def check_join(state: Any, seat: Seat) -> str | None:
        """None to accept the seat joining, else the reason it is rejected."""

    def join(state: Any, seat: Seat) -> Outcome:
        """A seated player connected for the first time."""

    def leave(state: Any, seat: Seat) -> Outcome:
        """A player left for good (or their reconnection window lapsed)."""

    def reconnect(state: Any, seat: Seat) -> Outcome:
        """A player came back within the reconnection window."""

    def apply_action(
        state: Any, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        """Apply one action of `seat`'s player, or raise `IllegalAction`.

        The acting seat comes from the authenticated session, never from the
        action. Where the game uses per-player versions the action carries its
        basis (the maze: the position the move is made from).
        """

    def tick(state: Any, dt: float, rng: random.Random) -> Outcome:
        """Advance by `dt` seconds; called at `tick_rate` while playing.

        `dt` is always exactly ``1 / tick_rate`` (a fixed step, see
        `vinom.rooms.room`): after a stall the room runs the missed steps one
        by one, at most `MAX_CATCH_UP_TICKS` at once."""

    def time_up(state: Any) -> Outcome:
        """The time limit passed: end the game."""

    def view(state: Any, player_id: str | None) -> Mapping[str, Any]:
        """What this player may see (hidden information removed); None: a spectator.

        Only msgpack-encodable values (dict, list, str, int, float, bool, None).
        """

    def is_finished(state: Any) -> bool:
        """True once the game has a result."""

    def result(state: Any) -> Mapping[str, Any]:
        """The result: at least `winners` (list of player ids) and `reason`."""

    def make_bot(player_id: str, rng: random.Random) -> IBot:
        """A bot that plays legal moves for this player."""

