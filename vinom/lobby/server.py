"""The TLS lobby: `LobbyProtocol`, a thin adapter per connection, and `LobbyFactory`.

`LobbyProtocol` takes lines one at a time from the sans-I/O `FrameDecoder`,
applies the per-connection frame rate limit before parsing each, answers bad
frames with `error` frames, closes a connection after too many protocol
errors or too long a silence, and serves one request at a time in arrival
order, so replies keep the order of requests.

`LobbyFactory` is also a `Service`. It holds the lobby's shared state: the
connection counts (in all and per client address), the connection of each
player, the players pending per address, the matches formed but not yet
delivered, and the `draining` flag (set by `stopService`). It serves the
requests (hello, queue, cancel, ping, reconnect) and listens to the
matchmaker: for each match it asks the hosting service for a game host
(telling the players `waiting_for_server` while no port is free, and
withdrawing the match if all its players leave meanwhile), records the
placement in the session store, issues each player a connect token and
sends `match_found`, then closes the connection.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from vinom.hosting.interfaces import HostAddress
from vinom.hosting.service import GameHostingService, HostingStopped
from vinom.lobby import errors
from vinom.lobby.addresses import client_key
from vinom.lobby.codec import (
    Cancel,
    FrameDecoder,
    FrameError,
    Hello,
    Ping,
    Queue,
    Reconnect,
    Request,
    RequestId,
    encode_frame,
    error_frame,
    parse_frame,
    quote_for_message,
    request_id_of,
)
from vinom.lobby.config import LobbyConfig
from vinom.lobby.errors import LobbyError
from vinom.lobby.identity import hash_secret, new_player_id, new_secret, secret_matches
from vinom.lobby.ratelimit import KeyedTokenBuckets, LogLimiter, TokenBucket
from vinom.matchmaking.interfaces import AlreadyQueued, IMatchmaker, Match, Ticket
from vinom.protocol.interfaces import ITokenIssuer
from vinom.store.interfaces import ISessionStore, MatchPlacement, PlayerRecord

Frame = dict[str, Any]
_T = TypeVar("_T")

# Refusals (connections over a cap, queue requests over a limit) logged at most
# this many at once and this many per second after that.
REFUSAL_LOG_BURST = 10
REFUSAL_LOG_RATE = 1.0

# What an unknown player's `reconnect` secret is compared with (see _reconnect).
_UNKNOWN_PLAYER_HASH = hash_secret(new_secret())


class PlayerState(enum.Enum):
    """Where a connection's player is in the lobby."""

    NEW = "new"  # no hello yet
    IDLE = "idle"  # said hello, not queued
    QUEUED = "queued"  # has a ticket in a matchmaker queue
    MATCHED = "matched"  # in a formed match; match_found pending or sent


class LobbyProtocol(Protocol, TimeoutMixin):
    """One lobby connection: frames in, replies out; the factory does the serving.

    Timeouts (`TimeoutMixin`, on the factory's clock): a new connection has
    `hello_timeout` seconds for the TLS handshake and its first frame; a
    connection that is not queued (nor matched) is closed after `idle_timeout`
    seconds without a frame (a `ping` keeps it); a queued or matched player is
    kept however long the wait, with TCP keepalive finding dead peers; and a
    connection that is closing is aborted if the close does not complete
    within `close_timeout` seconds.
    """

    transport: ITransport

    def __init__(self, factory: LobbyFactory) -> None:
        config = factory.config
        self.factory = factory
        self.peer_host = ""
        # The key the per-address limits count this connection under (see addresses.py).
        self.client = ""
        self.player_id: str | None = None
        self.name = ""
        self._state = PlayerState.NEW
        self.game: str | None = None
        self.protocol_errors = 0
        self.closing = False
        self.admitted = False
        # Any bytes received / any frame (not a blank line) received.
        self._heard = False
        self._framed = False
        self._decoder = FrameDecoder(config.max_frame_bytes)
        self._bucket = TokenBucket(config.frame_rate, config.frame_burst, factory.clock)
        # Frames the server pushes while a request is being served wait here, so
        # they follow that request's reply (queued before match_found).
        self._held: list[tuple[Frame, bool]] = []
        self._busy = False
        self._processing = False
        self._reading_paused = False

    @property
    def state(self) -> PlayerState:
        """Where the connection's player is; setting it re-arms the idle timeout."""
        return self._state

    @state.setter
    def state(self, state: PlayerState) -> None:
        self._state = state
        if self.closing:
            return
        if state is PlayerState.QUEUED or state is PlayerState.MATCHED:
            self.setTimeout(None)
        elif self._framed:
            self.setTimeout(self.factory.config.idle_timeout)

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """TimeoutMixin's timer, on the factory's (injected) clock."""
        return self.factory.clock.callLater(period, func)

    def connectionMade(self) -> None:
        self.peer_host = _host_of(self.transport.getPeer())
        self.client = client_key(self.peer_host)
        self.setTimeout(self.factory.config.hello_timeout)
        refusal = self.factory.admit(self)
        if refusal is not None:
            self.send_error(errors.TOO_MANY_CONNECTIONS, refusal)
            self.close()
            return
        # A queued player may wait long without a word: let TCP find peers that vanished.
        keepalive = getattr(self.transport, "setTcpKeepAlive", None)
        if keepalive is not None:
            with contextlib.suppress(OSError):
                keepalive(True)

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self._heard = True
        self._decoder.push(data)
        self._process()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closing = True
        self.setTimeout(None)
        self._decoder.clear()
        self._held.clear()
        if self.admitted:
            self.admitted = False
            self.factory.connection_lost(self)

    def timeoutConnection(self) -> None:
        if self.closing or not self._heard:
            # A close that did not complete (a peer that never reads, or never answers
            # TLS close_notify), or a peer that sent nothing at all, perhaps not even a
            # TLS handshake: drop the connection without another word.
            self.closing = True
            self._decoder.clear()
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()
            return
        self.send_error(
            errors.TIMEOUT,
            f"no frame for {self.timeOut:g} seconds; closing the connection",
        )
        self.close()

    # Sending.

    def send(self, frame: Frame) -> None:
        """Write one frame now (unless the connection is closing)."""
        if not self.closing:
            self.transport.write(encode_frame(frame))

    def reply(self, request: Request, frame: Frame, *, final: bool = False) -> None:
        """Answer `request`, echoing its id; `final` closes the connection after it."""
        if request.request_id is not None:
            frame["id"] = request.request_id
        self.send(frame)
        if final:
            self.close()

    def push(self, frame: Frame, *, final: bool = False) -> None:
        """A frame the server sends on its own; after the current request's reply, if any."""
        if self.closing:
            return
        if self._busy:
            self._held.append((frame, final))
            return
        self.send(frame)
        if final:
            self.close()

    def send_error(
        self,
        code: str,
        message: str,
        request_id: RequestId = None,
        *,
        counted: bool | None = None,
    ) -> None:
        """An `error` frame; too many protocol errors close the connection.

        `counted` overrides whether the error counts (default: unless its code
        is one of `errors.NOT_COUNTED`).
        """
        self.send(error_frame(code, message, request_id))
        if counted is None:
            counted = code not in errors.NOT_COUNTED
        if not counted or self.closing:
            return
        self.protocol_errors += 1
        limit = self.factory.config.max_protocol_errors
        if self.protocol_errors >= limit:
            self.send(
                error_frame(
                    errors.TOO_MANY_ERRORS,
                    f"{limit} protocol errors on this connection; closing it",
                )
            )
            self.close()

    def close(self) -> None:
        """Close after the frames written so far (TLS close_notify included)."""
        if self.closing:
            return
        self.closing = True
        self._decoder.clear()
        self.setTimeout(self.factory.config.close_timeout)
        if self._reading_paused:
            # The TLS close needs the peer's close_notify: read again.
            self._reading_paused = False
            resume = getattr(self.transport, "resumeProducing", None)
            if resume is not None:
                resume()
        self.transport.loseConnection()

    # Serving requests one at a time.

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            # Lines are split and parsed one at a time, only while no request is being
            # served and the connection is open: the rest waits as raw bytes.
            while not self._busy and not self.closing:
                line = self._decoder.next_line()
                if line is None:
                    break
                self._take(line)
        finally:
            self._processing = False
        self._flow_control()

    def _take(self, line: bytes | FrameError) -> None:
        """Apply the limits to one line, then parse and serve it."""
        if isinstance(line, bytes) and not line:
            # A blank line is skipped, but it is still a frame for the rate limit.
            if not self._bucket.allow():
                self._rate_limited(None)
            return
        self._framed = True
        if self._state is PlayerState.NEW or self._state is PlayerState.IDLE:
            self.setTimeout(self.factory.config.idle_timeout)
        if not self._bucket.allow():
            # Parsed only to echo its id. Every rate_limited error counts towards
            # closing the connection, so this costs at most max_protocol_errors parses.
            request_id = None if isinstance(line, FrameError) else request_id_of(line)
            self._rate_limited(request_id)
            return
        item = line if isinstance(line, FrameError) else parse_frame(line)
        if isinstance(item, FrameError):
            self.send_error(item.code, item.message, item.request_id)
            return
        self._busy = True
        d = maybeDeferred(self.factory.handle_request, self, item)
        d.addErrback(self._failed, item)
        d.addBoth(self._served)

    def _rate_limited(self, request_id: RequestId) -> None:
        self.send_error(
            errors.RATE_LIMITED,
            f"more than {self.factory.config.frame_rate:g} frames per second; "
            "the frame was dropped",
            request_id,
        )

    def _failed(self, failure: Failure, request: Request) -> None:
        if failure.check(LobbyError):
            error = failure.value
            assert isinstance(error, LobbyError)
            self.send_error(error.code, error.message, request.request_id, counted=error.counted)
            return
        self.factory.log.failure(
            "serving {request!r} from {peer} failed", failure, request=request, peer=self.peer_host
        )
        self.send_error(
            errors.INTERNAL_ERROR, "the server failed to serve this request", request.request_id
        )

    def _served(self, _: object) -> None:
        self._busy = False
        held, self._held = self._held, []
        for frame, final in held:
            self.push(frame, final=final)
            if self.closing:
                break
        self._process()

    def _flow_control(self) -> None:
        # Lines wait only while a request waits on the store or matchmaker; once more
        # than a frame's worth of bytes waits, stop reading from the socket until the
        # request is served rather than buffer without bound. TCP transports are push
        # producers; the TLS wrapper forwards to its TCP transport.
        pause = getattr(self.transport, "pauseProducing", None)
        resume = getattr(self.transport, "resumeProducing", None)
        if pause is None or resume is None or self.closing:
            return
        backlog = self._busy and self._decoder.buffered > self.factory.config.max_frame_bytes
        if backlog and not self._reading_paused:
            self._reading_paused = True
            pause()
        elif not backlog and self._reading_paused:
            self._reading_paused = False
            resume()


def _host_of(address: IAddress) -> str:
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else str(address)


class LobbyFactory(ServerFactory, Service):
    """Builds `LobbyProtocol`s and serves their requests; a `Service` for draining."""

    log = Logger()
    noisy = False

    def __init__(
        self,
        *,
        config: LobbyConfig,
        games: Mapping[str, int],
        matchmaker: IMatchmaker,
        hosting: GameHostingService,
        token_issuer: ITokenIssuer,
        store: ISessionStore,
        clock: IReactorTime,
    ) -> None:
        self.config = config
        self.games = dict(games)
        self.matchmaker = matchmaker
        self.hosting = hosting
        self.token_issuer = token_issuer
        self.store = store
        self.clock = clock
        self.draining = False
        # Admitted connections per client key (an IPv4 address or an IPv6 /64), and in all.
        self._per_ip: dict[str, int] = {}
        self._total = 0
        self._connections: dict[str, LobbyProtocol] = {}
        # Players of matches formed but not yet placed on a game host.
        self._pending: dict[str, Match] = {}
        # Matches waiting for a free port, in the allocator's (FIFO) order.
        self._waiting: dict[str, Match] = {}
        # The hosting service's Deferred of each match not yet placed (to withdraw it).
        self._placing: dict[str, Deferred[HostAddress]] = {}
        self._withdrawn: set[str] = set()
        self.matches_withdrawn = 0
        # Players counted against their address's pending limit: the client key of
        # each, and per key each player with the time their match counts as under
        # way (infinity while queued or waiting for a port).
        self._pending_client: dict[str, str] = {}
        self._pending_by_client: dict[str, dict[str, float]] = {}
        self._queue_buckets = KeyedTokenBuckets(config.queue_rate, config.queue_burst, clock)
        self._refusal_log = LogLimiter(REFUSAL_LOG_RATE, REFUSAL_LOG_BURST, clock)
        matchmaker.add_listener(self._match_formed)

    def buildProtocol(self, addr: IAddress | None) -> LobbyProtocol:
        return LobbyProtocol(self)

    # Service: stopping the lobby drains it.

    def startService(self) -> None:
        super().startService()
        self.draining = False

    def stopService(self) -> None:
        """Drain: new queue requests get `server_draining`; queued players keep their place."""
        super().stopService()
        self.draining = True
        self.log.info("lobby draining: new queue requests are refused")

    # What operators and tests look at.

    @property
    def connection_count(self) -> int:
        """Admitted lobby connections."""
        return self._total

    def connections_from(self, host: str) -> int:
        """Admitted connections from one client address (an IPv6 address: from its /64)."""
        return self._per_ip.get(client_key(host), 0)

    def pending_from(self, host: str) -> int:
        """Players from one client address (IPv6: its /64) queued or in a match not under way."""
        return self._pending_of(client_key(host))

    def _pending_of(self, key: str) -> int:
        players = self._pending_by_client.get(key)
        if not players:
            return 0
        now = self.clock.seconds()
        for player_id, until in list(players.items()):
            if until <= now:
                del players[player_id]
                self._pending_client.pop(player_id, None)
        if not players:
            del self._pending_by_client[key]
        return len(players)

    def connection_of(self, player_id: str) -> LobbyProtocol | None:
        """The connection of a player, if they are connected."""
        return self._connections.get(player_id)

    @property
    def waiting_matches(self) -> int:
        """Matches formed and waiting for a free game port."""
        return len(self._waiting)

    # Connections.

    def admit(self, connection: LobbyProtocol) -> str | None:
        """Count a new connection against the caps; the reason it is refused, if it is."""
        key = connection.client
        if self._total >= self.config.max_connections:
            self._log_refusal(
                "a lobby connection", connection.peer_host, f"{self._total} connections in all"
            )
            return "the lobby is full; try again later"
        count = self._per_ip.get(key, 0)
        if count >= self.config.max_connections_per_ip:
            self._log_refusal(
                "a lobby connection", connection.peer_host, f"{count} open from {key} already"
            )
            return f"at most {self.config.max_connections_per_ip} lobby connections per address"
        self._per_ip[key] = count + 1
        self._total += 1
        connection.admitted = True
        return None

    def _log_refusal(self, what: str, peer: str, reason: str) -> None:
        # Refusals come in floods when someone attacks: log a few, count the rest.
        if not self._refusal_log.allow():
            return
        suppressed = self._refusal_log.take_suppressed()
        if suppressed:
            self.log.info(
                "refused {what} from {peer}: {reason} ({suppressed} more refusals not logged)",
                what=what,
                peer=peer,
                reason=reason,
                suppressed=suppressed,
            )
        else:
            self.log.info(
                "refused {what} from {peer}: {reason}", what=what, peer=peer, reason=reason
            )

    def connection_lost(self, connection: LobbyProtocol) -> None:
        """Forget a connection; a queued player's ticket is cancelled."""
        key = connection.client
        self._total -= 1
        remaining = self._per_ip.get(key, 0) - 1
        if remaining > 0:
            self._per_ip[key] = remaining
        else:
            self._per_ip.pop(key, None)
        player_id = connection.player_id
        if player_id is None or self._connections.get(player_id) is not connection:
            # No player, or another connection (a reconnect) owns the player now.
            return
        del self._connections[player_id]
        if connection.state is PlayerState.QUEUED:
            self._cancel_ticket_of_gone(player_id)
        elif connection.state is PlayerState.IDLE:
            self._forget_player(player_id)
        elif connection.state is PlayerState.MATCHED:
            # The record stays so the player can `reconnect` to their match, unless
            # the match still waits for a port and nobody of it is left to play.
            match = self._pending.get(player_id)
            if match is not None:
                self._withdraw_if_abandoned(match)

    def _cancel_ticket_of_gone(self, player_id: str) -> None:
        d = self.matchmaker.cancel(player_id)

        def cancelled(removed: bool) -> None:
            # Not removed: the ticket was matched meanwhile; keep the record for reconnect.
            if removed:
                self._uncount_pending(player_id)
                self._forget_player(player_id)

        d.addCallback(cancelled)
        d.addErrback(self._log_failure, "cancelling the ticket of {player_id}", player_id)

    def _forget_player(self, player_id: str) -> None:
        d = self.store.remove_player(player_id)
        d.addErrback(self._log_failure, "removing player {player_id}", player_id)

    def _log_failure(self, failure: Failure, what: str, player_id: str) -> None:
        self.log.failure(what + " failed", failure, player_id=player_id)

    # Players pending per address: queued, or in a match not yet under way.

    def _count_pending(self, player_id: str, client: str) -> None:
        self._pending_client[player_id] = client
        self._pending_by_client.setdefault(client, {})[player_id] = math.inf

    def _under_way_soon(self, match: Match) -> None:
        """The match is placed: its players stop counting once its connect window is over."""
        until = self.clock.seconds() + self.config.start_window
        for player_id in match.player_ids:
            client = self._pending_client.get(player_id)
            if client is not None:
                self._pending_by_client[client][player_id] = until

    def _uncount_pending(self, player_id: str) -> None:
        client = self._pending_client.pop(player_id, None)
        if client is None:
            return
        players = self._pending_by_client.get(client)
        if players is not None:
            players.pop(player_id, None)
            if not players:
                del self._pending_by_client[client]

    def _check_queue_limits(self, connection: LobbyProtocol) -> None:
        """Raise `rate_limited` (not counted) if the connection's address may not queue now."""
        client = connection.client
        limit = self.config.max_pending_per_ip
        if self._pending_of(client) >= limit:
            self._log_refusal("a queue request", connection.peer_host, f"{limit} players pending")
            raise LobbyError(
                errors.RATE_LIMITED,
                f"{limit} players from this address are queued or starting a match; "
                "queue again once one has started",
                counted=False,
            )
        if not self._queue_buckets.allow(client):
            self._log_refusal("a queue request", connection.peer_host, "queue rate")
            raise LobbyError(
                errors.RATE_LIMITED,
                f"more than {self.config.queue_rate:g} queue requests per second from this "
                "address; try again shortly",
                counted=False,
            )

    # Requests.

    def handle_request(self, connection: LobbyProtocol, request: Request) -> Deferred[None] | None:
        """Serve one request; a `LobbyError` (raised or as a failure) becomes an error frame."""
        if isinstance(request, Ping):
            connection.reply(request, {"type": "pong", "time": self.clock.seconds()})
            return None
        if isinstance(request, Hello):
            return self._hello(connection, request)
        if isinstance(request, Queue):
            return self._queue(connection, request)
        if isinstance(request, Cancel):
            return self._cancel(connection, request)
        if isinstance(request, Reconnect):
            return self._reconnect(connection, request)
        raise AssertionError(f"unhandled request {request!r}")

    def _hello(self, connection: LobbyProtocol, request: Hello) -> Deferred[None]:
        if connection.state is not PlayerState.NEW:
            raise LobbyError(errors.ALREADY_HELLO, "this connection has said hello already")
        player_id = new_player_id()
        secret = new_secret()
        record = PlayerRecord(player_id, request.name, hash_secret(secret), self.clock.seconds())

        def saved(_: None) -> None:
            if connection.closing:
                self._forget_player(player_id)
                return
            connection.player_id = player_id
            connection.name = request.name
            connection.state = PlayerState.IDLE
            self._connections[player_id] = connection
            connection.reply(
                request,
                {
                    "type": "welcome",
                    "player_id": player_id,
                    "name": request.name,
                    "secret": secret,
                    "games": dict(self.games),
                },
            )

        return self.store.save_player(record).addCallback(saved)

    def _queue(self, connection: LobbyProtocol, request: Queue) -> Deferred[None]:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello before queueing")
        if connection.state is PlayerState.QUEUED:
            raise LobbyError(errors.ALREADY_QUEUED, f"already queued for {connection.game}")
        if connection.state is PlayerState.MATCHED:
            raise LobbyError(errors.ALREADY_QUEUED, "already in a match")
        if self.draining:
            raise LobbyError(
                errors.SERVER_DRAINING, "the server is shutting down and takes no new players"
            )
        if request.game not in self.games:
            raise LobbyError(
                errors.UNKNOWN_GAME, f"no game called {quote_for_message(request.game)}"
            )
        self._check_queue_limits(connection)
        self._count_pending(player_id, connection.client)
        ticket = Ticket(
            player_id, connection.name, request.game, request.rating, self.clock.seconds()
        )
        # QUEUED before enqueue: a matchmaker may form the match inside enqueue().
        connection.state = PlayerState.QUEUED
        connection.game = request.game

        def queued(position: int) -> None:
            if connection.closing:
                # The connection dropped while the ticket was being queued.
                if connection.state is PlayerState.QUEUED:
                    self._cancel_ticket_of_gone(player_id)
                return
            connection.reply(
                request,
                {
                    "type": "queued",
                    "game": request.game,
                    "position": position,
                    "status": "searching",
                },
            )

        def refused(failure: Failure) -> Failure:
            self._uncount_pending(player_id)
            if connection.state is PlayerState.QUEUED:
                connection.state = PlayerState.IDLE
                connection.game = None
            if failure.check(AlreadyQueued):
                raise LobbyError(errors.ALREADY_QUEUED, "already queued")
            return failure

        return self.matchmaker.enqueue(ticket).addCallbacks(queued, refused)

    def _cancel(self, connection: LobbyProtocol, request: Cancel) -> Deferred[None]:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        if connection.state is PlayerState.MATCHED:
            raise LobbyError(errors.NOT_QUEUED, "the match has been formed; it cannot be cancelled")
        if connection.state is not PlayerState.QUEUED:
            raise LobbyError(errors.NOT_QUEUED, "not in a queue")

        def cancelled(removed: bool) -> None:
            if not removed:
                raise LobbyError(
                    errors.NOT_QUEUED, "not in a queue (the match may just have formed)"
                )
            self._uncount_pending(player_id)
            game = connection.game
            connection.state = PlayerState.IDLE
            connection.game = None
            connection.reply(request, {"type": "cancelled", "game": game})

        return self.matchmaker.cancel(player_id).addCallback(cancelled)

    def _reconnect(self, connection: LobbyProtocol, request: Reconnect) -> Deferred[None]:
        if connection.state is not PlayerState.NEW:
            raise LobbyError(
                errors.ALREADY_HELLO, "reconnect must be the first request of a connection"
            )
        player_id = request.player_id

        def verified(record: PlayerRecord | None) -> Deferred[None] | None:
            # One code for an unknown player and a wrong secret: ids are not an oracle. An
            # unknown player's secret is hashed and compared too, to take the same time.
            expected = _UNKNOWN_PLAYER_HASH if record is None else record.secret_hash
            if not secret_matches(request.secret, expected) or record is None:
                raise LobbyError(errors.BAD_SECRET, "unknown player or wrong secret")
            if connection.closing:
                return None
            pending = self._pending.get(player_id)
            if pending is not None:
                self._take_over(connection, record, pending, request)
                return None
            return self.store.placement_for_player(player_id).addCallback(placed)

        def placed(placement: MatchPlacement | None) -> None:
            ticket = None if placement is None else placement.ticket_of(player_id)
            if placement is None or ticket is None:
                raise LobbyError(errors.NO_ACTIVE_MATCH, "the player has no running match")
            frame = self._match_found_frame(placement.match, ticket, placement.address)
            self.log.info(
                "player {player_id} reconnected to match {match_id}",
                player_id=player_id,
                match_id=placement.match_id,
            )
            connection.reply(request, frame, final=True)

        return self.store.get_player(player_id).addCallback(verified)

    def _take_over(
        self, connection: LobbyProtocol, record: PlayerRecord, match: Match, request: Reconnect
    ) -> None:
        """A player whose match still waits for a game host comes back on a new connection."""
        previous = self._connections.get(record.player_id)
        connection.player_id = record.player_id
        connection.name = record.name
        connection.state = PlayerState.MATCHED
        connection.game = match.game
        self._connections[record.player_id] = connection
        if previous is not None and previous is not connection:
            previous.push(
                error_frame(
                    errors.SESSION_REPLACED, "the player reconnected on another connection"
                ),
                final=True,
            )
        connection.reply(request, self._waiting_frame(match))

    # Matches.

    def _waiting_frame(self, match: Match) -> Frame:
        position = 1
        for match_id in self._waiting:
            if match_id == match.match_id:
                break
            position += 1
        return {
            "type": "queued",
            "game": match.game,
            "position": position,
            "status": "waiting_for_server",
        }

    def _match_formed(self, match: Match) -> None:
        self.log.info(
            "match {match_id} formed for {game}: {players}",
            match_id=match.match_id,
            game=match.game,
            players=list(match.player_ids),
        )
        for player_id in match.player_ids:
            self._pending[player_id] = match
            connection = self._connections.get(player_id)
            if connection is not None:
                connection.state = PlayerState.MATCHED
                connection.game = match.game
        d = self.hosting.host_match(
            match,
            on_waiting=partial(self._match_waiting, match),
            on_ended=partial(self._match_ended, match),
        )
        if not d.called:
            self._placing[match.match_id] = d
            d.addBoth(self._placing_over, match.match_id)
        d.addCallback(self._place, match)
        d.addErrback(self._placement_failed, match)
        # Formed with none of its players connected here (they left as it formed).
        self._withdraw_if_abandoned(match)

    def _placing_over(self, result: _T, match_id: str) -> _T:
        self._placing.pop(match_id, None)
        return result

    def _withdraw_if_abandoned(self, match: Match) -> None:
        """Withdraw a match waiting for a port once none of its players is connected.

        Nobody would connect to its game host: placing it would only hold a port
        for the connect deadline, ahead of real players.
        """
        if match.match_id not in self._waiting:
            return  # placed, or being placed: it proceeds
        if any(player_id in self._connections for player_id in match.player_ids):
            return
        placing = self._placing.get(match.match_id)
        if placing is None:
            return
        self._withdrawn.add(match.match_id)
        placing.cancel()

    def _match_waiting(self, match: Match, position: int) -> None:
        self._waiting[match.match_id] = match
        frame = {
            "type": "queued",
            "game": match.game,
            "position": position,
            "status": "waiting_for_server",
        }
        for connection in self._connections_in(match):
            connection.push(dict(frame))

    def _connections_in(self, match: Match) -> list[LobbyProtocol]:
        found = []
        for player_id in match.player_ids:
            connection = self._connections.get(player_id)
            if connection is not None and connection.state is PlayerState.MATCHED:
                found.append(connection)
        return found

    def _place(self, address: HostAddress, match: Match) -> Deferred[None]:
        self._waiting.pop(match.match_id, None)
        self._under_way_soon(match)
        placement = MatchPlacement(match, address, self.clock.seconds())
        return self.store.save_placement(placement).addCallback(lambda _: self._deliver(placement))

    def _deliver(self, placement: MatchPlacement) -> None:
        match = placement.match
        for ticket in match.players:
            if self._pending.get(ticket.player_id) is match:
                del self._pending[ticket.player_id]
            connection = self._connections.get(ticket.player_id)
            if connection is None or connection.state is not PlayerState.MATCHED:
                # Gone: the player can still `reconnect` for a token while the match runs.
                continue
            try:
                frame = self._match_found_frame(match, ticket, placement.address)
            except Exception:
                self.log.failure(
                    "issuing a connect token for {player_id} failed", player_id=ticket.player_id
                )
                connection.push(
                    error_frame(errors.INTERNAL_ERROR, "no connect token could be issued"),
                    final=True,
                )
                continue
            connection.push(frame, final=True)

    def _match_found_frame(self, match: Match, ticket: Ticket, address: HostAddress) -> Frame:
        token = dict(self.token_issuer.issue(match, ticket, address, self.clock.seconds()))
        expires_at = token.get("expires_at")
        frame: Frame = {
            "type": "match_found",
            "game": match.game,
            "game_id": match.match_id,
            "host": address.host,
            "port": address.port,
            "seat": match.player_ids.index(ticket.player_id),
            "token": token,
            "expires_at": expires_at if isinstance(expires_at, int | float) else None,
        }
        encode_frame(frame)  # a token that is not JSON-safe fails here, not mid-write
        return frame

    def _placement_failed(self, failure: Failure, match: Match) -> None:
        if match.match_id in self._withdrawn and failure.check(CancelledError):
            self._withdrawn.discard(match.match_id)
            self.matches_withdrawn += 1
            self.log.info(
                "match {match_id} withdrawn: its players left while it waited for a game server",
                match_id=match.match_id,
            )
        elif failure.check(CancelledError, HostingStopped):
            # Shutting down: the waiting match was withdrawn, not broken.
            self.log.info(
                "match {match_id} withdrawn: the server is stopping", match_id=match.match_id
            )
        else:
            self.log.failure("no game host for match {match_id}", failure, match_id=match.match_id)
        self._waiting.pop(match.match_id, None)
        self._withdrawn.discard(match.match_id)
        for player_id in match.player_ids:
            self._uncount_pending(player_id)
            if self._pending.get(player_id) is match:
                del self._pending[player_id]
            connection = self._connections.get(player_id)
            if connection is None:
                self._forget_player(player_id)
            elif connection.state is PlayerState.MATCHED:
                connection.state = PlayerState.IDLE
                connection.game = None
                connection.push(
                    error_frame(
                        errors.MATCH_FAILED,
                        "no game server could host the match; queue again",
                    )
                )

    def _match_ended(self, match: Match) -> None:
        self.log.info("match {match_id} ended", match_id=match.match_id)
        d = self.store.remove_placement(match.match_id)
        d.addErrback(self._log_failure, "removing the placement of {player_id}", match.match_id)
        for player_id in match.player_ids:
            self._uncount_pending(player_id)
            if player_id not in self._connections:
                self._forget_player(player_id)
