"""A room's scheduling part alone (vinom.rooms.schedule): `RoomSchedule` driven
without a room.

The match it wakes is a plain record (`FakeMatch`: the `ScheduledMatch`, and what
the seating, sending and actions parts read of a room) that notes what it is
asked; the parts are real, their messages go to a `RecordingOutbox`, and time is
a `Clock` whose time the test hands to the timer queue, as a game host does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.internet.testing import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame
from vinom.games.interfaces import Outcome, Seat
from vinom.rooms.acting import RoomActions
from vinom.rooms.bots import RoomBots
from vinom.rooms.delta import Quantisation
from vinom.rooms.faults import GameFaults
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.schedule import RoomSchedule
from vinom.rooms.seating import Seating
from vinom.rooms.sending import RoomSending
from vinom.rooms.timers import TimerQueue
from vinom.rooms.views import RoomViews


@define
class FakeMatch:
    game: SeqGame
    state: Any
    phase: Phase = Phase.PLAYING
    version: int = 1
    # What it was asked, in order; the schedule, once made.
    asked: list[Any] = field(factory=list)
    schedule: RoomSchedule | None = None

    @property
    def ended(self) -> bool:
        return self.phase in (Phase.FINISHED, Phase.ABORTED)

    def phase_deadline(self, now: float) -> None:
        self.asked.append(("phase_deadline", now))

    def hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None:
        self.asked.append(("hook", name))
        return hook(*args)

    def adopt(self, outcome: Outcome) -> bool:
        changed = outcome.state is not self.state
        self.state = outcome.state
        return changed

    def acted(self, member: Member, outcome: Outcome, now: float) -> None:
        self.asked.append(("acted", member.seat.player_id))

    def maybe_start(self, now: float) -> None: ...

    def after_change(self, now: float) -> None: ...

    def finish(self, now: float) -> None: ...

    def abort(self, reason: str, now: float) -> None:
        self.asked.append(("abort", reason))
        self.phase = Phase.ABORTED

    def remaining(self, now: float) -> float | None:
        return None

    def rewake(self) -> None:
        assert self.schedule is not None
        self.schedule.rewake()


class RoomScheduleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.timers = TimerQueue()
        self.game = SeqGame()
        self.outbox = RecordingOutbox()
        seats = tuple(Seat(player_id=p, name=p, index=i) for i, p in enumerate(("a", "b")))
        self.order = tuple(Member(seat) for seat in seats)
        self.order[0].session_id, self.order[1].session_id = 1, 2
        self.match = FakeMatch(self.game, self.game.create(seats, {}, None))  # type: ignore[arg-type]
        faults = GameFaults("seq", "m", Logger())
        views = RoomViews(self.game, self.outbox, Quantisation(), shared=False, checksums=False)
        members = {m.seat.player_id: m for m in self.order}
        self.sending = RoomSending(self.match, views, members, self.order, None, faults, 0.0)
        self.seating = Seating(self.match, "m", self.order, self.outbox, self.sending, None,
                               faults, 30.0)  # fmt: skip
        self.actions = RoomActions(self.match, self.game, random.Random(1), members, None,
                                   faults, lambda *error: None, None, None)  # fmt: skip
        self.schedule = RoomSchedule(
            self.match, self.timers, self.seating, self.sending, self.actions
        )
        self.match.schedule = self.schedule

    def advance(self, seconds: float) -> None:
        """Time passes; the timer queue runs what is due, as a game host's does."""
        self.clock.advance(seconds)
        self.timers.run_due(self.clock.seconds())

    def test_the_phases_end_is_its_wake_up_and_moves_the_room_on_once(self) -> None:
        self.assertIsNone(self.schedule.next_timer())
        self.schedule.phase_ends = 10.0
        self.schedule.rewake()
        self.assertEqual((self.schedule.next_timer(), self.timers.next_time()), (10.0, 10.0))
        self.assertEqual(self.schedule.remaining(4.0), 6.0)
        self.advance(9.9)
        self.assertEqual(self.match.asked, [])
        self.advance(0.1)
        self.assertEqual(self.match.asked, [("phase_deadline", 10.0)])
        # The room did not move the deadline: it is dropped, never run twice.
        self.assertIsNone(self.schedule.phase_ends)
        self.assertIsNone(self.schedule.remaining(10.0))
        self.assertIsNone(self.timers.next_time())

    def test_a_deadline_moved_later_leaves_its_old_entry_stale(self) -> None:
        self.schedule.phase_ends = 5.0
        self.schedule.rewake()
        self.schedule.phase_ends = 8.0
        self.schedule.rewake()
        self.advance(5.0)
        self.assertEqual(self.match.asked, [])
        self.advance(3.0)
        self.assertEqual(self.match.asked, [("phase_deadline", 8.0)])

    def test_deadlines_run_earliest_first_and_ties_go_to_the_phase(self) -> None:
        a, b = self.order
        self.seating.player_disconnected("a", 1, 0.0)  # a's window ends at 30
        self.clock.advance(27.0)
        self.seating.player_disconnected("b", 2, 27.0)  # b's at 57
        self.schedule.phase_ends = 30.0
        self.schedule.rewake()
        self.assertEqual(self.schedule.wake, 30.0)
        self.advance(3.0)
        # At 30 the phase's end first, then a's window: a is out of the game.
        self.assertEqual(self.match.asked, [("phase_deadline", 30.0), ("hook", "leave")])
        self.assertEqual((a.left, b.left), (True, False))
        self.assertEqual(self.schedule.wake, 57.0)
        self.advance(27.0)
        # b's window closes too: nobody is left, and the room is abandoned.
        self.assertEqual(self.match.asked[-1], ("abort", "abandoned"))
        self.assertTrue(b.left)

    def test_the_periodic_state_wakes_the_room(self) -> None:
        self.sending.state_interval = 5.0
        self.sending.start(0.0)
        self.schedule.rewake()
        self.advance(5.0)
        self.assertEqual([len(self.outbox.to(s, "state")) for s in (1, 2)], [1, 1])
        self.assertEqual(self.schedule.wake, 10.0)

    def test_a_bot_woken_sooner_than_the_wake_up_moves_it(self) -> None:
        bot = self.order[1]
        bot.bot = object()  # type: ignore[assignment]
        self.actions.bots = RoomBots((bot,), think_time=2.0)
        self.schedule.phase_ends = 10.0
        self.schedule.rewake()
        self.schedule.wake_bots(1.0)
        self.assertEqual((bot.bot_due, self.schedule.wake), (3.0, 3.0))
        # Woken again before it acted: its turn stays where it was.
        self.schedule.wake_bots(2.0)
        self.assertEqual(self.schedule.wake, 3.0)

    def test_stopping_leaves_no_deadline(self) -> None:
        self.sending.state_interval = 5.0
        self.sending.start(0.0)
        self.seating.player_disconnected("a", 1, 0.0)
        self.schedule.phase_ends = 10.0
        self.schedule.rewake()
        self.schedule.stop()
        self.assertEqual((self.schedule.phase_ends, self.order[0].grace_ends), (None, None))
        self.assertIsNone(self.schedule.next_timer())
        self.assertIsNone(self.timers.next_time())
