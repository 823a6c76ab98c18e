"""`TickHistory`: the states of a real-time game's last ticks, for lag compensation.

A shot fired by a player lands in the room some time after the player saw the
world it aimed at: the state they saw (the snapshot numbered `k`) is a round
trip and an interpolation delay old. A game that judges the shot against the
room's current state misses targets that were where the shooter aimed. So the
room keeps, for a game with a tick, the state right after each of its last
ticks (the state the snapshot of that tick was built from), and hands the game
a read-only `TickHistory` in `apply_action_at` (see `IGame`): the game looks up
`state_at(k)` for the tick the client says it saw and judges the hit there,
as Valve's Source engine does. A game that defines `tick_at` gets it in each
tick too, so a projectile in flight is judged in its shooter's past.

Between ticks: a client draws the others interpolated between two snapshots,
so what it saw lies between two ticks. Its real-time inputs say when
(docs/protocol.md §14, `input`): while the room applies such an input, `seen`
is that moment in ticks (41.37: 37% of the way from tick 41 to 42), and
`around(seen)` gives the two states and the fraction to blend them by.

States are immutable, so keeping one is keeping a reference: the history
costs a slot per tick, no copy. It is bounded (`GameRules.history_ticks`): a tick
older than that is gone and `state_at` answers None, which also caps how far
back a client can claim to have aimed.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any


class TickHistory:
    """The states after the last `size` ticks, by tick number (read-only to a game).

    The room records each tick's state (`record`); a game only reads:
    `tick` (the newest tick recorded), `oldest` (the oldest still kept) and
    `state_at(tick)`, `around(t)`, and `seen` (the moment the input being
    applied was given at, in ticks, as its client drew it; None otherwise).
    """

    __slots__ = ("_newest", "_states", "seen", "size")

    def __init__(self, size: int) -> None:
        #: How many ticks are kept at most.
        self.size = size
        self._states: deque[Any] = deque(maxlen=max(1, size))
        self._newest = -1
        #: While the room applies a real-time input that says when its player gave
        #: it: the moment they saw, in fractional ticks; None otherwise.
        self.seen: float | None = None

    def record(self, tick: int, state: Any) -> None:
        """The room's call: `state` is the state right after tick `tick`.

        The room numbers ticks one by one (steps it drops after a long stall
        take no number), so each tick follows the last; were one ever skipped,
        the history starts again rather than answer for a tick it never saw.
        """
        if self.size <= 0:
            return
        if tick != self._newest + 1:
            self._states.clear()
        self._states.append(state)
        self._newest = tick

    @property
    def tick(self) -> int:
        """The newest tick recorded (-1 before any)."""
        return self._newest

    @property
    def oldest(self) -> int:
        """The oldest tick whose state is still kept (-1 when none is)."""
        if not self._states:
            return -1
        return self._newest - len(self._states) + 1

    def state_at(self, tick: int) -> Any | None:
        """The state right after tick `tick` (what its snapshot showed), or None
        when that tick is too old, not run yet, or not an int."""
        if type(tick) is not int or not self._states:
            return None
        back = self._newest - tick
        if back < 0 or back >= len(self._states):
            return None
        return self._states[-1 - back]

    def around(self, t: float) -> tuple[Any, Any, float] | None:
        """The states after tick ``floor(t)`` and the tick after it, and how far `t`
        lies between them (0 to 1), to blend what a player saw at fractional tick
        `t`; the later state is the newest one when that tick has not run yet.
        None when ``floor(t)`` is not in the history (or `t` is not a number)."""
        if type(t) not in (int, float) or not math.isfinite(t):
            return None
        whole = math.floor(t)
        before = self.state_at(whole)
        if before is None:
            return None
        after = self.state_at(whole + 1)
        return before, before if after is None else after, t - whole

    def __len__(self) -> int:
        return len(self._states)
