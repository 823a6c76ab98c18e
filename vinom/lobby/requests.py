"""The lobby's request handlers: hello, queue, cancel, ping, spectate, the rankings, and
the others handed on: reconnect (reconnects.py), the room requests (room_requests.py)
and the party requests (party_requests.py: a party member's queue and cancel go there
too).

`RequestHandlers.serve` answers one parsed request of one connection (a
`LobbyError` it raises, or fails a Deferred with, becomes an `error` frame
on that connection), moving the connection's player through its states.
`player_left` cleans up after a connection that is gone: a queued player's
ticket is cancelled, an idle player is forgotten, and a matched player keeps
their seat unless their match is abandoned while it waits for a port; a
party member leaves their party.
"""

from __future__ import annotations

from attrs import frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.codes import normal_code
from vinom.errors import LobbyError
from vinom.games.rules import GameCatalogue
from vinom.identity import hash_secret, new_player_id, new_secret, verify_secret
from vinom.lobby import errors
from vinom.lobby.auth import LobbyAuth, SignedIn
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.codec import error_frame, queued_frame, quote_for_message
from vinom.lobby.connection import LobbyConnection, PlayerState
from vinom.lobby.delivery import TokenDelivery
from vinom.lobby.limits import LobbyLimits
from vinom.lobby.party_requests import PartyRequests
from vinom.lobby.placement import MatchPlacer
from vinom.lobby.players import Players, log_failure
from vinom.lobby.rankings import Rankings
from vinom.lobby.ratings import ClaimedRatings, rating_of
from vinom.lobby.reconnects import ReconnectRequests
from vinom.lobby.request_types import (
    GAME_PROTOCOL,
    AddBot,
    Auth,
    Cancel,
    CreateRoom,
    GetHistory,
    GetLeaderboard,
    GetRoomList,
    Hello,
    JoinRoom,
    LeaveRoom,
    PartyCreate,
    PartyJoin,
    PartyLeave,
    Ping,
    Previous,
    Queue,
    Reconnect,
    Request,
    Spectate,
)
from vinom.lobby.requeue import Requeues
from vinom.lobby.room_requests import RoomRequests
from vinom.match import NO_SPECTATORS, QUEUES, RANKED_QUEUE, Ticket, watch_refusal
from vinom.matchmaking.interfaces import AlreadyQueued
from vinom.parties.memory import MemoryPartyStore
from vinom.store.interfaces import MatchPlacement, PlayerRecord

# The requests of a player who said hello that lead to a connect token: a ticket, a seat
# in a room, a party (its leader queues it). `reconnect`, a connection's first request,
# says its own protocol. Refused to a client of another game protocol: a token would
# only lead it to a game host it cannot talk to, and to silence.
_LEAD_TO_TOKENS = (Queue, CreateRoom, JoinRoom, PartyCreate, PartyJoin)


@frozen
class LobbyParts:
    """The parts of one lobby its request handlers share with it (`LobbyFactory`
    builds them): its players, limits, match placer, token delivery, kept places
    and sign-ins (None: guests only)."""

    players: Players
    limits: LobbyLimits
    placer: MatchPlacer
    delivery: TokenDelivery
    requeues: Requeues
    auth: LobbyAuth | None = None


class RequestHandlers:
    """Serves the requests of every connection of one lobby."""

    log = Logger()

    def __init__(
        self,
        *,
        games: GameCatalogue,
        backends: LobbyBackends,
        parts: LobbyParts,
        clock: IReactorTime,
    ) -> None:
        self.games = games
        self._ratings = backends.ratings or ClaimedRatings()
        self._requeues = parts.requeues
        self._matchmaker = matchmaker = backends.matchmaker
        self._store = backends.store
        self._players = players = parts.players
        self._limits = limits = parts.limits
        self._placer = placer = parts.placer
        self._delivery = parts.delivery
        self._auth = parts.auth
        self._clock = clock
        self.rankings = Rankings(backends.accounts, games, clock)
        # Set while the server shuts down: `queue` is refused with `server_draining`.
        self.draining = False
        # The game protocol this lobby's hosts speak, told in `welcome`; a client that
        # speaks another is refused a token. Tests set it to stand up a lobby of another.
        self.protocol = GAME_PROTOCOL
        self.rooms = RoomRequests(
            games=games,
            players=players,
            limits=limits,
            clock=clock,
            match_formed=placer.match_formed,
            draining=lambda: self.draining,
            in_party=lambda player_id: self.parties.party_of(player_id) is not None,
        )
        # Parties of up to the largest match any game has (8 without games).
        self.parties = PartyRequests(
            games=games,
            store=backends.parties or MemoryPartyStore(games.largest_match or 8),
            matchmaker=matchmaker,
            players=players,
            limits=limits,
            clock=clock,
            draining=lambda: self.draining,
            ratings=self._ratings,
        )
        self.reconnects = ReconnectRequests(
            backends=backends,
            players=players,
            limits=limits,
            placer=placer,
            delivery=parts.delivery,
            requeues=parts.requeues,
            sign_in=self._sign_in,
            withdraw_earlier_ticket=self._withdraw_earlier_ticket,
            bind_replacing=self._bind_replacing,
            draining=lambda: self.draining,
        )

    def serve(self, connection: LobbyConnection, request: Request) -> Deferred[None] | None:
        """Serve one request; a `LobbyError` (raised or as a failure) becomes an error frame."""
        if isinstance(request, Ping):
            connection.reply(request, {"type": "pong", "time": self._clock.seconds()})
            return None
        if isinstance(request, Hello):
            return self._hello(connection, request)
        # Before every other check: whatever else is wrong with the request, the player
        # cannot play until the client is updated, and that is what they are told.
        if isinstance(request, Reconnect) and connection.state is PlayerState.NEW:
            self._check_protocol(request.protocol)
        elif isinstance(request, _LEAD_TO_TOKENS) and connection.protocol is not None:
            self._check_protocol(connection.protocol)
        if isinstance(request, Queue):
            return self._queue(connection, request)
        if isinstance(request, Cancel):
            return self._cancel(connection, request)
        if isinstance(request, Reconnect):
            return self.reconnects.reconnect(connection, request)
        if isinstance(request, PartyCreate):
            return self.parties.create(connection, request)
        if isinstance(request, PartyJoin):
            return self.parties.join(connection, request)
        if isinstance(request, PartyLeave):
            return self.parties.leave(connection, request)
        if isinstance(request, Spectate):
            return self._spectate(connection, request)
        if isinstance(request, GetLeaderboard | GetHistory):
            return self._rankings(connection, request)
        if isinstance(request, GetRoomList):
            self.rooms.room_list(connection, request)
        elif isinstance(request, CreateRoom):
            self.rooms.create(connection, request)
        elif isinstance(request, JoinRoom):
            self.rooms.join(connection, request)
        elif isinstance(request, LeaveRoom):
            self.rooms.leave(connection, request)
        elif isinstance(request, AddBot):
            self.rooms.add_bot(connection, request)
        else:
            raise AssertionError(f"unhandled request {request!r}")
        return None

    def _check_protocol(self, protocol: int) -> None:
        """Raise `protocol_outdated` if the client speaks another game protocol than ours."""
        if protocol == self.protocol:
            return
        speaks = (
            f"this server speaks game protocol {self.protocol} and the client speaks"
            f" protocol {protocol}"
        )
        if protocol < self.protocol:
            advice = "update the client to play"
        else:
            advice = f"play with a client for protocol {self.protocol}, or update the server"
        raise LobbyError(errors.PROTOCOL_OUTDATED, f"{speaks}: {advice}")

    def player_left(self, connection: LobbyConnection) -> None:
        """The connection is gone: clean up after its player, if it still owned one."""
        player_id = connection.player_id
        if player_id is None or not self._players.unbind(connection):
            return
        if connection.state is PlayerState.QUEUED:
            self._cancel_ticket_of_gone(player_id)
        elif connection.state is PlayerState.IDLE:
            self._players.forget(player_id)
        elif connection.state is PlayerState.IN_ROOM:
            self.rooms.player_gone(player_id)
            self._players.forget(player_id)
        elif connection.state is PlayerState.MATCHED:
            # The record stays so the player can `reconnect` to their match, unless
            # the match still waits for a port and nobody of it is left to play.
            match = self._placer.pending_match(player_id)
            if match is not None:
                self._placer.withdraw_if_abandoned(match)
        # A party member leaves their party (withdrawing its ticket if it was queued).
        self.parties.player_left(connection)

    def withdraw_ticket(self, connection: LobbyConnection) -> None:
        """Take a queued player's ticket out of its queue (the server is draining)."""
        player_id = connection.player_id
        if connection.state is not PlayerState.QUEUED or player_id is None:
            return
        connection.unqueued()
        self._cancel_ticket(player_id, forget=False)

    def _cancel_ticket_of_gone(self, player_id: str) -> None:
        self._cancel_ticket(player_id, forget=True)

    def _cancel_ticket(self, player_id: str, *, forget: bool) -> None:
        """Cancel the player's ticket in the background; once it is out of its queue the
        player stops counting against their address (and, with `forget`, is forgotten)."""
        d = self._matchmaker.cancel(player_id)

        def cancelled(removed: bool) -> None:
            # Not removed: the ticket was matched meanwhile; keep the record for reconnect.
            if removed:
                self._limits.uncount_pending(player_id)
                if forget:
                    self._players.forget(player_id)

        d.addCallback(cancelled)
        d.addErrback(log_failure, self.log, "cancelling the ticket of {player_id}", player_id)

    def _hello(self, connection: LobbyConnection, request: Hello) -> Deferred[None] | None:
        if connection.state is not PlayerState.NEW:
            raise LobbyError(errors.ALREADY_HELLO, "this connection has said hello already")
        signing = self._sign_in(connection, request.auth, request.name)
        if signing is None:
            return self._welcome(connection, request, new_player_id(), request.name, None)
        return signing.addCallback(
            lambda signed: self._welcome(
                connection, request, signed.player_id, signed.name, signed
            )
        )

    def _sign_in(
        self, connection: LobbyConnection, auth: Auth, name: str
    ) -> Deferred[SignedIn] | None:
        """The signed-in player of `auth` (None: a guest, nothing to wait for)."""
        if self._auth is None:
            return None
        signing = self._auth.sign_in(auth, name, connection.client, connection.peer_host)
        return signing

    def _welcome(
        self, connection: LobbyConnection, request: Hello, player_id: str, name: str,
        signed: SignedIn | None,
    ) -> Deferred[None] | None:  # fmt: skip
        if connection.closing:
            return None  # gone while signing in
        secret = new_secret()
        record = PlayerRecord(player_id, name, hash_secret(secret), self._clock.seconds())

        def saved(withdrawn: bool | None) -> None:
            if connection.closing:
                if signed is None or self._players.connection_of(player_id) is None:
                    self._players.forget(player_id)
                return
            connection.welcomed(player_id, name, request.protocol)
            if signed is not None:
                self._bind_replacing(player_id, connection)
            else:
                self._players.bind(player_id, connection)
            connection.reply(
                request,
                {
                    "type": "welcome",
                    "player_id": player_id,
                    "name": name,
                    "secret": secret,
                    "games": self.games.match_sizes(),
                    # The name people read for each game ("Owe Drahn").
                    "titles": self.games.titles(),
                    "protocol": self.protocol,
                    **({} if withdrawn is None else {"withdrawn": withdrawn}),
                    # A signed-in player: the kind of credentials that proved who they are.
                    **({} if signed is None else {"auth": signed.identity.provider}),
                },
            )

        previous = request.previous
        if previous is None and signed is None:
            return self._store.save_player(record).addCallback(lambda _: saved(None))

        async def returning(previous: Previous | None) -> None:
            withdrawn = None
            if signed is not None:
                # The same account on an earlier connection: that one goes.
                await self._replace_earlier(player_id, connection)
            if previous is not None:
                # A returning player: what their earlier identity left queued goes first.
                earlier = await self._store.get_player(previous.player_id)
                withdrawn = await self._withdraw_if_theirs(earlier, previous.player_id,
                                                           previous.secret)  # fmt: skip
            await self._store.save_player(record)
            saved(withdrawn)

        return Deferred.fromCoroutine(returning(previous))

    def _replace_earlier(self, player_id: str, connection: LobbyConnection) -> Deferred[bool]:
        """A signed-in player's account is on another connection here, or queued on
        another lobby: a ticket of theirs is withdrawn, an open room's seat or a party
        left, and that connection told `session_replaced`; a match they are in keeps
        their seat (they `reconnect` to it)."""
        earlier = self._players.connection_of(player_id)
        if earlier is None or earlier is connection or earlier.state is PlayerState.QUEUED:
            return self._withdraw_earlier_ticket(player_id)
        self._players.unbind(earlier)
        if earlier.state is PlayerState.IN_ROOM:
            self.rooms.player_gone(player_id)
        self.parties.player_left(earlier)
        earlier.push(
            error_frame(errors.SESSION_REPLACED, "the player signed in on another connection"),
            final=True,
        )
        return succeed(False)

    def _withdraw_if_theirs(
        self, record: PlayerRecord | None, player_id: str, secret: str
    ) -> Deferred[bool]:
        """Withdraw the queued ticket of `player_id` if `secret` is theirs; whether one went.

        An unknown player and a wrong secret withdraw nothing, and answer as a
        player with nothing queued: ids are not an oracle.
        """
        known = None if record is None else record.secret_hash
        if not verify_secret(secret, known) or record is None:
            return succeed(False)
        return self._withdraw_earlier_ticket(player_id)

    def _withdraw_earlier_ticket(self, player_id: str) -> Deferred[bool]:
        """A player came back on a new connection (their lobby connection was lost, or
        their lobby died): the ticket they left queued, in any lobby, is withdrawn, so
        that nobody is matched with it; whether there was one.

        A party's ticket is its leader's and goes with the party's own rules. If this
        lobby still holds the player's earlier connection, queued, that connection is
        told `session_replaced` and closed.
        """
        if self.parties.party_of(player_id) is not None:
            return succeed(False)
        earlier = self._players.connection_of(player_id)
        if earlier is not None:
            if earlier.state is not PlayerState.QUEUED:
                return succeed(False)
            self._players.unbind(earlier)
            earlier.push(
                error_frame(errors.SESSION_REPLACED, "the player came back on another connection"),
                final=True,
            )

        def cancelled(removed: bool) -> bool:
            if removed:
                self.log.info(
                    "player {player_id} came back: their queued ticket was withdrawn",
                    player_id=player_id,
                )
                self._limits.uncount_pending(player_id)
                self._players.forget(player_id)
            return removed

        return self._matchmaker.cancel(player_id).addCallback(cancelled)

    def _queue(self, connection: LobbyConnection, request: Queue) -> Deferred[None] | None:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello before queueing")
        # Before the state: a member's state follows the party's ticket, which only its
        # leader queues and cancels.
        self.parties.check_leader(player_id, "queues")
        if connection.state is PlayerState.QUEUED:
            raise LobbyError(errors.ALREADY_QUEUED, f"already queued for {connection.game}")
        if connection.state is PlayerState.IN_ROOM:
            raise LobbyError(errors.ALREADY_IN_ROOM, "in an open room; leave it to queue")
        if connection.state is PlayerState.MATCHED or self._limits.is_pending(player_id):
            # (A signed-in player keeps their id: one who signed in again while their
            # match runs plays it out, or reconnects to it, before queueing again.)
            raise LobbyError(errors.ALREADY_QUEUED, "already in a match")
        if self.draining:
            raise LobbyError(
                errors.SERVER_DRAINING, "the server is shutting down and takes no new players"
            )
        if request.game not in self.games:
            raise LobbyError(
                errors.UNKNOWN_GAME, f"no game called {quote_for_message(request.game)}"
            )
        if request.queue not in QUEUES:
            raise LobbyError(
                errors.UNKNOWN_QUEUE,
                f"no queue called {quote_for_message(request.queue)}: the queues are "
                + " and ".join(f'"{q}"' for q in QUEUES),
            )
        party = self.parties.party_of(player_id)
        if party is not None:
            # A party queues as one ticket, its leader's.
            return self.parties.queue(connection, request, party)
        self._limits.check_queue(connection.client, connection.peer_host)
        if request.queue != RANKED_QUEUE:
            # A normal queue ignores ratings: the claim is recorded as it is.
            return self._enqueue(connection, request, player_id, request.rating)
        d = rating_of(self._ratings, player_id, request.game, request.rating)
        return d.addCallback(lambda rating: self._enqueue(connection, request, player_id, rating))

    def _enqueue(
        self, connection: LobbyConnection, request: Queue, player_id: str, rating: float | None
    ) -> Deferred[None] | None:
        if connection.closing:
            # Gone while the rating source answered (and forgotten: it was idle).
            return None
        if self.draining:
            raise LobbyError(
                errors.SERVER_DRAINING, "the server is shutting down and takes no new players"
            )
        self._limits.count_pending(player_id, connection.client)
        ticket = Ticket(
            player_id, connection.name, request.game, rating, self._clock.seconds(),
            request.queue,
        )  # fmt: skip
        # QUEUED before enqueue: a matchmaker may form the match inside enqueue().
        connection.queued(request.game)

        def queued(position: int) -> None:
            if connection.closing:
                # The connection dropped while the ticket was being queued.
                if connection.state is PlayerState.QUEUED:
                    self._cancel_ticket_of_gone(player_id)
                return
            connection.reply(request, queued_frame(request.game, request.queue, position))

        def refused(failure: Failure) -> Failure:
            self._limits.uncount_pending(player_id)
            if connection.state is PlayerState.QUEUED:
                connection.unqueued()
            if failure.check(AlreadyQueued):
                raise LobbyError(errors.ALREADY_QUEUED, "already queued")
            return failure

        return self._matchmaker.enqueue(ticket).addCallbacks(queued, refused)

    def _cancel(self, connection: LobbyConnection, request: Cancel) -> Deferred[None]:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        self.parties.check_leader(player_id, "cancels")
        if connection.state is PlayerState.MATCHED:
            raise LobbyError(errors.NOT_QUEUED, "the match has been formed; it cannot be cancelled")
        if connection.state is not PlayerState.QUEUED:
            raise LobbyError(errors.NOT_QUEUED, "not in a queue")
        party = self.parties.party_of(player_id)
        if party is not None:
            return self.parties.cancel(connection, request, party)

        def cancelled(removed: bool) -> None:
            if not removed:
                raise LobbyError(
                    errors.NOT_QUEUED, "not in a queue (the match may just have formed)"
                )
            self._limits.uncount_pending(player_id)
            game = connection.game
            connection.unqueued()
            connection.reply(request, {"type": "cancelled", "game": game})

        # Refused if Redis only gets it after the player is told `unavailable`.
        return self._matchmaker.cancel(player_id, refuse_late=True).addCallback(cancelled)

    def _rankings(
        self, connection: LobbyConnection, request: GetLeaderboard | GetHistory
    ) -> Deferred[None]:
        """A leaderboard page, or the player's own history (a signed-in player's)."""
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        signed_in = self._auth is not None and self._auth.required
        if isinstance(request, GetLeaderboard):
            if request.around and not signed_in:
                raise LobbyError(errors.NOT_SIGNED_IN, "a guest has no place on a leaderboard: "
                                 "sign in to see the page around you")  # fmt: skip
            d = self.rankings.leaderboard(request.game, request.queue, request.limit,
                                          player_id if request.around else None)  # fmt: skip
        elif not signed_in and self.rankings.has_accounts:
            raise LobbyError(errors.NOT_SIGNED_IN, "a guest has no match history: sign in")
        else:
            d = self.rankings.history(player_id, request.limit)

        def answer(frame: dict[str, object]) -> None:
            if not connection.closing:
                connection.reply(request, frame)

        return d.addCallback(answer)

    def _spectate(self, connection: LobbyConnection, request: Spectate) -> Deferred[None]:
        """A token for a spectator's stream to the match's game host (`spectating`).

        Whether the match may be watched is its own policy, read with its placement
        (`Match.spectators`), by the rule `/replays/` follows too
        (vinom.match.watch_refusal): so every lobby answers alike, whichever held its
        room."""
        if connection.state is PlayerState.NEW:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        if request.code is not None:
            # Join codes are short: a guess is counted with `party_join`'s.
            code = normal_code(request.code)
            checked = self._limits.check_code_guess(connection.client, connection.peer_host)
            return checked.addCallback(
                lambda _: self._watch(connection, request, self.rooms.watchable.get(code))
            )
        return self._watch(connection, request, request.match_id)

    def _watch(
        self, connection: LobbyConnection, request: Spectate, match_id: str | None
    ) -> Deferred[None]:
        # One answer for a match that is not running, a private room's code that lets
        # nobody watch, and such a room's match asked for by id: neither can be probed.
        if match_id is None:
            raise LobbyError(errors.NO_ACTIVE_MATCH, "no running match has this id")

        def placed(placement: MatchPlacement | None) -> Deferred[None] | None:
            refusal = None if placement is None else watch_refusal(
                placement.match.spectators, ended=placement.ended, replay=False,
                # A player of the match (by account, where players sign in) watches it.
                player=connection.player_id in placement.match.player_ids,
            )
            if placement is None or refusal == NO_SPECTATORS:
                raise LobbyError(errors.NO_ACTIVE_MATCH, "no running match has this id")
            if refusal is not None:
                raise LobbyError(errors.MATCH_ENDED, "this match has ended")
            return self._placer.confirm_running(placement.match_id).addCallback(
                answer, placement
            )

        def answer(running: bool, placement: MatchPlacement) -> None:
            if not running:
                raise LobbyError(errors.NO_ACTIVE_MATCH, "no running match has this id")
            if connection.closing:
                return
            connection.reply(request, self._delivery.spectating_frame(placement))

        return self._store.get_placement(match_id).addCallback(placed)

    def _bind_replacing(self, player_id: str, connection: LobbyConnection) -> None:
        """The player is on `connection` now; a previous connection of theirs is told
        `session_replaced` and closed."""
        previous = self._players.bind(player_id, connection)
        if previous is not None:
            previous.push(
                error_frame(
                    errors.SESSION_REPLACED, "the player reconnected on another connection"
                ),
                final=True,
            )
