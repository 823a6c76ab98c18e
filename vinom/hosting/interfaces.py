"""The game host seams.

A game host is one UDP port hosting the rooms of one or more matches. It runs
inline in the server process or in a child process; both sit behind
`IGameHost` and `IGameHostFactory`. Inside, a sans-I/O core driven only by
`now` (`IDatagramCore`: vinom.hosting.core) does the work, and a thin
transport adapter (vinom.hosting.udp for a UDP socket under Twisted) feeds it
datagrams and the time, transmits what it returns and keeps one timer for it.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from vinom.match import Match, MatchEnded
from vinom.protocol.address import HostAddress


@frozen
class HostIdle:
    """No room is left: every match added so far has ended and its room is gone."""


@frozen
class StreamsReady:
    """A core has messages (or closes) for stream sessions: `streams_to_send()` has them.
    Announced once until they are taken, after the core's other events."""


# (session id, channel, message): what a core owes a stream session's peer.
StreamMessage = tuple[int, int, bytes]


@frozen
class StreamOpened:
    """A stream session is open for `player_id` in `match_id` (its welcome is queued)."""

    session_id: int
    player_id: str
    match_id: str


@frozen
class StreamRefused:
    """The stream's token opens no session here; `reason` is a drop reason
    (docs/protocol.md's handshake drops: `token_expired`, `token_invalid`,
    `wrong_host`, `token_reused`, `already_connected`, `not_admitted`,
    `match_full`, `host_full`, ...)."""

    reason: str


class IStreamPeer(Interface):
    """The far end of a stream session as a game host sees it: a player's WebSocket."""

    def stream_output(messages: list[tuple[int, bytes]]) -> None:
        """Deliver these (channel, message) pairs to the player, in order."""

    def stream_ended() -> None:
        """The host closed the session (after its last messages): close the socket."""


class IGameHost(Interface):
    """One UDP port hosting the rooms of one or more matches.

    Players who cannot send UDP (browsers) play in the same rooms over a
    reliable stream the web server holds (docs/web.md): the host opens a
    stream session with the connect token (as a UDP `request` packet carries
    it), takes the player's messages and hands what it owes the player to
    the stream's `IStreamPeer`.
    """

    address: HostAddress = Attribute("The address clients connect to.")
    on_match_ended: Callable[[MatchEnded], object] | None = Attribute(
        "Called with each match's outcome as it ends (its room still lingers: "
        "`when_idle` fires later), or None."
    )

    def add_match(match: Match) -> Deferred[None]:
        """Admit the match's players and create its room."""

    def when_idle() -> Deferred[None]:
        """Fires once every match added so far has ended and its room is gone."""

    def outcome(match_id: str) -> MatchEnded | None:
        """How a match hosted here ended (None if it has not, or the host lost it)."""

    def stop() -> Deferred[None]:
        """Stop serving the port (ending any rooms left)."""

    def remove_player(match_id: str, player_id: str) -> Deferred[bool]:
        """Take a player out of a match as their `leave` would (their account was banned):
        the session closed, the seat not held, the others told `left`. Fires False if
        they hold no seat there any more."""

    def open_stream(token: bytes, peer: IStreamPeer) -> Deferred[StreamOpened | StreamRefused]:
        """Open a stream session with a `request` packet's bytes; once opened, what the
        host owes it goes to `peer` (its welcome first)."""

    def stream_messages(messages: list[tuple[int, bytes]]) -> None:
        """Messages from stream peers, (session id, message) in arrival order."""

    def close_stream(session_id: int) -> None:
        """The stream's socket went: the player's seat is held for the reconnection grace.
        The peer is not told (it is gone)."""


class HostingStopped(Exception):
    """The hosting is stopping; no new match is hosted."""


class IMatchHosting(Interface):
    """Where the lobby places formed matches: the game ports of this process's hosts
    (`vinom.hosting.service.GameHostingService`), or hosts elsewhere through Redis
    (`vinom.cluster.placement.RemoteMatchHosting`). Either saves each match's placement
    in the player store as it is placed and removes it as it ends (one writer per
    match): the lobby only reads it (`reconnect`)."""

    matches: int = Attribute("Matches placed or waiting for a port whose port is not back yet.")
    running_games: int = Attribute("Matches with a game host right now.")
    free_ports: int = Attribute("Game ports free now.")

    def host_match(
        match: Match,
        on_waiting: Callable[[int], object] | None = None,
        on_ended: Callable[[MatchEnded | None], object] | None = None,
    ) -> Deferred[HostAddress]:
        """Host `match`; fires with the address its players connect to.

        `on_waiting(position)` is called if it must wait for a port;
        `on_ended(outcome)` once it has ended and its port is free again (None:
        its host could not say how). Cancelling the Deferred while it waits
        withdraws the match as `withdraw` does, and this lobby no longer follows
        it. A match ended `host_crashed` whose host comes back with its own end
        (a game host of a cluster cut off from Redis, not from its players) has
        `on_ended` called once more, with that outcome, which replaces the first.
        """

    def withdraw(match_id: str) -> Deferred[bool]:
        """A player of a match not placed yet has left it: withdraw it. Fires True once
        it is withdrawn (its `host_match` Deferred failed with CancelledError first;
        with hosts shared through Redis, every other lobby's with `MatchWithdrawn`),
        False if it goes on: it has a port already."""

    def remove_player(match_id: str, player_id: str) -> Deferred[bool]:
        """Take a player out of a placed match as their `leave` would
        (`IGameHost.remove_player`; their account was banned). Fires True once its host
        did, False if it is not placed (or no longer) or the player holds no seat there."""

    def when_all_ended() -> Deferred[None]:
        """Fires once no match is running or waiting for a port (at once if none is)."""

    def confirm_running(match_id: str) -> Deferred[bool]:
        """Whether the host of a placed match is alive, before a player is sent to it
        again (`reconnect`): False if it died, the match then ended (`on_ended` with
        `host_crashed`) before this fires. True if nothing is known against it."""


class IRankedResults(Interface):
    """The ends of finished ranked matches (`Match.ranked`), each delivered at least
    once to one subscriber of the lobbies that subscribe, whichever lobby followed the
    match and whether or not it is alive (vinom.cluster.ranked: a Redis stream read
    through one consumer group). Where the hosts are this process's own, every end
    reaches the lobby through `IMatchHosting.host_match`'s `on_ended`, and none is
    needed."""

    def subscribe(record: Callable[[Match, MatchEnded], Deferred[None]]) -> None:
        """Hand each end to `record` from now on. An end whose Deferred fails, or whose
        subscriber dies before it fires, is delivered again (to this subscriber or
        another) later: `record` is to be idempotent per match id."""


class IGameHostFactory(Interface):
    """Starts game hosts on ports the allocator hands out."""

    def start_host(port: int) -> Deferred[IGameHost]:
        """Start a host listening on `port`."""


class IParkingHostFactory(IGameHostFactory):
    """A factory whose hosts can serve match after match on their port.

    The hosting service parks the host of a match that has ended instead of
    stopping it: the host keeps its socket bound and listening, serving no one,
    and the next `start_host` of that port returns it rather than binding a new
    one. The port goes back to the allocator either way, so ports still map to
    matches one to one. `InlineGameHostFactory` parks (vinom.hosting.inline,
    "Reuse", argues why a parked port lets nothing of one match reach the
    next); the worker factories do not (a port parked in one worker process
    could not be bound by another).
    """

    def park(host: IGameHost) -> bool:
        """Keep `host`, whose matches have all ended, for the next `start_host` of its
        port: True if kept; False if it cannot be (something of a match is left in
        it, or it is not one of this factory's live hosts): stop it then."""

    def stop_parked() -> Deferred[None]:
        """Stop every parked host (their ports are closed); fires once they have."""


class IDatagramCore(Interface):
    """A sans-I/O host of one datagram port, as a transport adapter drives it.

    After feeding datagrams or a timer, the adapter transmits
    `datagrams_to_send`, hands each of `next_event` to the layer above and
    re-arms its one timer for `get_timer`. None of these calls out.
    """

    def receive_datagram(data: bytes, addr: Any, now: float) -> None:
        """Take one datagram from `addr` that arrived by `now`; never raises on bad input."""

    def datagrams_to_send(now: float) -> list[tuple[bytes, Any]]:
        """The (datagram, address) pairs to transmit now."""

    def get_timer() -> float | None:
        """When `handle_timer` must next be called, or None."""

    def handle_timer(now: float) -> None:
        """Do what is due by `now`."""

    def next_event() -> object | None:
        """The next event for the layer above the adapter (oldest first), or None."""


@frozen
class WorkerStatus:
    """One game-host worker process as its supervisor sees it (for /metrics and /health).

    `live`: it answered its configuration and its last heartbeat in time;
    `hosts` and `sessions` are from that heartbeat, as is `cpu_seconds` (the
    worker's user plus system CPU time), as are its `counters` (datagrams,
    handshakes, drops: `IHostingStatistics.totals` of this process alone).
    `restarts`: how many times this worker slot's process was replaced after
    it exited, was killed or hung.
    """

    index: int
    pid: int | None
    live: bool
    hosts: int
    sessions: int
    cpu_seconds: float
    restarts: int
    counters: Mapping[str, int] = field(factory=dict)


# Upper bounds (seconds) of the spawn-latency histogram's buckets.
SPAWN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@define
class Histogram:
    """Counts of observed values below each bound, as Prometheus histograms keep them,
    and the `recent` values themselves (the last `keep`), for percentiles."""

    bounds: tuple[float, ...] = SPAWN_BUCKETS
    keep: int = 1024
    counts: list[int] = field(init=False)
    total: float = field(init=False, default=0.0)
    count: int = field(init=False, default=0)
    recent: deque[float] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)
        self.recent = deque(maxlen=self.keep)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1
        self.recent.append(value)

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) for each bucket, "+Inf" last."""
        running = 0
        buckets = []
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            buckets.append((bound, running))
        return buckets


class IHostingStatistics(Interface):
    """What a game host factory can say about the hosts it runs (read by /metrics)."""

    def totals() -> Counter[str]:
        """Counters of every host started so far: datagrams_received, datagrams_sent,
        welcomes_sent, send_errors, errors, drop:<reason>, message_drop:<reason>."""

    def session_count() -> int:
        """UDP sessions on the hosts now."""

    def round_trip_times() -> list[float]:
        """The smoothed round-trip time of each session now, in seconds."""

    def workers() -> list[WorkerStatus]:
        """The worker processes hosting the games (empty when they run in this process)."""

    def spawn_latency() -> Histogram | None:
        """Seconds from asking for a host process to its being ready (None: no processes)."""


class NoHostAvailable(Exception):
    """No game host took the match in time (none live with free capacity, or all refused)."""


class MatchWithdrawn(NoHostAvailable):
    """Another lobby withdrew the match before it was placed: a player of it left there
    (`IMatchHosting.withdraw`). Its players here go back to the head of the queue."""
