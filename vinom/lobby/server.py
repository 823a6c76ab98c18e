"""The TLS lobby: `LobbyProtocol`, a thin adapter per connection, and `LobbyFactory`.

`LobbyProtocol` turns bytes into requests with the sans-I/O `FrameDecoder`,
applies the per-connection frame rate limit, answers bad frames with `error`
frames, closes a connection after too many protocol errors, and serves one
request at a time in arrival order, so replies keep the order of requests.

`LobbyFactory` is also a `Service`. It holds the lobby's shared state: the
connection count per client IP, the connection of each player, the matches
formed but not yet delivered, and the `draining` flag (set by
`stopService`). It serves the requests (hello, queue, cancel, ping,
reconnect) and listens to the matchmaker: for each match it asks the hosting
service for a game host (telling the players `waiting_for_server` while no
port is free), records the placement in the session store, issues each
player a connect token and sends `match_found`, then closes the connection.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.hosting.interfaces import HostAddress
from vinom.hosting.service import GameHostingService, HostingStopped
from vinom.lobby import errors
from vinom.lobby.codec import (
    Cancel,
    Decoded,
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
    quote_for_message,
)
from vinom.lobby.config import LobbyConfig
from vinom.lobby.errors import LobbyError
from vinom.lobby.identity import hash_secret, new_player_id, new_secret, secret_matches
from vinom.lobby.ratelimit import TokenBucket
from vinom.matchmaking.interfaces import AlreadyQueued, IMatchmaker, Match, Ticket
from vinom.protocol.interfaces import ITokenIssuer
from vinom.store.interfaces import ISessionStore, MatchPlacement, PlayerRecord

Frame = dict[str, Any]


class PlayerState(enum.Enum):
    """Where a connection's player is in the lobby."""

    NEW = "new"  # no hello yet
    IDLE = "idle"  # said hello, not queued
    QUEUED = "queued"  # has a ticket in a matchmaker queue
    MATCHED = "matched"  # in a formed match; match_found pending or sent


class LobbyProtocol(Protocol):
    """One lobby connection: frames in, replies out; the factory does the serving."""

    transport: ITransport

    def __init__(self, factory: LobbyFactory) -> None:
        config = factory.config
        self.factory = factory
        self.peer_host = ""
        self.player_id: str | None = None
        self.name = ""
        self.state = PlayerState.NEW
        self.game: str | None = None
        self.protocol_errors = 0
        self.closing = False
        self.admitted = False
        self._decoder = FrameDecoder(config.max_frame_bytes)
        self._bucket = TokenBucket(config.frame_rate, config.frame_burst, factory.clock)
        self._inbox: deque[Decoded] = deque()
        # Frames the server pushes while a request is being served wait here, so
        # they follow that request's reply (queued before match_found).
        self._held: list[tuple[Frame, bool]] = []
        self._busy = False
        self._processing = False
        self._reading_paused = False

    def connectionMade(self) -> None:
        self.peer_host = _host_of(self.transport.getPeer())
        if not self.factory.admit(self):
            self.send_error(
                errors.TOO_MANY_CONNECTIONS,
                f"at most {self.factory.config.max_connections_per_ip} lobby connections "
                "per address",
            )
            self.close()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        for item in self._decoder.feed(data):
            if not self._bucket.allow():
                item = FrameError(
                    errors.RATE_LIMITED,
                    f"more than {self.factory.config.frame_rate:g} frames per second; "
                    "the frame was dropped",
                    item.request_id,
                )
            self._inbox.append(item)
        self._process()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closing = True
        self._inbox.clear()
        self._held.clear()
        if self.admitted:
            self.admitted = False
            self.factory.connection_lost(self)

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

    def send_error(self, code: str, message: str, request_id: RequestId = None) -> None:
        """An `error` frame; too many protocol errors close the connection."""
        self.send(error_frame(code, message, request_id))
        if code in errors.NOT_COUNTED or self.closing:
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
        self._inbox.clear()
        self.transport.loseConnection()

    # Serving requests one at a time.

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while self._inbox and not self._busy and not self.closing:
                item = self._inbox.popleft()
                if isinstance(item, FrameError):
                    self.send_error(item.code, item.message, item.request_id)
                    continue
                self._busy = True
                d = maybeDeferred(self.factory.handle_request, self, item)
                d.addErrback(self._failed, item)
                d.addBoth(self._served)
        finally:
            self._processing = False
        self._flow_control()

    def _failed(self, failure: Failure, request: Request) -> None:
        if failure.check(LobbyError):
            error = failure.value
            assert isinstance(error, LobbyError)
            self.send_error(error.code, error.message, request.request_id)
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
        # Requests pile up only while one waits on the store or matchmaker; stop
        # reading from the socket until they drain rather than buffer without bound.
        # TCP transports are push producers; the TLS wrapper forwards to its TCP transport.
        pause = getattr(self.transport, "pauseProducing", None)
        resume = getattr(self.transport, "resumeProducing", None)
        if pause is None or resume is None:
            return
        if len(self._inbox) > self.factory.config.frame_burst and not self._reading_paused:
            self._reading_paused = True
            pause()
        elif not self._inbox and self._reading_paused and not self.closing:
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
        self._per_ip: dict[str, int] = {}
        self._connections: dict[str, LobbyProtocol] = {}
        # Players of matches formed but not yet placed on a game host.
        self._pending: dict[str, Match] = {}
        # Matches waiting for a free port, in the allocator's (FIFO) order.
        self._waiting: dict[str, Match] = {}
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
        return sum(self._per_ip.values())

    def connections_from(self, host: str) -> int:
        """Admitted connections from one client address."""
        return self._per_ip.get(host, 0)

    def connection_of(self, player_id: str) -> LobbyProtocol | None:
        """The connection of a player, if they are connected."""
        return self._connections.get(player_id)

    @property
    def waiting_matches(self) -> int:
        """Matches formed and waiting for a free game port."""
        return len(self._waiting)

    # Connections.

    def admit(self, connection: LobbyProtocol) -> bool:
        """Count a new connection against its address's cap; False if over the cap."""
        host = connection.peer_host
        count = self._per_ip.get(host, 0)
        if count >= self.config.max_connections_per_ip:
            self.log.info(
                "refused a lobby connection from {peer}: {count} open already",
                peer=host,
                count=count,
            )
            return False
        self._per_ip[host] = count + 1
        connection.admitted = True
        return True

    def connection_lost(self, connection: LobbyProtocol) -> None:
        """Forget a connection; a queued player's ticket is cancelled."""
        host = connection.peer_host
        remaining = self._per_ip.get(host, 0) - 1
        if remaining > 0:
            self._per_ip[host] = remaining
        else:
            self._per_ip.pop(host, None)
        player_id = connection.player_id
        if player_id is None or self._connections.get(player_id) is not connection:
            # No player, or another connection (a reconnect) owns the player now.
            return
        del self._connections[player_id]
        if connection.state is PlayerState.QUEUED:
            self._cancel_ticket_of_gone(player_id)
        elif connection.state is PlayerState.IDLE:
            self._forget_player(player_id)
        # MATCHED: the record stays so the player can `reconnect` to their match.

    def _cancel_ticket_of_gone(self, player_id: str) -> None:
        d = self.matchmaker.cancel(player_id)

        def cancelled(removed: bool) -> None:
            # Not removed: the ticket was matched meanwhile; keep the record for reconnect.
            if removed:
                self._forget_player(player_id)

        d.addCallback(cancelled)
        d.addErrback(self._log_failure, "cancelling the ticket of {player_id}", player_id)

    def _forget_player(self, player_id: str) -> None:
        d = self.store.remove_player(player_id)
        d.addErrback(self._log_failure, "removing player {player_id}", player_id)

    def _log_failure(self, failure: Failure, what: str, player_id: str) -> None:
        self.log.failure(what + " failed", failure, player_id=player_id)

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
            # One code for an unknown player and a wrong secret: ids are not an oracle.
            if record is None or not secret_matches(request.secret, record.secret_hash):
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
        d.addCallback(self._place, match)
        d.addErrback(self._placement_failed, match)

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
        if failure.check(CancelledError, HostingStopped):
            # Shutting down: the waiting match was withdrawn, not broken.
            self.log.info(
                "match {match_id} withdrawn: the server is stopping", match_id=match.match_id
            )
        else:
            self.log.failure("no game host for match {match_id}", failure, match_id=match.match_id)
        self._waiting.pop(match.match_id, None)
        for player_id in match.player_ids:
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
            if player_id not in self._connections:
                self._forget_player(player_id)
