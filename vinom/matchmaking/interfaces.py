"""The values that travel through matchmaking and the matchmaker seam.

A `Ticket` is one player waiting for one game in one of its queues; a `Match`
is the players the matchmaker put together. Matchmakers return Deferreds
because the Redis implementation sits behind the same interface as the
in-memory one. docs/matchmaking.md describes the queues.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen
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
    return {
        "player_id": ticket.player_id,
        "name": ticket.name,
        "game": ticket.game,
        "rating": ticket.rating,
        "queued_at": ticket.queued_at,
        "queue": ticket.queue,
        "bot": ticket.bot,
    }


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

        Fails with `AlreadyQueued` if the player is queued already, with
        `UnknownGame` or `UnknownQueue` if the ticket names no queue this
        matchmaker keeps.
        """

    def requeue(ticket: Ticket) -> Deferred[int]:
        """Queue a ticket at the head of its game's queue (its match failed through no
        fault of its player); fires with its position, as `enqueue`."""

    def cancel(player_id: str) -> Deferred[bool]:
        """Remove a player's ticket; fires True if it was queued."""

    def position(player_id: str) -> Deferred[int | None]:
        """The player's current 1-based position, or None if not queued."""

    def add_listener(listener: MatchListener) -> None:
        """Call `listener(match)` for every match formed from now on."""


class AlreadyQueued(Exception):
    """The player already has a ticket in some queue."""


class UnknownGame(ValueError):
    """A ticket named a game this matchmaker has no queue for."""


class UnknownQueue(ValueError):
    """A ticket named a queue other than "normal" and "ranked"."""


class MatchmakerUnavailable(Exception):
    """The matchmaker's store did not answer in time (Redis down or unreachable)."""
