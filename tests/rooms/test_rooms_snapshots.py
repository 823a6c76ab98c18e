"""States at a set rate for games with a tick (vinom.rooms.room): snapshots, not a
state per action; turn-based games unchanged; every state's tick number and time.

Time is a `twisted.internet.testing.Clock`; its `callLater` wakes the room's
timer queue as a game host core's timer does.
"""

from __future__ import annotations

import gc
import random
import types
from collections import Counter
from collections.abc import Iterator
from typing import Any

from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.protocol.test_protocol_support import CLIENT_ADDR, Net
from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame, make_match
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.protocol.reliability import Reliability
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import Phase
from vinom.rooms.record import MatchRecorder
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.timers import TimerQueue

A, B = "p-a", "p-b"
SA, SB = 101, 102


class SnapshotGame(SeqGame):
    """SeqGame with a `snapshot_rate` (None: one state per tick)."""

    def __init__(self, snapshot_rate: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot_rate = snapshot_rate


class ClockHost:
    """A room's timers driven by a Clock, as a host core drives them."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.timers = TimerQueue()
        self._call: Any = None

    def rearm(self) -> None:
        when = self.timers.next_time()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if when is not None:
            self._call = self.clock.callLater(max(0.0, when - self.clock.seconds()), self._fire)

    def _fire(self) -> None:
        self._call = None
        self.timers.run_due(self.clock.seconds())
        self.rearm()

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass, the clock stopping at each deadline on the way."""
        clock = self.clock
        end = clock.seconds() + seconds
        while True:
            when = self.timers.next_time()
            if when is None or when > end:
                break
            clock.advance(max(0.0, when - clock.seconds()))
        clock.advance(max(0.0, end - clock.seconds()))


class SnapshotTestCase(SynchronousTestCase):
    def playing(self, game: SeqGame, recorder: MatchRecorder | None = None, **config: Any) -> Room:
        self.host = ClockHost()
        self.sender = RecordingOutbox()
        room = Room(
            match=make_match(),
            game=game,
            outbox=self.sender,
            timers=self.host.timers,
            config=RoomConfig(**config),
            rng=random.Random(1),
            recorder=recorder,
        )
        self.started_at = self.now
        room.start(self.now)
        self.assertTrue(room.player_connected(A, SA, self.now))
        self.assertTrue(room.player_connected(B, SB, self.now))
        self.assertEqual(room.phase, Phase.PLAYING)
        self.host.rearm()
        self.sender.clear()
        self.room = room
        return room

    @property
    def now(self) -> float:
        return self.host.clock.seconds()

    def act(self, player: str, seq: int, action_id: int) -> bool:
        applied = self.room.handle_action(player, {"seq": seq}, action_id, self.now)
        self.host.rearm()
        return applied

    def states(self, session: int) -> list[dict[str, Any]]:
        return self.sender.to(session, "state", UNRELIABLE)


class RealTimeTests(SnapshotTestCase):
    def test_one_state_per_tick_carrying_every_action_since(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20))
        self.host.advance(0.025)  # between two ticks
        seq = {A: 0, B: 0}
        per_tick: list[int] = []
        for _ in range(20):
            # Each player acts five times between two ticks: no state yet.
            for _ in range(5):
                for player in (A, B):
                    seq[player] += 1
                    self.assertTrue(self.act(player, seq[player], seq[player]))
            self.assertEqual(self.states(SA), [])
            self.host.advance(0.05)
            states = self.states(SA)
            per_tick.append(len(states))
            if states:
                # Built after the tick, from everything applied since the last one.
                self.assertEqual(states[-1]["s"]["seqs"], [seq[A], seq[B]])
                self.assertEqual(states[-1]["i"], seq[A])
                self.assertEqual(states[-1]["v"], room.version)
                self.assertEqual(self.sender.to(SB, "state", UNRELIABLE)[-1]["i"], seq[B])
            self.sender.clear()
        self.assertEqual(per_tick, [1] * 20)

    def test_errors_and_events_stay_immediate(self) -> None:
        self.playing(SnapshotGame(tick_rate=20))
        self.assertFalse(self.act(A, 5, 7))  # stale: seq 1 expected
        [error] = self.sender.to(SA, "error", RELIABLE)
        self.assertEqual((error["code"], error["i"]), ("stale", 7))
        self.room.handle_action(A, {"whisper": "hi"}, 8, self.now)
        self.assertEqual([e["e"] for e in self.sender.to(SB, "event", RELIABLE)], ["shout"])
        self.assertEqual(self.states(SA) + self.states(SB), [])

    def test_no_change_no_state_until_the_periodic_one(self) -> None:
        self.playing(SnapshotGame(tick_rate=20, tick_changes=False), state_interval=1.0)
        self.host.advance(0.9)
        self.assertEqual(self.states(SA), [])
        self.host.advance(0.2)
        self.assertEqual(len(self.states(SA)), 1)

    def test_the_periodic_state_never_adds_a_second_state_to_a_tick(self) -> None:
        self.playing(SnapshotGame(tick_rate=20), state_interval=0.5)
        self.host.advance(3.025)
        times = [s["ts"] for s in self.states(SA)]
        self.assertEqual(len(times), 60)
        self.assertEqual(len(set(times)), 60)

    def test_a_lower_snapshot_rate(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20, snapshot_rate=5), state_interval=0)
        self.assertEqual(room.snapshot_rate, 5.0)
        self.host.advance(0.025)  # between two ticks
        for n in range(1, 41):
            self.assertTrue(self.act(A, n, n))
            self.host.advance(0.05)
        states = self.states(SA)
        self.assertEqual(len(states), 10)
        ticks = [s["k"] for s in states]
        self.assertEqual(ticks, list(range(4, 41, 4)))
        self.assertEqual(states[-1]["s"]["seqs"][0], 40)

    def test_an_uneven_snapshot_rate_keeps_its_average(self) -> None:
        self.playing(SnapshotGame(tick_rate=20, snapshot_rate=15), state_interval=0)
        self.host.advance(4.025)
        ticks = [s["k"] for s in self.states(SA)]
        self.assertEqual(len(ticks), 60)
        self.assertEqual(len(set(ticks)), 60)

    def test_tick_number_and_time_increase(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20), state_interval=0)
        self.host.advance(1.025)
        states = self.states(SA)
        self.assertEqual([s["k"] for s in states], list(range(1, 21)))
        self.assertEqual(room.tick_number, 20)
        # Milliseconds since the room opened, on the host's clock.
        self.assertEqual([s["ts"] for s in states], [50 * k for k in range(1, 21)])
        # The reliable state (sync) carries them too.
        room.send_state(A, self.now)
        [synced] = self.sender.to(SA, "state", RELIABLE)
        self.assertEqual((synced["k"], synced["ts"]), (20, 1025))

    def test_the_final_state_is_sent_at_once(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20), state_interval=0)
        room.handle_action(A, {"win": True}, 1, self.now)
        self.assertEqual(room.phase, Phase.FINISHED)
        [final] = self.sender.to(SA, "state", RELIABLE)
        self.assertEqual(final["p"], "finished")


# What a ticking room holds for its real-time loop (vinom.rooms.realtime): the loop,
# its tick history, and each seat's input buffer and snapshot history.
REAL_TIME_TYPES = frozenset({"RealTimeLoop", "TickHistory", "InputBuffer", "SnapshotHistory"})
_NOT_FOLLOWED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)


def reachable(root: object) -> Iterator[object]:
    """Every object `root` holds, directly or not (the garbage collector's view),
    short of classes, modules and functions (shared by every room)."""
    seen = {id(root)}
    stack = [root]
    while stack:
        obj = stack.pop()
        yield obj
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and not isinstance(ref, _NOT_FOLLOWED):
                seen.add(id(ref))
                stack.append(ref)


def real_time_parts(room: Room) -> Counter[str]:
    """How many objects of each real-time type the room holds."""
    return Counter(
        type(obj).__name__ for obj in reachable(room) if type(obj).__name__ in REAL_TIME_TYPES
    )


class TurnBasedTests(SnapshotTestCase):
    def test_a_turn_based_room_allocates_nothing_of_the_real_time_loop(self) -> None:
        ticking = self.playing(SnapshotGame(tick_rate=20), state_interval=0)
        ticking.handle_inputs(A, None, ((1, {"seq": 1}),), self.now)
        self.host.advance(0.05)
        # What a ticking room holds, found the way the next assertion looks.
        self.assertEqual(
            real_time_parts(ticking),
            {"RealTimeLoop": 1, "TickHistory": 1, "InputBuffer": 1, "SnapshotHistory": 2},
        )
        self.assertIsNotNone(ticking.realtime)
        room = self.playing(SeqGame(), state_interval=0)
        for n in range(1, 4):
            self.assertTrue(self.act(A, n, n))
        self.host.advance(2.0)
        self.assertEqual(real_time_parts(room), {})
        self.assertIsNone(room.realtime)
        self.assertEqual((room.tick_rate, room.snapshot_rate, room.tick_number), (0.0, 0.0, 0))

    def test_a_state_after_every_action(self) -> None:
        room = self.playing(SeqGame(), state_interval=0)
        self.assertEqual(room.snapshot_rate, 0.0)
        for n in range(1, 6):
            self.assertTrue(self.act(A, n, n))
            self.assertEqual(len(self.states(SA)), n)
            self.assertEqual(len(self.states(SB)), n)
            self.assertEqual(self.states(SA)[-1]["s"]["seqs"][0], n)
        self.assertEqual({s["k"] for s in self.states(SA)}, {0})

    def test_time_of_a_state(self) -> None:
        self.playing(SeqGame(), state_interval=0)
        self.host.advance(2.5)
        self.act(A, 1, 1)
        self.assertEqual(self.states(SA)[-1]["ts"], 2500)


class SupersededStateTests(SnapshotTestCase):
    """States queued on the host's endpoint: one that a newer one replaced before
    it left is never sent (docs/protocol.md section 13.1)."""

    def test_only_the_newest_queued_state_leaves(self) -> None:
        net = Net()
        net.connect()
        net.run(0.1)
        event = net.connected()
        assert event is not None
        self.host = ClockHost()
        room = Room(
            match=make_match(), game=SeqGame(), outbox=net.server, timers=self.host.timers,
            config=RoomConfig(state_interval=0),
        )  # fmt: skip
        room.start(self.host.clock.seconds())
        room.player_connected(A, event.session_id, self.host.clock.seconds())
        room.player_connected(B, 999, self.host.clock.seconds())  # no such session
        net.run(0.1)  # the welcome and the first state arrive and are acknowledged
        first = net.messages(CLIENT_ADDR)
        # Three of A's actions in one batch of datagrams: three states queued for A.
        for n in (1, 2, 3):
            self.assertTrue(room.handle_action(A, {"seq": n}, n, self.host.clock.seconds()))
        net.run(0.1)
        states = [decode_server_message(m.data) for m in net.messages(CLIENT_ADDR)[len(first) :]]
        self.assertEqual([(s["t"], s["v"], s["i"]) for s in states], [("state", room.version, 3)])
        layer = net.server.reliability(event.session_id)
        assert isinstance(layer, Reliability)
        self.assertEqual(layer.unreliable_dropped, 2)


class SnapshotRateCheckTests(SynchronousTestCase):
    """A bad `snapshot_rate` is refused, with the reason, when the room is made."""

    def make(self, game: SeqGame) -> Room:
        return Room(match=make_match(), game=game, outbox=RecordingOutbox(), timers=TimerQueue())

    def test_bad_values(self) -> None:
        for rate in (0, -1.0, 21.0, float("nan"), float("inf"), True, "5"):
            error = self.assertRaises(
                ValueError, self.make, SnapshotGame(tick_rate=20, snapshot_rate=rate)
            )
            self.assertIn("snapshot_rate", str(error))
        error = self.assertRaises(ValueError, self.make, SnapshotGame(snapshot_rate=5.0))
        self.assertIn("tick_rate", str(error))

    def test_good_values(self) -> None:
        for rate, expected in ((None, 20.0), (20, 20.0), (0.5, 0.5), (7.5, 7.5)):
            room = self.make(SnapshotGame(tick_rate=20, snapshot_rate=rate))
            self.assertEqual(room.snapshot_rate, expected)
        self.assertEqual(self.make(SnapshotGame()).snapshot_rate, 0.0)
