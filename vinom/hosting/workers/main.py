"""A game-host worker process: the game host core on UDP ports, driven by the lobby over AMP.

The lobby process starts it (vinom.hosting.workers) with
`reactor.spawnProcess` and speaks AMP (vinom.hosting.workers.commands) over the
child's pipes 3 and 4. The worker runs `InlineGameHost`s, the same game host
core and UDP adapter the all-in-one server runs in its own process, on the
ports the lobby names. It imports what hosting needs and nothing of the lobby,
the matchmaker or TLS.

A worker runs until its pipe closes: when the lobby closes it, or when the
lobby process dies, the worker aborts what it still hosts and exits. Its players
are told why: `shutdown` when the lobby closed it, `host_crashed` when the lobby
process is gone (the worker's parent is no longer the process that started it:
its players keep a place at the head of their queue, as for any host that dies).
It ignores SIGINT and SIGTERM, which a terminal or a service manager sends to
the whole process group: the lobby decides when its workers stop (a drain lets
their matches finish first).
A one-shot worker (`--matches per-match`, a child per match) hosts one port
and the lobby closes its pipe once that host has stopped.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.errors import UnknownGame
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHost, InlineGameHostFactory
from vinom.hosting.interfaces import IStreamPeer, StreamOpened
from vinom.hosting.records import RecordSettings
from vinom.hosting.spectators import SpectatorSettings
from vinom.hosting.workers import commands
from vinom.match import HOST_CRASHED, MatchEnded, match_from_json, outcome_to_json
from vinom.protocol.config import ProtocolConfig
from vinom.rooms.room import RoomConfig

# How long after its pipe closed a worker looks whether its parent is gone.
PARENT_GONE_AFTER = 0.05


@implementer(IStreamPeer)
class _RelayedStream:
    """A stream session of a host here, whose socket the lobby process holds."""

    def __init__(self, relay: _StreamRelay) -> None:
        self.relay = relay
        # Set once the host has opened it (before the relay's next flush).
        self.session_id = 0

    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        self.relay.output(self, messages)

    def stream_ended(self) -> None:
        self.relay.ended(self)


class _StreamRelay:
    """What one host owes its stream sessions, sent to the lobby as one `StreamOutput`
    per turn of the reactor (a later call, so that an `OpenStream` answer is written
    before the opened stream's first messages)."""

    def __init__(self, amp_protocol: WorkerProtocol, port: int) -> None:
        self.amp = amp_protocol
        self.port = port
        self._messages: list[tuple[_RelayedStream, int, bytes]] = []
        self._closed: list[_RelayedStream] = []
        self._flush_call: IDelayedCall | None = None

    def output(self, stream: _RelayedStream, messages: list[tuple[int, bytes]]) -> None:
        self._messages.extend((stream, channel, data) for channel, data in messages)
        self._schedule()

    def ended(self, stream: _RelayedStream) -> None:
        self._closed.append(stream)
        self._schedule()

    def _schedule(self) -> None:
        if self._flush_call is None:
            self._flush_call = self.amp.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        self._flush_call = None
        messages, self._messages = self._messages, []
        closed, self._closed = self._closed, []
        if not self.amp.connected or not (messages or closed):
            return
        self.amp.callRemote(
            commands.StreamOutput,
            port=self.port,
            messages=[(s.session_id, channel, data) for s, channel, data in messages],
            closed=[s.session_id for s in closed],
        )


class WorkerProtocol(amp.AMP):
    """The worker's side of the AMP connection: runs hosts as the lobby asks.

    `reactor` provides IReactorUDP and IReactorTime; `on_lost` is called once
    the connection to the lobby is gone (the worker then exits).
    """

    log = Logger()

    def __init__(self, reactor: Any, on_lost: Any = None, parent_alive: Any = None) -> None:
        super().__init__()
        self.reactor = reactor
        self.on_lost = on_lost
        # Whether the process that started this worker still runs (None: assume so).
        self.parent_alive = parent_alive
        self.factory: InlineGameHostFactory | None = None
        self.hosts: dict[int, InlineGameHost] = {}
        self.relays: dict[int, _StreamRelay] = {}
        self.connected = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.connected = True

    @commands.Configure.responder
    def configure(
        self,
        token_key: bytes,
        application_id: int,
        public_host: str,
        interface: str,
        games: list[str],
        room_config: dict[str, Any],
        one_shot: bool,
    ) -> dict[str, Any]:
        try:
            registry = GameRegistry.from_plugins().offered(games)
        except UnknownGame as e:
            raise commands.HostFailed(f"this worker has no game {e.args[0]!r}") from None
        self.factory = InlineGameHostFactory(
            reactor=self.reactor,
            find_game=registry.get,
            protocol_config=ProtocolConfig(token_key=token_key, application_id=application_id),
            public_host=public_host,
            interface=interface,
            room_config=RoomConfig(
                connect_deadline=float(room_config["connect_deadline"]),
                reconnect_grace=float(room_config["reconnect_grace"]),
                state_interval=float(room_config.get("state_interval", 1.0)),
                snapshot_checksums=bool(room_config.get("snapshot_checksums", False)),
            ),
            recording=(
                RecordSettings.from_json(room_config["recording"])
                if room_config.get("recording") else None
            ),
            spectators=SpectatorSettings(**room_config.get("spectators") or {}),
        )
        return {"pid": os.getpid()}

    @commands.StartHost.responder
    def start_host(self, port: int) -> Deferred[dict[str, Any]]:
        if self.factory is None:
            raise commands.HostFailed("the worker is not configured")
        if port in self.hosts:
            raise commands.HostFailed(f"port {port} is hosted here already")

        def started(host: Any) -> dict[str, Any]:
            assert isinstance(host, InlineGameHost)
            host.on_match_ended = lambda event: self._match_ended(port, event)
            self.hosts[port] = host
            return {}

        def failed(failure: Failure) -> dict[str, Any]:
            failure.trap(CannotListenError)
            raise commands.HostFailed(f"cannot listen on UDP port {port}: {failure.value}")

        return self.factory.start_host(port).addCallbacks(started, failed)

    @commands.AddMatch.responder
    def add_match(self, port: int, match: dict[str, Any]) -> Deferred[dict[str, Any]]:
        host = self.hosts.get(port)
        if host is None:
            raise commands.HostFailed(f"no host on port {port}")
        try:
            added = host.add_match(match_from_json(match))
        except (KeyError, ValueError, TypeError) as e:
            raise commands.HostFailed(f"cannot add the match: {e!r}") from None
        host.when_idle().addCallback(lambda _: self._idle(port, host))
        return added.addCallback(lambda _: {})

    @commands.StopHost.responder
    def stop_host(self, port: int) -> Deferred[dict[str, Any]] | dict[str, Any]:
        host = self.hosts.pop(port, None)
        if host is None:
            return {}
        relay = self.relays.pop(port, None)
        stopped = host.stop()
        if relay is not None:
            relay.flush()  # the streams' last messages and closes, before the answer
        return stopped.addCallback(lambda _: {})

    @commands.RemovePlayer.responder
    def remove_player(self, port: int, match_id: str, player_id: str) -> Any:
        host = self.hosts.get(port)
        if host is None:
            return {"removed": False}
        return host.remove_player(match_id, player_id).addCallback(
            lambda removed: {"removed": removed})

    @commands.OpenStream.responder
    def open_stream(self, port: int, token: bytes) -> Deferred[dict[str, Any]]:
        host = self.hosts.get(port)
        if host is None:
            raise commands.HostFailed(f"no host on port {port}")
        relay = self.relays.get(port)
        if relay is None:
            relay = self.relays[port] = _StreamRelay(self, port)
        stream = _RelayedStream(relay)

        def answer(opened: object) -> dict[str, Any]:
            if isinstance(opened, StreamOpened):
                stream.session_id = opened.session_id
                return {"session_id": opened.session_id, "player_id": opened.player_id,
                        "match_id": opened.match_id, "refused": ""}
            return {"session_id": 0, "player_id": "", "match_id": "",
                    "refused": str(getattr(opened, "reason", "refused"))}

        return host.open_stream(token, stream).addCallback(answer)

    @commands.StreamMessages.responder
    def stream_messages(self, port: int, messages: list[tuple[int, bytes]]) -> dict[str, Any]:
        host = self.hosts.get(port)
        if host is not None:
            host.stream_messages(messages)
        return {}

    @commands.CloseStream.responder
    def close_stream(self, port: int, session_id: int) -> dict[str, Any]:
        host = self.hosts.get(port)
        if host is not None:
            host.close_stream(session_id)
        return {}

    @commands.Heartbeat.responder
    def heartbeat(self) -> dict[str, Any]:
        times = os.times()
        factory = self.factory
        return {
            "hosts": len(self.hosts),
            "sessions": 0 if factory is None else factory.session_count(),
            "cpu_seconds": times.user + times.system,
            "counters": {} if factory is None else dict(factory.totals()),
            "round_trip_times": [] if factory is None else factory.round_trip_times(),
        }

    def _match_ended(self, port: int, event: MatchEnded) -> None:
        if not self.connected:
            return  # the lobby is gone; it records what it lost on its own
        self.callRemote(
            commands.ReportMatchEnded, port=port, outcome=outcome_to_json(event)
        )

    def _idle(self, port: int, host: InlineGameHost) -> None:
        if self.connected and self.hosts.get(port) is host:
            self.callRemote(commands.ReportHostIdle, port=port)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        super().connectionLost(reason)
        hosts, self.hosts = self.hosts, {}
        if not hosts:
            self._lost()
            return
        # The lobby stops its hosts before it closes the pipe: hosts left mean it died,
        # or closed the pipe without stopping them. A dying process's pipes close a
        # moment before its children are given to another parent: look after that.
        self.reactor.callLater(PARENT_GONE_AFTER, self._abort, list(hosts.values()))

    def _abort(self, hosts: list[InlineGameHost]) -> None:
        crashed = self.parent_alive is not None and not self.parent_alive()
        for host in hosts:
            host.stop(HOST_CRASHED if crashed else "shutdown")
        self._lost()

    def _lost(self) -> None:
        if self.on_lost is not None:
            self.on_lost()


def main() -> None:
    """Run a worker on pipes 3 and 4 until they close (the supervisor's command line)."""
    from twisted.internet.stdio import StandardIO
    from twisted.logger import globalLogBeginner

    from vinom.hosting.workers.logs import worker_log_observer
    from vinom.net.reactor import install, settle_garbage_collection

    reactor = install()

    # The lobby decides when its workers stop (module docstring).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Each event a JSON line: the lobby logs it again at its level, with its time stamp.
    globalLogBeginner.beginLoggingTo([worker_log_observer(sys.stderr)], redirectStandardIO=False)

    def lost() -> None:
        # Give the hosts' last datagrams (disconnects) a moment to leave.
        reactor.callLater(0.05, reactor.stop)

    parent = os.getppid()
    protocol = WorkerProtocol(reactor, lost, lambda: os.getppid() == parent)
    StandardIO(  # type: ignore[call-arg]  # the POSIX StandardIO takes the pipes
        protocol,
        stdin=commands.WORKER_READS_FD,
        stdout=commands.WORKER_WRITES_FD,
        reactor=reactor,
    )
    # A worker is as long-lived as the server that started it, and hosts its games.
    reactor.callWhenRunning(settle_garbage_collection)
    reactor.run(installSignalHandlers=False)


if __name__ == "__main__":
    main()
