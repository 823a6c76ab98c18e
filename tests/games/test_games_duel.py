"""Duel, the benchmark game: per-player sequence numbers and a tiny view."""

from __future__ import annotations

import random

import msgpack
from twisted.trial.unittest import TestCase

from tests.games.test_games_support import assert_plain, play_bots, seats, snapshot
from vinom.games.duel import DuelGame, DuelState
from vinom.games.interfaces import IllegalAction, Seat


class DuelTests(TestCase):
    def setUp(self) -> None:
        self.game = DuelGame()
        self.rng = random.Random(0)
        self.seats = seats(2)
        self.state = self.game.create(self.seats, {}, self.rng)

    def move(self, state: DuelState, who: int, seq: object) -> DuelState:
        return self.game.apply_action(state, self.seats[who], {"seq": seq}, self.rng).state

    def illegal(self, state: DuelState, seat: Seat, action: object, code: str) -> None:
        before = snapshot(state)
        with self.assertRaises(IllegalAction) as caught:
            self.game.apply_action(state, seat, action, self.rng)  # type: ignore[arg-type]
        self.assertEqual(caught.exception.code, code, action)
        self.assertEqual(state, before)

    def test_sequence(self) -> None:
        state = self.move(self.state, 0, 1)
        state = self.move(state, 0, 2)
        self.assertEqual((state.seqs, state.moves), ((2, 0), 2))
        for seq in (2, 1, 4, 0, -1, 2**70):
            self.illegal(state, self.seats[0], {"seq": seq}, "stale")

    def test_players_do_not_block_each_other(self) -> None:
        # Both moves are built from the same state, then applied in turn.
        state = self.move(self.move(self.state, 0, 1), 1, 1)
        self.assertEqual(state.seqs, (1, 1))
        self.assertEqual(self.game.view(state, None), {"seq": {s.player_id: 1 for s in self.seats}})

    def test_bad_actions(self) -> None:
        for action in ({}, {"seq": "1"}, {"seq": 1.0}, {"seq": True}, {"seq": None}, [1], "seq", 1):
            self.illegal(self.state, self.seats[0], action, "bad_action")
        self.illegal(self.state, Seat("p-stranger", "x", 0), {"seq": 1}, "not_seated")
        self.illegal(self.state, Seat(self.seats[0].player_id, "x", 5), {"seq": 1}, "not_seated")

    def test_view_is_tiny(self) -> None:
        state = self.state
        for seq in range(1, 1001):
            state = self.move(state, seq % 2, (seq + 1) // 2)
        view = self.game.view(state, self.seats[0].player_id)
        assert_plain(self, view)
        self.assertEqual(
            view, {"seq": {self.seats[0].player_id: 500, self.seats[1].player_id: 500}}
        )
        self.assertLessEqual(len(msgpack.packb(view)), 50)

    def test_target_ends_the_game(self) -> None:
        state = self.game.create(self.seats, {"target": 2}, self.rng)
        state = self.move(self.move(self.move(state, 1, 1), 0, 1), 1, 2)
        self.assertTrue(self.game.is_finished(state))
        result = self.game.result(state)
        self.assertEqual(result["winners"], [self.seats[1].player_id])
        self.assertEqual((result["reason"], result["moves"]), ("target", 3))
        self.illegal(state, self.seats[0], {"seq": 2}, "finished")
        self.assertTrue(self.game.view(state, None)["finished"])

    def test_leave_and_time_up(self) -> None:
        state = self.game.leave(self.move(self.state, 0, 1), self.seats[0]).state
        self.assertEqual(self.game.result(state)["winners"], [self.seats[1].player_id])
        self.assertEqual(self.game.result(state)["reason"], "opponent_left")
        ended = self.game.time_up(self.move(self.state, 1, 1)).state
        self.assertEqual(self.game.result(ended)["winners"], [self.seats[1].player_id])
        self.assertEqual(self.game.result(ended)["reason"], "time_up")

    def test_bots(self) -> None:
        final, moves = play_bots(self.game, 2, 1, {"target": 100})
        self.assertEqual(moves, 199)
        self.assertEqual(self.game.result(final)["reason"], "target")
