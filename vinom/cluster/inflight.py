"""Calls still in flight: counted, so that what made them can wait for them to end.

A part that stops (the matchmaker) or the pool that closes last (vinom.cluster.services)
waits until every call it counts has been answered or given up on. The count is read a
reactor turn after a call ends, since the callbacks after it may make the next call
(an enqueue given up on withdraws its tickets; a cancelled ticket's player is then
forgotten).
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

_T = TypeVar("_T")


class InFlightCalls:
    """Counts calls whose Deferreds have not fired: those `started` by hand, and those
    of the parts it `track`s (the lobby's player store, matchmaker and party store,
    so that the pool closes after them)."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.running = 0
        self._waiters: list[Deferred[None]] = []

    def track(self, part: _T) -> _T:
        """`part` as its users see it, with the Deferreds of its methods counted."""
        return cast(_T, _Counted(part, self))

    def when_done(self) -> Deferred[None]:
        """Fires once no counted call runs (at once if none does)."""
        if not self.running:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def started(self, d: Deferred[Any]) -> None:
        """Count `d` until it fires (call it before adding the callbacks that may
        make the next call)."""
        self.running += 1
        d.addBoth(self._ended)

    def _ended(self, result: object) -> object:
        self.running -= 1
        if not self.running and self._waiters:
            # In a later turn: the callbacks after this one may make the next call
            # (a cancelled ticket's player then forgotten).
            self._clock.callLater(0, self._maybe_done)
        return result

    def _maybe_done(self) -> None:
        if not self.running:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)


class _Counted:
    """A part whose methods' Deferreds an `InFlightCalls` counts; anything else as is."""

    def __init__(self, part: Any, calls: InFlightCalls) -> None:
        self._part = part
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._part, name)
        if not callable(value):
            return value
        calls = self._calls

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            if isinstance(result, Deferred):
                calls.started(result)
            return result

        if inspect.ismethod(value):
            self.__dict__[name] = counted  # a method stays the same: made once
        return counted
