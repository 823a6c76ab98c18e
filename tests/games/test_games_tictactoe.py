"""Tic-tac-toe: marks by join order, random first mover, wins, draws, leaving, rematches."""

from __future__ import annotations

import random
from collections.abc import Sequence

from twisted.trial.unittest import TestCase

from tests.games.test_games_support import assert_plain, play_bots, seats, snapshot
from vinom.games.interfaces import IllegalAction, Seat
from vinom.games.tictactoe import LINES, TicTacToeGame, TicTacToeState


class TicTacToeTests(TestCase):
    def setUp(self) -> None:
        self.game = TicTacToeGame()
        self.rng = random.Random(3)
        self.seats = seats(2)

    def started(self, seed: int = 3, order: Sequence[int] = (0, 1)) -> TicTacToeState:
        state = self.game.create(self.seats, {}, random.Random(seed))
        for index in order:
            state = self.game.join(state, self.seats[index]).state
        return state

    def mover(self, state: TicTacToeState) -> Seat:
        """The seat whose turn it is."""
        return self.seats[state.marks.index(state.turn)]

    def play(self, state: TicTacToeState, cells: Sequence[int]) -> TicTacToeState:
        """Place marks in `cells`, alternating from whoever is to move."""
        for cell in cells:
            state = self.game.apply_action(state, self.mover(state), {"cell": cell}, self.rng).state
        return state

    def illegal(self, state: TicTacToeState, seat: Seat, action: object, code: str) -> None:
        before = snapshot(state)
        with self.assertRaises(IllegalAction) as caught:
            self.game.apply_action(state, seat, action, self.rng)  # type: ignore[arg-type]
        self.assertEqual(caught.exception.code, code, action)
        self.assertEqual(state, before)

    def test_first_to_join_plays_x(self) -> None:
        state = self.started(order=(1, 0))
        self.assertEqual(state.marks, ("O", "X"))
        state = self.started(order=(0, 1))
        self.assertEqual(state.marks, ("X", "O"))
        # Joining twice (a duplicate call) does not change a mark.
        self.assertEqual(self.game.join(state, self.seats[1]).state.marks, ("X", "O"))

    def test_first_mover_is_random(self) -> None:
        firsts = {self.started(seed=seed).turn for seed in range(40)}
        self.assertEqual(firsts, {"X", "O"})

    def test_every_line_wins(self) -> None:
        for line in LINES:
            others = [cell for cell in range(9) if cell not in line][:2]
            state = self.started()
            starter = self.mover(state)
            state = self.play(state, [line[0], others[0], line[1], others[1], line[2]])
            self.assertTrue(state.round_over, line)
            self.assertEqual(state.line, line)
            view = self.game.view(state, None)
            self.assertEqual(view["round_winner"], starter.player_id)
            self.assertEqual(view["line"], list(line))
            self.assertIsNone(view["turn"])

    def test_draw(self) -> None:
        # first: 0 2 3 7 8, second: 1 4 5 6 -> X O X / X O O / O X X, no line.
        state = self.play(self.started(), [0, 1, 2, 4, 3, 5, 7, 6, 8])
        self.assertTrue(state.round_over)
        self.assertEqual(state.draws, 1)
        self.assertEqual(state.wins, (0, 0))
        self.assertIsNone(self.game.view(state, None)["round_winner"])
        # Declining the rematch ends the match as a draw.
        state = self.game.apply_action(state, self.seats[0], {"rematch": False}, self.rng).state
        self.assertTrue(self.game.is_finished(state))
        self.assertEqual(self.game.result(state)["winners"], [])

    def test_turns_and_cells(self) -> None:
        state = self.started()
        waiting = self.seats[1 - self.seats.index(self.mover(state))]
        self.illegal(state, waiting, {"cell": 4}, "not_your_turn")
        state = self.play(state, [4])
        self.illegal(state, self.mover(state), {"cell": 4}, "illegal_move")
        for action in ({"cell": 9}, {"cell": -1}, {"cell": "4"}, {"cell": True}, {}, [4], None):
            self.illegal(state, self.mover(state), action, "bad_action")
        self.illegal(state, self.mover(state), {"cell": 1, "rematch": True}, "bad_action")
        self.illegal(state, self.mover(state), {"rematch": True}, "illegal_move")

    def test_must_both_join(self) -> None:
        state = self.game.create(self.seats, {}, self.rng)
        state = self.game.join(state, self.seats[0]).state
        self.illegal(state, self.seats[0], {"cell": 0}, "not_joined")

    def test_leaving_ends_the_game(self) -> None:
        state = self.play(self.started(), [0])
        state = self.game.leave(state, self.seats[0]).state
        self.assertTrue(self.game.is_finished(state))
        result = self.game.result(state)
        self.assertEqual(result["winners"], [self.seats[1].player_id])
        self.assertEqual(result["reason"], "opponent_left")
        self.illegal(state, self.seats[1], {"cell": 1}, "finished")

    def test_rematch(self) -> None:
        state = self.started()
        winner = self.mover(state)
        state = self.play(state, [0, 3, 1, 4, 2])
        state = self.game.apply_action(state, self.seats[0], {"rematch": True}, self.rng).state
        self.assertEqual(state.rematch, (True, False))
        self.assertTrue(state.round_over)
        self.illegal(state, self.seats[0], {"cell": 5}, "illegal_move")
        outcome = self.game.apply_action(state, self.seats[1], {"rematch": True}, self.rng)
        state = outcome.state
        self.assertEqual([event.name for event in outcome.events], ["new_round"])
        self.assertEqual(state.round, 2)
        self.assertFalse(state.round_over)
        self.assertEqual(state.board, ("",) * 9)
        self.assertEqual(state.marks, ("X", "O"))
        self.assertEqual(state.rematch, (False, False))
        # Round 2 is a draw; the match goes to the winner of round 1.
        state = self.play(state, [0, 1, 2, 4, 3, 5, 7, 6, 8])
        state = self.game.apply_action(state, self.seats[1], {"rematch": False}, self.rng).state
        result = self.game.result(state)
        self.assertEqual(result["winners"], [winner.player_id])
        self.assertEqual(result["rounds"], 2)
        self.assertEqual(result["draws"], 1)
        self.assertEqual(result["reason"], "completed")

    def test_time_up(self) -> None:
        state = self.play(self.started(), [0, 3])
        state = self.game.time_up(state).state
        self.assertTrue(self.game.is_finished(state))
        self.assertEqual(self.game.result(state), {
            "winners": [], "reason": "time_up", "rounds": 0, "draws": 0,
            "wins": {self.seats[0].player_id: 0, self.seats[1].player_id: 0},
        })  # fmt: skip

    def test_check_join(self) -> None:
        state = self.started()
        self.assertIsNone(self.game.check_join(state, self.seats[0]))
        self.assertEqual(
            self.game.check_join(state, Seat("p-stranger", "x", 0)), "not seated in this game"
        )
        ended = self.game.leave(state, self.seats[0]).state
        self.assertEqual(self.game.check_join(ended, self.seats[1]), "the game is over")

    def test_view(self) -> None:
        state = self.play(self.started(), [4])
        view = self.game.view(state, self.seats[0].player_id)
        assert_plain(self, view)
        self.assertEqual(view["board"].count(""), 8)
        self.assertEqual(view["turn"], self.mover(state).player_id)
        self.assertEqual([p["mark"] for p in view["players"]], ["X", "O"])

    def test_bots_finish(self) -> None:
        for seed in range(10):
            state, moves = play_bots(self.game, 2, seed)
            result = self.game.result(state)
            self.assertEqual(result["reason"], "completed")
            self.assertGreaterEqual(moves, 6)  # five marks and a decline, at least
