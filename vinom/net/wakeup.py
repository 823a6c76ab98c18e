"""One reactor timer that follows a sans-I/O core's `get_timer()`: `WakeUp`.

The UDP adapters (the game host's and the game client's) and each WebTransport
connection drive their core with a single `callLater`: after every flush they
ask the core when it next needs `handle_timer` and move the timer only if that
is earlier than the one already set. An early wake-up is harmless (the core
re-checks); a late one is not. A call is moved earlier by cancelling it and
making another, not by `reset`: Twisted finds a call reset to an earlier time
by a linear search of all its pending calls.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class WakeUp:
    """Calls `callback` once at the earliest time asked for since it last fired."""

    def __init__(self, clock: IReactorTime, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._call: IDelayedCall | None = None
        self._at = 0.0

    def at(self, when: float, now: float) -> None:
        """Fire at `when` (`now` is the clock's time), unless already set for sooner."""
        call = self._call
        if call is not None and call.active():
            if self._at <= when:
                return
            call.cancel()
        self._at = when
        self._call = self._clock.callLater(max(0.0, when - now), self._fire)

    def cancel(self) -> None:
        call = self._call
        if call is not None and call.active():
            call.cancel()
        self._call = None

    def _fire(self) -> None:
        self._call = None
        self._callback()
