"""`ProcessPerMatch` (`--matches per-match`): a child process of its own for each match.

Children are taken from a small pool of pre-started ones, so that a match does
not wait for a Python process to start; a child exits when its host stops.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.hosting.interfaces import (
    Histogram,
    IGameHost,
    IGameHostFactory,
    IHostingStatistics,
    WorkerStatus,
)
from vinom.hosting.workers.child import WorkerGone, WorkerProcess, WorkerSettings


@implementer(IGameHostFactory, IHostingStatistics)
class ProcessPerMatch(Service):
    """A child process for each match's host, from a pool of `pool_size` pre-started ones.

    The spawn latency it records is the time from `start_host` (the match has
    its port) to the child listening on that port: a few milliseconds when a
    pre-started child was waiting, a Python start-up when none was.
    """

    log = Logger()

    def __init__(
        self,
        settings: WorkerSettings,
        pool_size: int,
        reactor: Any,
        *,
        restart_delay: float = 0.5,
        max_restart_delay: float = 30.0,
    ) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self.reactor = reactor
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        # Children in a row that died before they were ready (a broken install, a
        # game that fails to import): the pool waits longer before the next one.
        self._failures = 0
        self._refill_call: IDelayedCall | None = None
        self.retired: Counter[str] = Counter()
        self.spawn_histogram = Histogram()
        self.cpu_before = 0.0
        self._idle: deque[WorkerProcess] = deque()
        self._starting: set[WorkerProcess] = set()
        self._hosting: set[WorkerProcess] = set()
        self._stopping = False
        self._serial = 0

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._refill()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        if self._refill_call is not None and self._refill_call.active():
            self._refill_call.cancel()
        everyone = [*self._idle, *self._starting, *self._hosting]
        return DeferredList([w.close() for w in everyone]).addCallback(lambda _: None)

    @property
    def children_ready(self) -> int:
        """Pre-started children ready for the next matches."""
        return len(self._idle)

    @property
    def children_started(self) -> int:
        """Child processes started so far."""
        return self._serial

    def _new_child(self) -> WorkerProcess:
        self._serial += 1
        child = WorkerProcess(f"match-{self._serial}", self.settings, self.reactor,
                              one_shot=True, on_ended=self._ended)
        self._starting.add(child)
        child.spawn()
        child.when_ready().addCallbacks(self._ready, lambda _: None)
        return child

    def _ready(self, child: WorkerProcess) -> None:
        self._failures = 0
        self._starting.discard(child)
        if not child.ended and child not in self._hosting:
            self._idle.append(child)

    def _refill(self) -> None:
        if self._refill_call is not None and self._refill_call.active():
            return
        self._refill_call = None
        while not self._stopping and len(self._idle) + len(self._starting) < self.pool_size:
            self._new_child()

    def _ended(self, child: WorkerProcess) -> None:
        self.retired.update(child.counters())
        self.cpu_before += child.cpu_seconds
        self._starting.discard(child)
        self._hosting.discard(child)
        if child in self._idle:
            self._idle.remove(child)
        if self._stopping:
            return
        if child.ready_after is None and not child.stopping:
            self._failures += 1
            delay = min(self.restart_delay * 2 ** (self._failures - 1), self.max_restart_delay)
            self.log.warn("a game-host child died before it was ready; next one in {delay:.1f} s",
                          delay=delay)
            if self._refill_call is None or not self._refill_call.active():
                self._refill_call = self.reactor.callLater(delay, self._refill)
            return
        self._refill()

    def start_host(self, port: int) -> Deferred[IGameHost]:
        if self._stopping:
            return fail(WorkerGone("the process pool is stopping"))
        placed_at = self.reactor.seconds()
        while self._idle and self._idle[0].ended:
            self._idle.popleft()
        if self._idle:
            child = self._idle.popleft()
        else:
            child = self._new_child()
            self._starting.discard(child)
        self._hosting.add(child)
        self._refill()

        def started(host: IGameHost) -> IGameHost:
            self.spawn_histogram.observe(self.reactor.seconds() - placed_at)
            return host

        def failed(failure: Failure) -> Failure:
            child.close()
            return failure

        ready = child.when_ready()
        ready.addCallback(lambda c: c.start_host(port))
        return ready.addCallbacks(started, failed)

    def _children(self) -> list[WorkerProcess]:
        return [*self._idle, *self._starting, *self._hosting]

    def totals(self) -> Counter[str]:
        total = Counter(self.retired)
        for child in self._children():
            total.update(child.counters())
        return total

    def session_count(self) -> int:
        return sum(int(c.load.get("sessions", 0)) for c in self._hosting if c.live)

    def round_trip_times(self) -> list[float]:
        return [float(t) for c in self._hosting if c.live
                for t in c.load.get("round_trip_times", ())]

    def workers(self) -> list[WorkerStatus]:
        return [c.status(i, 0) for i, c in enumerate(sorted(self._hosting, key=lambda c: c.name))]

    def spawn_latency(self) -> Histogram:
        return self.spawn_histogram
