"""Owe Drahn: push a shared running total with a die; whoever takes it over 15 loses a life.

Every player starts with 6 lives. On their turn a player rolls one die and adds
it to the shared total, except that a 3 counts as 0. A player whose roll takes
the total over 15 loses a life and the total starts again from 0. Instead of
rolling, a player with at least two lives may give one up to reset the total
to 0 and choose who rolls next (anyone still alive, themselves included).
Players with no lives left are out; the last player alive wins.
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
from vinom.games.interfaces import GameEvent, IBot, IGame, IllegalAction, Outcome, Seat

LIVES = 6
LIMIT = 15
ZERO_FACE = 3
VERBS = ("roll", "give_up_life")


def counted(value: int) -> int:
    """What a rolled face adds to the total: a 3 counts as 0."""
    return 0 if value == ZERO_FACE else value


@frozen
class OweDrahnState:
    """An Owe Drahn game; immutable, changed with `attrs.evolve`."""

    players: tuple[str, ...]
    lives: tuple[int, ...]
    left: tuple[bool, ...]
    turn: int = 0
    total: int = 0
    last_roll: int = 0
    last_roller: str = ""
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()

    def out(self) -> tuple[bool, ...]:
        """Per seat: no lives left or gone for good."""
        return tuple(lives <= 0 or gone for lives, gone in zip(self.lives, self.left, strict=True))


@implementer(IBot)
class OweDrahnBot:
    """Rolls; now and then, with lives to spare and a high total, gives one up."""

    def __init__(self, player_id: str, rng: random.Random) -> None:
        self.player_id = player_id
        self.rng = rng

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if view.get("finished") or view["turn"] != self.player_id:
            return None
        players = view["players"]
        me = next(p for p in players if p["id"] == self.player_id)
        if view["total"] >= 13 and me["lives"] >= 4 and self.rng.random() < 0.25:
            alive = [p["id"] for p in players if p["lives"] > 0 and not p["left"]]
            return {"give_up_life": True, "next": self.rng.choice(alive)}
        return {"roll": True}


@implementer(IPlugin, IGame)
class OweDrahnGame(Game[OweDrahnState]):
    """Owe Drahn, the running-total dice game."""

    name = "owedrahn"
    display_name = "Owe Drahn"
    description = "Owe Drahn: roll a shared total past 15 and lose a life; last alive wins"
    # Nothing is hidden: every player gets the same view, built once per change.
    shared_view = True
    max_players = 4
    time_limit = 900.0
    score_key = "lives"

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Any:
        players = common.check_seats(seats, self.min_players, self.max_players, self.name)
        lives = common.option_int(options, "lives", LIVES, 1, 99)
        return OweDrahnState(
            players=players,
            lives=(lives,) * len(players),
            left=(False,) * len(players),
            turn=rng.randrange(len(players)),
        )

    idle_timeout = 60.0

    def idle_players(self, state: OweDrahnState) -> Sequence[str]:
        # Only the player whose turn it is.
        return () if state.finished else (state.players[state.turn],)

    def leave(self, state: OweDrahnState, seat: Seat) -> Outcome:
        index = common.leaving(state.players, state.left, state.finished, seat)
        if index is None:
            return Outcome(state)
        state = evolve(state, left=common.replace_at(state.left, index, True))
        ended = self._last_standing(state, state.out(), "opponents_left")
        if ended is not None:
            return Outcome(ended)
        if state.turn == index:
            state = evolve(state, turn=common.next_seat(len(state.players), index, state.out()))
        return Outcome(state)

    def apply_action(
        self, state: OweDrahnState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        if state.finished:
            raise IllegalAction(common.FINISHED, "the game is over")
        index = common.seat_index(state.players, seat)
        verb = common.pick_verb(action, VERBS)
        common.require_true(action, verb)
        chosen = index
        if verb == "give_up_life":
            chosen = self._chosen(state, action.get("next"), index)
        if state.out()[index]:
            raise IllegalAction(common.FINISHED, "you are out of the game")
        if state.turn != index:
            raise IllegalAction(common.NOT_YOUR_TURN, f"it is {state.players[state.turn]}'s turn")
        if verb == "roll":
            return self._roll(state, index, rng)
        return self._give_up_life(state, index, chosen)

    @staticmethod
    def _chosen(state: OweDrahnState, value: object, index: int) -> int:
        out = state.out()
        if value is None:
            return common.next_seat(len(state.players), index, out)
        if not isinstance(value, str) or value not in state.players:
            raise common.bad_action("'next' must be the id of a player in this game")
        chosen = state.players.index(value)
        if out[chosen]:
            raise IllegalAction(common.ILLEGAL_MOVE, f"{value} is out of the game")
        return chosen

    def _roll(self, state: OweDrahnState, index: int, rng: random.Random) -> Outcome:
        value = rng.randint(1, 6)
        player = state.players[index]
        total = state.total + counted(value)
        events = [GameEvent("rolled", {"player": player, "value": value, "total": total})]
        state = evolve(state, last_roll=value, last_roller=player)
        if total > LIMIT:
            lives = state.lives[index] - 1
            state = evolve(state, lives=common.replace_at(state.lives, index, lives), total=0)
            events.append(GameEvent("life_lost", {"player": player, "lives": lives}))
            ended = self._last_standing(state, state.out(), "last_alive")
            if ended is not None:
                return Outcome(ended, tuple(events))
        else:
            state = evolve(state, total=total)
        turn = common.next_seat(len(state.players), index, state.out())
        return Outcome(evolve(state, turn=turn), tuple(events))

    def _give_up_life(self, state: OweDrahnState, index: int, chosen: int) -> Outcome:
        if state.lives[index] < 2:
            raise IllegalAction(common.ILLEGAL_MOVE, "you cannot give up your last life")
        lives = state.lives[index] - 1
        player = state.players[index]
        state = evolve(
            state,
            lives=common.replace_at(state.lives, index, lives),
            total=0,
            turn=chosen,
        )
        event = GameEvent(
            "life_given_up", {"player": player, "lives": lives, "next": state.players[chosen]}
        )
        return Outcome(state, (event,))

    def _end(self, state: OweDrahnState, reason: str) -> OweDrahnState:
        # Players with no lives left are out, even if they are still connected.
        winners = common.best_of(state.players, state.out(), state.lives)
        return evolve(state, finished=True, reason=reason, winners=winners)

    def _scores(self, state: OweDrahnState) -> Sequence[int]:
        return state.lives

    def view(self, state: OweDrahnState, player_id: str | None) -> Mapping[str, Any]:
        # Nothing is hidden: every player sees the same view.
        return {
            "players": [
                {"id": pid, "lives": lives, "left": gone}
                for pid, lives, gone in zip(state.players, state.lives, state.left, strict=True)
            ],
            "turn": state.players[state.turn],
            "total": state.total,
            "limit": LIMIT,
            "last_roll": {"player": state.last_roller, "value": state.last_roll}
            if state.last_roll
            else None,
            "finished": state.finished,
        }

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        return OweDrahnBot(player_id, rng)
