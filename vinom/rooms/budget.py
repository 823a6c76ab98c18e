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
An entity rated `math.inf` never waits, even past the budget.

Nothing changes on the wire: the view sent is an ordinary view, delta-encoded
against the client's baseline (docs/protocol.md §16), its checksum that of
what the client rebuilds. The sizes are measured as msgpack packs them, with
a few bytes of slack for the map headers (`SLACK`).
"""

from __future__ import annotations

import math
from typing import Any, Final

from attrs import define, field

from vinom.games.rules import SnapshotBudget
from vinom.rooms.delta import SAME, Prepared, Quantisation, diff_wire, pack_wire, view_crc

#: Bytes kept back for map headers that grow with the entries (a map of more
#: than 15 entries takes 3 bytes, not 1; the view's and the entities' map).
SLACK: Final = 6
_INF = math.inf
_MISSING: Final = object()


def snapshot_header_bytes(tick: int, baseline_tick: int | None, checksum: bool) -> int:
    """The bytes of a snapshot before its body (docs/protocol.md §16.1)."""
    distance = None if baseline_tick is None else tick - baseline_tick
    fields = len(pack_wire(tick, False)) + len(pack_wire(distance, False))
    return 1 + fields + (5 if checksum else 1)


@define(eq=False)
class PriorityQueue:
    """One client's entities waiting to be sent: each one's accumulated priority."""

    budget: SnapshotBudget
    # Entity key -> the priority it gathered while waiting (absent: sent or unchanged).
    waiting: dict[str, float] = field(factory=dict)
    # Entities sent changed, and waits, since the queue was made.
    sent: int = 0
    deferred: int = 0

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
        budget = self.budget
        name = budget.entities
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
        room = budget.bytes - header - fixed - len(pack_wire(name, wide)) - SLACK
        rate = budget.priority
        waiting = self.waiting
        candidates: list[tuple[float, str, int]] = []
        for key, value in entities.items():
            old = held.get(key, _MISSING)
            if old is _MISSING:
                cost = len(pack_wire(value, wide))
            else:
                change = diff_wire(old, value)
                if change is SAME:
                    continue
                cost = len(pack_wire(change, wide))
            total = waiting.get(key, 0.0) + float(rate(view, key))
            candidates.append((total, key, cost + len(pack_wire(key, wide))))
        if not candidates:
            self.waiting = {}
            return prepared
        candidates.sort(key=lambda c: c[0], reverse=True)
        chosen: set[str] = set()
        still: dict[str, float] = {}
        for total, key, cost in candidates:
            if total == _INF or cost <= room:
                chosen.add(key)
                room -= cost
            else:
                still[key] = total
        self.waiting = still
        self.sent += len(chosen)
        self.deferred += len(still)
        if not still:
            return prepared
        rest[name] = {k: v if k in chosen else held[k] for k, v in entities.items()
                      if k in chosen or k in held}  # fmt: skip
        crc = view_crc(rest, quantisation.compiled) if checksum else None
        return Prepared(rest, wide, crc)
