"""The matchmaker seam and its errors.

A matchmaker turns `Ticket`s into `Match`es (records of vinom.match).
Matchmakers return Deferreds because the Redis implementation sits behind the
same interface as the in-memory one. docs/matchmaking.md describes the queues.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from zope.interface import Interface

from vinom.match import Match, Ticket

MatchListener = Callable[[Match], object]


class IMatchmaker(Interface):
    """Forms matches from queued tickets; every listener hears of every match."""

    def enqueue(ticket: Ticket) -> Deferred[int]:
        """Queue a ticket; fires with its 1-based position in its game's queue.

        A party's ticket (`ticket.size` > 1) is matched as one unit: all its
        players in the same match, in adjacent seats (in one team, in a game
        with teams), or none of them. Fails with `PartyTooLarge` if it has
        more players than its game's match size or team size, or, in a `ranked`
        queue, than one side of the match (`windows.largest_party`).

        Fails with `AlreadyQueued` if the player is queued already, with
        `UnknownGame` (vinom.errors) or `UnknownQueue` if the ticket names no queue this
        matchmaker keeps.
        """

    def requeue(ticket: Ticket) -> Deferred[int]:
        """Queue a ticket at the head of its game's queue (its match failed through no
        fault of its player); fires with its position, as `enqueue`."""

    def cancel(player_id: str, *, refuse_late: bool = False) -> Deferred[bool]:
        """Remove a player's ticket; fires True if it was queued.

        A matchmaker that may fail a call it could not make in time (Redis's,
        with `BackendUnavailable`) still makes it later, once it can: what a
        withdrawal for a player who is gone wants. With `refuse_late`, for a
        caller that answers a player, a cancel that fails did nothing: the
        ticket stays queued.
        """

    def position(player_id: str) -> Deferred[int | None]:
        """The player's current 1-based position, or None if not queued."""

    def add_listener(listener: MatchListener) -> None:
        """Call `listener(match)` for every match formed from now on."""

    def adopt(player_id: str) -> Deferred[Match | None]:
        """The match a player's ticket was matched into, if this lobby did not hear it
        (with several lobbies, one holding none of its players): its listeners hear it
        now, and the lobby follows it. None if the player's ticket is in no match
        waiting for its game host."""


class AlreadyQueued(Exception):
    """The player already has a ticket in some queue."""


class PartyTooLarge(ValueError):
    """A party's ticket has more players than its queue takes in one match (or one team):
    `largest` is the most it takes (vinom.matchmaking.windows.largest_party)."""

    def __init__(self, message: str, largest: int) -> None:
        super().__init__(message)
        self.largest = largest


class UnknownQueue(ValueError):
    """A ticket named a queue other than "normal" and "ranked"."""
