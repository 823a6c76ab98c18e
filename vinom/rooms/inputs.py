"""The jitter buffer of one player's real-time inputs in a ticking room.

Sans-I/O: ticks and inputs in, inputs out; no clock. A client stamps each
input with the tick it is meant for and repeats its unacknowledged inputs in
every ``input`` message (docs/protocol.md §14), so the same (tick, input)
pair may arrive several times, out of order, a little early or too late.
The buffer makes each tick's input count once:

- an input for a tick up to `JITTER_TICKS` ahead of the room's current tick
  is held until that tick runs (the jitter buffer: a client stamps its
  inputs a little ahead, so that they are there in time);
- further ahead it is dropped and counted ``early`` (a client whose clock
  runs ahead; its redundant copies come again once the tick is near);
- for a tick the room has already run it is counted ``late`` and applied at
  the next tick, before that tick's own input, in tick order: no input is lost;
- for a tick already received from this player it is dropped and counted
  ``duplicate`` (the redundant copies). Received ticks are remembered for
  `SEEN_TICKS` below the newest; an input older than that is dropped as a
  duplicate too (its copy came long ago, or it was lost for good).

`take(tick)` hands out, oldest first, every held input whose tick is at most
`tick`: the room calls it just before running that tick.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any, Final

from attrs import define, field

#: How many ticks ahead of the room's current tick an input may be stamped and
#: still be held (400 ms at 20 Hz: a client's lead for a 700 ms round trip).
JITTER_TICKS: Final = 8
#: How many ticks below the newest received one the buffer remembers which it got.
SEEN_TICKS: Final = 64

HELD: Final = "held"
EARLY: Final = "early"
LATE: Final = "late"
DUPLICATE: Final = "duplicate"


@define
class InputBuffer:
    """One player's inputs waiting for their tick (module docstring)."""

    # (tick, input) pairs held, sorted by tick.
    held: list[tuple[int, Mapping[str, Any]]] = field(factory=list)
    # The newest tick received from this player (the ``ik`` of their snaps), or None.
    newest: int | None = None
    # Ticks received at or above `floor`; below it everything counts as received.
    _seen: set[int] = field(factory=set)
    _floor: int = 0

    def offer(self, tick: int, value: Mapping[str, Any], current: int) -> str:
        """Take one received pair, the room having run `current` ticks; says what
        became of it: `HELD`, `LATE` (held for the next tick), `EARLY` or `DUPLICATE`."""
        if tick > current + JITTER_TICKS:
            return EARLY
        seen = self._seen
        if tick < self._floor or tick in seen:
            return DUPLICATE
        seen.add(tick)
        newest = self.newest
        if newest is None or tick > newest:
            self.newest = newest = tick
            if len(seen) > 2 * SEEN_TICKS:
                # Forget the oldest: they are below the window from now on.
                self._floor = floor = newest - SEEN_TICKS
                self._seen = {k for k in seen if k >= floor}
        bisect.insort(self.held, (tick, value), key=_tick_of)
        return LATE if tick <= current else HELD

    def take(self, tick: int) -> list[tuple[int, Mapping[str, Any]]]:
        """The held pairs for `tick` and before, oldest first (removed from the buffer)."""
        held = self.held
        if not held or held[0][0] > tick:
            return []
        cut = bisect.bisect_right(held, tick, key=_tick_of)
        due = held[:cut]
        del held[:cut]
        return due


def _tick_of(pair: tuple[int, Mapping[str, Any]]) -> int:
    return pair[0]
