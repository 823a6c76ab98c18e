"""`WorkerPool` (`--host-workers N`): N long-lived worker processes, supervised.

Each match's host starts on the live worker with the fewest hosts. A worker
that exits, is killed or misses its heartbeats is killed and replaced after a
back-off that grows while workers keep dying young.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from zope.interface import implementer

from vinom.hosting.interfaces import (
    Histogram,
    IGameHost,
    IGameHostFactory,
    IHostingStatistics,
    WorkerStatus,
)
from vinom.hosting.workers.child import WorkerGone, WorkerProcess, WorkerSettings


@attrs.define(eq=False)
class _Slot:
    index: int
    worker: WorkerProcess | None = None
    restarts: int = 0
    # Restarts in a row of workers that died young: the back-off grows with them.
    failures: int = 0
    restart_call: IDelayedCall | None = None
    # The CPU seconds of the slot's earlier processes.
    cpu_before: float = 0.0


@implementer(IGameHostFactory, IHostingStatistics)
class WorkerPool(Service):
    """N supervised game-host worker processes; each match goes to the least-loaded one.

    A worker that ends unasked is replaced after a back-off of
    `restart_delay * 2**k` seconds (at most `max_restart_delay`), k counting
    the workers in a row of that slot that lived less than `stable_after`.
    """

    log = Logger()

    def __init__(
        self,
        settings: WorkerSettings,
        count: int,
        reactor: Any,
        *,
        restart_delay: float = 0.5,
        max_restart_delay: float = 30.0,
        stable_after: float = 30.0,
    ) -> None:
        self.settings = settings
        self.count = count
        self.reactor = reactor
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.stable_after = stable_after
        self.slots = [_Slot(i) for i in range(count)]
        self.retired: Counter[str] = Counter()
        self.spawn_histogram = Histogram()
        self._live_waiters: list[Deferred[WorkerProcess]] = []
        self._stopping = False

    # Service

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        for slot in self.slots:
            if slot.worker is None:
                self._spawn(slot)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        closing = []
        for slot in self.slots:
            if slot.restart_call is not None and slot.restart_call.active():
                slot.restart_call.cancel()
            if slot.worker is not None:
                closing.append(slot.worker.close())
        waiters, self._live_waiters = self._live_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.errback(WorkerGone("the worker pool is stopping"))
        return DeferredList(closing).addCallback(lambda _: None)

    def _spawn(self, slot: _Slot) -> None:
        slot.restart_call = None
        worker = WorkerProcess(
            str(slot.index), self.settings, self.reactor, one_shot=False,
            on_ended=lambda w: self._ended(slot, w), on_live=self._live,
        )
        slot.worker = worker
        worker.spawn()

    def _live(self, worker: WorkerProcess) -> None:
        if worker.ready_after is not None:
            self.spawn_histogram.observe(worker.ready_after)
        waiters, self._live_waiters = self._live_waiters, []
        for waiter in waiters:
            if not waiter.called:  # one that timed out has failed its match already
                waiter.callback(worker)

    def _ended(self, slot: _Slot, worker: WorkerProcess) -> None:
        if slot.worker is not worker:
            return
        self.retired.update(worker.counters())
        slot.cpu_before += worker.cpu_seconds
        slot.worker = None
        if self._stopping or worker.stopping:
            return
        lived = self.reactor.seconds() - worker.started_at
        slot.failures = 0 if lived >= self.stable_after else slot.failures + 1
        delay = min(self.restart_delay * 2 ** max(slot.failures - 1, 0), self.max_restart_delay)
        slot.restarts += 1
        self.log.info("restarting game-host worker {name} in {delay:.1f} s",
                      name=worker.name, delay=delay)
        slot.restart_call = self.reactor.callLater(delay, self._spawn, slot)

    # IGameHostFactory

    def start_host(self, port: int) -> Deferred[IGameHost]:
        if self._stopping:
            return fail(WorkerGone("the worker pool is stopping"))
        live = [s.worker for s in self.slots if s.worker is not None and s.worker.live]
        if live:
            worker = min(live, key=lambda w: (len(w.hosts), int(w.load.get("sessions", 0))))
            return worker.start_host(port)
        # Every worker is starting or restarting: wait for the first one to be ready.
        waiter: Deferred[WorkerProcess] = Deferred()
        self._live_waiters.append(waiter)
        waiter.addTimeout(self.settings.ready_timeout, self.reactor)
        return waiter.addCallback(lambda w: w.start_host(port))

    # IHostingStatistics

    def refresh(self) -> Deferred[None]:
        """Heartbeat every worker now (the figures below are up to a second old otherwise)."""
        return DeferredList([w.refresh() for w in self._workers()]).addCallback(lambda _: None)

    def _workers(self) -> list[WorkerProcess]:
        return [s.worker for s in self.slots if s.worker is not None]

    def totals(self) -> Counter[str]:
        total = Counter(self.retired)
        for worker in self._workers():
            total.update(worker.counters())
        return total

    def session_count(self) -> int:
        return sum(int(w.load.get("sessions", 0)) for w in self._workers() if w.live)

    def round_trip_times(self) -> list[float]:
        return [float(t) for w in self._workers() if w.live
                for t in w.load.get("round_trip_times", ())]

    def workers(self) -> list[WorkerStatus]:
        statuses = []
        for slot in self.slots:
            worker = slot.worker
            if worker is None:
                statuses.append(WorkerStatus(slot.index, None, False, 0, 0, slot.cpu_before,
                                             slot.restarts))
            else:
                status = worker.status(slot.index, slot.restarts)
                statuses.append(attrs.evolve(status,
                                             cpu_seconds=status.cpu_seconds + slot.cpu_before))
        return statuses

    def spawn_latency(self) -> Histogram:
        return self.spawn_histogram
