"""A real-time snapshot within a client's byte budget: entities sent by priority.

Sans-I/O: views in, views out. A game may declare a `SnapshotBudget`
(`vinom.games.rules`): the most bytes of a snap's snapshot per client, the rows
field of its view schema whose entities may wait, and how each entity is rated
for a player. Before a snapshot is encoded for a client, `PriorityQueue.fit_rows`
builds the wire view that client is sent: every other field as it is; of the
rows, each one unchanged since the client's baseline, each one removed, and of
the changed or new ones as many as fit, highest priority first. The others
*wait*: they are sent as the baseline has them (a new one stays unknown), and
each wait adds the entity's priority to its account, so that one far away is
sent before long (Glenn Fiedler's priority accumulators, "State
Synchronization"; Quake 3 and Source cut a snapshot to its rate the same way).
An entity rated `math.inf` never waits, even past the budget; nor does one that
has waited the budget's `max_wait` snapshots in a row (*overdue*): without that
bound, a budget far below what the changes take leaves a low-priority entity
frozen on the client for as long as higher ones fill it, then jumping.

The snapshot says which rows wait (§16.8's wait bits): their baseline's values
are older than what the client showed since, so it carries them on from its
newest samples instead (vinom.rooms.carrying) rather than stepping
them back. Each row is weighed in the bits its change takes
(`vinom.rooms.schema.row_bits`), the wait bits besides.
"""

from __future__ import annotations

import math
from collections.abc import Set as AbstractSet
from typing import Any, Final

from attrs import define, field

from vinom.games.rules import SnapshotBudget
from vinom.rooms.schema import ViewSchema, Waiting, row_bits

#: Bits kept back in a schema body: a rows count growing past 127 (a second byte of
#: its uvar) and the last byte's padding.
SLACK_BITS: Final = 16
_INF = math.inf
_NEVER = 1 << 62  # no `max_wait`: no wait is ever that long


@define(eq=False)
class PriorityQueue:
    """One client's entities waiting to be sent: each one's accumulated priority.

    `fit_rows` weighs each changed row of a schema view (§16.8) and leaves the
    choice to `choose`."""

    budget: SnapshotBudget
    # Entity key -> the priority it gathered while waiting (absent: sent or unchanged).
    waiting: dict[Any, float] = field(factory=dict)
    # Entity key -> the snapshots it has waited in a row (absent: sent or unchanged).
    ages: dict[Any, int] = field(factory=dict)
    # Entities sent changed, waits, and overdue entities sent past the budget,
    # since the queue was made.
    sent: int = 0
    deferred: int = 0
    overdue: int = 0
    # Entity key -> the snapshots sent since it (re)appeared that had it current, at
    # most 2 (absent: not in the last view).
    samples: dict[Any, int] = field(factory=dict)

    def choose(self, view: Any, costs: dict[Any, int], room: int,
               never_wait: AbstractSet[Any] = frozenset()) -> set[Any] | None:  # fmt: skip
        """Which of the changed entities (`costs`: key -> what sending it costs) go in
        `room` (the same unit), highest accumulated priority first, an overdue one, one
        of `never_wait` or one rated `math.inf` even past it; the others wait. None
        when all go."""
        if not costs:
            self.waiting, self.ages = {}, {}
            return None
        budget = self.budget
        rate = budget.priority
        waiting, ages = self.waiting, self.ages
        max_wait = _NEVER if budget.max_wait is None else budget.max_wait
        candidates: list[tuple[float, Any, int]] = []
        for key, cost in costs.items():
            # An overdue entity goes first and even past the budget, as one rated
            # math.inf does.
            total = _INF if ages.get(key, 0) >= max_wait or key in never_wait else (
                waiting.get(key, 0.0) + float(rate(view, key)))  # fmt: skip
            candidates.append((total, key, cost))
        candidates.sort(key=lambda c: c[0], reverse=True)
        chosen: set[Any] = set()
        still: dict[Any, float] = {}
        older: dict[Any, int] = {}
        overdue = 0
        for total, key, cost in candidates:
            if cost <= room or total == _INF:
                chosen.add(key)
                room -= cost
                if room < 0 and key in ages and ages[key] >= max_wait:
                    overdue += 1
            else:
                still[key] = total
                older[key] = ages.get(key, 0) + 1
        self.waiting, self.ages = still, older
        # Three disjoint counts: sent within the budget (or rated math.inf), sent past
        # it because overdue, and waits.
        self.sent += len(chosen) - overdue
        self.overdue += overdue
        self.deferred += len(still)
        return None if not still else chosen

    def fit_rows(
        self,
        view: Any,
        wire: tuple[Any, ...],
        baseline: tuple[Any, ...] | None,
        schema: ViewSchema,
        header: int,
    ) -> tuple[tuple[Any, ...], Waiting | None]:
        """The schema view to send this client: `wire` (`schema.wire(view)`) with the
        rows of the budget's `entities` field cut to the budget against `baseline`
        (a wire view; None: a full snapshot), `header` bytes of snapshot header
        besides; and the rows that wait, sent as the baseline has them (None: none).
        An entity's key is its row id."""
        found = schema.rows(self.budget.entities)
        if found is None:
            return wire, None
        index, kind = found
        rows = wire[index]
        before = {} if baseline is None else baseline[index]
        # What the client keeps of the rows still in the view; removals go.
        held = {k: before[k] for k in rows if k in before}
        rest = (*wire[:index], held, *wire[index + 1 :])
        # Weighed as a snapshot with waits: every kept row with its "10" and wait bit.
        probe = None if baseline is None else (index, frozenset[int]())
        fixed = len(schema.encode_body(baseline, rest, probe))
        room = (self.budget.bytes - header - fixed) * 8 - SLACK_BITS
        costs: dict[Any, int] = {}
        for key, row in rows.items():
            old = held.get(key)
            if old != row:
                costs[key] = row_bits(kind, key, old, row)
                if old is None:
                    # Waiting, a row outside the baseline is listed by its id.
                    room -= kind.key.bits
        # A row sent current once since it (re)appeared is shown from one sample, which
        # a wait would hold still, then jump: it goes again, so that the client has two
        # to carry it on from (vinom.rooms.carrying).
        samples = self.samples
        once = {k for k in costs if samples.get(k) == 1}
        chosen = self.choose(view, costs, room, once)
        waiting = set() if chosen is None else {k for k in costs if k not in chosen}
        self.samples = {k: samples.get(k, 0) if k in waiting else min(samples.get(k, 0) + 1, 2)
                        for k in rows}  # fmt: skip
        if chosen is None:
            return wire, None
        cut = {k: row if k in chosen else held[k] for k, row in rows.items()
               if k in chosen or k in held}  # fmt: skip
        return (*wire[:index], cut, *wire[index + 1 :]), (index, waiting)
