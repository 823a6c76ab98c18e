"""The TLS lobby's Twisted side: `LobbyProtocol`, a thin adapter, and `LobbyFactory`.

`LobbyProtocol` is the `ILobbyWire` of one `LobbyConnection` (connection.py,
which holds all of a connection's state and rules): it hands the connection
the bytes it reads, writes what the connection sends through an `OutputGate`
(output.py: the transport's push producer, so a peer that does not read
stops being served, and is dropped once more than `max_output_bytes` wait
for it), keeps its one timer (on the factory's clock), and turns on TCP
keepalive.

`LobbyFactory` builds the protocols, is the `ILobbyServer` behind every
connection, and is a `Service` whose stopping drains the lobby (new `queue`
requests get `server_draining`). It wires together the parts of the lobby:
`LobbyLimits` (connection caps, per-address queue limits), `RequestHandlers`
(hello, queue, cancel, ping, reconnect), `MatchPlacer` (game hosts, port
waits, withdrawal) and `TokenDelivery` (connect tokens in `match_found`),
and answers the questions operators and tests ask.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from attrs import evolve
from twisted.application.service import Service
from twisted.internet.defer import Deferred, FirstError, succeed
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.accounts.interfaces import Ban, NewBans
from vinom.errors import BackendUnavailable
from vinom.games.rules import GameCatalogue
from vinom.lobby import errors
from vinom.lobby.auth import LobbyAuth, banned
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.codec import error_frame
from vinom.lobby.config import LobbyConfig
from vinom.lobby.connection import ILobbyServer, ILobbyWire, LobbyConnection, PlayerState
from vinom.lobby.delivery import TokenDelivery
from vinom.lobby.limits import LobbyLimits
from vinom.lobby.match_ratings import MatchRatings
from vinom.lobby.open_rooms import OpenRoom
from vinom.lobby.output import OutputGate, OutputTotals
from vinom.lobby.placement import MatchPlacer
from vinom.lobby.players import Players
from vinom.lobby.ratings import StoredRatings
from vinom.lobby.request_types import Request
from vinom.lobby.requests import LobbyParts, RequestHandlers
from vinom.lobby.requeue import Requeues
from vinom.lobby.timer import ConnectionTimer
from vinom.net.addresses import client_key
from vinom.net.limits import LogLimiter

__all__ = ["LobbyFactory", "LobbyProtocol", "PlayerState"]

# Seconds between two reads of the bans made meanwhile (docs/accounts.md, "Bans").
BAN_CHECK_INTERVAL = 2.0
# Each read goes back this many seconds before the last one's time: a ban whose time was
# taken before a read began but committed after, and a banned player's sign-in answered
# from the store's memory (RECENT_SIGN_IN_TTL, 5 s) just after the ban, are caught by a
# later read.
BAN_CHECK_OVERLAP = 10.0


@implementer(ILobbyWire)
class LobbyProtocol(Protocol):
    """One lobby connection's transport: bytes to its `LobbyConnection`, frames back."""

    transport: ITransport
    # Whether the transport frames messages itself (a WebSocket, vinom.lobby.websocket:
    # one frame a message), or the frames are lines of a byte stream (TLS).
    messages = False

    def __init__(self, factory: LobbyFactory, peer_host: str = "") -> None:
        self.factory = factory
        self.connection: LobbyConnection | None = None
        self._output: OutputGate | None = None
        # The address the connection counts as ("": the transport's peer).
        self._peer_host = peer_host
        self._timer = ConnectionTimer(factory.clock, self._timed_out)
        # Whether the output gate is the transport's producer.
        self._producing = False

    def connectionMade(self) -> None:
        peer_host = self._peer_host = self._peer_host or _host_of(self.transport.getPeer())
        self._output = self.factory.output_gate(
            self.send_frame, lambda: self.connection, self._overflowed
        )
        # The transport (or the TLS wrapper over it) pauses the gate while its buffer is
        # full. Over a WebSocket, twisted.web's HTTP channel held the slot before the
        # upgrade: the gate takes it.
        consumer = IConsumer(self.transport)
        if self.messages:
            consumer.unregisterProducer()
        consumer.registerProducer(self._output, True)
        self._producing = True
        self.connection = self.factory.new_connection(self, peer_host, messages=self.messages)
        if not self.connection.connection_made():
            return
        # A queued player may wait long without a word: let TCP find peers that vanished.
        keepalive = getattr(self.transport, "setTcpKeepAlive", None)
        if keepalive is not None:
            with contextlib.suppress(OSError):
                keepalive(True)

    def dataReceived(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.data_received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._output is not None:
            self._output.discard()
            self._stop_producing()
        self._timer.close()
        connection = self.connection
        if connection is not None:
            connection.connection_lost()
        # The connection, the output gate and the timer referred back to this
        # protocol: without those references a closed connection's objects (about
        # 30, TLS wrapper included) are freed at once, not left to the garbage
        # collector, whose passes over such leftovers cost the lobby a few percent.
        self.connection = None
        self._output = None

    def _timed_out(self) -> None:
        if self.connection is not None:
            self.connection.timer_expired()

    def send_frame(self, data: bytes) -> None:
        """Write one encoded frame (its newline included) to the transport."""
        self.transport.write(data)

    # ILobbyWire

    def write(self, data: bytes) -> None:
        if self._output is not None:
            self._output.write(data)

    def close(self) -> None:
        if self._output is not None:
            # What is held goes out before the close (or the close times out), and a
            # transport does not close while a producer is registered.
            self._output.flush()
            self._stop_producing()
        self.transport.loseConnection()

    def _stop_producing(self) -> None:
        if self._producing:
            self._producing = False
            IConsumer(self.transport).unregisterProducer()

    def abort(self) -> None:
        if self._output is not None:
            self._output.discard()
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def pause_reading(self) -> None:
        # TCP transports are push producers; the TLS wrapper forwards to its TCP transport.
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resume_reading(self) -> None:
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def set_timeout(self, seconds: float | None) -> None:
        self._timer.set(seconds)

    def _overflowed(self, held: int) -> None:
        self.factory.slow_reader_dropped(self._peer_host, held)
        self.abort()


def _host_of(address: IAddress) -> str:
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else str(address)


@implementer(ILobbyServer)
class LobbyFactory(ServerFactory, Service):
    """Builds `LobbyProtocol`s and serves their connections; a `Service` for draining."""

    log = Logger()
    noisy = False

    def __init__(
        self,
        *,
        config: LobbyConfig,
        games: GameCatalogue,
        backends: LobbyBackends,
        clock: IReactorTime,
    ) -> None:
        """A lobby of `games` (their rules: sizes, player ranges, teams, titles)
        standing on `backends`, its timers and `now` on `clock`. Whether other
        lobbies share the state is the backends' to say (each hosting saves its
        placements), not the lobby's."""
        self.config = config
        self.clock = clock
        #: The rules of the games this lobby offers (`welcome` lists them).
        self.games = games
        matchmaker, store = backends.matchmaker, backends.store
        self.limits = LobbyLimits(config, clock, party_joins=backends.party_joins)
        # Error frames sent, by code; bytes held for peers that do not read, and
        # the connections dropped for it (the operations endpoint shows both).
        self.errors_sent: Counter[str] = Counter()
        self.output = OutputTotals(clock)
        self._players = Players(store)
        # Ratings the server computes: with an account database and players who sign in
        # (a guest's player id is no account), each ranked match's end is rated.
        # The ranked queue then matches on the stored rating, not the client's claim.
        self.auth = LobbyAuth(backends.authenticator, backends.accounts, config, clock)
        self.ratings: MatchRatings | None = None
        if backends.accounts is not None and self.auth.required:
            self.ratings = MatchRatings(backends.accounts, games, self._players, clock)
            if backends.results is not None:
                backends.results.subscribe(self.ratings.record_result)
            if backends.ratings is None:
                backends = evolve(backends, ratings=StoredRatings(backends.accounts))
        # Waiting for the last player's connection to close (`close_players`).
        self._closed_waiters: list[Deferred[None]] = []
        delivery = TokenDelivery(backends.token_issuer, clock, games, backends.relay)
        self.requeues = Requeues(config.requeue_window, clock, self._requeue_lapsed)
        self.placer = MatchPlacer(
            hosting=backends.hosting,
            store=store,
            players=self._players,
            limits=self.limits,
            delivery=delivery,
            clock=clock,
            requeues=self.requeues,
            requeue=matchmaker.requeue,
            ended=None if self.ratings is None else self.ratings.match_ended,
        )
        parts = LobbyParts(self._players, self.limits, self.placer, delivery, self.requeues,
                           self.auth)  # fmt: skip
        self.requests = RequestHandlers(games=games, backends=backends, parts=parts, clock=clock)
        matchmaker.add_listener(self.placer.match_formed)
        matchmaker.add_listener(self.requests.parties.match_formed)
        # Where players sign in to accounts, a ban made while a player is online ends
        # their connection and their seats (`check_bans`), counted by what it ended.
        self.bans_ended: Counter[str] = Counter()
        self._bans_read_to: float | None = None
        self._ban_check: LoopingCall | None = None
        self._ban_log = LogLimiter(1 / 60, 1, clock)
        if backends.accounts is not None and self.auth.required:
            self._ban_check = LoopingCall(self.check_bans)
            self._ban_check.clock = clock

    def _requeue_lapsed(self, player_id: str) -> None:
        # The player did not come back for their kept place.
        self.limits.uncount_pending(player_id)
        if not self._players.is_connected(player_id):
            self._players.forget(player_id)

    def buildProtocol(self, addr: IAddress | None) -> LobbyProtocol:
        return LobbyProtocol(self)

    def new_connection(
        self, wire: ILobbyWire, peer_host: str, *, messages: bool = False
    ) -> LobbyConnection:
        """The state machine of a new connection from `peer_host`, talking through `wire`.

        `messages`: the transport frames messages itself (a WebSocket), one frame each.
        """
        return LobbyConnection(
            wire,
            self,
            self.config,
            self.clock,
            peer_host=peer_host,
            client=client_key(peer_host),
            messages=messages,
            error_counts=self.errors_sent,
        )

    def output_gate(
        self,
        send: Callable[[bytes], None],
        connection: Callable[[], LobbyConnection | None],
        overflow: Callable[[int], None],
    ) -> OutputGate:
        """The `OutputGate` of a new connection's wire: frames to `send`; the
        `connection` (once made) told when to stop serving; `overflow` past the limit."""

        def paused() -> None:
            made = connection()
            if made is not None:
                made.output_paused()

        def resumed() -> None:
            made = connection()
            if made is not None:
                made.output_resumed()

        return OutputGate(
            send,
            limit=self.config.max_output_bytes,
            totals=self.output,
            paused=paused,
            resumed=resumed,
            overflow=overflow,
        )

    def slow_reader_dropped(self, peer_host: str, held: int) -> None:
        """Count (and log, at a limited rate) a connection dropped because more than
        `max_output_bytes` waited for its peer to read."""
        self.output.slow_reader_dropped(peer_host, held, self.config.max_output_bytes)

    # ILobbyServer

    def admit(self, connection: LobbyConnection) -> str | None:
        return self.limits.admit_connection(connection.client, connection.peer_host)

    def serve(self, connection: LobbyConnection, request: Request) -> Deferred[None] | None:
        return self.requests.serve(connection, request)

    def player_gone(self, connection: LobbyConnection) -> None:
        self.requests.player_left(connection)

    def connection_lost(self, connection: LobbyConnection) -> None:
        self.limits.release_connection(connection.client)
        if self._closed_waiters and not self._players.connections():
            for waiter in list(self._closed_waiters):
                self._closed(waiter)

    def _closed(self, waiter: Deferred[None]) -> None:
        if waiter in self._closed_waiters:
            self._closed_waiters.remove(waiter)
            waiter.callback(None)

    # Service: stopping the lobby drains it.

    @property
    def draining(self) -> bool:
        """Whether the lobby refuses new `queue` requests (`server_draining`)."""
        return self.requests.draining

    def startService(self) -> None:
        super().startService()
        self.requests.draining = False
        if self._ban_check is not None and not self._ban_check.running:
            self._ban_check.start(BAN_CHECK_INTERVAL)

    def drain(self) -> None:
        """Take no new players: `queue` gets `server_draining`, queued players are told so
        (their tickets withdrawn, their connections closed) and kept places lapse.
        Matches already formed go on; `ping`, `cancel` and `reconnect` keep working."""
        if self.requests.draining:
            return
        self.requests.draining = True
        for player_id in self.requeues.clear():
            self._requeue_lapsed(player_id)
        told = 0
        for connection in self._players.connections():
            if connection.state is PlayerState.QUEUED:
                told += 1
                self.requests.withdraw_ticket(connection)
                connection.push(
                    error_frame(
                        errors.SERVER_DRAINING,
                        "the server is shutting down; your ticket was withdrawn: queue again "
                        "on another server or later",
                    ),
                    final=True,
                )
        told += self.requests.rooms.close_all(
            error_frame(
                errors.SERVER_DRAINING,
                "the server is shutting down; your room was closed: play on another server "
                "or later",
            )
        )
        self.log.info(
            "lobby draining: new queue requests are refused; {told} queued player(s) and room "
            "member(s) told",
            told=told,
        )

    @property
    def players_matches(self) -> int:
        """With a shared store (lobbies on Redis): the matches not ended with a player
        this lobby answers for (those it held or queued when the match formed)."""
        return self.placer.players_matches

    def when_players_matches_end(self) -> Deferred[None]:
        """Fires once `players_matches` is 0 (their ends heard from the hosting)."""
        return self.placer.when_players_matches_end()

    def close_players(self) -> Deferred[None]:
        """The end of a drain: every connected player is told (`server_draining`) and
        their connection closed, so that what the lobby keeps for them (a ticket, a
        party, their record) is withdrawn now, while the store is still there. Fires
        once the last is closed (each within the config's `close_timeout`), or a
        second after that in any case."""
        connections = self._players.connections()
        if not connections:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._closed_waiters.append(waiter)
        late = self.clock.callLater(self.config.close_timeout + 1.0, self._closed, waiter)
        waiter.addBoth(lambda result: late.cancel() if late.active() else None)
        for connection in connections:
            connection.push(
                error_frame(
                    errors.SERVER_DRAINING,
                    "the server is shutting down: connect to another server or later",
                ),
                final=True,
            )
        self.log.info("lobby: closing the connections of {players} player(s)",
                      players=len(connections))  # fmt: skip
        return waiter

    def stopService(self) -> None:
        """Drain (if not begun already) as the service stops."""
        super().stopService()
        self.drain()
        if self._ban_check is not None and self._ban_check.running:
            self._ban_check.stop()

    # Bans made while their players are online.

    def check_bans(self) -> Deferred[None]:
        """Read the bans made since the last read (less BAN_CHECK_OVERLAP; the first read
        only learns the database's clock) and end what their players hold here."""
        accounts = self.auth.accounts
        if accounts is None:
            return succeed(None)
        since = math.inf if self._bans_read_to is None else self._bans_read_to - BAN_CHECK_OVERLAP
        d: Deferred[Any] = accounts.bans_since(since)
        return d.addCallback(self._bans_read).addErrback(self._ban_failed, "reading new bans")

    def _bans_read(self, new: NewBans) -> None:
        self._bans_read_to = new.now
        for player_id, ban in new.bans.items():
            self.end_banned(player_id, ban)

    def _ban_failed(self, failure: Failure, doing: str) -> None:
        # A read that failed is made again from the same time, a seat not taken at the
        # next read that finds the ban (BAN_CHECK_OVERLAP): logged once a minute at most.
        if isinstance(failure.value, FirstError):
            failure = failure.value.subFailure
        if not self._ban_log.allow():
            return
        if failure.check(BackendUnavailable):
            self.log.warn("{doing} failed: {error}", doing=doing, error=failure.value)
        else:
            self.log.failure("{doing} failed", failure, doing=doing)

    def end_banned(self, player_id: str, ban: Ban) -> None:
        """The player's account is banned: their connection here is told `banned` and
        closed (their ticket, room and party go as at a disconnection), and they are
        taken out of their running matches as a leaver is."""
        connection = self._players.connection_of(player_id)
        if connection is not None and not connection.closing:
            error = banned(ban)
            connection.push(error_frame(error.code, error.message, fields=error.fields),
                            final=True)  # fmt: skip
            self.bans_ended["connection"] += 1
            self.log.info("player {player_id} was banned: their lobby connection is closed",
                          player_id=player_id)  # fmt: skip

        def removed(seats: int) -> None:
            if seats:
                self.bans_ended["seat"] += seats
                self.log.info("player {player_id} was banned: taken out of {seats} match(es)",
                              player_id=player_id, seats=seats)  # fmt: skip

        d = self.placer.remove_player(player_id)
        d.addCallback(removed)
        d.addErrback(self._ban_failed, f"taking banned player {player_id} out of a match")

    # What operators and tests look at.

    @property
    def connection_count(self) -> int:
        """Admitted lobby connections."""
        return self.limits.connection_count

    def connections_from(self, host: str) -> int:
        """Admitted connections from one client address (an IPv6 address: from its /64)."""
        return self.limits.connections_from(host)

    def pending_from(self, host: str) -> int:
        """Players from one client address (IPv6: its /64) queued or in a match not ended."""
        return self.limits.pending_from(host)

    def matches_from(self, host: str) -> int:
        """Matches not ended that players from `host`'s address are in."""
        return self.limits.matches_from(host)

    def connection_of(self, player_id: str) -> LobbyConnection | None:
        """The connection of a player, if they are connected."""
        return self._players.connection_of(player_id)

    def state_of(self, player_id: str) -> PlayerState | None:
        """Where a connected player is (NEW never: a player id comes with hello); None if gone."""
        connection = self._players.connection_of(player_id)
        return None if connection is None else connection.state

    @property
    def waiting_matches(self) -> int:
        """Matches formed and waiting for a free game port."""
        return self.placer.waiting_matches

    @property
    def open_rooms(self) -> list[OpenRoom]:
        """The open rooms (public and private) waiting for their seats to fill, oldest first."""
        return self.requests.rooms.rooms.rooms()

    @property
    def rooms_started(self) -> int:
        """Matches that began as open rooms (their seats filled)."""
        return self.requests.rooms.rooms_started

    @property
    def matches_withdrawn(self) -> int:
        """Matches withdrawn because a player of them left before they were placed."""
        return self.placer.matches_withdrawn
