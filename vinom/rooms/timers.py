"""The deadlines of a game host's rooms and seat router, in one heap: `TimerQueue`.

Sans-I/O: nothing here reads a clock. Every owner of deadlines (a room, the
room registry's lingering rooms, a seat with held actions) keeps its own
earliest deadline in its `wake` attribute (`inf`: none) and calls
`schedule(wake, owner)` whenever that value changes. The queue's heap may
thus hold stale entries, for deadlines that moved or went away; an entry
counts only while its time still equals its owner's `wake`, and stale ones
are dropped as they reach the top (lazy invalidation, as the endpoint does
for its sessions). So moving a deadline costs one push, cancelling one costs
nothing, and hundreds of rooms cost a heap of a few hundred entries. The game
host core folds `next_time()` into its `get_timer()` and calls `run_due(now)`
from its `handle_timer`.
"""

from __future__ import annotations

import heapq
from typing import Protocol

from twisted.logger import Logger

_log = Logger()
# Failures logged with a traceback; the rest are only counted.
_MAX_LOGGED = 10


class Timed(Protocol):
    """An owner of deadlines: its earliest in `wake` (inf: none)."""

    wake: float

    def handle_timer(self, now: float) -> None:
        """Do what is due by `now`, move `wake` past `now` (or to inf) and reschedule."""


class TimerQueue:
    """Owners' earliest deadlines, lazily invalidated (see the module docstring)."""

    __slots__ = ("_heap", "_order", "errors")

    def __init__(self) -> None:
        # (when, order, owner): the order keeps owners due at the same time in
        # the order they were scheduled, and never compares two owners.
        self._heap: list[tuple[float, int, Timed]] = []
        self._order = 0
        # Owners' handle_timer calls that raised (logged, the first few).
        self.errors = 0

    def schedule(self, when: float, owner: Timed) -> None:
        """`owner.wake` is now `when`: call its `handle_timer` once that time comes."""
        self._order += 1
        heapq.heappush(self._heap, (when, self._order, owner))

    def next_time(self) -> float | None:
        """The earliest deadline of any owner, or None."""
        heap = self._heap
        while heap:
            when, _, owner = heap[0]
            if owner.wake == when:
                return when
            heapq.heappop(heap)
        return None

    def run_due(self, now: float) -> None:
        """Call `handle_timer(now)` of every owner whose deadline is due by `now`,
        earliest first; deadlines they set that fall due by `now` run too."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, owner = heapq.heappop(heap)
            if owner.wake != when:
                continue  # stale: the owner moved or dropped this deadline
            try:
                owner.handle_timer(now)
            except Exception:
                # A bug in one owner must not stop the others' deadlines.
                self.errors += 1
                if self.errors <= _MAX_LOGGED:
                    _log.failure("a game host timer failed (error {n})", n=self.errors)

    def __len__(self) -> int:
        """Heap entries, stale ones included (an upper bound of live deadlines)."""
        return len(self._heap)
