"""When each session of a game host's UDP endpoint next needs its timer (sans-I/O).

A session wakes for its keepalive, its timeout or its reliability layer's timer
(resends, an owed ack), whichever comes first (`SessionTimers.schedule`). Idle
sessions wake on a shared grid (TIMER_GRID), hundreds per time: the times are in
a heap and the sessions due at each in a list, so a session costs a list slot
here, not a (time, id) record, and ten thousand idle sessions cost ~30 wake-ups
of the host a second rather than ~10,000. An entry of a session that closed or
moved its wake-up since stays until it is met, then is dropped, once.

Installed builds compile this module with mypyc (setup.py, COMPILED).
"""

from __future__ import annotations

import heapq

from vinom.protocol.server_session import ServerSession

# Timers never fire sooner than this after they are set, so a layer that keeps
# asking for "now" cannot spin the event loop.
MIN_TIMER_DELAY = 0.001
# Keepalive and timeout wake-ups fall on this grid (see schedule); a power of two,
# so that its multiples are exact even on unix-time clocks.
TIMER_GRID = 1.0 / 32


class SessionTimers:
    """One endpoint's session wake-ups: the times, and who is due at each."""

    __slots__ = ("_due", "_heap", "_sessions")

    def __init__(self, sessions: dict[int, ServerSession]) -> None:
        # The endpoint's sessions by id (the same dict): entries of closed ones are stale.
        self._sessions = sessions
        self._heap: list[float] = []
        self._due: dict[float, list[int]] = {}

    def entries(self) -> int:
        """Session entries held (stale ones included), for `held_entries`."""
        return sum(map(len, self._due.values()))

    def schedule(self, s: ServerSession, now: float, due: float | None) -> None:
        """Set the session's wake-up: keepalive, timeout or `due` (its reliability
        layer's timer), whichever comes first; never later than one already set."""
        grid = s.grid
        if grid:
            # On a shared grid, one wake-up of the host serves every session due in
            # that slot, not one wake-up per session. Keepalives go up to one slot
            # early (never late), timeouts up to one slot late (never early); the
            # reliability layer's timers below stay exact.
            when = ((s.last_sent + s.keepalive - grid) // grid + 1.0) * grid
            deadline = ((s.last_recv + s.timeout) // grid + 1.0) * grid
        else:
            when = s.last_sent + s.keepalive
            deadline = s.last_recv + s.timeout
        if deadline < when:
            when = deadline
        if due is not None and due < when:
            when = due
        if when < now + MIN_TIMER_DELAY:
            when = now + MIN_TIMER_DELAY
        if when < s.wake:
            s.wake = when
            sids = self._due.get(when)
            if sids is None:
                self._due[when] = [s.id]
                heapq.heappush(self._heap, when)
            else:
                sids.append(s.id)

    def next_wake(self) -> float | None:
        """The earliest time a live session is due, or None; drops the stale entries
        it meets on the way."""
        heap = self._heap
        due = self._due
        sessions = self._sessions
        while heap:
            when = heap[0]
            sids = due[when]
            while sids:
                s = sessions.get(sids[-1])
                if s is not None and s.wake == when:
                    return when
                sids.pop()
            heapq.heappop(heap)
            del due[when]
        return None

    def pop_due(self, now: float) -> tuple[float, list[int]] | None:
        """The earliest time due by `now` and the ids listed at it (some stale: check
        each one's `wake`), taken out; None when none is due. A wake-up set while
        they are handled (always after `now`) goes to another list."""
        heap = self._heap
        if not heap or heap[0] > now:
            return None
        when = heapq.heappop(heap)
        return when, self._due.pop(when)
