"""Dice (Farkle-like): the scoring table and the flow of a turn."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve
from twisted.trial.unittest import TestCase

from tests.games.test_games_support import ScriptedRandom, assert_plain, play_bots, seats, snapshot
from vinom.games import dice
from vinom.games.dice import DiceGame, DiceState
from vinom.games.interfaces import IllegalAction


class ScoringTests(TestCase):
    """Every row of the table, combinations, doubling, runs and farkles."""

    def assertScores(self, table: Sequence[tuple[Sequence[int], int | None]]) -> None:
        for roll, points in table:
            self.assertEqual(dice.score(roll), points, roll)
            # Order never matters.
            self.assertEqual(dice.score(list(reversed(roll))), points, roll)

    def test_singles(self) -> None:
        self.assertScores([([1], 100), ([5], 50), ([1, 5], 150), ([1, 1], 200), ([5, 5], 100)])
        self.assertScores([([1, 1, 5, 5], 300)])

    def test_three_of_a_kind(self) -> None:
        self.assertScores([([1, 1, 1], 1000)] + [([face] * 3, 100 * face) for face in range(2, 7)])

    def test_extra_dice_double(self) -> None:
        self.assertScores(
            [
                ([2] * 4, 400),
                ([2] * 5, 800),
                ([2] * 6, 1600),
                ([3] * 4, 600),
                ([4] * 5, 1600),
                ([6] * 6, 4800),
                ([5] * 4, 1000),
                ([1] * 4, 2000),
                ([1] * 5, 4000),
                ([1] * 6, 8000),
            ]
        )

    def test_runs(self) -> None:
        self.assertScores(
            [
                ([1, 2, 3, 4, 5], 500),
                ([2, 3, 4, 5, 6], 750),
                ([1, 2, 3, 4, 5, 6], 1500),
                ([3, 1, 4, 5, 2], 500),
                ([1, 2, 3, 4, 5, 5], 550),
                ([1, 1, 2, 3, 4, 5], 600),
                ([2, 3, 4, 5, 6, 1], 1500),
                ([2, 3, 4, 5, 6, 5], 800),
            ]
        )

    def test_combinations(self) -> None:
        self.assertScores(
            [
                ([1, 1, 1, 5], 1050),
                ([3, 3, 3, 1, 5], 450),
                ([4, 4, 4, 4, 1, 1], 1000),
                ([2, 2, 2, 5, 5, 5], 700),
                ([6, 6, 6, 1, 1, 1], 1600),
                ([5, 5, 5, 5, 5, 1], 2100),
            ]
        )

    def test_best_reading_counts(self) -> None:
        # Four 1s are 2000 (doubled three), not 1000 + 100.
        self.assertEqual(dice.score([1, 1, 1, 1]), 2000)
        # Four 5s are 1000, not 500 + 50.
        self.assertEqual(dice.score([5, 5, 5, 5]), 1000)

    def test_every_die_must_score(self) -> None:
        self.assertScores(
            [
                ([], None),
                ([2], None),
                ([2, 3], None),
                ([1, 2], None),
                ([5, 5, 6], None),
                ([2, 2], None),
                ([2, 3, 4, 5, 6, 6], None),
                ([1, 2, 3, 4], None),
                ([3, 3, 3, 4], None),
            ]
        )

    def test_farkle_rolls(self) -> None:
        for roll in ([2, 3, 4, 6, 6, 2], [2, 2, 3, 3, 4, 6], [6], [2, 3], [4, 4, 6, 6]):
            self.assertFalse(dice.has_score(roll), roll)
        for roll in ([1], [5], [2, 2, 2], [6, 6, 6, 2], [2, 3, 4, 6, 6, 5]):
            self.assertTrue(dice.has_score(roll), roll)

    def test_has_score_matches_score(self) -> None:
        # Exhaustively: a roll scores exactly when some selection from it does.
        rng = random.Random(1)
        for _ in range(2000):
            roll = [rng.randint(1, 6) for _ in range(rng.randint(1, 6))]
            indices, points = dice.best_selection(roll)
            self.assertEqual(dice.has_score(roll), points > 0, roll)
            if points:
                self.assertEqual(dice.score([roll[i] for i in indices]), points)

    def test_best_selection(self) -> None:
        self.assertEqual(dice.best_selection([2, 3, 4, 5, 6, 6]), ((0, 1, 2, 3, 4), 750))
        self.assertEqual(dice.best_selection([1, 2, 2, 2, 6, 6]), ((0, 1, 2, 3), 300))
        self.assertEqual(dice.best_selection([2, 3, 4, 6, 6, 2]), ((), 0))


class TurnTests(TestCase):
    """Roll, select, bank, farkle, hot dice and winning, with scripted dice."""

    def setUp(self) -> None:
        self.game = DiceGame()
        self.seats = seats(2)
        # Seat 0 starts: create draws the first player with randrange.
        self.state = DiceState(
            players=tuple(s.player_id for s in self.seats),
            scores=(0, 0),
            left=(False, False),
            target=dice.DEFAULT_TARGET,
        )

    def act(
        self, state: DiceState, who: int, action: Mapping[str, Any], rolls: Sequence[int] = ()
    ) -> DiceState:
        rng = ScriptedRandom(rolls)
        outcome = self.game.apply_action(state, self.seats[who], action, rng)
        self.assertEqual(rng.rolls, [], "not every scripted die was rolled")
        self.events = [event.name for event in outcome.events]
        return outcome.state

    def illegal(self, state: DiceState, who: int, action: object, code: str) -> None:
        before = snapshot(state)
        with self.assertRaises(IllegalAction) as caught:
            self.game.apply_action(state, self.seats[who], action, ScriptedRandom())  # type: ignore[arg-type]
        self.assertEqual(caught.exception.code, code, action)
        self.assertEqual(state, before)

    def test_roll_select_bank(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [1, 2, 3, 3, 5, 6])
        self.assertEqual((state.phase, state.dice), ("select", (1, 2, 3, 3, 5, 6)))
        self.illegal(state, 0, {"bank": True}, "illegal_move")
        self.illegal(state, 0, {"roll": True}, "illegal_move")
        state = self.act(state, 0, {"select": [0, 4]})
        self.assertEqual((state.phase, state.turn_points, state.set_aside), ("decide", 150, (1, 5)))
        self.assertEqual(dice.dice_left(state), 4)
        state = self.act(state, 0, {"roll": True}, [1, 4, 4, 6])
        state = self.act(state, 0, {"select": [0]})
        self.assertEqual(state.turn_points, 250)
        state = self.act(state, 0, {"bank": True})
        self.assertEqual(self.events, ["banked"])
        self.assertEqual(state.scores, (250, 0))
        self.assertEqual((state.turn, state.phase, state.turn_points), (1, "roll", 0))
        self.assertEqual(state.set_aside, ())

    def test_farkle_loses_the_turns_points(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [1, 1, 1, 2, 3, 4])
        state = self.act(state, 0, {"select": [0, 1, 2]})
        self.assertEqual(state.turn_points, 1000)
        state = self.act(state, 0, {"roll": True}, [2, 3, 4])
        self.assertEqual(self.events, ["farkle"])
        self.assertEqual(state.scores, (0, 0))
        self.assertEqual((state.turn, state.phase, state.turn_points), (1, "roll", 0))
        self.assertEqual(self.game.view(state, None)["farkled"], [2, 3, 4])

    def test_farkle_on_the_first_roll(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [2, 2, 3, 3, 4, 6])
        self.assertEqual(self.events, ["farkle"])
        self.assertEqual(state.turn, 1)

    def test_selection_must_score(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [1, 2, 3, 3, 5, 6])
        self.illegal(state, 0, {"select": [0, 1]}, "illegal_move")
        self.illegal(state, 0, {"select": [1]}, "illegal_move")
        for bad in ([], [0, 0], [6], [-1], ["0"], [True], 0, "0", None, [0, 1, 2, 3, 4, 5, 0]):
            self.illegal(state, 0, {"select": bad}, "bad_action")

    def test_selection_indices_within_roll(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [1, 2, 3, 3, 5, 6])
        state = self.act(state, 0, {"select": [0]})
        state = self.act(state, 0, {"roll": True}, [5, 2, 2, 3, 6])
        self.illegal(state, 0, {"select": [5]}, "illegal_move")

    def test_hot_dice(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [1, 2, 3, 4, 5, 6])
        state = self.act(state, 0, {"select": [0, 1, 2, 3, 4, 5]})
        self.assertEqual(self.events, ["hot_dice"])
        self.assertEqual(dice.dice_left(state), 6)
        state = self.act(state, 0, {"roll": True}, [5, 2, 2, 3, 4, 6])
        self.assertEqual(state.set_aside, ())
        self.assertEqual(len(state.dice), 6)
        state = self.act(state, 0, {"select": [0]})
        self.assertEqual(state.turn_points, 1550)
        state = self.act(state, 0, {"bank": True})
        self.assertEqual(state.scores, (1550, 0))

    def test_turns(self) -> None:
        self.illegal(self.state, 1, {"roll": True}, "not_your_turn")
        self.illegal(self.state, 0, {"bank": True}, "illegal_move")
        self.illegal(self.state, 0, {"select": [0]}, "illegal_move")
        bad: object
        for bad in ({}, {"roll": False}, {"roll": 1}, {"roll": True, "bank": True}, [], "roll"):
            self.illegal(self.state, 0, bad, "bad_action")

    def test_first_to_target_wins(self) -> None:
        state = evolve(self.state, scores=(9_900, 9_990))
        state = self.act(state, 0, {"roll": True}, [1, 2, 3, 3, 4, 6])
        state = self.act(state, 0, {"select": [0]})
        state = self.act(state, 0, {"bank": True})
        self.assertTrue(self.game.is_finished(state))
        self.assertEqual(
            self.game.result(state),
            {
                "winners": [self.seats[0].player_id],
                "reason": "target",
                "scores": {self.seats[0].player_id: 10_000, self.seats[1].player_id: 9_990},
            },
        )
        self.illegal(state, 1, {"roll": True}, "finished")

    def test_leave(self) -> None:
        table = seats(3)
        state = self.game.create(table, {}, random.Random(1))
        turn = state.turn
        state = self.game.leave(state, table[turn]).state
        self.assertFalse(self.game.is_finished(state))
        self.assertEqual(state.turn, (turn + 1) % 3)
        state = self.game.leave(state, table[state.turn]).state
        self.assertTrue(self.game.is_finished(state))
        self.assertEqual(self.game.result(state)["winners"], [table[(turn + 2) % 3].player_id])

    def test_a_player_idled_out_ends_the_match_as_idle_not_as_left(self) -> None:
        # docs/games.md: a two-player game whose awaited player idles ends with
        # reason idle; the web client tells each seat from it what happened.
        for count in (2, 3):
            table = seats(count)
            state = self.game.create(table, {}, random.Random(1))
            while not self.game.is_finished(state):
                state = self.game.idle(state, table[state.turn]).state
            result = self.game.result(state)
            self.assertEqual(result["reason"], "idle", count)
            self.assertEqual(len(result["winners"]), 1)

    def test_time_up(self) -> None:
        state = self.game.time_up(evolve(self.state, scores=(500, 700))).state
        self.assertEqual(self.game.result(state)["winners"], [self.seats[1].player_id])
        self.assertEqual(self.game.result(state)["reason"], "time_up")

    def test_options(self) -> None:
        state = self.game.create(self.seats, {"target": 500}, random.Random(1))
        self.assertEqual(state.target, 500)
        self.assertRaises(ValueError, self.game.create, self.seats, {"target": 0}, random.Random())
        self.assertRaises(ValueError, self.game.create, seats(5), {}, random.Random())

    def test_view_and_bots(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [1, 2, 3, 3, 5, 6])
        view = self.game.view(state, self.seats[1].player_id)
        assert_plain(self, view)
        self.assertEqual(view["dice"], [1, 2, 3, 3, 5, 6])
        self.assertEqual(view["turn"], self.seats[0].player_id)
        for seed in range(5):
            final, _ = play_bots(self.game, 2 + seed % 3, seed)
            result = self.game.result(final)
            self.assertEqual(result["reason"], "target")
            self.assertGreaterEqual(max(result["scores"].values()), dice.DEFAULT_TARGET)
