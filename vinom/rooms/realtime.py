"""A ticking room's real-time loop: its fixed step, inputs, snapshots and history.

A `Room` of a game with a tick (`GameRules.tick_rate`) holds one `RealTimeLoop`;
a turn-based room holds None and allocates nothing of what follows. The loop is
sans-I/O and calls no game code: it keeps the schedule and the buffers, and the
room runs the game's `tick` and applies the inputs the loop hands it.

Fixed step: a game with a tick advances in whole steps of `1 / tick_rate`
seconds (its `tick` always gets exactly that `dt`), on a grid that starts when
play starts: tick `k` is due at that moment plus `k / tick_rate`, so the tick
number `k` is a clock, a replay of the same inputs is exact, and a client can
predict with the same step. After a stall (a slow tick, a busy host) the room
catches up by whole steps, at most `MAX_CATCH_UP_TICKS` per wake-up; beyond
that it drops the rest of the lag (the grid moves on, `dropped_ticks` counts
the steps never run) rather than spiral further behind. One snapshot follows
the steps of a wake-up. The state after each tick is kept for the game's last
`GameRules.history_ticks` ticks, for lag compensation (`TickHistory`,
`IGame.apply_action_at`).

Snapshots: while playing, actions and hooks only mark the state `changed`, and
the snapshot after a tick, sent at the game's `snapshot_rate` (due times
matched to the nearest tick), carries everything applied since the last one.

Inputs: each seat's real-time inputs wait in its `InputBuffer` (the jitter
buffer and the lag-switch caps, `vinom.rooms.inputs`) until their tick;
`input_counts` says what became of them. Each seat's session also has a
`SnapshotHistory`, its delta baselines (`vinom.rooms.delta`). Both are in the
seat's `SeatFeed`, which the loop holds (`feeds`, by player id, in seat order):
a turn-based room's `Member`s carry none of them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import define, field

from vinom.games.history import TickHistory
from vinom.games.rules import GameRules, SnapshotBudget
from vinom.rooms.budget import PriorityQueue
from vinom.rooms.delta import Quantisation, SnapshotHistory
from vinom.rooms.inputs import CAPPED, TOO_LATE, InputBuffer
from vinom.rooms.member import Member
from vinom.rooms.schema import ViewSchema
from vinom.rooms.schema_frames import SchemaHistory

_INF = math.inf

#: The most ticks a room runs in one wake-up to catch up after a stall (a
#: quarter of a second at 20 Hz). Running every missed step could take longer
#: than the steps cover, and the room would never catch up (the "spiral of
#: death"); the lag beyond this is dropped and counted (`Room.dropped_ticks`).
MAX_CATCH_UP_TICKS = 5
# A time within this fraction of a tick before a grid time is on it (`catch_up`).
_ON_GRID = 1e-6

#: Seconds between two `error`s answering a player's rejected real-time inputs.
INPUT_NOTICE_INTERVAL = 1.0

#: The history a game without a tick is given in `apply_action_at`: always empty.
NO_HISTORY = TickHistory(0)

_NOTHING: Sequence[tuple[int, Mapping[str, Any]]] = ()


@define(eq=False)
class SeatFeed:
    """One seat's real-time buffers: what the loop keeps of its player beside the
    `Member` (the seat, its session), made with the loop."""

    member: Member
    # The player's real-time inputs waiting for their tick (made at the first).
    inputs: InputBuffer | None = None
    # The snapshots sent to the current session: its delta baselines (None before
    # its first connection).
    snapshots: SnapshotHistory | SchemaHistory | None = None
    # A game with a snapshot budget: this session's entities waiting to be sent.
    priorities: PriorityQueue | None = None
    # When the player last heard that an input was rejected.
    input_noticed_at: float = -_INF


@define(eq=False)
class RealTimeLoop:
    """The fixed step, inputs, snapshot schedule and tick history of one ticking room."""

    # Ticks per second, and states per second per player while playing.
    rate: float
    snapshot_rate: float
    # The state after each of the game's last ticks (lag compensation).
    history: TickHistory
    # For each session's snapshot history: the game's quantisation, and
    # whether a `snap` carries the CRC-32 of its view (RoomConfig.snapshot_checksums).
    quantisation: Quantisation
    checksums: bool
    # Ticks run so far: tick k ran at the start of play plus
    # (k + dropped_ticks) / rate.
    tick_number: int = 0
    # Fixed steps never run: the lag beyond `MAX_CATCH_UP_TICKS` a wake-up dropped.
    dropped_ticks: int = 0
    # When the next tick is due (inf: not playing).
    tick_due: float = _INF
    # The state changed since the last snapshot, and when the next one may go.
    changed: bool = False
    snapshot_due: float = _INF
    # What became of the players' real-time inputs: held, late, early,
    # duplicate, too_late, capped (`vinom.rooms.inputs`), applied, rejected,
    # not_playing, and acks naming a tick not yet run (bad_ack).
    input_counts: Counter[str] = field(factory=Counter)
    # The game's byte budget per snapshot and client, if it sets one.
    budget: SnapshotBudget | None = None
    # The game's `tick_at` (lag compensation inside the step), if it has one.
    tick_at: Callable[..., Any] | None = None
    # The game's view schema: every session's snapshots are its (§16.8; with a
    # budget, its rows are what waits: vinom.rooms.budget).
    schema: ViewSchema | None = None
    # Each seat's buffers, by player id, in seat order (`seat`).
    feeds: dict[str, SeatFeed] = field(factory=dict)
    # When play started: the origin of the fixed-step grid.
    _origin: float = 0.0

    @classmethod
    def of(
        cls,
        rules: GameRules,
        quantisation: Quantisation,
        checksums: bool,
        tick_at: Callable[..., Any] | None = None,
        schema: ViewSchema | None = None,
    ) -> RealTimeLoop | None:
        """The loop of a room of a game with these rules; None for a game without a tick."""
        if rules.tick_rate <= 0:
            return None
        budget = rules.snapshot_budget
        if budget is not None and schema is not None and schema.rows(budget.entities) is None:
            raise ValueError(
                f"game {rules.name!r}: its snapshot_budget's entities "
                f"({budget.entities!r}) must name a rows field of its view_schema"
            )
        return cls(
            rules.tick_rate,
            rules.snapshot_rate,
            TickHistory(rules.history_ticks),
            quantisation,
            checksums,
            budget=rules.snapshot_budget,
            tick_at=tick_at,
            schema=schema,
        )

    @property
    def interval(self) -> float:
        """Seconds per tick: every tick's `dt`."""
        return 1.0 / self.rate

    def start(self, now: float, state: Any) -> None:
        """Play starts at `now` from `state` (tick 0: the first states' `k`)."""
        self._origin = now
        self.tick_due = now + (1.0 - _ON_GRID / 2) / self.rate
        self.history.record(0, state)
        self.snapshot_due = now + 1.0 / self.snapshot_rate

    def stop(self) -> None:
        """The room ended: no tick nor snapshot is due any more."""
        self.tick_due = self.snapshot_due = _INF

    def catch_up(self, now: float) -> int:
        """How many ticks to run now (at most `MAX_CATCH_UP_TICKS`; the lag beyond
        is dropped). The caller runs them, then calls `schedule_next`."""
        # The steps due by now on the grid. A clock summing float intervals
        # reads a hair before a grid time (0.1 ten times is 0.9999999999999999):
        # within a millionth of a tick counts as on it, and the next tick is
        # due half that early, so the timer wakes the room in time to count it.
        due_steps = math.floor((now - self._origin) * self.rate + _ON_GRID) - self.dropped_ticks
        behind = due_steps - self.tick_number
        if behind > MAX_CATCH_UP_TICKS:
            # Too far behind to catch up: run the bound and drop the rest.
            self.dropped_ticks += behind - MAX_CATCH_UP_TICKS
            behind = MAX_CATCH_UP_TICKS
        return behind

    def schedule_next(self) -> None:
        """After a wake-up's ticks: when the next one is due."""
        # Computed from the origin, not by adding intervals: no drift over a long match.
        next_step = self.tick_number + self.dropped_ticks + 1
        self.tick_due = self._origin + (next_step - _ON_GRID / 2) * (1.0 / self.rate)

    def snapshot_now(self, now: float) -> bool:
        """After a tick: True if the changed state should go out now, at the
        game's `snapshot_rate` (due times are matched to the nearest tick)."""
        if not self.changed:
            return False
        due = self.snapshot_due
        half_tick = (1.0 / self.rate) / 2
        if now + half_tick < due:
            return False
        interval = 1.0 / self.snapshot_rate
        due += interval
        if due + half_tick <= now:
            due = now + interval  # fell behind (missed ticks): start again from now
        self.snapshot_due = due
        return True

    # -- the seats' inputs and snapshot histories --------------------------------

    def seat(self, members: Sequence[Member]) -> None:
        """The room's seats, in seat order: a feed for each."""
        self.feeds = {m.seat.player_id: SeatFeed(m) for m in members}

    def connected(self, player_id: str) -> None:
        """A new session for this seat: it holds none of the views the last one was sent."""
        feed = self.feeds[player_id]
        schema = self.schema
        feed.snapshots = (SnapshotHistory(self.quantisation, checksum=self.checksums)
                          if schema is None else SchemaHistory(schema))  # fmt: skip
        budget = self.budget
        feed.priorities = None if budget is None else PriorityQueue(budget)

    def offer(
        self,
        player_id: str,
        ack: int | None,
        inputs: Sequence[tuple[int, Mapping[str, Any]]],
        playing: bool,
        drawn: Mapping[int, float] | None = None,
    ) -> None:
        """An ``input`` message of this seat: `ack` is the newest snapshot tick they
        applied (their delta baseline), `inputs` the (tick, input) pairs it carries,
        each held for its tick unless the seat is not `playing`; `drawn`, by tick,
        the moment the player saw when giving each input that says so."""
        counts = self.input_counts
        feed = self.feeds[player_id]
        history = feed.snapshots
        if ack is not None and history is not None:
            if ack <= self.tick_number:
                history.acknowledge(ack)
            else:
                counts["bad_ack"] += 1  # a tick not run yet: never a baseline
        if not inputs:
            return
        if not playing:
            counts["not_playing"] += len(inputs)
            return
        buffer = feed.inputs
        if buffer is None:
            buffer = feed.inputs = InputBuffer()
        current = self.tick_number
        if drawn:
            for tick, value in inputs:
                counts[buffer.offer(tick, value, current, drawn.get(tick))] += 1
            return
        for tick, value in inputs:
            counts[buffer.offer(tick, value, current)] += 1

    def take(self, feed: SeatFeed, tick: int) -> Sequence[tuple[int, Mapping[str, Any]]]:
        """Before `tick` runs: this seat's (tick, input) pairs to apply now, in tick
        order, at most `MAX_INPUTS_PER_TICK` (`vinom.rooms.inputs`)."""
        buffer = feed.inputs
        if buffer is None or not buffer.held or buffer.held[0][0] > tick:
            return _NOTHING
        due, too_late, capped = buffer.take(tick)
        if too_late or capped:
            counts = self.input_counts
            counts[TOO_LATE] += too_late
            counts[CAPPED] += capped
        return due
