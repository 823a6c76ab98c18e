"""The reactor vinom's processes run on: Twisted's epoll reactor without a log context per event.

Twisted's `EPollReactor.doPoll` hands every ready descriptor to
`twisted.python.log.callWithLogger`, which asks the selectable for its
`logPrefix()` and runs the read or write inside a fresh legacy log context
(`{"system": prefix}`), so that a legacy `log.msg` made during the event is
tagged with the connection. That costs about 1.5 us an event on the machines
vinom is measured on, and a move over WebSocket is three events (one read, two
writes): about a sixth of the server's CPU per move (benchmarks/README.md).
vinom logs with `twisted.logger`, whose events carry their own namespace, so
the context buys it nothing.

`EPollReactor` here dispatches each event straight to Twisted's own
`_doReadOrWrite`, which still catches what a protocol raises, logs it and
drops that connection. What is lost: a legacy `log.msg` or `log.err` made
while handling an event is tagged `-` rather than with the connection's
prefix (the traceback still names the protocol). Everything else is
Twisted's reactor, unchanged.

`install()` makes it the process's global reactor, unless one is installed
already (`twistd --reactor NAME` chose one, or something imported
`twisted.internet.reactor`) or the platform has no epoll; then the reactor in
place, or Twisted's default, is used. It is called by vinom's entry points
only: `twistd vinom` (vinom.server.tap), a game-host worker and the `vinom`
command. Library code never installs or imports the global reactor.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import log

try:
    from twisted.internet.epollreactor import EPollReactor as _TwistedEPollReactor
except ImportError:  # no epoll (not Linux): install() leaves Twisted's default
    _TwistedEPollReactor = None  # type: ignore[assignment,misc]

__all__ = ["EPollReactor", "install"]


if _TwistedEPollReactor is not None:

    class EPollReactor(_TwistedEPollReactor):
        """Twisted's epoll reactor, each event dispatched without a legacy log context."""

        def doPoll(self, timeout: float | None) -> None:
            """Poll for ready descriptors and handle each (Twisted's loop, less the context)."""
            if timeout is None:
                timeout = -1  # wait until a descriptor is ready
            try:
                # As Twisted: at most as many events as descriptors watched.
                ready = self._poller.poll(timeout, len(self._selectables))
            except InterruptedError:
                return
            selectables = self._selectables
            handle = self._doReadOrWrite
            for fd, event in ready:
                # An earlier event of this batch may have removed this one.
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                try:
                    handle(selectable, fd, event)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    # _doReadOrWrite catches what the selectable raises; this is
                    # what escapes its disconnection, logged as callWithLogger would.
                    log.err(system=_prefix(selectable))

        doIteration = doPoll

else:  # pragma: no cover - epoll is Linux's
    EPollReactor = None  # type: ignore[assignment,misc]


def _prefix(selectable: Any) -> str:
    try:
        return str(selectable.logPrefix())
    except Exception:
        return "(buggy logPrefix method)"


def install() -> Any:
    """Install `EPollReactor` as the global reactor if none is yet; return the global reactor."""
    if EPollReactor is not None and "twisted.internet.reactor" not in sys.modules:
        from twisted.internet.main import installReactor

        installReactor(EPollReactor())
    from twisted.internet import reactor

    return reactor
