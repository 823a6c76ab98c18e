"""The in-memory FIFO matchmaker: one queue per game, first come first matched.

A match forms as soon as a game's queue holds as many tickets as the game's
match size; the oldest tickets are matched together, in queue order (which
is seat order). A player holds at most one ticket in one queue, and a ticket
is removed from its queue before its match is announced, so nobody is ever
matched twice. Ratings are carried but not used here; a rating-window
matchmaker sits behind the same `IMatchmaker` interface.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from vinom.matchmaking.interfaces import (
    AlreadyQueued,
    IMatchmaker,
    Match,
    MatchListener,
    Ticket,
)


class UnknownGame(ValueError):
    """A ticket named a game this matchmaker has no queue for."""


def new_match_id() -> str:
    """'m-' and 16 random hex digits."""
    return "m-" + secrets.token_hex(8)


@implementer(IMatchmaker)
class FifoMatchmaker:
    """Queues per game; `match_sizes` maps a game name to the players one match needs."""

    log = Logger()

    def __init__(
        self,
        match_sizes: Mapping[str, int],
        clock: IReactorTime,
        *,
        new_id: Callable[[], str] = new_match_id,
    ) -> None:
        for game, size in match_sizes.items():
            if size < 1:
                raise ValueError(f"game {game!r} has match size {size}; it must be at least 1")
        self._sizes = dict(match_sizes)
        self._clock = clock
        self._new_id = new_id
        # dicts keep insertion order: each is one FIFO queue keyed by player id.
        self._queues: dict[str, dict[str, Ticket]] = {game: {} for game in match_sizes}
        self._game_of: dict[str, str] = {}
        self._listeners: list[MatchListener] = []

    def queue_length(self, game: str) -> int:
        """Tickets waiting for `game`."""
        return len(self._queues.get(game, ()))

    def enqueue(self, ticket: Ticket) -> Deferred[int]:
        queue = self._queues.get(ticket.game)
        if queue is None:
            return fail(UnknownGame(ticket.game))
        if ticket.player_id in self._game_of:
            return fail(AlreadyQueued(ticket.player_id))
        queue[ticket.player_id] = ticket
        self._game_of[ticket.player_id] = ticket.game
        position = len(queue)
        self._form_matches(ticket.game)
        return succeed(position)

    def requeue(self, ticket: Ticket) -> Deferred[int]:
        queue = self._queues.get(ticket.game)
        if queue is None:
            return fail(UnknownGame(ticket.game))
        if ticket.player_id in self._game_of:
            return fail(AlreadyQueued(ticket.player_id))
        # dicts keep insertion order: rebuild the queue with this ticket first.
        rest = dict(queue)
        queue.clear()
        queue[ticket.player_id] = ticket
        queue.update(rest)
        self._game_of[ticket.player_id] = ticket.game
        self._form_matches(ticket.game)
        return succeed(1)

    def cancel(self, player_id: str) -> Deferred[bool]:
        game = self._game_of.pop(player_id, None)
        if game is None:
            return succeed(False)
        del self._queues[game][player_id]
        return succeed(True)

    def position(self, player_id: str) -> Deferred[int | None]:
        game = self._game_of.get(player_id)
        if game is None:
            return succeed(None)
        for index, queued in enumerate(self._queues[game]):
            if queued == player_id:
                return succeed(index + 1)
        raise AssertionError("a player indexed to a game is in that game's queue")

    def add_listener(self, listener: MatchListener) -> None:
        self._listeners.append(listener)

    def _form_matches(self, game: str) -> None:
        queue = self._queues[game]
        size = self._sizes[game]
        while len(queue) >= size:
            players = []
            for player_id in list(queue)[:size]:
                players.append(queue.pop(player_id))
                del self._game_of[player_id]
            match = Match(self._new_id(), game, tuple(players), self._clock.seconds())
            for listener in list(self._listeners):
                try:
                    listener(match)
                except Exception:
                    # One failing listener must not keep the match from the others.
                    self.log.failure(
                        "match listener failed for {match_id}", match_id=match.match_id
                    )
