"""Rows that wait, as a client shows them: carried on, never stepped back.

Sans-I/O. Under a game's byte budget (vinom.rooms.budget) a schema snapshot's
rows that did not fit travel as the client's baseline has them, and the delta
says which (docs/protocol.md §16.8, flag ``02``). The client keeps that wire view
as the baseline of later deltas and shows each waiting row carried on from its
newest samples (`carry_waiting`, the reference of §16.8's "Rows that wait"), as
Source and Quake 3 clients extrapolate an entity whose update is late.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from vinom.rooms.schema import FixedField, RowsField, ViewSchema

#: How far a client carries a waiting row on: at most this many times the ticks
#: between its last two samples (the host's default `max_wait`, after which it sends
#: the row whatever the budget). Beyond, the row holds.
CARRIED_INTERVALS: Final = 4


def carry_waiting(schema: ViewSchema, tick: int, wire: tuple[Any, ...],
                  waiting: Mapping[int, Sequence[int]],
                  kept: Mapping[int, tuple[tuple[Any, ...], Mapping[int, Sequence[int]] | None]],
                  ) -> tuple[Any, ...]:  # fmt: skip
    """The wire view a client shows for a snapshot of `tick` whose rows `waiting`
    wait (§16.8: the host holds newer values than the baseline's it sent). Each such
    row is carried on from its three newest samples in `kept` (tick -> wire view and
    its waiting rows, None for a full snapshot; the snapshots applied before), back
    to one that lacks the row without listing it (gone): its fixed columns extrapolated
    along the parabola through them (through two: the line), at most
    `CARRIED_INTERVALS` times the newest two's distance past the newest, its other
    columns as the newest sample has them. One sample: that row; none: the row as
    received (or, outside the baseline, not shown). A fixed column that spans more
    than half its range over the samples (a wrap, a respawn) holds. The wire view
    itself stays the baseline for later deltas; only what is shown is carried."""
    shown = list(wire)
    older = sorted((t for t in kept if t < tick), reverse=True)
    for index, ids in waiting.items():
        kind = schema.fields[index][1]
        assert isinstance(kind, RowsField)
        rows = dict(wire[index])
        for key in ids:
            samples: list[tuple[int, tuple[Any, ...]]] = []
            for t in older:
                seen, waited = kept[t]
                row = seen[index].get(key)
                if waited is not None and key in waited.get(index, ()):
                    continue  # it waited there: that says nothing of where it was
                if row is None:
                    if waited is None:
                        continue  # a full snapshot does not list the rows that wait
                    break  # gone there (out of sight): older samples are of another run
                samples.append((t, row))
                if len(samples) == 3:
                    break
            if samples:
                rows[key] = _carried(kind, tick, samples)
        shown[index] = dict(sorted(rows.items()))
    return tuple(shown)


def _carried(kind: RowsField, tick: int, samples: list[tuple[int, tuple[Any, ...]]],
             ) -> tuple[Any, ...]:  # fmt: skip
    """A row carried on to `tick` from its newest samples (newest first): through the
    three (a parabola: a turning entity's curve), or the two (a line), or held."""
    t1, newest = samples[0]
    if len(samples) == 1:
        return newest
    t0, before = samples[1]
    # Where to evaluate: at most CARRIED_INTERVALS times the last gap past the newest.
    at = t1 + min(tick - t1, CARRIED_INTERVALS * (t1 - t0))
    if len(samples) == 3:
        tb = samples[2][0]
        # Lagrange's weights of the three samples at `at`.
        weights = ((at - t0) * (at - tb) / ((t1 - t0) * (t1 - tb)),
                   (at - t1) * (at - tb) / ((t0 - t1) * (t0 - tb)),
                   (at - t1) * (at - t0) / ((tb - t1) * (tb - t0)))  # fmt: skip
    else:
        weights = ((at - t0) / (t1 - t0), (t1 - at) / (t1 - t0), 0.0)
    oldest = samples[-1][1]
    row = list(newest)
    for i, column in enumerate(kind.columns):
        if isinstance(column, FixedField):
            values = (newest[i], before[i], oldest[i])
            if 2 * (max(values) - min(values)) <= column.hi - column.lo:
                # Added left to right, as every client adds them (not `sum`, whose
                # float sum is compensated from Python 3.12).
                value = weights[0] * values[0] + weights[1] * values[1] + weights[2] * values[2]
                row[i] = min(column.hi, max(column.lo, round(value)))
    return tuple(row)
