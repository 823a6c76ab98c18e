"""Dice: a Farkle-like game for 2 to 4 players; the first to 10,000 points wins.

A turn: roll the six dice, set aside at least one scoring die (`select`), then
either roll the dice that are left or bank the turn's points. A roll in which
nothing scores is a farkle: the turn's unbanked points are lost and the next
player rolls. When all six dice have been set aside (hot dice) the next roll
throws all six again and the turn's points are kept.

Scoring (every selected die must score; the best reading of a selection counts):

    single 1                  100
    single 5                  50
    three of a kind           100 x face (three 1s: 1000)
    each extra die of a kind  doubles it (four 2s: 400, five 2s: 800, six 1s: 8000)
    run 1-2-3-4-5             500
    run 2-3-4-5-6             750
    run 1-2-3-4-5-6           1500
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve, frozen
from twisted.plugin import IPlugin
from zope.interface import implementer

from vinom.games import common
from vinom.games.base import Game
from vinom.games.interfaces import GameEvent, IBot, IGame, IllegalAction, Outcome, Seat

DICE = 6
FACES = 6
DEFAULT_TARGET = 10_000
RUNS: tuple[tuple[tuple[int, ...], int], ...] = (
    ((1, 2, 3, 4, 5, 6), 1500),
    ((2, 3, 4, 5, 6), 750),
    ((1, 2, 3, 4, 5), 500),
)
VERBS = ("roll", "select", "bank")

ROLL, SELECT, DECIDE = "roll", "select", "decide"


def kind_points(face: int, count: int) -> int:
    """Points for `count` (3 or more) dice showing `face`."""
    base = 1000 if face == 1 else 100 * face
    return base << (count - 3)


@functools.lru_cache(maxsize=4096)
def _best(counts: tuple[int, ...]) -> int | None:
    """Most points using every die of `counts` (dice per face), or None."""
    if not any(counts):
        return 0
    best: int | None = None

    def consider(points: int, rest: list[int]) -> None:
        nonlocal best
        tail = _best(tuple(rest))
        if tail is not None and (best is None or points + tail > best):
            best = points + tail

    for run, points in RUNS:
        if all(counts[face - 1] for face in run):
            rest = list(counts)
            for face in run:
                rest[face - 1] -= 1
            consider(points, rest)
    for face in range(1, FACES + 1):
        for count in range(3, counts[face - 1] + 1):
            rest = list(counts)
            rest[face - 1] -= count
            consider(kind_points(face, count), rest)
    for face, points in ((1, 100), (5, 50)):
        if counts[face - 1]:
            rest = list(counts)
            rest[face - 1] -= 1
            consider(points, rest)
    return best


def counts_of(dice: Sequence[int]) -> tuple[int, ...]:
    """Dice per face, faces 1 to 6."""
    counts = [0] * FACES
    for die in dice:
        counts[die - 1] += 1
    return tuple(counts)


def score(dice: Sequence[int]) -> int | None:
    """Points for setting aside exactly `dice`, or None if any of them does not score."""
    if not dice:
        return None
    return _best(counts_of(dice))


def has_score(dice: Sequence[int]) -> bool:
    """True unless the roll is a farkle (no 1, no 5, no three of a kind)."""
    counts = counts_of(dice)
    return bool(counts[0] or counts[4] or max(counts, default=0) >= 3)


def best_selection(dice: Sequence[int]) -> tuple[tuple[int, ...], int]:
    """Indices of the highest-scoring selection (fewest dice on a tie) and its points."""
    best: tuple[tuple[int, ...], int] = ((), 0)
    for size in range(1, len(dice) + 1):
        for indices in itertools.combinations(range(len(dice)), size):
            points = score([dice[i] for i in indices])
            if points is not None and points > best[1]:
                best = (indices, points)
    return best


@frozen
class DiceState:
    """A dice game; immutable, changed with `attrs.evolve`."""

    players: tuple[str, ...]
    scores: tuple[int, ...]
    left: tuple[bool, ...]
    target: int
    turn: int = 0
    phase: str = ROLL
    dice: tuple[int, ...] = ()
    set_aside: tuple[int, ...] = ()
    turn_points: int = 0
    farkled: tuple[int, ...] = ()
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()


def dice_left(state: DiceState) -> int:
    """How many dice the next roll throws (six again after hot dice)."""
    if state.phase == SELECT:
        return len(state.dice)
    return DICE - len(state.set_aside) or DICE


@implementer(IBot)
class DiceBot:
    """Sets aside the best-scoring dice and banks at a threshold of its own."""

    def __init__(self, player_id: str, rng: random.Random) -> None:
        self.player_id = player_id
        self.rng = rng
        self.threshold = rng.choice((300, 350, 400, 500))

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if view.get("finished") or view["turn"] != self.player_id:
            return None
        phase = view["phase"]
        if phase == ROLL:
            return {"roll": True}
        if phase == SELECT:
            indices, _ = best_selection(view["dice"])
            return {"select": list(indices)}
        points = view["turn_points"]
        mine = next(p["score"] for p in view["players"] if p["id"] == self.player_id)
        left = view["dice_left"]
        if (
            mine + points >= view["target"]
            or (left < DICE and points >= self.threshold)
            or (left <= 2 and points >= 150)
        ):
            return {"bank": True}
        return {"roll": True}


@implementer(IPlugin, IGame)
class DiceGame(Game[DiceState]):
    """The Farkle-like dice game."""

    name = "dice"
    display_name = "Dice"
    description = "Farkle-like dice: roll, set aside scoring dice, bank; first to 10,000"
    # Nothing is hidden: every player gets the same view, built once per change.
    shared_view = True
    max_players = 4
    time_limit = 1800.0

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Any:
        players = common.check_seats(seats, self.min_players, self.max_players, self.name)
        target = common.option_int(options, "target", DEFAULT_TARGET, 50, 1_000_000)
        return DiceState(
            players=players,
            scores=(0,) * len(players),
            left=(False,) * len(players),
            target=target,
            turn=rng.randrange(len(players)),
        )

    idle_timeout = 60.0

    def idle_players(self, state: DiceState) -> Sequence[str]:
        # Only the player whose turn it is.
        return () if state.finished else (state.players[state.turn],)

    def leave(self, state: DiceState, seat: Seat) -> Outcome:
        index = common.leaving(state.players, state.left, state.finished, seat)
        if index is None:
            return Outcome(state)
        state = evolve(state, left=common.replace_at(state.left, index, True))
        ended = self._last_standing(state, state.left, "opponents_left")
        if ended is not None:
            return Outcome(ended)
        if state.turn == index:
            state = self._pass_turn(state)
        return Outcome(state)

    def apply_action(
        self, state: DiceState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        if state.finished:
            raise IllegalAction(common.FINISHED, "the game is over")
        index = common.seat_index(state.players, seat)
        verb = common.pick_verb(action, VERBS)
        if verb == "select":
            indices = self._indices(action["select"], len(state.dice))
        else:
            common.require_true(action, verb)
        if state.turn != index:
            raise IllegalAction(common.NOT_YOUR_TURN, f"it is {state.players[state.turn]}'s turn")
        if verb == "roll":
            return self._roll(state, rng)
        if verb == "select":
            return self._select(state, indices)
        return self._bank(state)

    @staticmethod
    def _indices(value: object, count: int) -> tuple[int, ...]:
        if not isinstance(value, list | tuple) or not 1 <= len(value) <= DICE:
            raise common.bad_action("'select' must be a list of 1 to 6 dice indices")
        indices = tuple(common.int_in(i, 0, DICE - 1, "a dice index") for i in value)
        if len(set(indices)) != len(indices):
            raise common.bad_action("a die can be selected only once")
        return indices

    def _roll(self, state: DiceState, rng: random.Random) -> Outcome:
        if state.phase == SELECT:
            raise IllegalAction(common.ILLEGAL_MOVE, "set aside scoring dice first")
        throw = dice_left(state)
        set_aside = state.set_aside if throw < DICE else ()
        roll = tuple(rng.randint(1, FACES) for _ in range(throw))
        player = state.players[state.turn]
        if not has_score(roll):
            event = GameEvent(
                "farkle", {"player": player, "dice": list(roll), "lost": state.turn_points}
            )
            return Outcome(self._pass_turn(evolve(state, farkled=roll)), (event,))
        return Outcome(evolve(state, phase=SELECT, dice=roll, set_aside=set_aside, farkled=()))

    def _select(self, state: DiceState, indices: tuple[int, ...]) -> Outcome:
        if state.phase != SELECT:
            raise IllegalAction(common.ILLEGAL_MOVE, "roll first")
        if max(indices) >= len(state.dice):
            raise IllegalAction(common.ILLEGAL_MOVE, f"there are only {len(state.dice)} dice")
        chosen = [state.dice[i] for i in indices]
        points = score(chosen)
        if points is None:
            raise IllegalAction(common.ILLEGAL_MOVE, f"not every die of {chosen} scores")
        set_aside = state.set_aside + tuple(chosen)
        state = evolve(
            state,
            phase=DECIDE,
            dice=(),
            set_aside=set_aside,
            turn_points=state.turn_points + points,
        )
        events: tuple[GameEvent, ...] = ()
        if len(set_aside) == DICE:
            events = (GameEvent("hot_dice", {"player": state.players[state.turn]}),)
        return Outcome(state, events)

    def _bank(self, state: DiceState) -> Outcome:
        if state.phase != DECIDE:
            raise IllegalAction(common.ILLEGAL_MOVE, "nothing to bank yet")
        index = state.turn
        total = state.scores[index] + state.turn_points
        player = state.players[index]
        event = GameEvent("banked", {"player": player, "points": state.turn_points, "score": total})
        state = evolve(state, scores=common.replace_at(state.scores, index, total))
        if total >= state.target:
            state = evolve(state, finished=True, reason="target", winners=(player,))
            return Outcome(state, (event,))
        return Outcome(self._pass_turn(state), (event,))

    @staticmethod
    def _pass_turn(state: DiceState) -> DiceState:
        return evolve(
            state,
            turn=common.next_seat(len(state.players), state.turn, state.left),
            phase=ROLL,
            dice=(),
            set_aside=(),
            turn_points=0,
        )

    def view(self, state: DiceState, player_id: str | None) -> Mapping[str, Any]:
        # Dice have no hidden information: every player sees the same view.
        return {
            "players": [
                {"id": pid, "score": points, "left": gone}
                for pid, points, gone in zip(state.players, state.scores, state.left, strict=True)
            ],
            "turn": state.players[state.turn],
            "phase": state.phase,
            "dice": list(state.dice),
            "set_aside": list(state.set_aside),
            "turn_points": state.turn_points,
            "dice_left": dice_left(state),
            "farkled": list(state.farkled),
            "target": state.target,
            "finished": state.finished,
        }

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        return DiceBot(player_id, rng)
