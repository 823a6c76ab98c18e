"""What the built-in games share: action parsing, seat checks, results and a base class.

Actions arrive from the network as msgpack maps, so anything may be in them.
These helpers turn every malformed action into `IllegalAction("bad_action")`
and never let a `TypeError`, `KeyError` or `IndexError` escape a game.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from attrs import evolve

from vinom.games.interfaces import IllegalAction, Outcome, Seat

#: Codes a built-in game raises `IllegalAction` with; see docs/games.md.
BAD_ACTION = "bad_action"
STALE = "stale"
NOT_YOUR_TURN = "not_your_turn"
ILLEGAL_MOVE = "illegal_move"
FINISHED = "finished"
NOT_SEATED = "not_seated"
NOT_JOINED = "not_joined"

ERROR_CODES = frozenset(
    {BAD_ACTION, STALE, NOT_YOUR_TURN, ILLEGAL_MOVE, FINISHED, NOT_SEATED, NOT_JOINED}
)


def bad_action(message: str) -> IllegalAction:
    """The error for an action that is not well formed."""
    return IllegalAction(BAD_ACTION, message)


def as_mapping(action: object) -> Mapping[str, Any]:
    """`action` itself if it is a map, else raise `bad_action`."""
    if not isinstance(action, Mapping):
        raise bad_action("an action must be a map")
    return action


def pick_verb(action: object, verbs: Collection[str]) -> str:
    """The one verb of `verbs` that is a key of `action`.

    Keys that are not verbs are ignored (clients may add their own fields), but
    an action must name exactly one verb so that its meaning is never a guess.
    """
    mapping = as_mapping(action)
    found = [verb for verb in verbs if verb in mapping]
    if len(found) != 1:
        raise bad_action("an action needs exactly one of: " + ", ".join(sorted(verbs)))
    return found[0]


def is_int(value: object) -> bool:
    """True for a real int (bools are ints in Python but never a number here)."""
    return type(value) is int


def int_in(value: object, low: int, high: int, what: str) -> int:
    """`value` as an int in [low, high], else raise `bad_action`."""
    if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise bad_action(f"{what} must be an integer from {low} to {high}")
    return value  # type: ignore[return-value]


def flag(action: Mapping[str, Any], key: str) -> bool:
    """The boolean under `key`; anything but a bool is `bad_action`."""
    value = action.get(key)
    if type(value) is not bool:
        raise bad_action(f"{key!r} must be true or false")
    return value


def require_true(action: Mapping[str, Any], key: str) -> None:
    """A verb that takes no argument is sent as `{key: true}`."""
    if action.get(key) is not True:
        raise bad_action(f"send {{{key!r}: true}}")


def seat_index(players: Sequence[str], seat: Seat) -> int:
    """The index of `seat` in `players`, checked against the player id."""
    index = seat.index
    if not (is_int(index) and 0 <= index < len(players) and players[index] == seat.player_id):
        raise IllegalAction(NOT_SEATED, f"{seat.player_id!r} has no seat in this game")
    return index


def check_seats(seats: Sequence[Seat], low: int, high: int, game: str) -> tuple[str, ...]:
    """The player ids in seat order; `ValueError` unless there are low..high seats."""
    if not low <= len(seats) <= high:
        raise ValueError(f"{game} needs {low} to {high} players, got {len(seats)}")
    for expected, seat in enumerate(seats):
        if seat.index != expected:
            raise ValueError(f"seat {seat.player_id!r} has index {seat.index}, not {expected}")
    players = tuple(seat.player_id for seat in seats)
    if len(set(players)) != len(players):
        raise ValueError("a player cannot hold two seats")
    return players


def option_int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """An integer option in [low, high]; `ValueError` for anything else."""
    value = options.get(key, default)
    if not is_int(value) or not low <= value <= high:
        raise ValueError(f"option {key!r} must be an integer from {low} to {high}")
    return int(value)


def check_join(
    players: Sequence[str], left: Sequence[bool], finished: bool, seat: Seat
) -> str | None:
    """The usual join check: seated, not gone for good, game not over."""
    if seat.player_id not in players:
        return "not seated in this game"
    if finished:
        return "the game is over"
    if left[players.index(seat.player_id)]:
        return "this player left the game"
    return None


def best_of(players: Sequence[str], left: Sequence[bool], scores: Sequence[int]) -> tuple[str, ...]:
    """Players still in the game with the highest score (all of them on a tie)."""
    present = [i for i in range(len(players)) if not left[i]]
    if not present:
        return ()
    top = max(scores[i] for i in present)
    return tuple(players[i] for i in present if scores[i] == top)


def replace_at(values: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    """A copy of `values` with one element replaced."""
    return (*values[:index], value, *values[index + 1 :])


def next_seat(count: int, current: int, out: Sequence[bool]) -> int:
    """The next seat after `current` (cyclic) that is not out; `current` if none."""
    for step in range(1, count + 1):
        candidate = (current + step) % count
        if not out[candidate]:
            return candidate
    return current


def leaving(players: Sequence[str], left: Sequence[bool], finished: bool, seat: Seat) -> int | None:
    """The seat index of a player leaving a game still on; None when leaving changes nothing.

    Nothing changes once the game is over, for a player who has no seat, or for
    a player who has already left.
    """
    if finished or seat.player_id not in players:
        return None
    index = players.index(seat.player_id)
    return None if left[index] else index


class _Default(enum.Enum):
    """The type of `DEFAULT` (an enum, so that type checkers can tell it from a float)."""

    DEFAULT = "default"


#: A constructor argument left out: keep the game's default (the class attribute).
DEFAULT = _Default.DEFAULT


class BuiltinGame:
    """What the built-in games share; each game subclasses it and adds its rules.

    The class attributes are the game's defaults. The constructor takes
    `time_limit`, `countdown` and `action_rate` (for embedding and tests); an
    argument left out keeps the game's default. Any value given is kept as it
    is, so that the registry can reject a bad one.

    The default hooks fit a game whose state is an attrs class with `players`,
    `left`, `finished`, `reason`, `winners` and one score per seat (`_scores`):
    a player may join until they leave or the game ends, joining and
    reconnecting change nothing, there is no tick, and on the time limit the
    best score among the players still present wins.
    """

    name = ""
    # The name people read (`vinom games`, the terminal client, the room's
    # welcome); None: the registry name in words, capitalised (`GameRules.of`).
    display_name: str | None = None
    description = ""
    version = "1"
    min_players = 2
    max_players = 2
    match_size = 2
    tick_rate = 0.0
    time_limit = 600.0
    countdown = 0.0
    # Actions per second per player (turn-based: only a guard against floods).
    action_rate = 20.0
    # Seconds a player whose move is awaited may go without acting before they
    # forfeit (`idle`): a seat nobody plays must not hold a game port.
    idle_timeout = 120.0
    # Each player gets a view of their own (hidden information stays hidden);
    # a game whose view is the same for every player says `shared_view = True`
    # so that the room builds it once per change.
    shared_view = False
    # Players per team (None: no teams; a player's team is their seat).
    team_size: int | None = None
    # States per second a game with a tick sends each player while playing (at
    # most one per tick); None: one per tick (`GameRules.of`).
    snapshot_rate: float | None = None
    #: The key of the per-player scores in `result`.
    score_key = "scores"

    def __init__(
        self,
        time_limit: float | _Default = DEFAULT,
        countdown: float | _Default = DEFAULT,
        action_rate: float | _Default = DEFAULT,
    ) -> None:
        cls = type(self)
        self.time_limit = cls.time_limit if time_limit is DEFAULT else time_limit
        self.countdown = cls.countdown if countdown is DEFAULT else countdown
        self.action_rate = cls.action_rate if action_rate is DEFAULT else action_rate

    def check_join(self, state: Any, seat: Seat) -> str | None:
        """The usual join check on what the state has of it: a seated player (when it
        has `players`), not gone for good (when it has `left`), the game not over."""
        players = getattr(state, "players", None)
        if players is None:
            return "the game is over" if self.is_finished(state) else None
        left = getattr(state, "left", None)
        if left is None:
            left = (False,) * len(players)
        return check_join(players, left, self.is_finished(state), seat)

    def join(self, state: Any, seat: Seat) -> Outcome:
        return Outcome(state)

    def reconnect(self, state: Any, seat: Seat) -> Outcome:
        return Outcome(state)

    def tick(self, state: Any, dt: float, rng: random.Random) -> Outcome:
        return Outcome(state)

    def idle_players(self, state: Any) -> Sequence[str]:
        """The players whose silence counts now: by default everyone still playing;
        a turn-based game names only the player whose move it awaits. Read from what
        the state has: its `players` (none without them), less those it marks `left`."""
        players = getattr(state, "players", None)
        if players is None or self.is_finished(state):
            return ()
        left = getattr(state, "left", None)
        if left is None:
            return tuple(players)
        return tuple(p for p, gone in zip(players, left, strict=True) if not gone)


    def time_up(self, state: Any) -> Outcome:
        if state.finished:
            return Outcome(state)
        return Outcome(self._end(state, "time_up"))

    def _end(self, state: Any, reason: str) -> Any:
        """`state`, finished for `reason`: the best score among players still present wins."""
        winners = best_of(state.players, state.left, self._scores(state))
        return evolve(state, finished=True, reason=reason, winners=winners)

    @staticmethod
    def _last_standing(state: Any, out: Sequence[bool], reason: str) -> Any | None:
        """`state` finished when at most one player is not `out`, else None.

        The one player left wins (for `reason`); with none left the game is
        `abandoned`.
        """
        alive = tuple(p for p, gone in zip(state.players, out, strict=True) if not gone)
        if len(alive) > 1:
            return None
        return evolve(state, finished=True, reason=reason if alive else "abandoned", winners=alive)

    def _scores(self, state: Any) -> Sequence[int]:
        """One score per seat: what `_end` ranks and `result` reports."""
        return state.scores

    def is_finished(self, state: Any) -> bool:
        return state.finished

    def result(self, state: Any) -> Mapping[str, Any]:
        return {
            "winners": list(state.winners),
            "reason": state.reason if state.finished else "playing",
            self.score_key: dict(zip(state.players, self._scores(state), strict=True)),
        }
