"""A lobby connection's one timer (the hello, idle and ping timeouts of connection.py).

`ConnectionTimer.set(seconds)` replaces whatever was set before; `set(None)`
stops it. A later setting than the pending call's moves no call: the call
stays, and when it comes it waits out the rest (every frame a player sends
pushes its timeout back, and a connection's conversation sets it about eight
times, most of them later). A sooner setting cancels the pending call and
schedules a new one rather than `reset`ting it: Twisted moves a call to an
earlier time by searching its whole list of timed calls, and a lobby moves
every player's timer earlier (the hello's 10 s becomes a queued player's 5 s
ping), one search through every connection's timer per player; a cancel and a
new call cost a heap operation each. `close()` stops it for good when its
connection is gone, letting go of `expired`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class ConnectionTimer:
    """Calls `expired()` once `seconds` pass after the last `set(seconds)`."""

    def __init__(self, clock: IReactorTime, expired: Callable[[], object]) -> None:
        self._clock = clock
        self._expired = expired
        self._call: IDelayedCall | None = None
        # When `expired` is due (inf: not set); the pending call comes no later.
        self._deadline = math.inf
        self._closed = False

    def set(self, seconds: float | None) -> None:
        """Expire `seconds` from now (replacing any earlier setting), or never (None).
        Nothing, once closed."""
        call = self._call
        if seconds is None or self._closed:
            self._deadline = math.inf
            if call is not None:
                self._call = None
                if call.active():
                    call.cancel()
            return
        deadline = self._deadline = self._clock.seconds() + seconds
        if call is not None:
            if call.active() and call.getTime() <= deadline:
                return  # it comes first, and then waits out the rest
            self._call = None
            if call.active():
                call.cancel()
        self._call = self._clock.callLater(seconds, self._fire)

    def close(self) -> None:
        """Stop for good (the connection is gone) and let go of `expired`, which
        refers back to the connection: with it kept, a closed connection's objects
        would wait for the garbage collector instead of going at once."""
        self.set(None)
        self._closed = True
        self._expired = _nothing

    def _fire(self) -> None:
        self._call = None
        remaining = self._deadline - self._clock.seconds()
        if remaining > 0:
            self._call = self._clock.callLater(remaining, self._fire)
            return
        self._deadline = math.inf
        self._expired()


def _nothing() -> None:
    return None
