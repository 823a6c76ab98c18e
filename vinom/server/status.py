"""The server's figures, read in one place for the operations endpoint.

`StatusReader.read()` takes one `ServerFigures` snapshot from the lobby, the
matchmaker, the hosting service, the game hosts (or their worker processes)
and the drain, when asked: nothing on the hot path counts for it. Both
`/metrics` (vinom.server.ops.ServerCollector, the Prometheus format) and `/status`
(`status_document`, the JSON the dashboard polls) are views of one snapshot,
so the two never disagree about what a figure means.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from vinom.hosting.interfaces import Histogram, IHostingStatistics, IMatchHosting, WorkerStatus
from vinom.hosting.records import records_on_disk
from vinom.hosting.websocket import GameSocketFactory
from vinom.lobby.open_rooms import OpenRoom
from vinom.lobby.placement import EndedMatch, RunningMatch
from vinom.lobby.server import LobbyFactory
from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.match import Match
from vinom.server.drain import Drain

if TYPE_CHECKING:
    # qh3's (the webtransport extra's), there only with --webtransport.
    from vinom.hosting.webtransport import WebTransportServer

# Upper bounds (seconds) of the session round-trip time histogram's buckets.
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@frozen
class ServerFigures:
    """Everything the operations endpoint shows, as of `now` (the server clock, seconds)."""

    now: float
    draining: bool
    # Why the process cannot host matches now (no game-host worker answers), or None.
    trouble: str | None
    lobby_connections: int
    # WebSocket handshakes refused for their Origin; None without a web server.
    websocket_origins_refused: int | None
    # Game sessions over WebSocket (/game) opened, and refused by reason; None
    # without a web server.
    game_sockets_opened: int | None
    game_sockets_refused: Mapping[str, int]
    queues: Mapping[str, int]
    match_sizes: Mapping[str, int]
    matches_formed: int
    matches_ended: Mapping[tuple[str, str], int]
    running_count: int
    waiting_matches: int
    free_ports: int
    sessions: int
    # The game hosts' counters (IHostingStatistics.totals).
    totals: Mapping[str, int]
    round_trip_times: tuple[float, ...]
    workers: tuple[WorkerStatus, ...]
    spawn_latency: Histogram | None
    running: tuple[RunningMatch, ...]
    recent: tuple[EndedMatch, ...]
    open_rooms: tuple[OpenRoom, ...]
    rooms_started: int
    # Error frames the lobby sent, by code (invalid_field, rate_limited, ...).
    lobby_errors: Mapping[str, int] = field(factory=dict)
    # Bytes lobby connections hold back now for peers that do not read, and the
    # connections dropped for holding more than MAX_OUTPUT_BYTES (vinom.lobby.config).
    lobby_output_held: int = 0
    lobby_slow_readers_dropped: int = 0
    # What bans made while their players were online ended: lobby connections
    # (`connection`) and seats in running matches (`seat`).
    bans_ended: Mapping[str, int] = field(factory=dict)
    # With --webtransport (else None and empty): game sessions over WebTransport opened,
    # refused or closed by a limit (by reason), QUIC connections open, and datagrams
    # dropped before reaching a session (by reason), QUIC connections closed by a
    # limit of their own (by reason), and Retry packets sent.
    webtransport_sessions_opened: int | None = None
    webtransport_sessions_refused: Mapping[str, int] = field(factory=dict)
    webtransport_connections: int = 0
    webtransport_connections_closed: Mapping[str, int] = field(factory=dict)
    webtransport_retries: int = 0
    webtransport_drops: Mapping[str, int] = field(factory=dict)
    webtransport_messages: Mapping[str, int] = field(factory=dict)
    # Where this process's game hosts record matches: the record files there and their
    # bytes (None and 0 when it records none: --no-record, or no game hosts).
    record_files: int | None = None
    record_bytes: int = 0
    # With a lobby that rates matches on Redis (vinom.cluster.ranked): the ranked results
    # stream's length and pending count at the last claim round (None before it, or
    # without one), and the ends found trimmed before any lobby rated them.
    ranked_results_backlog: int | None = None
    ranked_results_pending: int | None = None
    ranked_results_lost: int = 0
    # The lobby's sign-ins by outcome (`ok`, a refusal's reason, `banned`; vinom.lobby.auth)
    # under its auth kind, the accounts they made, and, when it rates matches, the matches
    # rated and the rating writes that failed (None without ratings).
    auth_kind: str | None = None
    sign_ins: Mapping[str, int] = field(factory=dict)
    accounts_made: int = 0
    rated_matches: int | None = None
    rating_write_failures: int = 0

    @property
    def rtt(self) -> Histogram:
        """The sessions' round-trip times now, bucketed by `RTT_BUCKETS`."""
        histogram = Histogram(RTT_BUCKETS)
        for seconds in self.round_trip_times:
            histogram.observe(seconds)
        return histogram


@implementer(IHostingStatistics)
class _NoHosts:
    """The game-host figures of a process that runs no game hosts (`twistd vinom lobby`)."""

    def totals(self) -> Counter[str]:
        return Counter()

    def session_count(self) -> int:
        return 0

    def round_trip_times(self) -> list[float]:
        return []

    def workers(self) -> list[WorkerStatus]:
        return []

    def spawn_latency(self) -> Histogram | None:
        return None


_NO_HOSTS: IHostingStatistics = _NoHosts()


def _or_no_hosts(hosts: IHostingStatistics | None) -> IHostingStatistics:
    return _NO_HOSTS if hosts is None else hosts


class QueueLengths(Protocol):
    """What the operations endpoint reads of a matchmaker."""

    def queue_length(self, game: str, queue: str | None = None) -> int: ...


class ResultsBacklog(Protocol):
    """What the operations endpoint reads of the ranked results stream's reader
    (vinom.cluster.ranked.RankedResultsReader)."""

    backlog: int | None
    pending: int | None
    lost: int


@frozen
class StatusReader:
    """Reads a `ServerFigures` from the running services (module docstring).

    A process runs what its role asks for: without a lobby (`twistd vinom host`)
    `lobby` and `matchmaker` are None and their figures are zero; without game
    hosts (`twistd vinom lobby`) `hosts` may be None, read as hosts with no figures,
    and `hosting` is the lobby's view of the game hosts in the registry.
    """

    lobby: LobbyFactory | None
    matchmaker: QueueLengths | None
    hosting: IMatchHosting
    hosts: IHostingStatistics = field(converter=_or_no_hosts)
    drain: Drain
    clock: IReactorTime
    websocket: WebSocketLobbyFactory | None = None
    game_sockets: GameSocketFactory | None = None
    webtransport: WebTransportServer | None = None
    # The --record-dir of the game hosts that record here (None: none do).
    record_dir: str | None = None
    # The ranked results stream's reader of a lobby that rates matches (None: none).
    ranked_results: ResultsBacklog | None = None

    def trouble(self) -> str | None:
        """Why the process cannot host matches now (no game-host worker answers), or None."""
        workers = self.hosts.workers()
        if workers and not any(w.live for w in workers):
            return "no game-host worker answers"
        return None

    def read(self) -> ServerFigures:
        lobby = self.lobby
        hosts = self.hosts
        match_sizes = {} if lobby is None else lobby.games.match_sizes()
        placer = None if lobby is None else lobby.placer
        matchmaker = self.matchmaker
        return ServerFigures(
            now=self.clock.seconds(),
            draining=self.drain.draining,
            trouble=self.trouble(),
            lobby_connections=0 if lobby is None else lobby.connection_count,
            websocket_origins_refused=(
                None if self.websocket is None else self.websocket.origins_refused
            ),
            game_sockets_opened=(
                None if self.game_sockets is None else self.game_sockets.streams_opened
            ),
            game_sockets_refused=(
                {} if self.game_sockets is None else dict(self.game_sockets.refusals)
            ),
            queues={
                game: 0 if matchmaker is None else matchmaker.queue_length(game)
                for game in sorted(match_sizes)
            },
            match_sizes=dict(sorted(match_sizes.items())),
            matches_formed=0 if placer is None else placer.matches_formed,
            matches_ended={} if placer is None else dict(placer.matches_ended),
            running_count=self.hosting.running_games,
            waiting_matches=0 if lobby is None else lobby.waiting_matches,
            free_ports=self.hosting.free_ports,
            sessions=hosts.session_count(),
            totals=dict(hosts.totals()),
            round_trip_times=tuple(hosts.round_trip_times()),
            workers=tuple(hosts.workers()),
            spawn_latency=hosts.spawn_latency(),
            running=() if placer is None else tuple(placer.running_matches),
            recent=() if placer is None else tuple(placer.recent_matches),
            open_rooms=() if lobby is None else tuple(lobby.open_rooms),
            rooms_started=0 if lobby is None else lobby.rooms_started,
            lobby_errors={} if lobby is None else dict(sorted(lobby.errors_sent.items())),
            lobby_output_held=0 if lobby is None else lobby.output.held_bytes,
            lobby_slow_readers_dropped=0 if lobby is None else lobby.output.dropped,
            bans_ended={} if lobby is None else dict(sorted(lobby.bans_ended.items())),
            **self._webtransport_figures(),
            **self._record_figures(),
            **self._ranked_figures(),
            **({} if lobby is None else self._account_figures(lobby)),
        )

    def _account_figures(self, lobby: LobbyFactory) -> dict[str, Any]:
        auth, ratings = lobby.auth, lobby.ratings
        return {"auth_kind": auth.kind, "sign_ins": dict(sorted(auth.sign_ins.items())),
                "accounts_made": auth.accounts_made,
                "rated_matches": None if ratings is None else ratings.recorded,
                "rating_write_failures": ratings.write_failures if ratings else 0}  # fmt: skip

    def _ranked_figures(self) -> dict[str, Any]:
        results = self.ranked_results
        if results is None:
            return {}
        return {"ranked_results_backlog": results.backlog,
                "ranked_results_pending": results.pending,
                "ranked_results_lost": results.lost}  # fmt: skip

    def _record_figures(self) -> dict[str, Any]:
        if self.record_dir is None:
            return {}
        files, size = records_on_disk(self.record_dir)
        return {"record_files": files, "record_bytes": size}

    def _webtransport_figures(self) -> dict[str, Any]:
        transport = self.webtransport
        if transport is None:
            return {}
        return {
            "webtransport_sessions_opened": transport.sessions_opened,
            "webtransport_sessions_refused": dict(transport.refusals),
            "webtransport_connections": transport.open_connections,
            "webtransport_connections_closed": dict(transport.closes),
            "webtransport_retries": transport.retries,
            "webtransport_drops": dict(transport.drops),
            "webtransport_messages": dict(transport.messages),
        }


def status_document(figures: ServerFigures) -> dict[str, Any]:
    """The `/status` JSON document of one snapshot (docs/operations.md, "Dashboard")."""
    totals = figures.totals
    rtt = figures.rtt
    return {
        "now": figures.now,
        "draining": figures.draining,
        "trouble": figures.trouble,
        "lobby": {
            "connections": figures.lobby_connections,
            "websocket_origins_refused": figures.websocket_origins_refused,
            "game_sockets_opened": figures.game_sockets_opened,
            "game_sockets_refused": dict(figures.game_sockets_refused),
            "webtransport_sessions_opened": figures.webtransport_sessions_opened,
            "webtransport_sessions_refused": dict(figures.webtransport_sessions_refused),
        },
        "queues": [
            {"game": game, "waiting": waiting, "match_size": figures.match_sizes[game]}
            for game, waiting in figures.queues.items()
        ],
        "matches": {
            "formed": figures.matches_formed,
            "running": figures.running_count,
            "waiting_for_port": figures.waiting_matches,
            "ended": [
                {"phase": phase, "reason": reason, "count": count}
                for (phase, reason), count in sorted(figures.matches_ended.items())
            ],
        },
        "running": [_running(r, figures.now) for r in figures.running],
        "recent": [_ended(e) for e in figures.recent],
        "free_ports": figures.free_ports,
        "sessions": figures.sessions,
        "spectators": totals.get("spectators:opened", 0) - totals.get("spectators:closed", 0),
        "datagrams": {
            "in": totals.get("datagrams_received", 0),
            "out": totals.get("datagrams_sent", 0),
        },
        "handshakes_completed": totals.get("welcomes_sent", 0),
        "drops": {
            key[len("drop:"):]: count for key, count in sorted(totals.items())
            if key.startswith("drop:")
        },
        "message_drops": {
            key[len("message_drop:"):]: count for key, count in sorted(totals.items())
            if key.startswith("message_drop:")
        },
        "inputs": {
            key[len("input:"):]: count for key, count in sorted(totals.items())
            if key.startswith("input:")
        },
        "rtt": {
            "sessions": rtt.count,
            "median": _percentile(figures.round_trip_times, 0.5),
            "p90": _percentile(figures.round_trip_times, 0.9),
            "max": max(figures.round_trip_times, default=None),
            "buckets": [{"le": le, "count": n} for le, n in rtt.cumulative()],
        },
        "workers": [
            {
                "index": w.index,
                "pid": w.pid,
                "live": w.live,
                "running_matches": w.hosts,
                "sessions": w.sessions,
                "cpu_seconds": w.cpu_seconds,
                "restarts": w.restarts,
            }
            for w in figures.workers
        ],
        "rooms": {"open": _open_rooms(figures), "started": figures.rooms_started},
        "records": None if figures.record_files is None else {
            "files": figures.record_files, "bytes": figures.record_bytes,
        },
    }


def _players(match: Match) -> list[dict[str, Any]]:
    return [{"id": t.player_id, "name": t.name, "bot": t.bot} for t in match.players]


def _running(running: RunningMatch, now: float) -> dict[str, Any]:
    match = running.match
    return {
        "match_id": match.match_id,
        "game": match.game,
        "players": _players(match),
        "host": f"{running.address.host}:{running.address.port}",
        "placed_at": running.placed_at,
        "running_for": max(0.0, now - running.placed_at),
    }


def _ended(ended: EndedMatch) -> dict[str, Any]:
    match = ended.match
    names = {t.player_id: t.name for t in match.players}
    return {
        "match_id": match.match_id,
        "game": match.game,
        "players": _players(match),
        "phase": ended.phase,
        "reason": ended.reason,
        "winners": [{"id": w, "name": names.get(w, w)} for w in ended.winners],
        "placed_at": ended.placed_at,
        "ended_at": ended.ended_at,
    }


def _open_rooms(figures: ServerFigures) -> list[dict[str, Any]]:
    by_game: dict[str, dict[str, Any]] = {}
    for room in figures.open_rooms:
        entry = by_game.setdefault(
            room.game, {"game": room.game, "public": 0, "private": 0, "seated": 0}
        )
        entry["private" if room.private else "public"] += 1
        entry["seated"] += len(room.seats)
    return [by_game[game] for game in sorted(by_game)]


def _percentile(values: tuple[float, ...], fraction: float) -> float | None:
    # Nearest rank: one of the sessions' own figures, never an interpolation.
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]
