"""The lobby's party requests: party_create, party_join, party_leave, and a party's queue.

A player who said hello and is idle may start a party (`party_create`,
answered with its id and join code) or join a friend's with the code
(`party_join`). The party's state is its `IPartyStore`'s (vinom.parties): in
Redis, its members may be connected to different lobbies. Every change
reaches every lobby as a `PartyChange`; each lobby tells the members it
holds with `party_update` (the member whose request made the change gets the
answer to it instead), and moves them in and out of the queue with the
party.

The leader's `queue` queues the whole party as one ticket (the leader's,
carrying the others'), matched as one unit; the members are told `queued`. A
member's `queue` or `cancel` is refused with `not_party_leader`. A member
who leaves (or disconnects) while the party is queued withdraws its ticket:
the others are told `cancelled`. When the leader leaves, the longest-standing
member leads. docs/lobby.md, "Parties", describes the frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.errors import BackendUnavailable, LobbyError
from vinom.games.rules import GameRules
from vinom.lobby import errors
from vinom.lobby.codec import queued_frame
from vinom.lobby.connection import LobbyConnection, PlayerState
from vinom.lobby.limits import LobbyLimits
from vinom.lobby.players import Players, log_failure
from vinom.lobby.ratings import ClaimedRatings, IRatingSource, party_rating, rating_of
from vinom.lobby.request_types import Cancel, PartyCreate, PartyJoin, PartyLeave, Queue
from vinom.match import NORMAL_QUEUE, RANKED_QUEUE, Match, Ticket
from vinom.matchmaking.interfaces import AlreadyQueued, IMatchmaker, PartyTooLarge
from vinom.matchmaking.windows import party_too_large
from vinom.parties.interfaces import (
    CREATED,
    LEFT,
    MATCHED,
    PARTY_FULL,
    PARTY_QUEUED,
    QUEUED,
    UNQUEUED,
    IPartyStore,
    Party,
    PartyChange,
    PartyError,
    PartyMember,
)

# What `party_join` answers for a code of no party, of a full party and of a queued one
# alike: a guess must not tell a live code from a dead one.
_NOT_JOINABLE = frozenset({errors.UNKNOWN_PARTY, PARTY_FULL, PARTY_QUEUED})
NOT_JOINABLE_MESSAGE = "no party with that join code can be joined now (none, full or queued)"

# The `reason` of the `cancelled` frame members get when their party's ticket is withdrawn.
LEADER_CANCELLED = "leader_cancelled"
MEMBER_LEFT = "member_left"
# The `reason` of the `party_left` a member gets who was taken out of their party
# without asking: their lobby's lease lapsed (it stalled, or lost Redis) and the
# other lobbies took them for gone (docs/lobby.md, "Parties").
LOBBY_LAPSED = "lobby_lapsed"


class PartyRequests:
    """Serves the party requests of every connection of one lobby and tells its
    connected members of every change to their parties."""

    log = Logger()

    def __init__(
        self,
        *,
        games: Mapping[str, GameRules],
        store: IPartyStore,
        matchmaker: IMatchmaker,
        players: Players,
        limits: LobbyLimits,
        clock: IReactorTime,
        draining: Callable[[], bool],
        ratings: IRatingSource | None = None,
    ) -> None:
        self._games = games
        self._ratings = ratings or ClaimedRatings()
        self.store = store
        self._matchmaker = matchmaker
        self._players = players
        self._limits = limits
        self._clock = clock
        self._draining = draining
        # The party of each player connected here, as the last change told it.
        self._party_of: dict[str, Party] = {}
        # Players whose own `party_leave` is being served (they get its answer).
        self._leaving: set[str] = set()
        store.add_listener(self.party_changed)

    def party_of(self, player_id: str) -> Party | None:
        """The party of a player connected here, or None."""
        return self._party_of.get(player_id)

    def check_leader(self, player_id: str, what: str) -> None:
        """Raise `not_party_leader` if the player is in a party they do not lead (the
        leader `what`: queues or cancels for the whole party)."""
        party = self._party_of.get(player_id)
        if party is not None and party.leader != player_id:
            raise LobbyError(
                errors.NOT_PARTY_LEADER, f"only the party's leader {what} for the party"
            )

    # -- requests

    def create(self, connection: LobbyConnection, request: PartyCreate) -> Deferred[None]:
        player_id = self._may_join(connection)
        member = PartyMember(player_id, connection.name)
        d = self.store.create(member)
        return d.addCallbacks(lambda party: self._entered(connection, request, party), _refused)

    def join(self, connection: LobbyConnection, request: PartyJoin) -> Deferred[None]:
        player_id = self._may_join(connection)
        member = PartyMember(player_id, connection.name)

        async def join() -> None:
            # Every attempt counts against the address (across lobbies with Redis), so
            # codes cannot be tried fast; and a code that names a party that is full or
            # queued is answered like one that names none, so a guess learns nothing
            # until it is right and the party has room.
            await self._limits.check_code_guess(connection.client, connection.peer_host)
            try:
                party = await self.store.join(request.code, member)
            except PartyError as e:
                if e.code in _NOT_JOINABLE:
                    raise LobbyError(errors.UNKNOWN_PARTY, NOT_JOINABLE_MESSAGE) from None
                raise LobbyError(e.code, e.message) from None
            self._entered(connection, request, party)

        return Deferred.fromCoroutine(join())

    def leave(self, connection: LobbyConnection, request: PartyLeave) -> Deferred[None]:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        party = self._party_of.get(player_id)
        if party is None:
            raise LobbyError(errors.NOT_IN_PARTY, "you are not in a party")

        async def leave() -> None:
            withdrawn = False
            if connection.state is PlayerState.QUEUED:
                # Out of the queue first: the ticket must not be matched with a
                # player who has left.
                if await self._matchmaker.cancel(party.leader, refuse_late=True):
                    self._limits.uncount_pending(party.leader)
                if connection.state is PlayerState.QUEUED:
                    connection.unqueued()
                withdrawn = True
            self._leaving.add(player_id)
            try:
                await self.store.leave(player_id, refuse_late=True)
            except PartyError as e:
                self._party_of.pop(player_id, None)
                raise LobbyError(e.code, e.message) from None
            except BackendUnavailable:
                # Still in the party (answered `unavailable`). A ticket withdrawn
                # already stays withdrawn: the party is told it is no longer queued
                # once Redis answers.
                if withdrawn:
                    d = self.store.set_queued(party.party_id, None)
                    d.addErrback(lambda f: f.trap(PartyError))
                    d.addErrback(log_failure, self.log, "unqueueing the party of {player_id}",
                                 player_id)  # fmt: skip
                raise
            finally:
                self._leaving.discard(player_id)
            self._party_of.pop(player_id, None)
            connection.reply(request, {"type": "party_left", "party_id": party.party_id})

        return Deferred.fromCoroutine(leave())

    def queue(self, connection: LobbyConnection, request: Queue, party: Party) -> Deferred[None]:
        """The leader queues the party (the caller checked the player may queue)."""
        player_id = connection.player_id
        assert player_id is not None
        if party.leader != player_id:
            raise LobbyError(
                errors.NOT_PARTY_LEADER, "only the party's leader queues the party"
            )
        # Refused before any rating is read (the matchmaker checks it again, as
        # every enqueue).
        too_large = party_too_large(len(party.members), request.game, request.queue,
                                    self._games[request.game])  # fmt: skip
        if too_large is not None:
            raise refused_party(too_large)
        self._limits.check_queue(connection.client, connection.peer_host)

        async def queue() -> None:
            rating = request.rating
            if request.queue == RANKED_QUEUE:
                # Every member is rated (the leader's claim stands for each), and the
                # party is matched at their mean: docs/matchmaking.md, "Parties".
                ratings = [
                    await rating_of(self._ratings, m.player_id, request.game, request.rating)
                    for m in party.members
                ]
                rating = party_rating(ratings)
                if connection.closing:
                    return
                if self._draining():
                    raise LobbyError(
                        errors.SERVER_DRAINING,
                        "the server is shutting down and takes no new players",
                    )
            now = self._clock.seconds()
            members = tuple(
                Ticket(m.player_id, m.name, request.game, rating, now, request.queue,
                       party_id=party.party_id)
                for m in party.members[1:]
            )  # fmt: skip
            ticket = Ticket(
                player_id, connection.name, request.game, rating, now, request.queue,
                party_id=party.party_id, members=members,
            )  # fmt: skip
            self._limits.count_pending(player_id, connection.client)
            # QUEUED before enqueue: a matchmaker may form the match inside enqueue().
            connection.queued(request.game)
            try:
                position = await self._matchmaker.enqueue(ticket)
            except AlreadyQueued:
                self._unqueue(connection, player_id)
                raise LobbyError(errors.ALREADY_QUEUED, "already queued") from None
            except PartyTooLarge as e:
                self._unqueue(connection, player_id)
                raise refused_party(e) from None
            except BaseException:
                self._unqueue(connection, player_id)
                raise
            if connection.state is PlayerState.QUEUED:
                # Not matched inside enqueue: the members are told (and checked:
                # a member who joined or left meanwhile is not on the ticket).
                try:
                    await self.store.set_queued(
                        party.party_id, request.game, ticket.player_ids, position,
                        queue=request.queue,
                    )  # fmt: skip
                except PartyError as e:
                    if await self._matchmaker.cancel(player_id):
                        self._unqueue(connection, player_id)
                    raise LobbyError(e.code, e.message) from None
                except BackendUnavailable:
                    # Answered `unavailable`, so the party must not stay queued:
                    # the ticket is withdrawn (once Redis answers, if not before).
                    self._unqueue(connection, player_id)
                    d = self._matchmaker.cancel(player_id)
                    d.addErrback(log_failure, self.log, "cancelling the ticket of {player_id}",
                                 player_id)  # fmt: skip
                    raise
            if connection.closing:
                return
            connection.reply(request, queued_frame(request.game, request.queue, position,
                                                   party_id=party.party_id))

        return Deferred.fromCoroutine(queue())

    def cancel(self, connection: LobbyConnection, request: Cancel, party: Party) -> Deferred[None]:
        """A queued party's member cancels (the caller checked the player is queued)."""
        player_id = connection.player_id
        assert player_id is not None
        if party.leader != player_id:
            raise LobbyError(
                errors.NOT_PARTY_LEADER, "only the party's leader cancels the party's ticket"
            )

        async def cancel() -> None:
            if not await self._matchmaker.cancel(player_id, refuse_late=True):
                raise LobbyError(
                    errors.NOT_QUEUED, "not in a queue (the match may just have formed)"
                )
            game = connection.game
            self._unqueue(connection, player_id)
            # Gone: nobody is left to tell. Unavailable: the members are told once
            # Redis answers (clearing is done late too); the cancel itself is done.
            with contextlib.suppress(PartyError, BackendUnavailable):
                await self.store.set_queued(party.party_id, None)
            connection.reply(
                request, {"type": "cancelled", "game": game, "party_id": party.party_id}
            )

        return Deferred.fromCoroutine(cancel())

    # -- what happens to players and matches

    def player_left(self, connection: LobbyConnection) -> None:
        """A member's connection is gone: they leave their party. A member (not the
        leader: the lobby cancels a leader's own ticket) who was queued with the
        party withdraws its ticket first."""
        player_id = connection.player_id
        if player_id is None:
            return
        party = self._party_of.pop(player_id, None)
        if party is None:
            return

        async def leave() -> None:
            queued_member = connection.state is PlayerState.QUEUED and party.leader != player_id
            if queued_member and await self._matchmaker.cancel(party.leader):
                self._players.forget(player_id)
            await self.store.leave(player_id)

        d = Deferred.fromCoroutine(leave())
        d.addErrback(log_failure, self.log, "taking {player_id} out of their party", player_id)

    def match_formed(self, match: Match) -> None:
        """A matchmaker listener: a party whose leader is connected here is no longer queued."""
        leaders = {}
        for ticket in match.players:
            if ticket.party_id is not None and ticket.party_id not in leaders:
                leaders[ticket.party_id] = ticket.player_id
        for party_id, leader in leaders.items():
            if self._players.is_connected(leader):
                d = self.store.set_queued(party_id, None, matched=True)
                d.addErrback(lambda f: f.trap(PartyError))
                d.addErrback(log_failure, self.log, "clearing the party of {player_id}", leader)

    def party_changed(self, change: PartyChange) -> None:
        """The store's listener: tell the members connected here, and move them in and
        out of the queue with their party."""
        party = change.party
        if change.event == LEFT:
            was_in = self._party_of.pop(change.player_id, None)
            if was_in is not None and change.player_id not in self._leaving:
                self._taken_out(change.player_id, was_in)
        for member in party.members:
            connection = self._players.connection_of(member.player_id)
            if connection is None:
                continue
            self._party_of[member.player_id] = party
            if member.player_id != change.player_id and change.event not in (CREATED, MATCHED):
                connection.push(
                    {
                        "type": "party_update",
                        "event": change.event,
                        "player_id": change.player_id,
                        "party": party.describe(),
                    }
                )
            self._follow_queue(connection, change)

    def _follow_queue(self, connection: LobbyConnection, change: PartyChange) -> None:
        party = change.party
        player_id = connection.player_id
        assert player_id is not None
        if change.event == QUEUED and party.queued_for is not None:
            if player_id == party.leader or connection.state is not PlayerState.IDLE:
                return
            connection.queued(party.queued_for)
            connection.push(queued_frame(party.queued_for, party.queue or NORMAL_QUEUE,
                                         change.position, party_id=party.party_id))
        elif change.event in (UNQUEUED, LEFT) and connection.state is PlayerState.QUEUED:
            if player_id == change.player_id:
                return  # the member who cancelled or left has their answer
            reason = LEADER_CANCELLED if change.event == UNQUEUED else MEMBER_LEFT
            self._cancel_member(connection, party, reason)

    def _cancel_member(self, connection: LobbyConnection, party: Party, reason: str) -> None:
        """A member connected here, queued with the party, is out of the queue, told
        `cancelled` with `reason`; the party's ticket goes if it is theirs."""
        player_id = connection.player_id
        game = connection.game
        if player_id == party.leader:
            # The ticket is the leader's: this lobby owns it (and counted it).
            d = self._matchmaker.cancel(player_id)
            d.addErrback(log_failure, self.log, "cancelling the ticket of {player_id}",
                         player_id)  # fmt: skip
            self._limits.uncount_pending(player_id)
        connection.unqueued()
        connection.push({"type": "cancelled", "game": game, "party_id": party.party_id,
                         "reason": reason})  # fmt: skip

    def _taken_out(self, player_id: str, party: Party) -> None:
        """A member connected here was taken out of their party without asking (their
        lobby's lease lapsed, and a lobby holding another member took them for gone):
        they are told, and out of the queue if they were queued with the party."""
        connection = self._players.connection_of(player_id)
        if connection is None or connection.closing:
            return
        if connection.state is PlayerState.QUEUED:
            self._cancel_member(connection, party, MEMBER_LEFT)
        self.log.info("player {player_id} was taken out of party {party_id}: this lobby's "
                      "lease had lapsed", player_id=player_id, party_id=party.party_id)  # fmt: skip
        connection.push({"type": "party_left", "party_id": party.party_id,
                         "reason": LOBBY_LAPSED})  # fmt: skip

    # -- helpers

    def _may_join(self, connection: LobbyConnection) -> str:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        if connection.state is PlayerState.IN_ROOM:
            raise LobbyError(errors.ALREADY_IN_ROOM, "in an open room; leave it first")
        if connection.state is not PlayerState.IDLE:
            raise LobbyError(errors.ALREADY_QUEUED, "already queued or in a match")
        if player_id in self._party_of:
            raise LobbyError(errors.ALREADY_IN_PARTY, "you are in a party already; leave it first")
        if self._draining():
            raise LobbyError(
                errors.SERVER_DRAINING, "the server is shutting down and takes no new players"
            )
        return player_id

    def _entered(self, connection: LobbyConnection, request: Any, party: Party) -> None:
        player_id = connection.player_id
        assert player_id is not None
        if connection.closing or not self._players.is_connected(player_id):
            # Gone while the store answered: out again.
            d = self.store.leave(player_id)
            d.addErrback(log_failure, self.log, "taking {player_id} out of their party", player_id)
            return
        self._party_of[player_id] = party
        connection.reply(request, {"type": "party", "party": party.describe()})

    def _unqueue(self, connection: LobbyConnection, player_id: str) -> None:
        self._limits.uncount_pending(player_id)
        if connection.state is PlayerState.QUEUED:
            connection.unqueued()


def _refused(failure: Failure) -> None:
    failure.trap(PartyError)
    error = failure.value
    assert isinstance(error, PartyError)
    raise LobbyError(error.code, error.message)


def refused_party(error: PartyTooLarge) -> LobbyError:
    """The `party_too_large` error of a queue that takes no party this large: the most
    players it takes in `largest`."""
    return LobbyError(errors.PARTY_TOO_LARGE, str(error), fields={"largest": error.largest})
