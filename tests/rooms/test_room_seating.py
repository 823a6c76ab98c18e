"""A room's seating part alone (vinom.rooms.seating): `Seating` driven without a room.

The match it asks is a plain record (`FakeMatch`, the `SeatedMatch` a room is)
that runs the game's hooks and notes what it is asked; messages go to a
`RecordingOutbox`, and time is whatever each call says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame
from vinom.games.interfaces import Outcome, Seat
from vinom.protocol.events import RELIABLE
from vinom.protocol.interfaces import Admission
from vinom.rooms.delta import Quantisation
from vinom.rooms.faults import GameFaults
from vinom.rooms.idle import IdleRule
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.seating import Seating
from vinom.rooms.sending import RoomSending
from vinom.rooms.views import RoomViews


@define
class FakeMatch:
    game: SeqGame
    state: Any
    phase: Phase = Phase.WAITING
    version: int = 1
    ended: bool = False
    # What the seating asked of it, in order.
    asked: list[Any] = field(factory=list)

    def hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None:
        self.asked.append(("hook", name))
        return hook(*args)

    def adopt(self, outcome: Outcome) -> bool:
        changed = outcome.state is not self.state
        self.state = outcome.state
        return changed

    def maybe_start(self, now: float) -> None:
        self.asked.append(("maybe_start", now))

    def after_change(self, now: float) -> None:
        self.asked.append(("after_change", now))

    def finish(self, now: float) -> None:
        self.asked.append(("finish", now))

    def abort(self, reason: str, now: float) -> None:
        self.asked.append(("abort", reason))
        self.ended = True

    def remaining(self, now: float) -> float | None:
        return None

    def rewake(self) -> None:
        self.asked.append("rewake")


class SeatingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.game = SeqGame()
        self.outbox = RecordingOutbox()
        seats = tuple(Seat(player_id=p, name=p, index=i) for i, p in enumerate(("a", "b")))
        self.order = tuple(Member(seat) for seat in seats)
        self.match = FakeMatch(self.game, self.game.create(seats, {}, None))  # type: ignore[arg-type]
        faults = GameFaults("seq", "m", Logger())
        views = RoomViews(self.game, self.outbox, Quantisation(), shared=False, checksums=False)
        members = {m.seat.player_id: m for m in self.order}
        sending = RoomSending(self.match, views, members, self.order, None, faults, 0.0)
        self.seating = Seating(
            self.match, "m", self.order, self.outbox, sending, None, faults, 30.0
        )

    def test_it_owns_its_seats_by_player_and_in_order(self) -> None:
        self.assertEqual([s.player_id for s in self.seating.seats], ["a", "b"])
        self.assertIs(self.seating.members["b"], self.order[1])
        self.assertIsNone(self.seating.seat_of("nobody"))
        self.assertEqual(self.seating.admission("nobody"), Admission.REFUSE)

    def test_a_connection_is_welcomed_first_and_joins_the_game(self) -> None:
        self.assertTrue(self.seating.player_connected("a", 1, 0.0))
        [first, *_] = self.outbox.to(1)
        self.assertEqual(first["t"], "welcome")
        self.assertEqual(self.outbox.sent[0][1], RELIABLE)
        self.assertEqual(self.match.asked[:2], [("hook", "join"), ("maybe_start", 0.0)])
        self.assertEqual((self.seating.session_ids(), self.seating.joined_players()), ([1], ("a",)))
        # One session a seat.
        self.assertEqual(self.seating.admission("a"), Admission.REFUSE)
        self.assertFalse(self.seating.player_connected("a", 2, 0.0))

    def test_the_games_refusal_is_given_with_its_reason(self) -> None:
        self.game.join_rejects = "full of seqs"
        self.assertEqual(self.seating.check_admission("a"), (Admission.FULL, "full of seqs"))

    def test_a_disconnection_holds_the_seat_for_the_window(self) -> None:
        self.seating.player_connected("a", 1, 0.0)
        self.match.phase = Phase.PLAYING
        self.seating.player_disconnected("a", 1, 5.0)
        self.assertTrue(self.seating.in_grace("a"))
        self.assertEqual(self.order[0].grace_ends, 35.0)
        self.assertEqual(self.match.asked[-1], "rewake")
        # Coming back in the window is a reconnection, and the window closes.
        self.assertTrue(self.seating.player_connected("a", 2, 6.0))
        self.assertFalse(self.seating.in_grace("a"))
        self.assertIn(("hook", "reconnect"), self.match.asked)
        self.assertEqual(len(self.outbox.to(2, "welcome")), 1)

    def test_leaving_while_waiting_aborts(self) -> None:
        self.seating.player_left("a", 1.0)
        self.assertTrue(self.seating.has_left("a"))
        self.assertEqual(self.match.asked[-1], ("abort", "player_left"))

    def test_the_last_player_out_abandons_a_playing_match(self) -> None:
        self.seating.player_connected("a", 1, 0.0)
        self.seating.player_connected("b", 2, 0.0)
        self.match.phase = Phase.PLAYING
        self.seating.player_disconnected("b", 2, 1.0)
        self.seating.leave(self.order[1], 31.0)  # b's window closed
        self.assertNotIn(("abort", "abandoned"), self.match.asked)
        self.seating.player_left("a", 32.0)
        self.assertEqual(self.match.asked[-1], ("abort", "abandoned"))

    def test_the_idle_rule_counts_the_players_the_game_awaits_while_playing(self) -> None:
        self.game.idle_players = lambda state: ["b"]  # type: ignore[attr-defined]
        self.seating.idle = idle = IdleRule.of(10.0)
        assert idle is not None
        self.seating.track_idle(None, 0.0)
        self.assertEqual((idle.counted, idle.due), (frozenset(), math.inf))  # not playing
        self.match.phase = Phase.PLAYING
        self.seating.track_idle(None, 1.0)
        self.assertEqual((idle.counted, idle.due), (frozenset({"b"}), 11.0))
        # A sooner deadline may come before the room's wake-up: it is recomputed.
        self.assertEqual(self.match.asked, ["rewake"])
        self.seating.track_idle(self.order[1], 4.0)  # b acted: later, no rewake
        self.assertEqual((idle.due, self.match.asked), (14.0, ["rewake"]))

    def test_an_idle_players_bug_counts_nobody(self) -> None:
        def idle_players(state: Any) -> list[str]:
            raise RuntimeError("a bug in the game")

        self.game.idle_players = idle_players  # type: ignore[attr-defined]
        self.seating.idle = idle = IdleRule.of(10.0)
        assert idle is not None
        self.match.phase = Phase.PLAYING
        self.seating.track_idle(None, 1.0)
        self.assertEqual((idle.counted, idle.due), (frozenset(), math.inf))
        self.assertEqual(self.seating.faults.count, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_the_idle_rule_times_out_awaited_players_in_seat_order(self) -> None:
        self.assertIsNone(IdleRule.of(0.0))
        self.game.idle = self.game.leave  # type: ignore[attr-defined]
        self.seating.idle = idle = IdleRule.of(10.0)
        assert idle is not None
        self.seating.player_connected("a", 1, 0.0)
        self.seating.player_connected("b", 2, 0.0)
        self.match.phase = Phase.PLAYING
        idle.track(self.order, {"b"}, None, 0.0)
        self.seating.time_out(9.0)
        self.assertFalse(self.seating.has_left("b"))
        self.seating.time_out(10.0)
        self.assertEqual((self.seating.has_left("a"), self.seating.has_left("b")), (False, True))
        self.assertIn(("hook", "idle"), self.match.asked)
