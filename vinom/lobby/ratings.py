"""Where the rating of a ranked ticket comes from: the client's claim, or the server's word.

As with Nakama's matchmaker, the client sends its rating with its request
(`queue`'s optional `rating`), and the server may check or replace it. The
lobby asks its `IRatingSource` for the rating of every player it puts in a
ranked queue; the default, `ClaimedRatings`, takes the client's claim as it
is (none: the ticket is unrated and fits any window). A game server that
keeps ratings itself passes the lobby a source that looks them up, and may
refuse a ticket with `RatingRefused`. `StoredRatings` is the source of a
server with accounts where players sign in: the account database's rating
(its `mu`, on the windows' scale), whatever the client claims. docs/lobby.md ("queue → queued") and
docs/matchmaking.md ("How ratings reach tickets") describe what players see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from vinom.accounts.interfaces import IAccountStore
from vinom.accounts.records import Rating
from vinom.errors import LobbyError
from vinom.lobby import errors
from vinom.lobby.request_types import MAX_RATING


class RatingRefused(Exception):
    """An `IRatingSource` will not rate this ticket; `message` is shown to the player."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IRatingSource(Interface):
    """Decides the rating a player's ranked ticket carries."""

    def rating(player_id: str, game: str, claimed: float | None) -> Deferred[float | None]:
        """The rating of `player_id`'s ranked ticket for `game`, None for unrated.

        `claimed` is the `rating` of the `queue` frame (for a party, the
        leader's, asked for every member), already checked to be a finite
        number within `MAX_RATING`, or None. May answer with a plain value or
        a Deferred; fail with `RatingRefused` to refuse the ticket (the
        player gets `rating_refused`).
        """


@implementer(IRatingSource)
class ClaimedRatings:
    """The default source: the client's claim, as it is."""

    def rating(self, player_id: str, game: str, claimed: float | None) -> Deferred[float | None]:
        return succeed(claimed)


@implementer(IRatingSource)
class StoredRatings:
    """The account database's rating of the player's account in the game's ranked
    queue (a new player's, mu 1,500, before their first ranked match there); the
    claim is ignored. The `mu` is what the ticket carries: the rating windows are
    written on its scale (vinom.accounts.ratings)."""

    def __init__(self, accounts: IAccountStore, queue: str = "ranked") -> None:
        self._accounts = accounts
        self._queue = queue

    def rating(self, player_id: str, game: str, claimed: float | None) -> Deferred[float | None]:
        d: Deferred[dict[str, Rating]] = self._accounts.ratings_of([player_id], game,
                                                                    self._queue)  # fmt: skip
        return d.addCallback(lambda ratings: ratings[player_id].mu)


def rating_of(
    source: IRatingSource, player_id: str, game: str, claimed: float | None
) -> Deferred[float | None]:
    """Ask `source`; `RatingRefused` becomes a `rating_refused` `LobbyError`, and an answer
    that is not a finite number within `MAX_RATING` (nor None) a `ValueError`."""

    def checked(value: object) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or abs(value) > MAX_RATING
        ):
            raise ValueError(f"the rating source gave {value!r} for {player_id}: not a rating")
        return float(value)

    def refused(failure: Failure) -> None:
        failure.trap(RatingRefused)
        error = failure.value
        assert isinstance(error, RatingRefused)
        raise LobbyError(errors.RATING_REFUSED, error.message)

    d = maybeDeferred(source.rating, player_id, game, claimed)
    return d.addCallbacks(checked, refused)


def party_rating(ratings: Sequence[float | None]) -> float | None:
    """A party's rating: the mean of its members' ratings, leaving out the unrated
    (None if nobody is rated)."""
    rated = [r for r in ratings if r is not None]
    return sum(rated) / len(rated) if rated else None
