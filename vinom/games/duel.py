"""Duel: the two-player test game of the `play` benchmark.

Each player has a counter, starting at 0. A move `{"seq": n}` is accepted only
if `n` is the mover's counter plus one; anything else is `stale`. Like the
maze, every player has a version of their own (the counter), so the two
players never block each other. The view is both counters keyed by player id,
about 46 bytes of msgpack with 18-character ids.

The game ends when a player leaves (the other wins), when a counter reaches
the `target` option (0, the default, means never) or on the time limit (the
higher counter wins). Everything here is on the benchmark's hot path, so a
move avoids `attrs.evolve` and does as little work per move as possible: what a
move changes (the counters) is kept apart from what it does not (`DuelMatch`),
so a move makes a state of three fields rather than eight.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve, frozen
from twisted.plugin import IPlugin
from zope.interface import implementer

from vinom.games import common
from vinom.games.base import Game
from vinom.games.interfaces import IBot, IGame, IllegalAction, Outcome, Seat


@frozen
class DuelMatch:
    """The part of a duel that moves do not change; immutable."""

    players: tuple[str, str]
    target: int = 0
    left: tuple[bool, bool] = (False, False)
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()


@frozen
class DuelState:
    """Both counters, the number of moves applied and the match; immutable."""

    match: DuelMatch
    seqs: tuple[int, int]
    moves: int = 0

    @property
    def players(self) -> tuple[str, str]:
        return self.match.players

    @property
    def target(self) -> int:
        return self.match.target

    @property
    def left(self) -> tuple[bool, bool]:
        return self.match.left

    @property
    def finished(self) -> bool:
        return self.match.finished

    @property
    def reason(self) -> str:
        return self.match.reason

    @property
    def winners(self) -> tuple[str, ...]:
        return self.match.winners


@implementer(IBot)
class DuelBot:
    """Always sends the next counter value."""

    def __init__(self, player_id: str, rng: random.Random) -> None:
        self.player_id = player_id

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        seq = view["seq"].get(self.player_id)
        if seq is None or view.get("finished"):
            return None
        return {"seq": seq + 1}


@implementer(IPlugin, IGame)
class DuelGame(Game[DuelState]):
    """A counter race for two, used to measure the server's cost per move."""

    name = "duel"
    display_name = "Duel"
    description = "Test game: each player counts up; the benchmark's cheapest possible game"
    # Nothing is hidden: every player gets the same view, built once per change.
    shared_view = True
    time_limit = 3600.0
    # Actions per second per player: far above what the play benchmark's players
    # send (a move per round trip, a few hundred a second), and still finite.
    action_rate = 1000.0
    # A benchmark game: a server offers it only when --games names it.
    offered_by_default = False
    # Its players move without pause; no idle rule.
    idle_timeout = 0.0
    score_key = "seqs"

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Any:
        players = common.check_seats(seats, self.min_players, self.max_players, self.name)
        target = common.option_int(options, "target", 0, 0, 2**62)
        return DuelState(DuelMatch((players[0], players[1]), target), (0, 0))

    def leave(self, state: DuelState, seat: Seat) -> Outcome:
        index = common.leaving(state.players, state.left, state.finished, seat)
        if index is None:
            return Outcome(state)
        left = (True, state.left[1]) if index == 0 else (state.left[0], True)
        winners = tuple(p for p, gone in zip(state.players, left, strict=True) if not gone)
        return Outcome(self._close(state, "opponent_left", winners, left))

    @staticmethod
    def _close(
        state: DuelState, reason: str, winners: tuple[str, ...], left: tuple[bool, bool] | None
    ) -> DuelState:
        match = evolve(
            state.match,
            finished=True,
            reason=reason,
            winners=winners,
            left=state.match.left if left is None else left,
        )
        return DuelState(match, state.seqs, state.moves)

    def apply_action(
        self, state: DuelState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        match = state.match
        if match.finished:
            raise IllegalAction(common.FINISHED, "the game is over")
        players = match.players
        index = seat.index
        if not (index == 0 or index == 1) or players[index] != seat.player_id:
            raise IllegalAction(common.NOT_SEATED, f"{seat.player_id!r} has no seat in this game")
        try:
            seq = action["seq"]
        except (KeyError, TypeError, IndexError):
            raise common.bad_action("send {'seq': n}") from None
        if type(seq) is not int:
            raise common.bad_action("'seq' must be an integer")
        seqs = state.seqs
        if seq != seqs[index] + 1:
            raise IllegalAction(common.STALE, f"expected seq {seqs[index] + 1}")
        seqs = (seq, seqs[1]) if index == 0 else (seqs[0], seq)
        moved = DuelState(match, seqs, state.moves + 1)
        target = match.target
        if target and seq >= target:
            moved = self._close(moved, "target", (seat.player_id,), None)
        return Outcome(moved)

    def _end(self, state: DuelState, reason: str) -> DuelState:
        winners = common.best_of(state.players, state.left, state.seqs)
        return self._close(state, reason, winners, None)

    def _scores(self, state: DuelState) -> Sequence[int]:
        return state.seqs

    def view(self, state: DuelState, player_id: str | None) -> Mapping[str, Any]:
        match, seqs = state.match, state.seqs
        players = match.players
        if match.finished:
            return {"seq": {players[0]: seqs[0], players[1]: seqs[1]}, "finished": True}
        return {"seq": {players[0]: seqs[0], players[1]: seqs[1]}}

    def is_finished(self, state: DuelState) -> bool:
        # On the hot path: one attribute less than the `finished` property.
        return state.match.finished

    def result(self, state: DuelState) -> Mapping[str, Any]:
        return {**super().result(state), "moves": state.moves}

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        return DuelBot(player_id, rng)
