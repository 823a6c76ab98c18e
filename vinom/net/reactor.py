"""What vinom's processes run on: Twisted's epoll reactor without a log context per event,
and a collector settled for a long-running server.

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

A connection it accepts (`listenTCP`, and so `listenSSL`, whose TLS runs over
it) also sends at once: Twisted's `write` always buffers and registers the
descriptor for writing (an `epoll_ctl`), sends on the next turn, then
unregisters it (another), two system calls and a turn around every reply. With
nothing waiting to be sent, `WriteThroughServer.write` sends straight away, as
asyncio's and libuv's transports do, and buffers only what the kernel did not
take, which then goes Twisted's way. Order, producers, half-close and errors
stay Twisted's: a failed send leaves the bytes buffered, and the next turn's
write reports the loss as it would have.

`install()` makes it the process's global reactor, unless one is installed
already (`twistd --reactor NAME` chose one, or something imported
`twisted.internet.reactor`) or the platform has no epoll; then the reactor in
place, or Twisted's default, is used. It is called by vinom's entry points
only: `twistd vinom` (vinom.server.tap), a game-host worker and the `vinom`
command. Library code never installs or imports the global reactor. The
server's processes (`twistd vinom` and its game-host workers) call
`settle_garbage_collection` once their reactor runs.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from twisted.internet import tcp
from twisted.python import log

try:
    from twisted.internet.epollreactor import EPollReactor as _TwistedEPollReactor
except ImportError:  # no epoll (not Linux): install() leaves Twisted's default
    _TwistedEPollReactor = None  # type: ignore[assignment,misc]

__all__ = [
    "GC_YOUNG_THRESHOLD",
    "EPollReactor",
    "WriteThroughServer",
    "install",
    "settle_garbage_collection",
]


class WriteThroughServer(tcp.Server):
    """An accepted TCP connection that sends at once when nothing waits before it."""

    def write(self, data: bytes) -> None:
        if (
            self.TLS  # startTLS: the bytes go through its TLS layer first
            or self._tempDataBuffer
            or self.offset != len(self.dataBuffer)
            or not self.connected
            or self.disconnecting
            or self._writeDisconnected
            or type(data) is not bytes
            or not data
        ):
            # Something waits, the connection is going, or it is not bytes: Twisted's
            # way (which refuses what is not bytes as it always has).
            super().write(data)
            return
        sent = self.writeSomeData(data)
        if type(sent) is int and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
        # The rest (all of it when the send failed: the next turn reports the loss).
        super().write(data)

    def writeSequence(self, iovec: Any) -> None:
        if self.TLS or self._tempDataBuffer or self.offset != len(self.dataBuffer):
            super().writeSequence(iovec)
            return
        chunks = list(iovec)
        if any(type(chunk) is not bytes for chunk in chunks):
            super().writeSequence(chunks)  # Twisted's error for what is not bytes
            return
        self.write(b"".join(chunks))


class WriteThroughPort(tcp.Port):
    """A listening TCP port whose connections are `WriteThroughServer`s."""

    transport = WriteThroughServer


if _TwistedEPollReactor is not None:

    class EPollReactor(_TwistedEPollReactor):
        """Twisted's epoll reactor, each event dispatched without a legacy log context,
        its accepted connections sending at once (`WriteThroughServer`)."""

        def listenTCP(
            self, port: int, factory: Any, backlog: int = 50, interface: str = ""
        ) -> WriteThroughPort:
            """Twisted's `listenTCP` (and through it `listenSSL`), on a `WriteThroughPort`."""
            listening = WriteThroughPort(port, factory, backlog, interface, self)
            listening.startListening()
            return listening

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


# The youngest generation's collection threshold for a running server (Python's
# default is 700 allocations). A server's turn allocates a few hundred
# short-lived objects per client (frames, Deferreds, records), most freed by
# reference counting; collecting every 700 allocations traverses the same
# in-flight connections' objects over and over. What the collector must free
# is cyclic: each ended match's host (core, endpoint, router, port) and each
# closed lobby connection, about 65 objects per player in `match`. At 10,000 a
# 2,000-player `match --returning` ran 15 young and 1 middle collections,
# 0.21-0.34 s (6-9% of the server's CPU); at 50,000, 3 young ones, 0.05-0.10 s
# (4 runs each, issue #41), for a few MB of garbage held a little longer.
GC_YOUNG_THRESHOLD = 50_000


def settle_garbage_collection() -> None:
    """Tune the collector for a long-running server process, once its reactor runs.

    Everything alive now (modules, classes, the service tree: tens of thousands
    of objects, none of them garbage) moves to the collector's
    permanent generation (`gc.freeze`), so a full collection walks only what
    the process made since; and the youngest generation is collected every
    `GC_YOUNG_THRESHOLD` allocations. Without this, the collector took about a
    tenth of the server's CPU in the `match` benchmark (docs/performance.md).
    Cycles made later are collected as before.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
