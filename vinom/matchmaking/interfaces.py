"""The values that travel through matchmaking and the matchmaker seam.

A `Ticket` is one player waiting for one game in one of its queues; a `Match`
is the players the matchmaker put together. Matchmakers return Deferreds
because the Redis implementation sits behind the same interface as the
in-memory one. docs/matchmaking.md describes the queues.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import evolve, frozen
from twisted.internet.defer import Deferred
from zope.interface import Interface

NORMAL_QUEUE = "normal"
"""First come, first matched; ratings are ignored."""

RANKED_QUEUE = "ranked"
"""Matched within rating windows that widen with waiting time (vinom.matchmaking.windows)."""

QUEUES = (NORMAL_QUEUE, RANKED_QUEUE)


@frozen
class Ticket:
    """One player waiting in one of a game's queues.

    `queued_at` is when the player first asked (a requeued ticket keeps it, so
    its rating window keeps the width it had grown to); `queue` is `"normal"`
    or `"ranked"`.
    """

    player_id: str
    name: str
    game: str
    rating: float | None
    queued_at: float
    queue: str = NORMAL_QUEUE
    # A seat the game's own bot plays on the game host (a room owner's `add_bot`):
    # nobody connects to it.
    bot: bool = False
    # A party's ticket is its leader's: `party_id` names the party and `members`
    # holds the other members' own tickets, seated right after the leader. The
    # matchmaker matches the party as one unit of `size` seats. In a formed
    # match every player has a ticket of their own (no `members`), each with
    # the party's `party_id`.
    party_id: str | None = None
    members: tuple[Ticket, ...] = ()

    @property
    def size(self) -> int:
        """The seats this ticket takes: 1, or its party's members."""
        return 1 + len(self.members)

    @property
    def seats(self) -> tuple[Ticket, ...]:
        """The tickets this one becomes in a match: its own (without `members`), then
        each member's, in join order."""
        if not self.members:
            return (self,)
        return (evolve(self, members=()), *self.members)

    @property
    def player_ids(self) -> tuple[str, ...]:
        """The players this ticket queues: its own, then its party members'."""
        return tuple(t.player_id for t in self.seats)


@frozen
class Match:
    """Players put together for one game; `players` is in seat order."""

    match_id: str
    game: str
    players: tuple[Ticket, ...]
    formed_at: float

    @property
    def player_ids(self) -> tuple[str, ...]:
        return tuple(t.player_id for t in self.players)


def ticket_to_json(ticket: Ticket) -> dict[str, Any]:
    """A ticket as a JSON object (in Redis, and on the pipe to game-host workers)."""
    data: dict[str, Any] = {
        "player_id": ticket.player_id,
        "name": ticket.name,
        "game": ticket.game,
        "rating": ticket.rating,
        "queued_at": ticket.queued_at,
        "queue": ticket.queue,
        "bot": ticket.bot,
    }
    # Only a party's tickets carry these: a solo ticket's JSON is as it always was.
    if ticket.party_id is not None:
        data["party_id"] = ticket.party_id
    if ticket.members:
        data["members"] = [ticket_to_json(m) for m in ticket.members]
    return data


def ticket_from_json(data: Mapping[str, Any]) -> Ticket:
    """The ticket `ticket_to_json` gave (KeyError, TypeError or ValueError if it is not one)."""
    rating = data["rating"]
    return Ticket(
        player_id=str(data["player_id"]),
        name=str(data["name"]),
        game=str(data["game"]),
        rating=None if rating is None else float(rating),
        queued_at=float(data["queued_at"]),
        queue=str(data.get("queue", NORMAL_QUEUE)),
        bot=bool(data.get("bot", False)),
        party_id=None if data.get("party_id") is None else str(data["party_id"]),
        members=tuple(ticket_from_json(m) for m in data.get("members", ())),
    )


def match_to_json(match: Match) -> dict[str, Any]:
    """A match as a JSON object."""
    return {
        "match_id": match.match_id,
        "game": match.game,
        "players": [ticket_to_json(t) for t in match.players],
        "formed_at": match.formed_at,
    }


def match_from_json(data: Mapping[str, Any]) -> Match:
    """The match `match_to_json` gave (KeyError, TypeError or ValueError if it is not one)."""
    return Match(
        match_id=str(data["match_id"]),
        game=str(data["game"]),
        players=tuple(ticket_from_json(t) for t in data["players"]),
        formed_at=float(data["formed_at"]),
    )


MatchListener = Callable[[Match], object]


class IMatchmaker(Interface):
    """Forms matches from queued tickets; every listener hears of every match."""

    def enqueue(ticket: Ticket) -> Deferred[int]:
        """Queue a ticket; fires with its 1-based position in its game's queue.

        A party's ticket (`ticket.size` > 1) is matched as one unit: all its
        players in the same match, in adjacent seats (in one team, in a game
        with teams), or none of them. Fails with `PartyTooLarge` if it has
        more players than its game's match size or team size.

        Fails with `AlreadyQueued` if the player is queued already, with
        `UnknownGame` or `UnknownQueue` if the ticket names no queue this
        matchmaker keeps.
        """

    def requeue(ticket: Ticket) -> Deferred[int]:
        """Queue a ticket at the head of its game's queue (its match failed through no
        fault of its player); fires with its position, as `enqueue`."""

    def cancel(player_id: str, *, refuse_late: bool = False) -> Deferred[bool]:
        """Remove a player's ticket; fires True if it was queued.

        A matchmaker that may fail a call it could not make in time (Redis's,
        with `MatchmakerUnavailable`) still makes it later, once it can: what a
        withdrawal for a player who is gone wants. With `refuse_late`, for a
        caller that answers a player, a cancel that fails did nothing: the
        ticket stays queued.
        """

    def position(player_id: str) -> Deferred[int | None]:
        """The player's current 1-based position, or None if not queued."""

    def add_listener(listener: MatchListener) -> None:
        """Call `listener(match)` for every match formed from now on."""


class AlreadyQueued(Exception):
    """The player already has a ticket in some queue."""


class PartyTooLarge(ValueError):
    """A party's ticket has more players than its game seats in one match (or one team)."""


class UnknownGame(ValueError):
    """A ticket named a game this matchmaker has no queue for."""


class UnknownQueue(ValueError):
    """A ticket named a queue other than "normal" and "ranked"."""


class MatchmakerUnavailable(Exception):
    """The matchmaker's store did not answer in time (Redis down or unreachable)."""
