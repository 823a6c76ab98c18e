"""One game-host child process as its lobby sees it: `WorkerProcess`, and `WorkerGameHost`
for each host it runs.

The child (vinom.hosting.workers.main) is configured over AMP on its pipes
(vinom.hosting.workers.commands): the token key never appears on its command
line or in its environment. A child that exits, is killed or misses its
heartbeats (a stopped process counts) is gone: its hosts fire `when_idle`
with their matches recorded as aborted (reason `host_crashed`, or `shutdown`
while the server stops). Silence is judged only over time the supervisor ran
(vinom.hosting.workers.watch): after a pause of its own (its process group
stopped and continued) a child is judged by the heartbeats it answers after it.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from attrs import field, frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

import vinom
from vinom.hosting.interfaces import (
    IGameHost,
    IStreamPeer,
    StreamOpened,
    StreamRefused,
    WorkerStatus,
)
from vinom.hosting.records import RecordSettings
from vinom.hosting.spectators import SpectatorSettings
from vinom.hosting.workers import commands
from vinom.hosting.workers.logs import read_worker_event
from vinom.hosting.workers.watch import HeartbeatWatch
from vinom.match import HOST_CRASHED, Match, MatchEnded, match_to_json, outcome_from_json
from vinom.protocol.address import HostAddress
from vinom.protocol.config import ProtocolConfig
from vinom.rooms.room import RoomConfig

# The child imports the very copy of vinom its lobby runs (installed or a checkout).
_VINOM_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(vinom.__file__)))
_WORKER_MAIN = (
    f"import sys; sys.path.insert(0, {_VINOM_ROOT!r}); "
    "from vinom.hosting.workers.main import main; main()"
)


class WorkerGone(Exception):
    """The worker process hosting this has exited or was killed."""


#: Seconds a game-host process may leave its heartbeats (one a second) unanswered
#: before it is killed and counted as crashed: a constant (docs/operations.md, "When a
#: game-host process fails"); a paused server's own seconds do not count.
HEARTBEAT_TIMEOUT = 3.0


@frozen
class WorkerSettings:
    """How to start and watch game-host child processes."""

    protocol: ProtocolConfig = field(repr=False)
    public_host: str
    interface: str
    game_names: tuple[str, ...]
    room_config: RoomConfig
    executable: str = sys.executable
    # A child that has not answered a heartbeat for `heartbeat_timeout` seconds
    # (they are sent every `heartbeat_interval`) is killed and counts as crashed;
    # seconds this process itself did not run (it was paused) do not count.
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    # A child that is not configured this long after it was started is killed.
    ready_timeout: float = 20.0
    # How the child's hosts record their matches (None: not at all).
    recording: RecordSettings | None = None
    # Spectators' delay and limit (None: the defaults).
    spectators: SpectatorSettings | None = None


@implementer(IAddress)
@frozen
class WorkerAddress:
    """The far end of a worker's AMP pipes."""

    pid: int | None


class _PipeTransport:
    """The transport AMP writes to: the child's pipe 3 (the child answers on pipe 4)."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting:  # after a close, the child is on its way out
            self.process.writeToChild(commands.WORKER_READS_FD, data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.process.closeChildFD(commands.WORKER_READS_FD)

    def getPeer(self) -> WorkerAddress:
        return WorkerAddress(self.process.pid)

    def getHost(self) -> WorkerAddress:
        return WorkerAddress(os.getpid())


class _LobbySide(amp.AMP):
    """The lobby's end of a worker's AMP connection: hears of ended matches and idle hosts."""

    def __init__(self, worker: WorkerProcess) -> None:
        super().__init__()
        self.worker = worker

    @commands.ReportMatchEnded.responder
    def match_ended(self, port: int, outcome: dict[str, Any]) -> dict[str, Any]:
        self.worker.host_match_ended(port, outcome_from_json(outcome))
        return {}

    @commands.ReportHostIdle.responder
    def host_idle(self, port: int) -> dict[str, Any]:
        self.worker.host_idle(port)
        return {}

    @commands.StreamOutput.responder
    def stream_output(
        self, port: int, messages: list[tuple[int, int, bytes]], closed: list[int]
    ) -> dict[str, Any]:
        host = self.worker.hosts.get(port)
        if host is not None:
            host.deliver_streams(messages, closed)
        return {}

    def makeConnection(self, transport: Any) -> None:
        # amp.AMP.makeConnection logs every connection; a worker's is logged by its supervisor.
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionLost(self, reason: Failure | None = None) -> None:
        amp.BinaryBoxProtocol.connectionLost(self, reason)


@implementer(IGameHost)
class WorkerGameHost:
    """A game host in a worker process, as the hosting service sees it."""

    def __init__(self, worker: WorkerProcess, port: int, address: HostAddress) -> None:
        self.worker = worker
        self.port = port
        self.address = address
        self.matches: list[str] = []
        self.on_match_ended: Callable[[MatchEnded], object] | None = None
        self._outcomes: dict[str, MatchEnded] = {}
        self._idle = False
        self._idle_waiters: list[Deferred[None]] = []
        self._stopped: Deferred[None] | None = None
        # Stream sessions open on the worker's host, and players' messages for it
        # gathered in this turn of the reactor (sent as one StreamMessages).
        self._peers: dict[int, IStreamPeer] = {}
        self._inbound: list[tuple[int, bytes]] = []
        self._inbound_call: IDelayedCall | None = None

    def add_match(self, match: Match) -> Deferred[None]:
        self.matches.append(match.match_id)
        self._idle = False
        d = self.worker.call(
            commands.AddMatch, port=self.port, match=match_to_json(match)
        )
        return d.addCallback(lambda _: None)

    def when_idle(self) -> Deferred[None]:
        if self._idle:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def outcome(self, match_id: str) -> MatchEnded | None:
        return self._outcomes.get(match_id)

    def stop(self) -> Deferred[None]:
        if self._stopped is None:
            if self.worker.ended:
                self._stopped = succeed(None)
            else:
                stopping = self.worker.call(commands.StopHost, port=self.port)
                # A worker that dies while stopping the host has stopped it too.
                self._stopped = stopping.addCallbacks(lambda _: None, lambda _: None)
            self._stopped.addCallback(lambda _: self._end_streams())
            self._stopped.addCallback(lambda _: self.worker.host_stopped(self))
        return self._stopped

    def remove_player(self, match_id: str, player_id: str) -> Deferred[bool]:
        if self.worker.ended or self._stopped is not None:
            return succeed(False)
        d = self.worker.call(
            commands.RemovePlayer, port=self.port, match_id=match_id, player_id=player_id
        )
        return d.addCallback(lambda answer: bool(answer["removed"]))

    def match_ended(self, event: MatchEnded) -> None:
        self._outcomes[event.match_id] = event
        if self.on_match_ended is not None:
            self.on_match_ended(event)

    # Stream sessions: the sockets are here, the host in the worker.

    def open_stream(
        self, token: bytes, peer: IStreamPeer
    ) -> Deferred[StreamOpened | StreamRefused]:
        self._send_inbound()  # what came before, first

        def answered(answer: dict[str, Any]) -> StreamOpened | StreamRefused:
            if answer["refused"]:
                return StreamRefused(answer["refused"])
            session_id = answer["session_id"]
            self._peers[session_id] = peer
            return StreamOpened(session_id, answer["player_id"], answer["match_id"])

        d = self.worker.call(commands.OpenStream, port=self.port, token=token)
        return d.addCallback(answered)

    def stream_messages(self, messages: list[tuple[int, bytes]]) -> None:
        self._inbound.extend(messages)
        if self._inbound_call is None and not self.worker.ended:
            self._inbound_call = self.worker.reactor.callLater(0, self._send_inbound)

    def close_stream(self, session_id: int) -> None:
        if self._peers.pop(session_id, None) is not None and not self.worker.ended:
            self._send_inbound()
            self.worker.call(commands.CloseStream, port=self.port, session_id=session_id)

    def _send_inbound(self) -> None:
        if self._inbound_call is not None:
            if self._inbound_call.active():
                self._inbound_call.cancel()
            self._inbound_call = None
        messages, self._inbound = self._inbound, []
        if messages and not self.worker.ended:
            self.worker.call(commands.StreamMessages, port=self.port, messages=messages)

    def deliver_streams(self, messages: list[tuple[int, int, bytes]], closed: list[int]) -> None:
        """What the worker's host owes its stream sessions (a `StreamOutput`)."""
        peers = self._peers
        batch: list[tuple[int, bytes]] = []
        batch_of = 0
        for session_id, channel, data in messages:
            if session_id != batch_of and batch:
                self._output(batch_of, batch)
                batch = []
            batch_of = session_id
            batch.append((channel, data))
        if batch:
            self._output(batch_of, batch)
        for session_id in closed:
            peer = peers.pop(session_id, None)
            if peer is not None:
                peer.stream_ended()

    def _output(self, session_id: int, batch: list[tuple[int, bytes]]) -> None:
        peer = self._peers.get(session_id)
        if peer is not None:
            try:
                peer.stream_output(batch)
            except Exception:
                self.worker.log.failure("a stream peer failed")

    def _end_streams(self) -> None:
        peers, self._peers = self._peers, {}
        for peer in peers.values():
            peer.stream_ended()

    def idle(self) -> None:
        self._idle = True
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def lost(self, reason: str) -> None:
        """The worker is gone: what had not ended here was aborted."""
        self._end_streams()
        for match_id in self.matches:
            if match_id not in self._outcomes:
                self._outcomes[match_id] = MatchEnded(match_id, "aborted", None, reason)
        self.idle()


class WorkerProcess(ProcessProtocol):
    """One game-host child process: its pipes, its AMP connection, its heartbeat.

    `when_ready()` fires once the child has answered its configuration (or
    fails if it ends first); `ended` is set once the process is gone, and
    `on_ended` called with this worker.
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        settings: WorkerSettings,
        reactor: Any,
        *,
        one_shot: bool,
        on_ended: Callable[[WorkerProcess], object],
        on_live: Callable[[WorkerProcess], object] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.reactor = reactor
        self.one_shot = one_shot
        self.on_ended = on_ended
        self.on_live = on_live
        self.amp = _LobbySide(self)
        self._ready_waiters: list[Deferred[WorkerProcess]] = []
        self.live = False
        self.ended = False
        self.stopping = False
        self.pid: int | None = None
        self.started_at = reactor.seconds()
        self.ready_after: float | None = None
        self.hosts: dict[int, WorkerGameHost] = {}
        self.watch = HeartbeatWatch(settings.heartbeat_interval, self.started_at)
        self.load: dict[str, Any] = {}
        self._heartbeat: LoopingCall | None = None
        self._lines: dict[int, bytes] = {1: b"", 2: b""}

    def spawn(self) -> WorkerProcess:
        self.reactor.spawnProcess(
            self,
            self.settings.executable,
            [self.settings.executable, "-c", _WORKER_MAIN],
            env=dict(os.environ),
            childFDs={
                0: "w",
                1: "r",
                2: "r",
                commands.WORKER_READS_FD: "w",
                commands.WORKER_WRITES_FD: "r",
            },
        )
        return self

    # Lifecycle

    def connectionMade(self) -> None:
        self.pid = self.transport.pid  # type: ignore[union-attr]
        self.transport.closeStdin()  # type: ignore[union-attr]
        self.amp.makeConnection(_PipeTransport(self.transport))
        s = self.settings
        configured = self.amp.callRemote(
            commands.Configure,
            token_key=s.protocol.token_key,
            application_id=s.protocol.application_id,
            public_host=s.public_host,
            interface=s.interface,
            games=list(s.game_names),
            room_config={
                "connect_deadline": s.room_config.connect_deadline,
                "reconnect_grace": s.room_config.reconnect_grace,
                "state_interval": s.room_config.state_interval,
                "snapshot_checksums": s.room_config.snapshot_checksums,
                "recording": None if s.recording is None else s.recording.to_json(),
                "spectators": None if s.spectators is None else {
                    "delay": s.spectators.delay, "max_per_match": s.spectators.max_per_match,
                },
            },
            one_shot=self.one_shot,
        )
        configured.addCallbacks(self._configured, self._not_configured)
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self.reactor
        self._heartbeat.start(s.heartbeat_interval, now=False)

    def _configured(self, _: object) -> None:
        if self.ended:
            return
        self.live = True
        now = self.reactor.seconds()
        self.watch.answered(now)
        self.ready_after = now - self.started_at
        self.log.info(
            "game-host worker {name} (pid {pid}) ready in {ms:.0f} ms",
            name=self.name, pid=self.pid, ms=self.ready_after * 1000,
        )
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(self)
        if self.on_live is not None:
            self.on_live(self)

    def _not_configured(self, failure: Failure) -> None:
        if not self.ended:
            self.log.failure("game-host worker {name} refused its configuration", failure,
                             name=self.name)
            self.kill()

    def _beat(self) -> None:
        now = self.reactor.seconds()
        limit = self.settings.heartbeat_timeout if self.live else self.settings.ready_timeout
        pauses = self.watch.pauses
        silent = self.watch.check(now, limit)
        if self.watch.pauses != pauses:
            self.log.info(
                "game-host worker {name} (pid {pid}): this process did not run for {seconds:.1f} s "
                "(it was paused); the worker is judged by its heartbeats from now on",
                name=self.name, pid=self.pid, seconds=self.watch.last_pause,
            )
        if silent is not None:
            self.log.warn(
                "game-host worker {name} (pid {pid}) has not answered for {seconds:.1f} s: "
                "killing it",
                name=self.name, pid=self.pid, seconds=silent,
            )
            self.kill()
            return
        if self.live and not self.stopping:
            self.amp.callRemote(commands.Heartbeat).addCallbacks(self._answered, lambda _: None)

    def refresh(self) -> Deferred[None]:
        """Ask for a heartbeat now: fires once the load and counters are current."""
        if not self.live or self.stopping:
            return succeed(None)
        d = self.amp.callRemote(commands.Heartbeat)
        return d.addCallbacks(self._answered, lambda _: None)

    def _answered(self, load: dict[str, Any]) -> None:
        self.watch.answered(self.reactor.seconds())
        self.load = load

    def childDataReceived(self, childFD: int, data: bytes) -> None:  # noqa: N803
        if childFD == commands.WORKER_WRITES_FD:
            self.amp.dataReceived(data)
            return
        # The worker's log events (stderr, vinom.hosting.workers.logs), at their own
        # level and namespace; anything else: what a game printed (stdout, info) or
        # what Python wrote on stderr outside the log (a crash: warn).
        lines = (self._lines.get(childFD, b"") + data).split(b"\n")
        self._lines[childFD] = lines.pop()[-65536:]
        for line in lines:
            if not line.strip():
                continue
            event = read_worker_event(line) if childFD == 2 else None
            if event is not None:
                level, namespace, text = event
                Logger(namespace=namespace).emit(level, "[worker {worker}] {text}",
                                                 worker=self.name, text=text)  # fmt: skip
                continue
            self.log.emit(
                LogLevel.warn if childFD == 2 else LogLevel.info, "[worker {name}] {line}",
                name=self.name, line=line.decode("utf-8", "replace").rstrip(),
            )  # fmt: skip

    def processEnded(self, reason: Failure) -> None:
        self.ended = True
        self.live = False
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self.amp.connectionLost(reason)
        if self.stopping and reason.check(ProcessDone):
            self.log.info("game-host worker {name} (pid {pid}) exited", name=self.name,
                          pid=self.pid)
        else:
            self.log.warn(
                "game-host worker {name} (pid {pid}) ended: {why} ({hosts} host(s) lost)",
                name=self.name, pid=self.pid, why=reason.value, hosts=len(self.hosts),
            )
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.errback(WorkerGone(f"worker {self.name} ended before it was ready"))
        hosts, self.hosts = self.hosts, {}
        why = "shutdown" if self.stopping else HOST_CRASHED
        for host in hosts.values():
            host.lost(why)
        self.on_ended(self)

    # What the supervisors and hosts ask of it

    def when_ready(self) -> Deferred[WorkerProcess]:
        """Fires with this worker once it is configured (at once if it is)."""
        if self.live:
            return succeed(self)
        if self.ended:
            return fail(WorkerGone(f"worker {self.name} is gone"))
        waiter: Deferred[WorkerProcess] = Deferred()
        self._ready_waiters.append(waiter)
        return waiter

    def call(self, command: type[amp.Command], **arguments: Any) -> Deferred[Any]:
        if self.ended:
            return fail(WorkerGone(f"worker {self.name} is gone"))
        return self.amp.callRemote(command, **arguments)

    def start_host(self, port: int) -> Deferred[IGameHost]:
        host = WorkerGameHost(self, port, HostAddress(self.settings.public_host, port))
        self.hosts[port] = host

        def failed(failure: Failure) -> Failure:
            if self.hosts.get(port) is host:
                del self.hosts[port]
            return failure

        return self.call(commands.StartHost, port=port).addCallbacks(lambda _: host, failed)

    def host_match_ended(self, port: int, event: MatchEnded) -> None:
        host = self.hosts.get(port)
        if host is not None:
            host.match_ended(event)

    def host_idle(self, port: int) -> None:
        host = self.hosts.get(port)
        if host is not None:
            host.idle()

    def host_stopped(self, host: WorkerGameHost) -> None:
        if self.hosts.get(host.port) is host:
            del self.hosts[host.port]
        if self.one_shot and not self.ended:
            # Its one host is done: take its last counters, then let it exit.
            final = self.amp.callRemote(commands.Heartbeat)
            final.addCallbacks(self._answered, lambda _: None)
            final.addBoth(lambda _: self.close())

    def close(self) -> Deferred[None]:
        """Close the worker's pipe (it aborts what it hosts and exits); kill it if it lingers."""
        if self.ended:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self.stopping = True
        previous = self.on_ended
        killer = self.reactor.callLater(5.0, self.kill)

        def ended(worker: WorkerProcess) -> None:
            if killer.active():
                killer.cancel()
            previous(worker)
            done.callback(None)

        self.on_ended = ended
        self.amp.transport.loseConnection()  # type: ignore[union-attr]
        return done

    def kill(self) -> None:
        if not self.ended:
            with contextlib.suppress(OSError, ProcessExitedAlready):
                self.transport.signalProcess("KILL")  # type: ignore[union-attr]

    @property
    def cpu_seconds(self) -> float:
        return float(self.load.get("cpu_seconds", 0.0))

    def counters(self) -> Counter[str]:
        return Counter({k: int(v) for k, v in self.load.get("counters", {}).items()})

    def status(self, index: int, restarts: int) -> WorkerStatus:
        return WorkerStatus(
            index=index,
            pid=self.pid,
            live=self.live,
            hosts=len(self.hosts),
            sessions=int(self.load.get("sessions", 0)),
            cpu_seconds=self.cpu_seconds,
            restarts=restarts,
            counters=self.counters(),
        )
