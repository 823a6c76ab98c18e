"""The inline game host: a UDP port in the server process, serving a game host core.

One `InlineGameHost` is one listening UDP port: the `GameHostProtocol`
adapter over a `GameHostCore` (sessions, seats and rooms, sans-I/O). The
hosting service adds matches to it and, once `when_idle` fires (the core's
`HostIdle` event, turned into Deferreds here), parks it with its factory and
returns the port to the allocator. A worker process runs the same hosts
behind the same `IGameHost` interface, and stops them instead.

Reuse. Starting a host per match cost about a tenth of a millisecond of the
server's CPU per match (a socket bound and its options set, a port and
protocol, a core with its endpoint, cookie jar, router and timers built, all
closed again as the match ended): most of what a short match costs outside
its players' handshakes. So `InlineGameHostFactory.park` keeps the host of
an ended match, listening, and the next `start_host` of its port returns
it; the allocator still hands each port to one match at a time, in the same
order, so every port-to-match mapping (`--udp-ports`, drain, the Agones
Counter, the relay's routes, the per-match metrics) is as it was. A parked
port is bound until the server stops (`stop_parked`), as it was while its
last match ran, so no other process can take it between two matches.

Why a reused port lets nothing of one match reach the next, where a fresh
host on the same port would not either:

- A host is parked only when its core is `vacant`: every room is removed,
  and with it every session bound to it was closed (UDP sessions with their
  redundant `disconnect`s, streams with their close), spectators included.
  A packet of an old session finds no session for its address and is
  dropped (`drop:no_session`); one from the new match's players cannot be
  opened with an old session's keys, which were the old token's.
- What opens a session is a connect token, sealed by the lobby, naming the
  host's address (host and port, not a host instance), the player and the
  match. So a fresh host on the same port would take exactly the tokens a
  reused one takes: the port was never the boundary between matches. The
  boundary is admission: the seat router admits a token's player only into
  a match hosted now, by its match id (64 random bits, `new_match_id`), so
  an old token or cookie (a `request` or `response` replayed, over UDP or a
  `/game` stream) is dropped as `not_admitted`. A reused host is stricter
  still: it remembers the tokens that opened a session until they expire
  (`token_reused`), which a fresh one would have forgotten.
- Session ids only grow on a reused endpoint and stream ids only fall, so
  no id of the old match names a session of the new one (a late close of an
  old stream reaches only its own peer). The stateless replies' nonce
  counter and the cookie keys go on, so no nonce repeats under a key.
- What a parked host drops is counted in its counters as any host's drops
  are (`vinom_datagrams_dropped_total` in `/metrics`), and it answers no stranger.

tests/hosting/test_host_reuse.py replays an old match's packets and token at
a reused port over real sockets.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from zope.interface import implementer

from vinom.games.interfaces import IGame
from vinom.hosting.core import GameHostCore, HostIdle
from vinom.hosting.interfaces import (
    Histogram,
    IGameHost,
    IHostingStatistics,
    IParkingHostFactory,
    IStreamPeer,
    StreamOpened,
    StreamRefused,
    StreamsReady,
    WorkerStatus,
)
from vinom.hosting.records import RecordFiles, RecordSettings
from vinom.hosting.spectators import SpectatorSettings
from vinom.hosting.udp import GameHostProtocol, listen_game_host
from vinom.match import Match, MatchEnded
from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig, ProtocolConfig
from vinom.protocol.reliability import Reliability
from vinom.rooms.room import RoomConfig

# Seconds between two prunes of the record files (when a host starts).
PRUNE_INTERVAL = 60.0
# A host's records are flushed every flush interval from its start, or up to this
# fraction of it early, with the others due by then (`_flush_due`).
FLUSH_BATCH = 0.1


@implementer(IGameHost)
@define(eq=False)
class InlineGameHost:
    """A UDP port in this process hosting the rooms of the matches added to it."""

    address: HostAddress
    core: GameHostCore
    protocol: GameHostProtocol
    listening: IListeningPort = field(repr=False)
    clock: IReactorTime = field(repr=False)
    # Called with the host's final counters when it stops (its factory's totals).
    on_stopped: Callable[[InlineGameHost], object] | None = field(default=None, repr=False)
    # Called with each match's outcome as it ends (a worker reports it to the lobby).
    on_match_ended: Callable[[MatchEnded], object] | None = field(default=None, repr=False)
    _idle_waiters: list[Deferred[None]] = field(init=False, factory=list, repr=False)
    _stopped: Deferred[None] | None = field(default=None, init=False, repr=False)
    _outcomes: dict[str, MatchEnded] = field(init=False, factory=dict, repr=False)
    # The peers of the stream sessions open now, by session id.
    _peers: dict[int, IStreamPeer] = field(init=False, factory=dict, repr=False)
    # The transmit of this turn's stream messages, pending (stream_messages).
    _turn_end: IDelayedCall | None = field(default=None, init=False, repr=False)
    # Where the core's match records go (None: not recorded). The host flushes
    # them when a match ends and when it stops, and its factory's one timer every
    # `RecordSettings.flush_interval` from its start (`flush_records`).
    records: RecordFiles | None = field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        self.protocol.on_event = self._event_received

    def flush_records(self) -> None:
        """Append what the core's records gained since the last flush to their files."""
        records = self.records
        if records is None or not self.core.recording_count:
            return
        for chunk in self.core.records_to_write():
            records.write(chunk.match_id, chunk.started, chunk.data, chunk.closed)

    def vacate(self) -> bool:
        """Ready this idle host for another match on its port (its factory parks it):
        False if something of a match is left in it (`GameHostCore.vacant`); else
        its outcomes, read by now, are forgotten and True returned."""
        if self._stopped is not None or not self.core.vacant:
            return False
        self._outcomes.clear()
        return True

    def add_match(self, match: Match) -> Deferred[None]:
        self.core.add_match(match, self.clock.seconds())
        self.protocol.transmit()  # the core's timer may be due sooner now
        return succeed(None)

    def when_idle(self) -> Deferred[None]:
        if self.core.room_count == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def stop(self, reason: str = "shutdown") -> Deferred[None]:
        """Stop: rooms still running are aborted with `reason` (`shutdown`, or
        `host_crashed` from a worker whose lobby process died)."""
        if self._stopped is None:
            # Rooms still running are aborted (their players are told, their sessions
            # closed with redundant disconnects) before the port closes.
            self.core.shutdown(reason, self.clock.seconds())
            if self._turn_end is not None:
                self._turn_end.cancel()
                self._turn_end = None
            self.protocol.transmit()
            self.flush_records()
            if self.on_stopped is not None:
                self.on_stopped(self)
            result = self.listening.stopListening()
            self._stopped = result if isinstance(result, Deferred) else succeed(None)
        return self._stopped

    def remove_player(self, match_id: str, player_id: str) -> Deferred[bool]:
        removed = self.core.remove_player(match_id, player_id, self.clock.seconds())
        self.protocol.transmit()  # the disconnect, the others' news, maybe the match's end
        return succeed(removed)

    # -- stream sessions (IGameHost) ---------------------------------------------

    def open_stream(
        self, token: bytes, peer: IStreamPeer
    ) -> Deferred[StreamOpened | StreamRefused]:
        opened = self.core.open_stream(token, self.clock.seconds())
        if isinstance(opened, StreamOpened):
            self._peers[opened.session_id] = peer
        self.protocol.transmit()  # the welcome (and the close of a replaced stream)
        return succeed(opened)

    def stream_messages(self, messages: list[tuple[int, bytes]]) -> None:
        now = self.clock.seconds()
        received = self.core.stream_received
        for session_id, data in messages:
            received(session_id, data, now)
        # What they made leaves once the reactor's turn has handled every socket that
        # was readable in it (one transmit a turn, as a batch of datagrams gets), not
        # once a message: the core's output, timer and events are seen to once.
        if self._turn_end is None:
            self._turn_end = self.clock.callLater(0, self._end_of_turn)

    def _end_of_turn(self) -> None:
        self._turn_end = None
        self.protocol.transmit()

    def close_stream(self, session_id: int) -> None:
        if self._peers.pop(session_id, None) is not None:
            self.core.stream_closed(session_id, self.clock.seconds())
            self.protocol.transmit()

    def _deliver_streams(self) -> None:
        messages, closed = self.core.streams_to_send()
        peers = self._peers
        if messages:
            batches: dict[int, list[tuple[int, bytes]]] = {}
            for session_id, channel, data in messages:
                batch = batches.get(session_id)
                if batch is None:
                    batch = batches[session_id] = []
                batch.append((channel, data))
            for session_id, batch in batches.items():
                peer = peers.get(session_id)
                if peer is not None:
                    peer.stream_output(batch)
        for session_id in closed:
            peer = peers.pop(session_id, None)
            if peer is not None:
                peer.stream_ended()

    def counters(self) -> Counter[str]:
        """What this host has done so far: datagrams, handshakes, sessions, drops by reason."""
        endpoint = self.core.endpoint
        counts: Counter[str] = Counter(
            datagrams_received=endpoint.datagrams_received,
            datagrams_sent=endpoint.datagrams_sent,
            welcomes_sent=endpoint.welcomes_sent,
            send_errors=self.protocol.send_errors,
            errors=self.protocol.errors + self.core.errors,
            streams_opened=self.core.streams_opened,
        )
        for what, n in self.core.spectators.counts.items():
            counts[f"spectators:{what}"] += n
        for reason, n in self.core.stream_drops.items():
            counts[f"stream_drop:{reason}"] += n
        for reason, n in endpoint.drops.items():
            counts[f"drop:{reason}"] += n
        for reason, n in self.core.router.drops.items():
            counts[f"message_drop:{reason}"] += n
        for outcome, n in self.core.router.input_counts().items():
            counts[f"input:{outcome}"] += n
        for outcome, n in self.core.router.entity_counts().items():
            counts[f"entities:{outcome}"] += n
        return counts

    def outcome(self, match_id: str) -> MatchEnded | None:
        return self._outcomes.get(match_id)

    def round_trip_times(self) -> list[float]:
        """The smoothed round-trip time of each session that has measured one."""
        endpoint = self.core.endpoint
        times = []
        for session_id in endpoint.session_ids():
            layer = endpoint.reliability(session_id)
            # vinom's own layer measures it (a replacement layer may not).
            if isinstance(layer, Reliability) and layer.rtt_samples:
                times.append(layer.rtt_s)
        return times

    def _event_received(self, event: object) -> None:
        if isinstance(event, StreamsReady):
            self._deliver_streams()
        elif isinstance(event, MatchEnded):
            self.flush_records()  # the record's end is on disk before the outcome is told
            self._outcomes[event.match_id] = event
            if self.on_match_ended is not None:
                self.on_match_ended(event)
        elif isinstance(event, HostIdle) and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)


@implementer(IParkingHostFactory, IHostingStatistics)
@define
class InlineGameHostFactory:
    """Starts `InlineGameHost`s on the ports the allocator hands out, and parks those
    whose matches have ended for the next match on their port (module docstring).

    `reactor` provides IReactorUDP and IReactorTime; `find_game` looks up a game by
    name (a `GameRegistry.get`); `public_host` is the address clients are told
    to use (and the one connect tokens name); `interface` is the bind address.
    """

    reactor: Any
    find_game: Callable[[str], IGame]
    protocol_config: ProtocolConfig
    public_host: str
    interface: str = ""
    room_config: RoomConfig = field(factory=RoomConfig)
    # How the hosts record their matches (None: not at all); see vinom.hosting.records.
    recording: RecordSettings | None = None
    # Spectators' delay and limit (None: the defaults; vinom.hosting.spectators).
    spectators: SpectatorSettings | None = None
    # The hosts listening now, and the counters of those that have stopped.
    live: set[InlineGameHost] = field(init=False, factory=set)
    retired: Counter[str] = field(init=False, factory=Counter)
    record_files: RecordFiles | None = field(init=False, default=None)
    _pruned_at: float = field(init=False, default=-math.inf)
    # When each live host's records are next flushed, (time, order, host) in a heap,
    # and the one timer call that flushes those due (`_flush_due`): not a timer per
    # host (a host lives for one match, and a LoopingCall's start and stop per
    # match cost as much as the rest of a short match's record), and not one tick
    # for all hosts (which would flush a match that ends in less than a flush
    # interval once as it runs and once as it ends: two appends, not one).
    # An entry is [time, order, host]; a host that stops has its entry's host set
    # to None (`_flush_entries`), so that the heap does not keep it alive.
    _flush_times: list[list[Any]] = field(init=False, factory=list, repr=False)
    _flush_entries: dict[InlineGameHost, list[Any]] = field(
        init=False, factory=dict, repr=False
    )
    _flush_order: Iterator[int] = field(init=False, factory=itertools.count, repr=False)
    _flush_call: IDelayedCall | None = field(init=False, default=None, repr=False)
    # Hosts whose matches have ended, kept listening for the next match on their
    # port, by port (`park`; the module docstring's "Reuse"). They stay `live`.
    _parked: dict[int, InlineGameHost] = field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.recording is not None and self.recording.enabled:
            self.record_files = RecordFiles(self.recording)

    def totals(self) -> Counter[str]:
        """Counters of every host this factory started, stopped or not."""
        total = Counter(self.retired)
        for host in self.live:
            total.update(host.counters())
        files = self.record_files
        if files is not None:
            total["record_write_errors"] += files.write_errors
        return total

    def session_count(self) -> int:
        """Sessions on the hosts listening now (UDP and stream)."""
        return sum(host.core.session_count + host.core.stream_count for host in self.live)

    def round_trip_times(self) -> list[float]:
        """The smoothed round-trip time of every session that has measured one."""
        return [rtt for host in self.live for rtt in host.round_trip_times()]

    def workers(self) -> list[WorkerStatus]:
        """No worker processes: these hosts run in this process."""
        return []

    def spawn_latency(self) -> Histogram | None:
        return None

    @property
    def parked(self) -> int:
        """Hosts parked now, listening for the next match on their port."""
        return len(self._parked)

    def park(self, host: IGameHost) -> bool:
        """Keep `host`, whose matches have ended, for the next match on its port
        (IParkingHostFactory; the module docstring's "Reuse")."""
        if not isinstance(host, InlineGameHost) or host not in self.live or not host.vacate():
            return False
        self._unschedule_flush(host)  # its records were flushed as its match ended
        self._parked[host.address.port] = host
        return True

    def stop_parked(self) -> Deferred[None]:
        """Stop every parked host, closing its port."""
        parked = list(self._parked.values())
        self._parked.clear()
        return DeferredList([host.stop() for host in parked]).addCallback(lambda _: None)

    def _unschedule_flush(self, host: InlineGameHost) -> None:
        entry = self._flush_entries.pop(host, None)
        if entry is not None:
            entry[2] = None

    def _stopped(self, host: InlineGameHost) -> None:
        if host in self.live:
            self.live.discard(host)
            self.retired.update(host.counters())
        if self._parked.get(host.address.port) is host:
            del self._parked[host.address.port]
        self._unschedule_flush(host)
        if not self.live:
            # No host left to flush: no timer left behind, no record file left open
            # (the next match starts a new one).
            if self.record_files is not None:
                self.record_files.close()
            self._flush_times.clear()
            self._flush_entries.clear()
            if self._flush_call is not None and self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None

    def _schedule_flush(self, host: InlineGameHost, when: float) -> None:
        self._push_flush(host, when)
        call = self._flush_call
        if call is not None and call.getTime() <= when:
            return
        # No call yet, or one for a later entry (one flushed early in a batch, its
        # next flush an interval after that): this host's would come late.
        if call is not None and call.active():
            call.cancel()
        self._flush_call = self.reactor.callLater(
            max(0.0, when - self.reactor.seconds()), self._flush_due
        )

    def _push_flush(self, host: InlineGameHost, when: float) -> None:
        entry = self._flush_entries[host] = [when, next(self._flush_order), host]
        heapq.heappush(self._flush_times, entry)

    def _flush_due(self) -> None:
        """Flush the records of every live host whose flush interval has passed since
        it started or was last flushed (or will within `FLUSH_BATCH` of one: one
        call flushes them together, a little early rather than late)."""
        self._flush_call = None
        files = self.record_files
        times = self._flush_times
        if files is None:
            return
        interval = files.settings.flush_interval
        now = self.reactor.seconds()
        horizon = now + interval * FLUSH_BATCH
        flushed = []
        while times and times[0][0] <= horizon:
            when, _, host = heapq.heappop(times)
            if host is not None:  # a stopped host flushed its records as it stopped
                host.flush_records()
                flushed.append((when, host))
        for when, host in flushed:
            after = when + interval
            if host in self._flush_entries:  # not stopped by its flush
                self._push_flush(host, after if after > horizon else now + interval)
        if times:
            self._flush_call = self.reactor.callLater(max(0.0, times[0][0] - now), self._flush_due)

    def start_host(self, port: int) -> Deferred[IGameHost]:
        """A host listening on `port`: the one parked there, else a new one."""
        files = self.record_files
        if files is not None:
            now = self.reactor.seconds()
            if now - self._pruned_at >= PRUNE_INTERVAL:
                self._pruned_at = now
                files.prune(time.time())
        parked = self._parked.pop(port, None)
        if parked is not None:
            if files is not None:
                self._schedule_flush(parked, self.reactor.seconds() + files.settings.flush_interval)
            return succeed(parked)
        address = HostAddress(self.public_host, port)
        core = GameHostCore(
            HostConfig(protocol=self.protocol_config, addresses=(address,)),
            self.find_game,
            self.room_config,
            recording=self.recording,
            spectators=self.spectators,
        )
        try:
            protocol, listening = listen_game_host(
                self.reactor, port, core, self.reactor, interface=self.interface
            )
        except CannotListenError as e:
            return fail(e)
        host = InlineGameHost(
            address, core, protocol, listening, self.reactor, self._stopped, records=files
        )
        self.live.add(host)
        if files is not None:
            self._schedule_flush(host, self.reactor.seconds() + files.settings.flush_interval)
        return succeed(host)
