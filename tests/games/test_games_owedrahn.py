"""Owe Drahn: 3 counts as 0, over 15 costs a life, giving up a life, last alive wins."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve
from twisted.trial.unittest import TestCase

from tests.games.test_games_support import ScriptedRandom, assert_plain, play_bots, seats, snapshot
from vinom.games.interfaces import IllegalAction
from vinom.games.owedrahn import OweDrahnGame, OweDrahnState


class OweDrahnTests(TestCase):
    def setUp(self) -> None:
        self.game = OweDrahnGame()
        self.seats = seats(3)
        self.state = OweDrahnState(
            players=tuple(s.player_id for s in self.seats),
            lives=(6, 6, 6),
            left=(False, False, False),
        )

    def act(
        self, state: OweDrahnState, who: int, action: Mapping[str, Any], rolls: Sequence[int] = ()
    ) -> OweDrahnState:
        rng = ScriptedRandom(rolls)
        outcome = self.game.apply_action(state, self.seats[who], action, rng)
        self.assertEqual(rng.rolls, [])
        self.events = [(event.name, dict(event.data)) for event in outcome.events]
        return outcome.state

    def illegal(self, state: OweDrahnState, who: int, action: object, code: str) -> None:
        before = snapshot(state)
        with self.assertRaises(IllegalAction) as caught:
            self.game.apply_action(state, self.seats[who], action, ScriptedRandom())  # type: ignore[arg-type]
        self.assertEqual(caught.exception.code, code, action)
        self.assertEqual(state, before)

    def test_rolls_add_up_and_pass_the_turn(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [4])
        self.assertEqual((state.total, state.turn), (4, 1))
        state = self.act(state, 1, {"roll": True}, [6])
        self.assertEqual((state.total, state.turn), (10, 2))
        self.assertEqual(
            self.events, [("rolled", {"player": "p-0000000000000001", "value": 6, "total": 10})]
        )

    def test_three_counts_as_zero(self) -> None:
        state = self.act(evolve(self.state, total=10), 0, {"roll": True}, [3])
        self.assertEqual(state.total, 10)
        self.assertEqual(state.last_roll, 3)
        # Even at 15 a 3 is safe.
        state = self.act(evolve(state, total=15), 1, {"roll": True}, [3])
        self.assertEqual((state.total, state.lives), (15, (6, 6, 6)))

    def test_exactly_fifteen_is_safe(self) -> None:
        state = self.act(evolve(self.state, total=10), 0, {"roll": True}, [5])
        self.assertEqual((state.total, state.lives), (15, (6, 6, 6)))

    def test_over_fifteen_costs_a_life_and_resets(self) -> None:
        state = self.act(evolve(self.state, total=12), 0, {"roll": True}, [4])
        self.assertEqual(state.lives, (5, 6, 6))
        self.assertEqual(state.total, 0)
        self.assertEqual(state.turn, 1)
        self.assertIn(("life_lost", {"player": "p-0000000000000000", "lives": 5}), self.events)

    def test_give_up_a_life(self) -> None:
        state = evolve(self.state, total=14)
        state = self.act(state, 0, {"give_up_life": True, "next": self.seats[2].player_id})
        self.assertEqual((state.lives, state.total, state.turn), ((5, 6, 6), 0, 2))
        # Without "next", the next player in order rolls; choosing oneself is allowed.
        state = self.act(evolve(state, total=9), 2, {"give_up_life": True})
        self.assertEqual((state.lives, state.total, state.turn), ((5, 6, 5), 0, 0))
        state = self.act(state, 0, {"give_up_life": True, "next": self.seats[0].player_id})
        self.assertEqual((state.lives, state.turn), ((4, 6, 5), 0))

    def test_give_up_rules(self) -> None:
        last = evolve(self.state, lives=(1, 6, 6))
        self.illegal(last, 0, {"give_up_life": True}, "illegal_move")
        out = evolve(self.state, lives=(6, 0, 6))
        self.illegal(
            out, 0, {"give_up_life": True, "next": self.seats[1].player_id}, "illegal_move"
        )
        for bad in ("p-stranger", 1, ["p-0000000000000001"]):
            self.illegal(self.state, 0, {"give_up_life": True, "next": bad}, "bad_action")
        self.illegal(self.state, 0, {"give_up_life": 1}, "bad_action")
        self.illegal(self.state, 1, {"give_up_life": True}, "not_your_turn")

    def test_turn_skips_players_who_are_out(self) -> None:
        state = evolve(self.state, lives=(6, 0, 6))
        state = self.act(state, 0, {"roll": True}, [2])
        self.assertEqual(state.turn, 2)
        self.illegal(state, 1, {"roll": True}, "finished")

    def test_last_alive_wins(self) -> None:
        state = evolve(self.state, lives=(1, 0, 3), total=15)
        state = self.act(state, 0, {"roll": True}, [1])
        self.assertTrue(self.game.is_finished(state))
        self.assertEqual(
            self.game.result(state),
            {
                "winners": [self.seats[2].player_id],
                "reason": "last_alive",
                "lives": {s.player_id: n for s, n in zip(self.seats, (0, 0, 3), strict=True)},
            },
        )
        self.illegal(state, 2, {"roll": True}, "finished")

    def test_bad_actions(self) -> None:
        for bad in ({}, {"roll": False}, {"roll": "yes"}, {"roll": True, "give_up_life": True}):
            self.illegal(self.state, 0, bad, "bad_action")
        not_a_map: object
        for not_a_map in (None, [], "roll", 7):
            self.illegal(self.state, 0, not_a_map, "bad_action")

    def test_leave(self) -> None:
        state = self.game.leave(self.state, self.seats[0]).state
        self.assertFalse(self.game.is_finished(state))
        self.assertEqual(state.turn, 1)
        state = self.game.leave(state, self.seats[2]).state
        self.assertTrue(self.game.is_finished(state))
        self.assertEqual(self.game.result(state)["winners"], [self.seats[1].player_id])
        self.assertEqual(self.game.result(state)["reason"], "opponents_left")

    def test_time_up_most_lives(self) -> None:
        state = self.game.time_up(evolve(self.state, lives=(4, 5, 5))).state
        self.assertEqual(
            sorted(self.game.result(state)["winners"]),
            [self.seats[1].player_id, self.seats[2].player_id],
        )

    def test_create(self) -> None:
        state = self.game.create(seats(2), {}, random.Random(1))
        self.assertEqual(state.lives, (6, 6))
        self.assertEqual(state.total, 0)
        self.assertEqual(self.game.create(seats(4), {"lives": 2}, random.Random(1)).lives, (2,) * 4)
        self.assertRaises(ValueError, self.game.create, seats(5), {}, random.Random(1))
        self.assertRaises(ValueError, self.game.create, seats(2), {"lives": 0}, random.Random(1))

    def test_view_and_bots(self) -> None:
        state = self.act(self.state, 0, {"roll": True}, [5])
        view = self.game.view(state, None)
        assert_plain(self, view)
        self.assertEqual(view["total"], 5)
        self.assertEqual(view["last_roll"], {"player": self.seats[0].player_id, "value": 5})
        self.assertEqual(view["turn"], self.seats[1].player_id)
        for seed in range(10):
            final, _ = play_bots(self.game, 2 + seed % 3, seed)
            self.assertEqual(self.game.result(final)["reason"], "last_alive")
            self.assertEqual(len(self.game.result(final)["winners"]), 1)
