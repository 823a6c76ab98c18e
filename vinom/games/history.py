"""`TickHistory`: the states of a real-time game's last ticks, for lag compensation.

A shot fired by a player lands in the room some time after the player saw the
world it aimed at: the state they saw (the snapshot numbered `k`) is a round
trip and an interpolation delay old. A game that judges the shot against the
room's current state misses targets that were where the shooter aimed. So the
room keeps, for a game with a tick, the state right after each of its last
ticks (the state the snapshot of that tick was built from), and hands the game
a read-only `TickHistory` in `apply_action_at` (see `IGame`): the game looks up
`state_at(k)` for the tick the client says it saw and judges the hit there,
as Valve's Source engine does.

States are immutable, so keeping one is keeping a reference: the history
costs a slot per tick, no copy. It is bounded (`GameRules.history_ticks`): a tick
older than that is gone and `state_at` answers None, which also caps how far
back a client can claim to have aimed.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class TickHistory:
    """The states after the last `size` ticks, by tick number (read-only to a game).

    The room records each tick's state (`record`); a game only reads:
    `tick` (the newest tick recorded), `oldest` (the oldest still kept) and
    `state_at(tick)`.
    """

    __slots__ = ("_newest", "_states", "size")

    def __init__(self, size: int) -> None:
        #: How many ticks are kept at most.
        self.size = size
        self._states: deque[Any] = deque(maxlen=max(1, size))
        self._newest = -1

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

    def __len__(self) -> int:
        return len(self._states)
