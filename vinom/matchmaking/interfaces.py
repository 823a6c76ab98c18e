"""The values that travel through matchmaking and the matchmaker seam.

A `Ticket` is one player waiting for one game; a `Match` is the players the
matchmaker put together. Matchmakers return Deferreds from day one because a
Redis implementation sits behind the same interface as the in-memory one.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen
from twisted.internet.defer import Deferred
from zope.interface import Interface


@frozen
class Ticket:
    """One player waiting in a game's queue."""

    player_id: str
    name: str
    game: str
    rating: float | None
    queued_at: float
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


MatchListener = Callable[[Match], object]


class IMatchmaker(Interface):
    """Forms matches from queued tickets; every listener hears of every match."""

    def enqueue(ticket: Ticket) -> Deferred[int]:
        """Queue a ticket; fires with its 1-based position in its game's queue.

        Fails with `AlreadyQueued` if the player is queued already.
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
