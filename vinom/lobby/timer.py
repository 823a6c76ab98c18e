"""A lobby connection's one timer (the hello, idle and ping timeouts of connection.py).

`ConnectionTimer.set(seconds)` replaces whatever was set before; `set(None)`
stops it. Each change cancels the pending call and schedules a new one
rather than `reset`ting it: Twisted moves a call to an earlier time by
searching its whole list of timed calls, and a lobby moves every player's
timer earlier (the hello's 10 s becomes a queued player's 5 s ping), one
search through every connection's timer per player; a cancel and a new
call cost a heap operation each.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class ConnectionTimer:
    """Calls `expired()` once `seconds` pass after the last `set(seconds)`."""

    def __init__(self, clock: IReactorTime, expired: Callable[[], object]) -> None:
        self._clock = clock
        self._expired = expired
        self._call: IDelayedCall | None = None

    def set(self, seconds: float | None) -> None:
        """Expire `seconds` from now (replacing any earlier setting), or never (None)."""
        call = self._call
        if call is not None:
            self._call = None
            if call.active():
                call.cancel()
        if seconds is not None:
            self._call = self._clock.callLater(seconds, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._expired()
