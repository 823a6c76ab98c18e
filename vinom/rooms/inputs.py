"""The jitter buffer of one player's real-time inputs in a ticking room.

Sans-I/O: ticks and inputs in, inputs out; no clock. A client stamps each
input with the tick it is meant for and repeats its unacknowledged inputs in
every ``input`` message (docs/protocol.md §14), so the same (tick, input)
pair may arrive several times, out of order, a little early or too late.
The buffer makes each tick's input count once, and bounds what a player who
holds their inputs back (a lag switch) can make one tick apply:

- an input for a tick up to `JITTER_TICKS` ahead of the room's current tick
  is held until that tick runs (the jitter buffer: a client stamps its
  inputs a little ahead, so that they are there in time);
- further ahead it is dropped and counted ``early`` (a client whose clock
  runs ahead; its redundant copies come again once the tick is near);
- for a tick the room has already run it is counted ``late`` and applied at
  the next tick, before that tick's own input, in tick order;
- an input is applied at most `LATE_TICKS` ticks after its own: one that
  arrives later than that, or waits that long behind the cap below, is
  dropped and counted ``too_late`` (a client that went silent and then sends
  what it held back moves as far as `LATE_TICKS` ticks allow, never further);
- for a tick already received from this player it is dropped and counted
  ``duplicate`` (the redundant copies). Received ticks are remembered for
  `SEEN_TICKS` below the newest; an input older than that is dropped as a
  duplicate too (its copy came long ago, or it was lost for good).

`take(tick)` hands out, oldest first, the held inputs whose tick is at most
`tick`, at most `MAX_INPUTS_PER_TICK` of them (Source's
``sv_maxusrcmdprocessticks``: late inputs catch up at one extra a tick, they
never land all at once); the rest wait for the next tick, each counted
``capped`` once. The room calls it just before running that tick.

An input that says when its player gave it (the fractional tick they saw,
docs/protocol.md §14) keeps that in `drawn` while it is held; the room pops it
(`drawn_of`) as it applies the input.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from attrs import define, field

#: How many ticks ahead of the room's current tick an input may be stamped and
#: still be held (400 ms at 20 Hz: a client's lead for a 700 ms round trip).
JITTER_TICKS: Final = 8
#: How many ticks below the newest received one the buffer remembers which it got.
SEEN_TICKS: Final = 64
#: The most ticks after its own tick an input is still applied (400 ms at 20 Hz:
#: a burst of lost datagrams the redundant copies make up for); later, dropped.
LATE_TICKS: Final = 8
#: The most inputs of one player applied before one tick: its own and one late.
MAX_INPUTS_PER_TICK: Final = 2

HELD: Final = "held"
EARLY: Final = "early"
LATE: Final = "late"
DUPLICATE: Final = "duplicate"
TOO_LATE: Final = "too_late"
CAPPED: Final = "capped"


class Due(NamedTuple):
    """What `InputBuffer.take` hands out for one tick."""

    # The (tick, input) pairs to apply now, oldest first.
    inputs: Sequence[tuple[int, Mapping[str, Any]]]
    # Inputs dropped for being more than `LATE_TICKS` ticks late (``too_late``).
    too_late: int
    # Inputs the cap held back to a later tick for the first time (``capped``).
    capped: int


_NOTHING_DUE = Due((), 0, 0)


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
    # The ticks of the held inputs the cap has held back already (counted once).
    _capped: set[int] = field(factory=set)
    # The moment (fractional tick) the player saw, by tick, of the held inputs
    # that say one, and of those just handed out until the room pops it.
    drawn: dict[int, float] = field(factory=dict)

    def offer(
        self, tick: int, value: Mapping[str, Any], current: int, drawn: float | None = None
    ) -> str:
        """Take one received pair, the room having run `current` ticks (`drawn`: the
        moment its player saw, if it says); says what
        became of it: `HELD`, `LATE` (held for the next tick), `EARLY`, `DUPLICATE`
        or `TOO_LATE` (not held: the next tick is more than `LATE_TICKS` after it)."""
        if tick > current + JITTER_TICKS:
            return EARLY
        seen = self._seen
        if tick < self._floor or tick in seen:
            return DUPLICATE
        if tick < current + 1 - LATE_TICKS:
            return TOO_LATE
        seen.add(tick)
        newest = self.newest
        if newest is None or tick > newest:
            self.newest = newest = tick
            if len(seen) > 2 * SEEN_TICKS:
                # Forget the oldest: they are below the window from now on.
                self._floor = floor = newest - SEEN_TICKS
                self._seen = {k for k in seen if k >= floor}
        bisect.insort(self.held, (tick, value), key=_tick_of)
        if drawn is not None:
            self.drawn[tick] = drawn
        return LATE if tick <= current else HELD

    def take(self, tick: int) -> Due:
        """The held pairs for `tick` and before, oldest first, at most
        `MAX_INPUTS_PER_TICK` (removed from the buffer); those more than
        `LATE_TICKS` before `tick` are dropped, the rest wait (module docstring)."""
        held = self.held
        if not held or held[0][0] > tick:
            return _NOTHING_DUE
        cut = bisect.bisect_right(held, tick, key=_tick_of)
        # Below `low`: waited too long (behind the cap, or held since they came late).
        low = bisect.bisect_left(held, tick - LATE_TICKS, hi=cut, key=_tick_of)
        end = min(cut, low + MAX_INPUTS_PER_TICK)
        due = held[low:end]
        drawn = self.drawn
        if drawn:
            for k, _ in held[:low]:
                drawn.pop(k, None)
        capped = self._capped
        newly_capped = 0
        if capped:
            for k, _ in held[:end]:
                capped.discard(k)
        for k, _ in held[end:cut]:
            if k not in capped:
                capped.add(k)
                newly_capped += 1
        del held[:end]
        return Due(due, low, newly_capped)

    def drawn_of(self, tick: int) -> float | None:
        """The moment the player saw when giving the input of `tick` just handed
        out, if it said (forgotten once asked)."""
        drawn = self.drawn
        return drawn.pop(tick, None) if drawn else None


def _tick_of(pair: tuple[int, Mapping[str, Any]]) -> int:
    return pair[0]
