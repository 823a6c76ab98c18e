"""Tic-tac-toe for two, with rematches.

The first player to join plays X, the second O; who moves first is drawn at
random for every round. Three marks in a row, column or diagonal win the round;
a full board without a line is a draw. When a round is over both players may
ask for a rematch (`{"rematch": true}`); when both have asked a new round
starts with the same marks. Declining (`{"rematch": false}`) ends the match.
The match result counts rounds won: the player who won more rounds wins, an
equal count is a draw (no winners). A player leaving ends the match at once
and the other player wins.
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

CROSS, NOUGHT = "X", "O"
EMPTY = ""
LINES: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2), (3, 4, 5), (6, 7, 8),  # rows
    (0, 3, 6), (1, 4, 7), (2, 5, 8),  # columns
    (0, 4, 8), (2, 4, 6),  # diagonals
)  # fmt: skip
VERBS = ("cell", "rematch")


def winning_line(board: Sequence[str]) -> tuple[int, int, int] | None:
    """The first complete line on the board, if any."""
    for line in LINES:
        a, b, c = line
        if board[a] != EMPTY and board[a] == board[b] == board[c]:
            return line
    return None


@frozen
class TicTacToeState:
    """A tic-tac-toe match; immutable, changed with `attrs.evolve`."""

    players: tuple[str, ...]
    marks: tuple[str, ...]
    board: tuple[str, ...]
    turn: str
    left: tuple[bool, ...]
    round: int = 1
    round_over: bool = False
    round_winner: str = EMPTY
    line: tuple[int, ...] = ()
    rematch: tuple[bool, ...] = (False, False)
    wins: tuple[int, ...] = (0, 0)
    draws: int = 0
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()


@implementer(IBot)
class TicTacToeBot:
    """Wins if it can, blocks if it must, else takes the centre or a random cell.

    After a round it accepts a rematch the opponent asked for (up to five
    rounds) and declines one past that. Otherwise the bot in the first seat
    declines at once, so a game of bots always ends, while a bot in another
    seat waits for that seat's answer: in a room a person opens and fills with
    a bot, the person has the first seat, and the offer of a rematch stays on
    their screen until they answer it.
    """

    max_rounds = 5

    def __init__(self, player_id: str, rng: random.Random) -> None:
        self.player_id = player_id
        self.rng = rng

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if view.get("finished"):
            return None
        players = view["players"]
        me = next((p for p in players if p["id"] == self.player_id), None)
        if me is None:
            return None
        if view["round_over"]:
            if me["rematch"]:
                return None
            if any(p["rematch"] for p in players if p is not me):
                return {"rematch": view["round"] < self.max_rounds}
            return {"rematch": False} if players[0] is me else None
        if view["turn"] != self.player_id:
            return None
        board = view["board"]
        empty = [i for i, mark in enumerate(board) if mark == EMPTY]
        theirs = NOUGHT if me["mark"] == CROSS else CROSS
        for mark in (me["mark"], theirs):
            for cell in empty:
                trial = list(board)
                trial[cell] = mark
                if winning_line(trial):
                    return {"cell": cell}
        if 4 in empty:
            return {"cell": 4}
        return {"cell": self.rng.choice(empty)}


@implementer(IPlugin, IGame)
class TicTacToeGame(Game[TicTacToeState]):
    """Noughts and crosses for two players, with rematches."""

    name = "tictactoe"
    display_name = "Tic-tac-toe"
    description = "Tic-tac-toe for two; rematch when both ask"
    # Nothing is hidden: every player gets the same view, built once per change.
    shared_view = True
    time_limit = 600.0
    score_key = "wins"

    def create(self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random) -> Any:
        players = common.check_seats(seats, self.min_players, self.max_players, self.name)
        return TicTacToeState(
            players=players,
            marks=(EMPTY, EMPTY),
            board=(EMPTY,) * 9,
            turn=rng.choice((CROSS, NOUGHT)),
            left=(False, False),
        )

    def join(self, state: TicTacToeState, seat: Seat) -> Outcome:
        # Marks go by the order of joining: the first to connect plays X.
        if seat.player_id not in state.players:
            return Outcome(state)
        index = state.players.index(seat.player_id)
        if state.marks[index] != EMPTY:
            return Outcome(state)
        mark = NOUGHT if CROSS in state.marks else CROSS
        return Outcome(evolve(state, marks=common.replace_at(state.marks, index, mark)))

    idle_timeout = 60.0

    def leave(self, state: TicTacToeState, seat: Seat) -> Outcome:
        index = common.leaving(state.players, state.left, state.finished, seat)
        if index is None:
            return Outcome(state)
        left = common.replace_at(state.left, index, True)
        winners = tuple(p for p, gone in zip(state.players, left, strict=True) if not gone)
        return Outcome(
            evolve(state, left=left, finished=True, reason="opponent_left", winners=winners)
        )

    def idle_players(self, state: TicTacToeState) -> Sequence[str]:
        # The player to move; after a round, whoever has not answered the rematch.
        if state.finished or EMPTY in state.marks:
            return ()
        if state.round_over:
            return tuple(p for p, again in zip(state.players, state.rematch, strict=True)
                         if not again)
        return tuple(p for p, mark in zip(state.players, state.marks, strict=True)
                     if mark == state.turn)

    def apply_action(
        self, state: TicTacToeState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        if state.finished:
            raise IllegalAction(common.FINISHED, "the game is over")
        index = common.seat_index(state.players, seat)
        verb = common.pick_verb(action, VERBS)
        if EMPTY in state.marks:
            raise IllegalAction(common.NOT_JOINED, "waiting for both players to join")
        if verb == "cell":
            return self._place(state, index, common.int_in(action["cell"], 0, 8, "'cell'"))
        return self._rematch(state, index, common.flag(action, "rematch"), rng)

    def _place(self, state: TicTacToeState, index: int, cell: int) -> Outcome:
        if state.round_over:
            raise IllegalAction(common.ILLEGAL_MOVE, "the round is over; answer the rematch")
        mark = state.marks[index]
        if state.turn != mark:
            raise IllegalAction(common.NOT_YOUR_TURN, f"it is {state.turn}'s turn")
        if state.board[cell] != EMPTY:
            raise IllegalAction(common.ILLEGAL_MOVE, f"cell {cell} is taken")
        board = common.replace_at(state.board, cell, mark)
        line = winning_line(board)
        if line is not None:
            state = evolve(
                state,
                board=board,
                round_over=True,
                round_winner=mark,
                line=line,
                wins=common.replace_at(state.wins, index, state.wins[index] + 1),
            )
            event = GameEvent("round_over", {"round": state.round, "winner": state.players[index]})
            return Outcome(state, (event,))
        if EMPTY not in board:
            state = evolve(state, board=board, round_over=True, draws=state.draws + 1)
            event = GameEvent("round_over", {"round": state.round, "winner": None})
            return Outcome(state, (event,))
        return Outcome(evolve(state, board=board, turn=NOUGHT if mark == CROSS else CROSS))

    def _rematch(
        self, state: TicTacToeState, index: int, wanted: bool, rng: random.Random
    ) -> Outcome:
        if not state.round_over:
            raise IllegalAction(common.ILLEGAL_MOVE, "the round is still being played")
        if not wanted:
            return Outcome(self._end(state, "completed"))
        rematch = common.replace_at(state.rematch, index, True)
        if not all(rematch):
            return Outcome(evolve(state, rematch=rematch))
        state = evolve(
            state,
            board=(EMPTY,) * 9,
            turn=rng.choice((CROSS, NOUGHT)),
            round=state.round + 1,
            round_over=False,
            round_winner=EMPTY,
            line=(),
            rematch=(False, False),
        )
        return Outcome(state, (GameEvent("new_round", {"round": state.round}),))

    def _end(self, state: TicTacToeState, reason: str) -> TicTacToeState:
        # The match goes to whoever won more rounds; equal counts are a draw.
        a, b = state.wins
        winners = () if a == b else (state.players[0] if a > b else state.players[1],)
        return evolve(state, finished=True, reason=reason, winners=winners)

    def view(self, state: TicTacToeState, player_id: str | None) -> Mapping[str, Any]:
        # Nothing is hidden, so every player sees the same view.
        by_mark = dict(zip(state.marks, state.players, strict=True))
        return {
            "players": [
                {"id": pid, "mark": mark, "wins": wins, "rematch": again, "left": gone}
                for pid, mark, wins, again, gone in zip(
                    state.players, state.marks, state.wins, state.rematch, state.left, strict=True
                )
            ],
            "board": list(state.board),
            "turn": None if state.round_over or state.finished else by_mark.get(state.turn),
            "round": state.round,
            "round_over": state.round_over,
            "round_winner": by_mark.get(state.round_winner) if state.round_winner else None,
            "line": list(state.line),
            "draws": state.draws,
            "finished": state.finished,
        }

    def _scores(self, state: TicTacToeState) -> Sequence[int]:
        return state.wins

    def result(self, state: TicTacToeState) -> Mapping[str, Any]:
        return {
            **super().result(state),
            "draws": state.draws,
            "rounds": state.round if state.round_over else state.round - 1,
        }

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        return TicTacToeBot(player_id, rng)
