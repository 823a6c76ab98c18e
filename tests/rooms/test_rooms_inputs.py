"""Real-time inputs and delta snaps in a ticking room (vinom.rooms.room, vinom.rooms.inputs).

Inputs are what a client's `input` messages carry: (tick, input) pairs, each
repeated until acknowledged. The game here (`SeqGame`) refuses any `seq` but
the next one, so an input applied twice or out of order shows as a rejection.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack
from attrs import evolve, frozen
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import SeqState
from tests.rooms.test_rooms_snapshots import SA, SB, A, B, SnapshotGame, SnapshotTestCase
from vinom.games.interfaces import Outcome, Seat
from vinom.protocol.events import RELIABLE
from vinom.rooms.inputs import (
    CAPPED,
    DUPLICATE,
    EARLY,
    HELD,
    JITTER_TICKS,
    LATE,
    LATE_TICKS,
    MAX_INPUTS_PER_TICK,
    TOO_LATE,
    InputBuffer,
)
from vinom.rooms.router import FLOOD_SECONDS, INPUT_MESSAGES_PER_TICK


class QuantisedGame(SnapshotGame):
    quantisation = {"seqs.*": 1.0}


@frozen
class Counted(SeqState):
    """CountGame's state: SeqState, and which inputs each tick applied."""

    per_tick: tuple[tuple[int, int], ...] = ()
    applied: tuple[int, ...] = ()


class CountGame(SnapshotGame):
    """Any input `{"n": k}` is taken; the state says how many each tick got."""

    def create(self, seats: Any, options: Any, rng: random.Random) -> Any:
        base = super().create(seats, options, rng)
        return Counted(base.players, base.seqs, base.secrets)

    def apply_action(self, state: Any, seat: Seat, action: Any, rng: random.Random) -> Outcome:
        tick = state.ticks + 1  # the inputs applied before a tick are that tick's
        per_tick = dict(state.per_tick)
        per_tick[tick] = per_tick.get(tick, 0) + 1
        return Outcome(
            evolve(state, per_tick=tuple(per_tick.items()), applied=(*state.applied, action["n"]))
        )


class RoomInputTests(SnapshotTestCase):
    def seqs(self, session: int) -> list[int]:
        return self.states(session)[-1]["s"]["seqs"]

    def test_an_input_is_applied_at_its_tick_once(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20))
        room.handle_inputs(A, None, ((2, {"seq": 1}),), self.now)
        self.host.advance(0.05)  # tick 1: not yet
        self.assertEqual(room.tick_number, 1)
        self.assertEqual(room.state.seqs[0], 0)
        # Its redundant copies come with the next input: dropped, counted.
        room.handle_inputs(A, None, ((2, {"seq": 1}), (3, {"seq": 2})), self.now)
        self.host.advance(0.05)  # tick 2
        self.assertEqual(room.state.seqs[0], 1)
        self.host.advance(0.05)  # tick 3
        self.assertEqual(self.seqs(SA)[0], 2)
        self.assertEqual(room.input_counts[DUPLICATE], 1)
        self.assertEqual(room.input_counts["applied"], 2)
        self.assertEqual(room.input_counts["rejected"], 0)

    def test_late_inputs_run_at_the_next_ticks_in_order_early_ones_are_dropped(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20))
        self.host.advance(0.2)  # tick 4
        room.handle_inputs(A, None, ((2, {"seq": 1}), (3, {"seq": 2}), (5, {"seq": 3})), self.now)
        room.handle_inputs(B, None, ((4 + JITTER_TICKS + 1, {"seq": 1}),), self.now)
        self.host.advance(0.05)  # tick 5: the two late ones; its own waits (the cap)
        self.assertEqual(room.state.seqs, (2, 0))
        self.assertEqual(room.input_counts[CAPPED], 1)
        self.host.advance(0.05)  # tick 6: the one the cap held back
        self.assertEqual(room.state.seqs, (3, 0))
        self.assertEqual(
            (room.input_counts[LATE], room.input_counts[HELD], room.input_counts[EARLY]), (2, 1, 1)
        )
        self.assertEqual((room.input_counts["applied"], room.input_counts[TOO_LATE]), (3, 0))

    def test_a_lag_switch_moves_no_faster_than_the_cap_and_no_further_than_the_window(
        self,
    ) -> None:
        """A player sends nothing for 30 s, then every input they held back (ticks
        1-600, 8 a message): the game applies at most MAX_INPUTS_PER_TICK a tick,
        LATE_TICKS of them at most; the rest are dropped and counted."""
        self.assertEqual((LATE_TICKS, MAX_INPUTS_PER_TICK), (8, 2))
        game = CountGame(tick_rate=20)
        room = self.playing(game)
        self.host.advance(30.0)
        current = room.tick_number
        self.assertEqual(current, 600)
        held_back = [(k, {"n": k}) for k in range(1, current + 1)]
        for at in range(0, len(held_back), 8):
            room.handle_inputs(A, None, tuple(held_back[at : at + 8]), self.now)
        self.host.advance(1.0)
        per_tick = dict(room.state.per_tick)
        self.assertLessEqual(max(per_tick.values()), MAX_INPUTS_PER_TICK)
        applied = sorted(room.state.applied)
        # Only the last LATE_TICKS ticks' inputs could still be applied in time.
        self.assertLessEqual(len(applied), LATE_TICKS)
        self.assertTrue(all(k > current - LATE_TICKS for k in applied), applied)
        counts = room.input_counts
        self.assertEqual(counts["applied"], len(applied))
        self.assertEqual(counts[TOO_LATE], current - len(applied))
        self.assertEqual(counts[CAPPED], len(applied) - MAX_INPUTS_PER_TICK)

    def test_a_fresh_buffer_takes_no_input_from_long_ago(self) -> None:
        """A session that joins at tick 1000 (a reconnection) cannot have ticks
        0-999 applied as late: only the last LATE_TICKS are."""
        buffer = InputBuffer()
        verdicts = [buffer.offer(k, {"k": k}, 1000) for k in range(1000)]
        self.assertEqual(verdicts.count(TOO_LATE), 1001 - LATE_TICKS)
        self.assertEqual(verdicts.count(LATE), LATE_TICKS - 1)

    def test_the_snap_says_the_newest_input_received(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20))
        room.handle_inputs(A, None, ((3, {"seq": 1}),), self.now)
        self.host.advance(0.05)
        self.assertEqual(self.sender.snaps[-2][1]["ik"], 3)  # to A (seat order)
        self.assertIsNone(self.sender.snaps[-1][1]["ik"])  # to B
        self.assertEqual(self.sender.snaps[-1][0], SB)

    def test_a_rejected_input_is_answered_at_most_once_a_second(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20))
        room.handle_inputs(A, None, tuple((k, {"seq": 9}) for k in range(1, 6)), self.now)
        self.host.advance(0.3)
        self.assertEqual(room.input_counts["rejected"], 5)
        self.assertEqual(len(self.sender.to(SA, "error", RELIABLE)), 1)

    def test_snaps_are_deltas_against_the_acknowledged_tick(self) -> None:
        room = self.playing(QuantisedGame(tick_rate=20), snapshot_checksums=True)
        room.handle_inputs(A, None, ((1, {"seq": 1}),), self.now)
        self.host.advance(0.05)
        first = msgpack.unpackb(self.sender.snaps[-2][1]["d"])
        self.assertIsNone(first[1])  # nothing acknowledged: a full one
        room.handle_inputs(A, first[0], ((2, {"seq": 2}),), self.now)
        room.handle_inputs(B, first[0], (), self.now)
        self.host.advance(0.05)
        frames = {s: msgpack.unpackb(m["d"]) for s, m in self.sender.snaps[-2:]}
        for frame in frames.values():
            self.assertEqual(frame[0] - frame[1], first[0])  # the acked baseline
            self.assertIsNotNone(frame[2])  # a checksum
        # The client-side decoder (in the outbox) rebuilt the exact views.
        self.assertEqual(self.seqs(SA), [2, 0])
        self.assertEqual(self.seqs(SB), [2, 0])

    def test_an_ack_of_a_tick_not_run_is_ignored(self) -> None:
        room = self.playing(SnapshotGame(tick_rate=20))
        room.handle_inputs(A, 10**9, (), self.now)
        self.host.advance(0.05)
        self.assertEqual(room.input_counts["bad_ack"], 1)

    def test_the_welcome_carries_the_quantisation(self) -> None:
        self.playing(QuantisedGame(tick_rate=20))
        self.room.player_disconnected(A, SA, self.now)
        self.room.player_connected(A, SA, self.now)
        self.assertEqual(self.sender.to(SA, "welcome")[0]["q"], [["seqs.*", 1.0]])


class InputBufferTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.integers(1, 40), min_size=1, max_size=60),
        st.lists(st.integers(0, 3), min_size=60, max_size=60),
    )
    def test_each_input_once_in_tick_order(self, arrivals: list[int], steps: list[int]) -> None:
        """Random arrival orders with duplicates, the room ticking between arrivals:
        each tick's input comes out at most once, each take in tick order and at
        most MAX_INPUTS_PER_TICK, never before its tick nor more than LATE_TICKS
        after it; every input held is applied or counted too late."""
        buffer = InputBuffer()
        current = 0
        out: list[tuple[int, int, Any]] = []  # (take tick, input tick, value)
        expected: set[int] = set()
        too_late = 0
        for tick, step in zip(arrivals, steps, strict=False):
            verdict = buffer.offer(tick, {"k": tick}, current)
            if verdict == EARLY:
                self.assertGreater(tick, current + JITTER_TICKS)
            elif verdict == DUPLICATE:
                self.assertIn(tick, expected)
            elif verdict == TOO_LATE:
                self.assertLess(tick, current + 1 - LATE_TICKS)
                too_late += 1
            else:
                self.assertNotIn(tick, expected)
                self.assertEqual(verdict, LATE if tick <= current else HELD)
                expected.add(tick)
            for _ in range(step):
                current += 1
                taken, dropped, _ = buffer.take(current)
                too_late += dropped
                self.assertLessEqual(len(taken), MAX_INPUTS_PER_TICK)
                self.assertEqual([k for k, _ in taken], sorted(k for k, _ in taken))
                out.extend((current, k, v) for k, v in taken)
        while buffer.held:
            current += 1
            taken, dropped, _ = buffer.take(current)
            too_late += dropped
            out.extend((current, k, v) for k, v in taken)
        ticks = [k for _, k, _ in out]
        self.assertEqual(len(ticks), len(set(ticks)))  # never twice
        self.assertTrue(set(ticks) <= expected)
        for at, tick, value in out:
            self.assertEqual(value, {"k": tick})
            self.assertLessEqual(tick, at)
            self.assertLessEqual(at - tick, LATE_TICKS)

    @settings(max_examples=100, deadline=None)
    @given(st.permutations(list(range(1, 9))), st.integers(0, 8))
    def test_a_compliant_client_loses_nothing(self, order: list[int], current: int) -> None:
        """Inputs 1-8 arrive in any order (each message repeats the older ones):
        whatever the room's tick, the whole run comes out in order, at most
        MAX_INPUTS_PER_TICK a tick, none dropped."""
        buffer = InputBuffer()
        for tick in order:
            for k in range(1, tick + 1):  # the redundant copies of the older ones
                self.assertNotEqual(buffer.offer(k, {"k": k}, current), TOO_LATE)
        taken: list[int] = []
        while buffer.held:
            current += 1
            due, too_late, _ = buffer.take(current)
            self.assertEqual(too_late, 0)
            self.assertLessEqual(len(due), MAX_INPUTS_PER_TICK)
            taken.extend(k for k, _ in due)
        self.assertEqual(taken, list(range(1, 9)))
        self.assertEqual(buffer.newest, 8)

    def test_a_drawn_moment_is_kept_only_while_its_input_is(self) -> None:
        """What a player saw when giving an input goes with it: asked once when it is
        handed out; dropped with it (too late, a duplicate, early)."""
        buffer = InputBuffer()
        self.assertEqual(buffer.offer(5, {}, 4, 2.5), HELD)
        self.assertEqual(buffer.offer(5, {}, 4, 9.0), DUPLICATE)
        self.assertEqual(buffer.offer(40, {}, 4, 30.0), EARLY)
        self.assertEqual(buffer.offer(6, {}, 4, 3.5), HELD)
        self.assertEqual(buffer.offer(7, {}, 4), HELD)
        due, _, _ = buffer.take(5)
        self.assertEqual([buffer.drawn_of(k) for k, _ in due], [2.5])
        self.assertIsNone(buffer.drawn_of(5))
        _, too_late, _ = buffer.take(7 + LATE_TICKS)
        self.assertEqual((too_late, buffer.drawn), (1, {}))


class InputLimitDocTests(SynchronousTestCase):
    """docs/protocol.md §14 states the input limits the code applies."""

    def test_the_doc_states_the_limits(self) -> None:
        doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
        self.assertIn(
            f"at most **{MAX_INPUTS_PER_TICK}** of a player's inputs (`MAX_INPUTS_PER_TICK`", doc
        )
        self.assertIn(f"at most **{LATE_TICKS}** ticks after its own tick (`LATE_TICKS`", doc)
        self.assertIn(
            f"at most **{INPUT_MESSAGES_PER_TICK}** `input` messages per tick of its game"
            " (`INPUT_MESSAGES_PER_TICK`",
            doc,
        )
        self.assertIn(f"holding **{FLOOD_SECONDS}** seconds' worth (`FLOOD_SECONDS`)",
                      " ".join(doc.split()))  # fmt: skip
