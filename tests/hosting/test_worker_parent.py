"""A game-host worker whose pipe closes: `host_crashed` when its host process died,
`shutdown` when that process closed the pipe (vinom.hosting.workers.main). The
players' side of it runs on real processes in tests/cluster/test_scaling_faults.py."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from vinom.hosting.workers.main import PARENT_GONE_AFTER, WorkerProtocol


class _Host:
    """Records why it was stopped."""

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop(self, reason: str = "shutdown") -> None:
        self.stopped.append(reason)


class WorkerPipeClosedTests(SynchronousTestCase):
    def closed(self, parent_alive: bool) -> tuple[_Host, list[str], Clock]:
        clock = Clock()
        lost: list[str] = []
        protocol = WorkerProtocol(clock, lambda: lost.append("lost"), lambda: parent_alive)
        protocol.makeConnection(StringTransport())
        host = _Host()
        protocol.hosts[7400] = host  # type: ignore[assignment]
        protocol.connectionLost(Failure(ConnectionDone()))
        return host, lost, clock

    def test_a_worker_whose_host_process_died_aborts_its_matches_host_crashed(self) -> None:
        host, lost, clock = self.closed(parent_alive=False)
        # A dying process's pipes close a moment before its children get a new parent.
        self.assertEqual((host.stopped, lost), ([], []))
        clock.advance(PARENT_GONE_AFTER)
        self.assertEqual((host.stopped, lost), (["host_crashed"], ["lost"]))

    def test_a_worker_closed_by_its_live_host_process_aborts_them_shutdown(self) -> None:
        host, lost, clock = self.closed(parent_alive=True)
        clock.advance(PARENT_GONE_AFTER)
        self.assertEqual((host.stopped, lost), (["shutdown"], ["lost"]))

    def test_a_worker_with_nothing_hosted_ends_at_once(self) -> None:
        clock = Clock()
        lost: list[str] = []
        protocol = WorkerProtocol(clock, lambda: lost.append("lost"), lambda: False)
        protocol.makeConnection(StringTransport())
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(lost, ["lost"])
