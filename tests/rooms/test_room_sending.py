"""A room's sending part alone (vinom.rooms.sending): `RoomSending` driven without a room.

The match it reads is a plain record (`FakeMatch`, the `MatchNow` a room is),
its messages go to a `RecordingOutbox`, and time is whatever each call says.
"""

from __future__ import annotations

from typing import Any

from attrs import define
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame
from vinom.games.interfaces import GameEvent, Seat
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.delta import Quantisation
from vinom.rooms.faults import GameFaults, SharedViewMismatch
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.sending import RoomSending
from vinom.rooms.views import RoomViews


@define
class FakeMatch:
    state: Any
    version: int = 1
    phase: Phase = Phase.PLAYING
    ends: float | None = None

    def remaining(self, now: float) -> float | None:
        return None if self.ends is None else max(0.0, self.ends - now)


class RoomSendingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.game = SeqGame()
        self.outbox = RecordingOutbox()
        seats = tuple(Seat(player_id=p, name=p, index=i) for i, p in enumerate(("a", "b")))
        self.order = tuple(Member(seat) for seat in seats)
        self.order[0].session_id, self.order[1].session_id = 1, 2
        self.match = FakeMatch(self.game.create(seats, {}, None))  # type: ignore[arg-type]
        self.woken: list[float] = []
        self.faults = GameFaults("seq", "m", Logger())
        views = RoomViews(self.game, self.outbox, Quantisation(), shared=False, checksums=False)
        self.sending = RoomSending(
            self.match,
            views,
            {m.seat.player_id: m for m in self.order},
            self.order,
            None,
            self.faults,
            5.0,
            self.woken.append,
        )

    def test_the_periodic_state_starts_with_the_room_and_waits_after_each_state(self) -> None:
        self.sending.start(10.0)
        self.assertEqual(self.sending.due, 15.0)
        self.sending.send_states(12.0)
        self.assertEqual(self.sending.due, 17.0)

    def test_without_an_interval_no_periodic_state(self) -> None:
        self.sending.state_interval = 0.0
        self.sending.start(10.0)
        self.sending.send_states(12.0)
        self.assertEqual(self.sending.due, float("inf"))

    def test_a_turn_based_broadcast_goes_at_once_and_wakes_the_bots(self) -> None:
        self.sending.start(0.0)
        self.match.ends = 30.0
        self.sending.broadcast_state(2.0)
        [state] = self.outbox.to(1, "state", UNRELIABLE)
        self.assertEqual((state["v"], state["ts"]), (1, 2000))
        self.assertEqual(len(self.outbox.to(2, "state", UNRELIABLE)), 1)
        self.assertEqual(self.woken, [2.0])

    def test_a_state_on_request_is_reliable_and_only_to_that_player(self) -> None:
        self.sending.send_state("b", 1.0)
        self.assertEqual(len(self.outbox.to(2, "state", RELIABLE)), 1)
        self.assertEqual(self.outbox.to(1), [])
        self.sending.send_state("nobody", 1.0)

    def test_events_errors_and_messages_to_all(self) -> None:
        self.sending.send_event(GameEvent("ping", {"n": 1}, to=("a",)))
        self.assertEqual([m["t"] for m in self.outbox.to(1)], ["event"])
        self.assertEqual(self.outbox.to(2), [])
        self.sending.send_error("b", "stale", "too old", 7)
        [error] = self.outbox.to(2, "error")
        self.assertEqual((error["code"], error["i"]), ("stale", 7))

    def test_a_failing_view_is_the_games_fault(self) -> None:
        self.match.state = None  # SeqGame.view cannot read it
        self.sending.send_states(1.0)
        self.assertEqual(self.faults.count, 1)
        self.assertEqual(len(self.flushLoggedErrors(AttributeError)), 1)
        self.assertEqual(self.outbox.sent, [])

    def test_a_shared_view_that_differs_is_logged_once_and_each_gets_their_own(self) -> None:
        views = self.sending.views
        views.shared = views.check = True  # SeqGame's views differ: each has a secret
        self.sending.send_states(1.0)
        [error] = self.flushLoggedErrors(SharedViewMismatch)
        self.assertIn("game 'seq': view(state, 'a') != view(state, 'b')", str(error.value))
        self.assertEqual((views.shared, views.check, self.faults.count), (False, False, 0))
        mine = [m["s"]["mine"] for s in (1, 2) for m in self.outbox.to(s, "state")]
        self.assertEqual(len(set(mine)), 2)
