"""A room's match-end part alone (vinom.rooms.ending): `MatchEnd` driven without a room.

The match it ends is a plain record (`FakeMatch`, the `EndingMatch` and `MatchNow`
a room is) that notes the phase it is closed in; messages go to a
`RecordingOutbox` through a real `RoomSending`, and time is whatever each call says.
"""

from __future__ import annotations

from typing import Any

from attrs import define, evolve, field
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame
from vinom.games.interfaces import Seat
from vinom.protocol.events import RELIABLE
from vinom.rooms.delta import Quantisation
from vinom.rooms.ending import MatchEnd
from vinom.rooms.faults import GameFaults
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.sending import RoomSending
from vinom.rooms.views import RoomViews


@define
class FakeMatch:
    state: Any
    version: int = 3
    phase: Phase = Phase.PLAYING
    # The phases it was closed in (`end_in`), in order.
    closed: list[Phase] = field(factory=list)

    @property
    def ended(self) -> bool:
        return self.phase in (Phase.FINISHED, Phase.ABORTED)

    def end_in(self, phase: Phase) -> None:
        self.closed.append(phase)
        self.phase = phase
        self.version += 1

    def remaining(self, now: float) -> float | None:
        return None


@define
class FakeRecorder:
    ends: list[tuple[Any, ...]] = field(factory=list)

    def end(self, phase: str, result: Any, state: Any, tick: int, version: int) -> None:
        self.ends.append((phase, result, tick, version))


class MatchEndTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.game = SeqGame()
        self.outbox = RecordingOutbox()
        seats = tuple(Seat(player_id=p, name=p, index=i) for i, p in enumerate(("a", "b")))
        self.order = tuple(Member(seat) for seat in seats)
        # a is connected, b is not: only a hears the end.
        self.order[0].session_id = 1
        self.match = FakeMatch(self.game.create(seats, {}, None))  # type: ignore[arg-type]
        self.faults = GameFaults("seq", "m", Logger())
        views = RoomViews(self.game, self.outbox, Quantisation(), shared=False, checksums=False)
        members = {m.seat.player_id: m for m in self.order}
        sending = RoomSending(self.match, views, members, self.order, None, self.faults, 0.0)
        self.recorder = FakeRecorder()
        recorder: Any = self.recorder  # only a `MatchRecorder`'s `end` is called
        self.called: list[Any] = []
        self.ending = MatchEnd(self.match, self.game, sending, None, recorder, self.called.append)

    def test_finishing_keeps_the_games_result_and_tells_the_connected_players(self) -> None:
        self.match.state = evolve(self.match.state, winner="a", reason="won")
        self.ending.finish(7.0)
        self.assertEqual(self.ending.result, {"winners": ["a"], "reason": "won"})
        self.assertEqual((self.ending.ended_at, self.ending.abort_reason), (7.0, None))
        self.assertEqual(self.match.closed, [Phase.FINISHED])
        phase = self.outbox.to(1, "phase")[-1]
        self.assertEqual((phase["p"], phase["v"]), ("finished", 4))
        self.assertEqual(phase["result"], {"winners": ["a"], "reason": "won"})
        # The final state follows, reliably, with the end's version.
        final = self.outbox.to(1, "state", RELIABLE)[-1]
        self.assertEqual((final["p"], final["v"]), ("finished", 4))
        self.assertEqual(self.outbox.to(2), [])
        self.assertEqual(self.recorder.ends, [("finished", self.ending.result, 0, 4)])
        self.assertEqual(self.called, [self.match])

    def test_a_result_the_game_fails_to_give_wins_nobody(self) -> None:
        self.game.result = lambda state: {"score": 2**70}  # type: ignore[method-assign]
        self.ending.finish(1.0)
        self.assertEqual(self.ending.result, {"winners": [], "reason": "error"})
        self.assertEqual(self.faults.count, 1)
        self.assertEqual(len(self.flushLoggedErrors(OverflowError)), 1)
        self.assertEqual(self.outbox.to(1, "phase")[-1]["result"], self.ending.result)

    def test_aborting_says_why_once(self) -> None:
        self.ending.abort("shutdown", 2.0)
        self.ending.abort("again", 3.0)
        self.assertEqual((self.ending.abort_reason, self.ending.ended_at), ("shutdown", 2.0))
        self.assertIsNone(self.ending.result)
        self.assertEqual(self.match.closed, [Phase.ABORTED])
        [phase] = self.outbox.to(1, "phase")
        self.assertEqual((phase["p"], phase["reason"]), ("aborted", "shutdown"))
        self.assertEqual(self.recorder.ends, [("aborted", None, 0, 4)])
        self.assertEqual(self.called, [self.match])

    def test_without_an_owner_nobody_is_called(self) -> None:
        self.ending.on_end = None
        self.ending.abort("closed", 1.0)
        self.assertEqual((self.match.phase, self.called), (Phase.ABORTED, []))
