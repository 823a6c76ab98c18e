"""A room's actions part alone (vinom.rooms.acting): `RoomActions` driven without a room.

The match it reads is a plain record (`FakeMatch`, the `ActingMatch` a room is)
that keeps the outcomes it is handed; errors are recorded as they are answered.
"""

from __future__ import annotations

import random
from typing import Any

from attrs import define, field
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import SeqGame
from vinom.games.interfaces import Outcome, Seat
from vinom.games.rules import GameRules
from vinom.rooms.acting import RoomActions
from vinom.rooms.delta import Quantisation
from vinom.rooms.faults import GameFaults
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.realtime import RealTimeLoop


@define
class FakeMatch:
    state: Any
    version: int = 1
    phase: Phase = Phase.PLAYING
    outcomes: list[tuple[str, Outcome]] = field(factory=list)

    def acted(self, member: Member, outcome: Outcome, now: float) -> None:
        self.outcomes.append((member.seat.player_id, outcome))
        self.state = outcome.state

    def adopt(self, outcome: Outcome) -> bool:
        changed = outcome.state is not self.state
        self.state = outcome.state
        return changed

    def after_change(self, now: float) -> None:
        self.outcomes.append(("tick", Outcome(self.state)))


class RoomActionsTests(SynchronousTestCase):
    def make(self, tick_rate: float = 0.0) -> RoomActions:
        game = SeqGame(tick_rate=tick_rate)
        seats = tuple(Seat(player_id=p, name=p, index=i) for i, p in enumerate(("a", "b")))
        self.order = tuple(Member(seat) for seat in seats)
        self.match = FakeMatch(game.create(seats, {}, random.Random(1)))
        self.errors: list[tuple[str, str, int | None]] = []
        self.faults = GameFaults("seq", "m", Logger())
        loop = RealTimeLoop.of(GameRules.of(game), Quantisation(), False)
        if loop is not None:
            loop.seat(self.order)
            loop.start(0.0, self.match.state)
        return RoomActions(
            self.match,
            game,
            random.Random(1),
            {m.seat.player_id: m for m in self.order},
            loop,
            self.faults,
            lambda m, code, message, i: self.errors.append((m.seat.player_id, code, i)),
            None,
            None,
        )

    def test_an_applied_action_is_handed_to_the_match(self) -> None:
        actions = self.make()
        self.assertTrue(actions.handle_action("a", {"seq": 1}, 7, 1.0))
        [(player, outcome)] = self.match.outcomes
        self.assertEqual((player, outcome.state.seqs), ("a", (1, 0)))
        self.assertEqual(self.order[0].last_action_id, 7)

    def test_a_rejected_action_is_answered_to_its_sender_only(self) -> None:
        actions = self.make()
        self.assertFalse(actions.handle_action("b", {"seq": 5}, 3, 1.0))
        self.assertEqual(self.errors, [("b", "stale", 3)])
        self.match.phase = Phase.COUNTDOWN
        self.assertFalse(actions.handle_action("a", {"seq": 1}, 4, 1.0))
        self.assertEqual(self.errors[-1], ("a", "not_playing", 4))
        self.assertEqual(self.match.outcomes, [])

    def test_a_game_bug_is_the_games_fault(self) -> None:
        actions = self.make()
        self.assertFalse(actions.handle_action("a", {"boom": True}, None, 1.0))
        self.assertEqual(self.errors, [("a", "internal_error", None)])
        self.assertEqual(self.faults.count, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_inputs_are_applied_at_their_tick_in_seat_order(self) -> None:
        actions = self.make(tick_rate=20.0)
        loop = actions.loop
        assert loop is not None
        actions.handle_inputs("b", None, ((1, {"seq": 1}),), 0.01)
        actions.handle_inputs("a", None, ((1, {"seq": 1}), (2, {"seq": 2})), 0.01)
        actions.apply_inputs(loop, 1, 0.05)
        self.assertEqual([p for p, _ in self.match.outcomes], ["a", "b"])
        actions.apply_inputs(loop, 2, 0.1)
        self.assertEqual(self.match.state.seqs, (2, 1))
        self.assertEqual(loop.input_counts["applied"], 3)

    def test_the_fixed_steps_due_run_each_after_its_inputs(self) -> None:
        actions = self.make(tick_rate=20.0)
        loop = actions.loop
        assert loop is not None
        actions.handle_inputs("a", None, ((2, {"seq": 1}),), 0.01)
        self.assertTrue(actions.run_ticks(loop, 0.1))  # ticks 1 and 2: at 0.05 and 0.1
        self.assertEqual((loop.tick_number, self.match.state.ticks), (2, 2))
        self.assertEqual(self.match.state.seqs, (1, 0))
        # The input came before tick 2's step: the game's tick is last.
        self.assertEqual([p for p, _ in self.match.outcomes], ["tick", "a", "tick"])
        self.match.phase = Phase.FINISHED
        self.assertFalse(actions.run_ticks(loop, 0.2))

    def test_a_rejected_input_is_answered_at_most_once_a_second(self) -> None:
        actions = self.make(tick_rate=20.0)
        loop = actions.loop
        assert loop is not None
        for tick in (1, 2):
            actions.handle_inputs("a", None, ((tick, {"seq": 9}),), 0.0)
            actions.apply_inputs(loop, tick, tick / 20)
        self.assertEqual(self.errors, [("a", "stale", None)])
        self.assertEqual(loop.input_counts["rejected"], 2)
