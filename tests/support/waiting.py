"""`until`: the one way a test waits on real sockets, processes or Redis for something to happen.

A test that runs on a Clock advances it instead (twisted.internet.testing.Clock);
this is for the tests whose other side is real (a child process, a Redis server,
a socket), where what the test needs arrives at a moment nobody picks. It polls
a condition on the reactor's time (the reactor runs meanwhile, so the awaited
thing can arrive) and fails the test with `what` when the condition is still
false after `timeout`. The timeout is a bound for a wedged run, never a figure
the test measures: keep it generous (a shared, busy machine is slow), since a
passing test returns as soon as the condition holds.

    await until(lambda: len(sessions) == 2, "both players seated")
    await until(lambda: redis.exists(key), "the ticket in Redis")  # a Deferred or a coroutine
    await until(lambda: b"ready" in child.output, lambda: f"ready in {child.output!r}")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater


async def until(
    condition: Callable[[], object],
    what: str | Callable[[], object] = "the condition",
    timeout: float = 10.0,
    every: float = 0.02,
    clock: IReactorTime | None = None,
) -> object:
    """Wait until `condition()` is true and return what it returned.

    `condition` may return a value, a Deferred or a coroutine (a Redis read, a
    metrics page fetched over HTTP): its outcome is what counts. The test fails
    with `timed out waiting for <what>` and the last value seen after `timeout`
    seconds of the reactor's time; `what` may be a function, called then (a child's
    output so far, say).
    """
    time: Any = clock if clock is not None else reactor
    deadline = time.seconds() + timeout
    while True:
        value = condition()
        if isinstance(value, Deferred) or inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.seconds() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {said} ({timeout} s; last seen {value!r})")
        await deferLater(time, every, lambda: None)
