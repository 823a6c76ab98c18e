"""A real-time snapshot within a client's byte budget: entities sent by priority.

Sans-I/O: views in, views out. A game may declare a `SnapshotBudget`
(`vinom.games.rules`): the most bytes of a snap's snapshot per client, the map
of its views whose entities may wait (keyed by id), and how each entity is
rated for a player. Before a snapshot is encoded for a client, `PriorityQueue.fit`
builds the view that client is sent: everything but that map as it is; of the
map, each entity unchanged since the client's baseline, each one removed, and
of the changed or new ones as many as fit, highest priority first. The others
*wait*: the client keeps what it last acknowledged of them (a new one stays
unknown), and each wait adds the entity's priority to its account, so that one
far away is sent before long (Glenn Fiedler's priority accumulators, "State
Synchronization"; Quake 3 and Source cut a snapshot to its rate the same way).
An entity rated `math.inf` never waits, even past the budget; nor does one that
has waited the budget's `max_wait` snapshots in a row (*overdue*): without that
bound, a budget far below what the changes take leaves a low-priority entity
frozen on the client for as long as higher ones fill it, then jumping.

A wait shows the client the value of its acknowledged baseline: for an entity
sent after that baseline, an older one (a step back) until a snapshot holding
the newer is acknowledged. Only a wire that says which entities wait can let
the client keep its newest instead (issue 74's one snapshot form).

Nothing changes on the wire: the view sent is an ordinary view, delta-encoded
against the client's baseline (docs/protocol.md §16), its checksum that of
what the client rebuilds. A schema-less view is weighed as msgpack packs it,
with a few bytes of slack for the map headers (`SLACK`); a view schema's rows
(§16.8) in the bits each row's change takes (`vinom.rooms.schema.row_bits`).
"""

from __future__ import annotations

import math
from typing import Any, Final

from attrs import define, field

from vinom.games.rules import SnapshotBudget
from vinom.rooms.delta import SAME, Prepared, Quantisation, diff_wire, pack_wire, view_crc
from vinom.rooms.schema import ViewSchema, row_bits

#: Bytes kept back for map headers that grow with the entries (a map of more
#: than 15 entries takes 3 bytes, not 1; the view's and the entities' map).
SLACK: Final = 6
#: Bits kept back in a schema body: a rows count growing past 127 (a second byte of
#: its uvar) and the last byte's padding.
SLACK_BITS: Final = 16
_INF = math.inf
_NEVER = 1 << 62  # no `max_wait`: no wait is ever that long
_MISSING: Final = object()


def snapshot_header_bytes(tick: int, baseline_tick: int | None, checksum: bool) -> int:
    """The bytes of a snapshot before its body (docs/protocol.md §16.1)."""
    distance = None if baseline_tick is None else tick - baseline_tick
    fields = len(pack_wire(tick, False)) + len(pack_wire(distance, False))
    return 1 + fields + (5 if checksum else 1)


@define(eq=False)
class PriorityQueue:
    """One client's entities waiting to be sent: each one's accumulated priority.

    `fit` cuts a schema-less view (msgpack, docs/protocol.md §16.1), `fit_rows` a
    schema view's rows (§16.8); both weigh each changed entity in their own
    encoding and leave the choice to `choose`, the one rule."""

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

    def choose(self, view: Any, costs: dict[Any, int], room: int) -> set[Any] | None:
        """Which of the changed entities (`costs`: key -> what sending it costs) go in
        `room` (the same unit), highest accumulated priority first, an overdue one or
        one rated `math.inf` even past it; the others wait. None when all go."""
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
            total = _INF if ages.get(key, 0) >= max_wait else (
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

    def fit(
        self,
        view: Any,
        prepared: Prepared,
        baseline: Prepared | None,
        header: int,
        quantisation: Quantisation,
        checksum: bool,
    ) -> Prepared:
        """The view to send this client: `prepared` (the game's `view`, in wire form)
        cut to the budget against `baseline` (None: a full snapshot), `header`
        bytes of snapshot header besides."""
        name = self.budget.entities
        wire = prepared.wire
        entities = wire.get(name) if type(wire) is dict else None
        if type(entities) is not dict or type(view) is not dict:
            return prepared
        base_wire = None if baseline is None else baseline.wire
        held_before = base_wire.get(name) if type(base_wire) is dict else None
        if type(held_before) is not dict:
            held_before = {}
        # What the client keeps of the entities still in the view; removals go.
        held = {k: held_before[k] for k in entities if k in held_before}
        rest = dict(wire)
        rest[name] = held
        wide = prepared.wide
        if base_wire is None:
            fixed = len(pack_wire(rest, wide))
        else:
            patch = diff_wire(base_wire, rest)
            fixed = 0 if patch is SAME else len(pack_wire(patch, wide))
        room = self.budget.bytes - header - fixed - len(pack_wire(name, wide)) - SLACK
        costs: dict[Any, int] = {}
        for key, value in entities.items():
            old = held.get(key, _MISSING)
            if old is _MISSING:
                cost = len(pack_wire(value, wide))
            else:
                change = diff_wire(old, value)
                if change is SAME:
                    continue
                cost = len(pack_wire(change, wide))
            costs[key] = cost + len(pack_wire(key, wide))
        chosen = self.choose(view, costs, room)
        if chosen is None:
            return prepared
        rest[name] = {k: v if k in chosen else held[k] for k, v in entities.items()
                      if k in chosen or k in held}  # fmt: skip
        crc = view_crc(rest, quantisation.compiled) if checksum else None
        return Prepared(rest, wide, crc)

    def fit_rows(
        self,
        view: Any,
        wire: tuple[Any, ...],
        baseline: tuple[Any, ...] | None,
        schema: ViewSchema,
        header: int,
    ) -> tuple[Any, ...]:
        """The schema view to send this client: `wire` (`schema.wire(view)`) with the
        rows of the budget's `entities` field cut to the budget against `baseline`
        (a wire view; None: a full snapshot), `header` bytes of snapshot header
        besides. An entity's key is its row id."""
        found = schema.rows(self.budget.entities)
        if found is None:
            return wire
        index, kind = found
        rows = wire[index]
        before = {} if baseline is None else baseline[index]
        # What the client keeps of the rows still in the view; removals go.
        held = {k: before[k] for k in rows if k in before}
        rest = (*wire[:index], held, *wire[index + 1:])
        fixed = len(schema.encode_body(baseline, rest))
        room = (self.budget.bytes - header - fixed) * 8 - SLACK_BITS
        if baseline is not None and held == before:
            # The rows unchanged, the field costs one bit; a row sent changes it: each
            # kept row then costs its "10" and the added rows their count (8 bits).
            room -= 2 * len(held) + 8
        costs: dict[Any, int] = {}
        for key, row in rows.items():
            old = held.get(key)
            if old != row:
                costs[key] = row_bits(kind, key, old, row)
        chosen = self.choose(view, costs, room)
        if chosen is None:
            return wire
        cut = {k: row if k in chosen else held[k] for k, row in rows.items()
               if k in chosen or k in held}  # fmt: skip
        return (*wire[:index], cut, *wire[index + 1:])
