"""`reconnect`: a returning player's first request on a new connection (in place of
`hello`, with the `secret` of their earlier `welcome`). It is answered with a fresh
connect token to their running match, the place kept for them at the head of its queue
when it was aborted (vinom.lobby.requeue), or the wait for its game host; else
`no_active_match` or `bad_secret`. `RequestHandlers.serve` hands it here.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.errors import LobbyError
from vinom.identity import verify_secret
from vinom.lobby import errors
from vinom.lobby.auth import SignedIn
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.codec import queued_frame
from vinom.lobby.connection import LobbyConnection, PlayerState
from vinom.lobby.delivery import TokenDelivery, UnroutableHost
from vinom.lobby.limits import LobbyLimits
from vinom.lobby.placement import MatchPlacer
from vinom.lobby.players import Players
from vinom.lobby.request_types import Auth, Reconnect
from vinom.lobby.requeue import KeptPlace, Requeues
from vinom.match import Match, Ticket
from vinom.store.interfaces import MatchPlacement, PlayerRecord

# The name an account is made with if its first sign-in is a `reconnect` (which has none).
RECONNECT_NAME = "player"


class ReconnectRequests:
    """Serves the `reconnect` of every connection of one lobby. What it shares with
    `hello` is its handlers': signing in, withdrawing a ticket left queued, binding the
    player to their new connection (the one before told `session_replaced`)."""

    log = Logger()

    def __init__(
        self,
        *,
        backends: LobbyBackends,
        players: Players,
        limits: LobbyLimits,
        placer: MatchPlacer,
        delivery: TokenDelivery,
        requeues: Requeues,
        sign_in: Callable[[LobbyConnection, Auth, str], Deferred[SignedIn] | None],
        withdraw_earlier_ticket: Callable[[str], Deferred[bool]],
        bind_replacing: Callable[[str, LobbyConnection], None],
        draining: Callable[[], bool],
    ) -> None:
        self._store = backends.store
        self._matchmaker = backends.matchmaker
        self._players = players
        self._limits = limits
        self._placer = placer
        self._delivery = delivery
        self._requeues = requeues
        self._sign_in = sign_in
        self._withdraw_earlier_ticket = withdraw_earlier_ticket
        self._bind_replacing = bind_replacing
        self._draining = draining

    def reconnect(self, connection: LobbyConnection, request: Reconnect) -> Deferred[None]:
        if connection.state is not PlayerState.NEW:
            raise LobbyError(
                errors.ALREADY_HELLO, "reconnect must be the first request of a connection"
            )
        player_id = request.player_id

        def verified(record: PlayerRecord | None) -> Deferred[None] | None:
            # One code for an unknown player and a wrong secret: ids are not an oracle. An
            # unknown player's secret is hashed and compared too, to take the same time.
            known = None if record is None else record.secret_hash
            if not verify_secret(request.secret, known) or record is None:
                raise LobbyError(errors.BAD_SECRET, "unknown player or wrong secret")
            if connection.closing:
                return None
            pending = self._placer.pending_match(player_id)
            if pending is not None:
                self._take_over(connection, record, pending, request)
                return None
            kept = self._requeues.claim(player_id)
            if kept is not None:
                return self._claim_place(connection, record, kept, request)
            return self._store.placement_for_player(player_id).addCallback(placed, record)

        def placed(placement: MatchPlacement | None, record: PlayerRecord) -> Deferred[None]:
            ticket = None if placement is None else placement.ticket_of(player_id)
            if placement is None:
                # Not placed (yet): their match may be waiting for its game host, formed
                # by other lobbies; this one then follows it.
                return self._matchmaker.adopt(player_id).addCallback(adopted, record)
            if ticket is None:
                # Back after their lobby connection was lost while queued: their
                # ticket goes (nobody is to be matched with it), and they queue again.
                return self._withdraw_earlier_ticket(player_id).addCallback(no_match)
            # Never a token for a dead host: its match ends instead, and a player this
            # lobby answers for takes the place kept for them.
            d = self._placer.confirm_running(placement.match_id)
            return d.addCallback(answer, placement, ticket, record)

        def adopted(match: Match | None, record: PlayerRecord) -> Deferred[None] | None:
            pending = None if match is None else self._placer.pending_match(player_id)
            if pending is None:
                return self._withdraw_earlier_ticket(player_id).addCallback(no_match)
            if not connection.closing:
                self._take_over(connection, record, pending, request)
            return None

        def answer(running: bool, placement: MatchPlacement, ticket: Ticket,
                   record: PlayerRecord) -> Deferred[None] | None:  # fmt: skip
            if connection.closing:
                return None
            if not running:
                kept = self._requeues.claim(player_id)
                if kept is not None:
                    return self._claim_place(connection, record, kept, request)
                raise LobbyError(errors.NO_ACTIVE_MATCH, "the player has no running match")
            try:
                frame = self._delivery.match_found_frame(placement.match, ticket,
                                                         placement.address)  # fmt: skip
            except UnroutableHost as e:
                self.log.warn("match {match_id}: {reason}", match_id=placement.match_id,
                              reason=str(e))  # fmt: skip
                raise LobbyError(errors.MATCH_FAILED, "the game server of this match cannot "
                                 "be reached through the relay") from None  # fmt: skip
            self.log.info(
                "player {player_id} reconnected to match {match_id}",
                player_id=player_id,
                match_id=placement.match_id,
            )
            connection.reply(request, frame, final=True)
            return None

        def no_match(withdrawn: bool) -> None:
            message = "the player has no running match"
            if withdrawn:
                message += " (their queued ticket was withdrawn: say hello and queue again)"
            raise LobbyError(errors.NO_ACTIVE_MATCH, message)

        signing = self._sign_in(connection, request.auth, RECONNECT_NAME)
        if signing is None:
            return self._store.get_player(player_id).addCallback(verified)

        def signed_in(signed: SignedIn) -> Deferred[None]:
            # Signed in as someone else: one answer with an unknown id and a wrong secret.
            if signed.player_id != player_id:
                raise LobbyError(errors.BAD_SECRET, "unknown player or wrong secret")
            return self._store.get_player(player_id).addCallback(verified)

        return signing.addCallback(signed_in)

    def _claim_place(
        self, connection: LobbyConnection, record: PlayerRecord, kept: KeptPlace,
        request: Reconnect,
    ) -> Deferred[None]:
        """A player whose match was aborted for players_missing or host_crashed takes
        the place kept for them at the head of its queue (vinom.lobby.requeue)."""
        player_id = record.player_id
        ticket = kept.ticket
        if self._draining():
            self._limits.uncount_pending(player_id)
            self._players.forget(player_id)
            raise LobbyError(
                errors.SERVER_DRAINING, "the server is shutting down and takes no new players"
            )
        connection.requeued(player_id, record.name, ticket.game, request.protocol)
        self._bind_replacing(player_id, connection)

        def queued(position: int) -> None:
            self.log.info(
                "player {player_id} is back at the head of the {game} queue",
                player_id=player_id,
                game=ticket.game,
            )
            connection.reply(request, queued_frame(ticket.game, ticket.queue, position,
                                                   requeued=True, reason=kept.reason))

        def refused(failure: Failure) -> Failure:
            self._limits.uncount_pending(player_id)
            if connection.state is PlayerState.QUEUED:
                connection.unqueued()
            return failure

        return self._matchmaker.requeue(ticket).addCallbacks(queued, refused)

    def _take_over(
        self, connection: LobbyConnection, record: PlayerRecord, match: Match, request: Reconnect
    ) -> None:
        """A player whose match still waits for a game host comes back on a new connection."""
        connection.took_over(record.player_id, record.name, match.game, request.protocol)
        self._bind_replacing(record.player_id, connection)
        connection.reply(request, self._placer.waiting_frame(match))
