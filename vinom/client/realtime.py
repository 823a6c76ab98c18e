"""The sending side of a real-time game's inputs: which tick to stamp, what to repeat.

Sans-I/O: times and ticks in, ticks and pairs out; no reactor. `GameSession`
uses them (docs/client.md, "Real-time inputs").

`TickClock` estimates the server's tick from the newest snapshot: the tick
``k`` it was built at, plus the time since at the game's tick rate. An input
is stamped for the first tick the host runs after it arrives: the ticks run
by then are the estimate plus a whole round trip's worth (half for the
snapshot's way here, half for the input's way there), and the input is for
the next one: ``floor(k + (elapsed + rtt) * tick_rate) + 1``. Stamping further
ahead only adds latency: an input that arrives a little late is applied at
the next tick anyway (counted ``late``; up to 8 ticks late), and one early
waits (up to 8 ticks). `GameSession` stamps from the synced clock of
`vinom.client.netcode.ServerClock` once a snap came (the same formula, its
fastest sample rather than the newest); this estimate serves before that,
and the benchmarks' lean client.

`InputQueue` keeps the inputs the host has not acknowledged yet (at most
`MAX_UNACKED`, the oldest dropped first), so that every ``input`` message
repeats them all: a lost datagram loses no input. The host acknowledges
with each snap's ``ik``, the newest input tick it received. An input given
while the player saw the others interpolated keeps that moment (`drawn`, the
fractional tick drawn), sent with it for lag compensation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from attrs import define, field

from vinom.rooms.client_messages import MAX_INPUTS_PER_MESSAGE

#: The most unacknowledged inputs a client keeps (and repeats in each message).
MAX_UNACKED = MAX_INPUTS_PER_MESSAGE


@define
class TickClock:
    """The server's tick as the newest snapshot tells it (module docstring)."""

    tick_rate: float
    # The newest tick seen and when (the caller's clock, in seconds).
    tick: int | None = None
    seen_at: float = 0.0

    def observe(self, tick: int, now: float) -> None:
        """A snapshot of `tick` arrived at `now` (an older one changes nothing)."""
        if self.tick is None or tick > self.tick:
            self.tick, self.seen_at = tick, now

    def estimate(self, now: float) -> float | None:
        """The server's tick at `now` as last seen plus the time since (None before any)."""
        if self.tick is None:
            return None
        return self.tick + max(0.0, now - self.seen_at) * self.tick_rate

    def input_tick(self, now: float, rtt: float) -> int:
        """The tick an input sent at `now` is meant for, over a round trip of `rtt` s:
        the first the host runs after it arrives (module docstring)."""
        estimate = self.estimate(now)
        if estimate is None:
            return 1
        return math.floor(estimate + max(0.0, rtt) * self.tick_rate) + 1


@define
class InputQueue:
    """The inputs not yet acknowledged by the host, oldest first (module docstring)."""

    pending: deque[tuple[int, Mapping[str, Any]]] = field(
        factory=lambda: deque(maxlen=MAX_UNACKED)
    )
    # The newest tick stamped: ticks only grow, one input per tick.
    last_tick: int = -1
    # Inputs dropped unacknowledged because more than MAX_UNACKED were waiting.
    overflowed: int = 0
    # By tick, the moment (fractional tick) the player saw when giving each
    # pending input that has one.
    drawn: dict[int, float] = field(factory=dict)

    def add(self, tick: int, value: Mapping[str, Any], seen: float | None = None) -> int:
        """Queue an input for `tick` (moved to the tick after the last one if not
        later), given while the player saw fractional tick `seen` (None: not
        said); returns the tick it was stamped with."""
        tick = max(tick, self.last_tick + 1)
        self.last_tick = tick
        pending = self.pending
        if len(pending) == MAX_UNACKED:
            self.overflowed += 1
            self.drawn.pop(pending[0][0], None)
        pending.append((tick, value))
        if seen is not None:
            self.drawn[tick] = seen
        return tick

    def acknowledge(self, tick: int) -> None:
        """The host received every input up to `tick` it will ever apply: forget them."""
        pending, drawn = self.pending, self.drawn
        while pending and pending[0][0] <= tick:
            drawn.pop(pending.popleft()[0], None)
