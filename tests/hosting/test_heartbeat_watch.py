"""The worker supervisor's heartbeat watch on a Clock: a pause of its own is not a
child's silence (vinom.hosting.workers.watch), and a child silent after it is
still killed within the usual bound.

`WorkerProcess` runs on a `twisted.internet.testing.Clock` with an in-memory
child: an AMP peer on the other end of its pipes that answers `Configure`
and `Heartbeat` while it runs, and holds what it is sent while stopped.
"""

# slow: starts game-host worker processes

from __future__ import annotations

from typing import Any

from twisted.internet.testing import Clock
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from vinom.hosting.workers import commands
from vinom.hosting.workers.child import WorkerProcess, WorkerSettings
from vinom.hosting.workers.watch import PAUSE_AFTER, HeartbeatWatch
from vinom.protocol.config import ProtocolConfig
from vinom.rooms.room import RoomConfig

INTERVAL = 1.0
TIMEOUT = 3.0
# The usual bound: a silent child is killed at most this long after its silence began.
BOUND = TIMEOUT + INTERVAL

SETTINGS = WorkerSettings(
    protocol=ProtocolConfig(token_key=bytes(32)), public_host="127.0.0.1",
    interface="127.0.0.1", game_names=("tictactoe",), room_config=RoomConfig(),
    heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT,
)  # fmt: skip


class _ChildSide(amp.AMP):
    @commands.Configure.responder
    def configure(self, **_: Any) -> dict[str, Any]:
        return {"pid": 4242}

    @commands.Heartbeat.responder
    def heartbeat(self) -> dict[str, Any]:
        return {"hosts": 0, "sessions": 0, "cpu_seconds": 0.0, "counters": {},
                "round_trip_times": []}  # fmt: skip


class _ChildWrites:
    """The child's pipe 4: what it writes reaches the supervisor (unless it is stopped)."""

    def __init__(self, child: FakeChild) -> None:
        self.child = child

    def write(self, data: bytes) -> None:
        self.child.held_out.append(data)
        self.child.soon()

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        pass

    def getPeer(self) -> None:
        return None

    def getHost(self) -> None:
        return None


class FakeChild:
    """The process transport of a `WorkerProcess`, with an AMP child behind it."""

    pid = 4242

    def __init__(self, worker: WorkerProcess, clock: Clock) -> None:
        self.worker = worker
        self.clock = clock
        self.stopped = False
        self.signals: list[str] = []
        self.held_in: list[bytes] = []
        self.held_out: list[bytes] = []
        self.amp = _ChildSide()
        self.amp.makeConnection(_ChildWrites(self))  # type: ignore[arg-type]

    # What WorkerProcess calls on its transport.
    def closeStdin(self) -> None:
        pass

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.held_in.append(data)
        self.soon()

    def closeChildFD(self, fd: int) -> None:
        pass

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def soon(self) -> None:
        # Pipes deliver in a later turn of the reactor.
        self.clock.callLater(0, self.flush)

    def flush(self) -> None:
        """A running child reads what was written to it and its answers are read."""
        if self.stopped:
            return
        incoming, self.held_in = self.held_in, []
        for data in incoming:
            self.amp.dataReceived(data)
        outgoing, self.held_out = self.held_out, []
        for data in outgoing:
            self.worker.childDataReceived(commands.WORKER_WRITES_FD, data)

    def stop(self) -> None:
        self.stopped = True

    def go_on(self) -> None:
        self.stopped = False
        self.flush()


def live_worker(clock: Clock) -> tuple[WorkerProcess, FakeChild]:
    worker = WorkerProcess("w0", SETTINGS, clock, one_shot=False, on_ended=lambda _: None)
    child = FakeChild(worker, clock)
    worker.makeConnection(child)  # type: ignore[arg-type]
    for _ in range(3):
        clock.advance(0)
    ready = worker.when_ready()
    assert ready.called, "the in-memory child answers its configuration at once"
    return worker, child


def advance(clock: Clock, seconds: float, step: float = 0.1) -> None:
    """Time passes while the supervisor runs (its timers fire as they fall due)."""
    for _ in range(round(seconds / step)):
        clock.advance(step)


class HeartbeatWatchTests(SynchronousTestCase):
    def test_silence_beyond_the_limit_is_reported(self) -> None:
        watch = HeartbeatWatch(INTERVAL, since=0.0)
        self.assertIsNone(watch.check(1.0, TIMEOUT))
        watch.answered(1.5)
        for now in (2.0, 3.0, 4.0):
            self.assertIsNone(watch.check(now, TIMEOUT))
        self.assertEqual(watch.check(5.0, TIMEOUT), 3.5)
        self.assertEqual(watch.pauses, 0)

    def test_a_late_check_is_a_pause_of_the_supervisor_and_restarts_the_silence(self) -> None:
        watch = HeartbeatWatch(INTERVAL, since=0.0)
        watch.answered(0.9)
        self.assertIsNone(watch.check(1.0, TIMEOUT))
        # 20 s without a check: the supervisor did not run.
        self.assertIsNone(watch.check(21.0, TIMEOUT))
        self.assertEqual((watch.pauses, watch.last_pause), (1, 20.0))
        # Still silent after the resume: judged from the resume.
        for now in (22.0, 23.0, 24.0):
            self.assertIsNone(watch.check(now, TIMEOUT))
        self.assertEqual(watch.check(25.0, TIMEOUT), 4.0)

    def test_a_clock_set_back_does_not_hold_off_a_kill(self) -> None:
        watch = HeartbeatWatch(INTERVAL, since=1000.0)
        self.assertIsNone(watch.check(1001.0, TIMEOUT))
        # The clock steps back an hour; the child is silent from then on.
        self.assertIsNone(watch.check(-2600.0, TIMEOUT))
        for now in (-2599.0, -2598.0, -2597.0):
            self.assertIsNone(watch.check(now, TIMEOUT))
        self.assertEqual(watch.check(-2596.0, TIMEOUT), 4.0)
        self.assertEqual(watch.pauses, 0)

    def test_a_check_late_by_less_than_the_pause_threshold_is_not_a_pause(self) -> None:
        watch = HeartbeatWatch(INTERVAL, since=0.0)
        self.assertIsNone(watch.check(PAUSE_AFTER * INTERVAL, TIMEOUT))
        self.assertEqual(watch.pauses, 0)
        self.assertEqual(watch.check(PAUSE_AFTER * INTERVAL + 2.0, TIMEOUT),
                         PAUSE_AFTER * INTERVAL + 2.0)  # fmt: skip


class SupervisorPauseTests(SynchronousTestCase):
    """A `WorkerProcess` on a Clock with an in-memory child."""

    def test_a_paused_supervisor_does_not_kill_its_worker_that_answers_after_it(self) -> None:
        clock = Clock()
        worker, child = live_worker(clock)
        advance(clock, 5.0)
        # The whole process group stops: the child and the supervisor's timers alike.
        child.stop()
        clock.advance(20.0)  # the first turn of the reactor after SIGCONT
        child.go_on()
        advance(clock, 10.0)
        self.assertEqual(child.signals, [])
        self.assertTrue(worker.live)

    def test_a_worker_silent_after_the_resume_is_killed_within_the_usual_bound(self) -> None:
        clock = Clock()
        _worker, child = live_worker(clock)
        advance(clock, 5.0)
        child.stop()
        clock.advance(20.0)
        resumed = clock.seconds()
        # The child stays stopped (hung) after the supervisor resumed.
        while not child.signals:
            clock.advance(0.1)
            self.assertLessEqual(clock.seconds() - resumed, BOUND + 0.1)
        self.assertEqual(child.signals, ["KILL"])
        self.assertGreater(clock.seconds() - resumed, TIMEOUT)

    def test_a_worker_stopped_alone_is_killed_within_the_usual_bound(self) -> None:
        clock = Clock()
        _worker, child = live_worker(clock)
        advance(clock, 5.0)
        stopped = clock.seconds()
        child.stop()  # the supervisor runs on
        while not child.signals:
            clock.advance(0.1)
            self.assertLessEqual(clock.seconds() - stopped, BOUND + 0.1)
        self.assertEqual(child.signals, ["KILL"])
