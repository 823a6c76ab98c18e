"""The in-memory matchmaker: a `normal` (FIFO) and a `ranked` queue per game.

In a `normal` queue a match forms as soon as the queue holds tickets enough
to fill the game's seats; the oldest tickets are matched together, in queue
order (which is seat order), and ratings are ignored. A party's ticket takes
one seat per member and is never split; one that does not fit in the seats
left is passed over and keeps its place (vinom.matchmaking.windows.fill_groups).
In a `ranked` queue the
tickets of one match must be within each other's rating windows
(vinom.matchmaking.windows); the windows widen while tickets wait, so ranked
queues are looked at again on every enqueue and every `reevaluate_every`
seconds while any ranked ticket waits. A player holds at most one ticket in
one queue, and a ticket is removed from its queue before its match is
announced, so nobody is ever matched twice. One process only: the Redis
matchmaker (vinom.cluster.matchmaker) shares queues between lobbies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from vinom.errors import UnknownGame
from vinom.games.rules import GameRules
from vinom.match import NORMAL_QUEUE, QUEUES, RANKED_QUEUE, Match, Ticket, new_match_id
from vinom.matchmaking.interfaces import (
    AlreadyQueued,
    IMatchmaker,
    MatchListener,
    UnknownQueue,
)
from vinom.matchmaking.windows import (
    DEFAULT_WINDOW,
    RatingWindow,
    fifo_groups,
    party_too_large,
    ranked_groups,
)


@implementer(IMatchmaker)
class MemoryMatchmaker:
    """Queues per game and queue kind, for the games of `games` (`GameRules` by name).

    A game's rules give its players per match, its team size (a party is
    seated in one team) and the `RatingWindow` of its ranked queue
    (`default_window` for a game that has none).
    """

    log = Logger()

    def __init__(
        self,
        games: Mapping[str, GameRules],
        clock: IReactorTime,
        *,
        new_id: Callable[[], str] = new_match_id,
        default_window: RatingWindow = DEFAULT_WINDOW,
        reevaluate_every: float = 1.0,
    ) -> None:
        if reevaluate_every <= 0:
            raise ValueError("reevaluate_every must be positive")
        self._games = dict(games)
        self._clock = clock
        self._new_id = new_id
        self._windows = {
            game: rules.rating_window or default_window for game, rules in games.items()
        }
        self._reevaluate_every = reevaluate_every
        # dicts keep insertion order: each is one queue keyed by player id.
        self._queues: dict[tuple[str, str], dict[str, Ticket]] = {
            (game, queue): {} for game in games for queue in QUEUES
        }
        self._queue_of: dict[str, tuple[str, str]] = {}
        self._listeners: list[MatchListener] = []
        self._timer: IDelayedCall | None = None

    def queue_length(self, game: str, queue: str | None = None) -> int:
        """Tickets waiting for `game` (in one queue, or in all of them)."""
        queues = QUEUES if queue is None else (queue,)
        return sum(len(self._queues.get((game, q), ())) for q in queues)

    def window(self, game: str) -> RatingWindow:
        """The rating window of `game`'s ranked queue."""
        return self._windows[game]

    def enqueue(self, ticket: Ticket) -> Deferred[int]:
        return self._add(ticket, at_head=False)

    def requeue(self, ticket: Ticket) -> Deferred[int]:
        return self._add(ticket, at_head=True)

    def _add(self, ticket: Ticket, *, at_head: bool) -> Deferred[int]:
        if ticket.game not in self._games:
            return fail(UnknownGame(ticket.game))
        if ticket.queue not in QUEUES:
            return fail(UnknownQueue(ticket.queue))
        if ticket.player_id in self._queue_of:
            return fail(AlreadyQueued(ticket.player_id))
        too_large = party_too_large(ticket.size, ticket.game, ticket.queue,
                                    self._games[ticket.game])
        if too_large is not None:
            return fail(too_large)
        key = (ticket.game, ticket.queue)
        queue = self._queues[key]
        if at_head:
            # dicts keep insertion order: rebuild the queue with this ticket first.
            rest = dict(queue)
            queue.clear()
            queue[ticket.player_id] = ticket
            queue.update(rest)
            position = 1
        else:
            queue[ticket.player_id] = ticket
            position = len(queue)
        self._queue_of[ticket.player_id] = key
        self._form_matches(key)
        self._arm_timer()
        return succeed(position)

    def cancel(self, player_id: str, *, refuse_late: bool = False) -> Deferred[bool]:
        # Done at once: never late.
        key = self._queue_of.pop(player_id, None)
        if key is None:
            return succeed(False)
        del self._queues[key][player_id]
        self._arm_timer()
        return succeed(True)

    def adopt(self, player_id: str) -> Deferred[Match | None]:
        # Its one lobby heard every match.
        return succeed(None)

    def position(self, player_id: str) -> Deferred[int | None]:
        key = self._queue_of.get(player_id)
        if key is None:
            return succeed(None)
        for index, queued in enumerate(self._queues[key]):
            if queued == player_id:
                return succeed(index + 1)
        raise AssertionError("a player indexed to a queue is in that queue")

    def add_listener(self, listener: MatchListener) -> None:
        self._listeners.append(listener)

    def stop(self) -> None:
        """Stop looking at ranked queues on a timer (the tickets stay)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm_timer(self) -> None:
        # The timer runs only while ranked tickets wait: an idle matchmaker
        # (its last ranked ticket matched or cancelled) leaves nothing
        # scheduled on its clock.
        waiting = any(self._queues[(game, RANKED_QUEUE)] for game in self._games)
        if self._timer is not None and self._timer.active():
            if not waiting:
                self.stop()
            return
        if waiting:
            self._timer = self._clock.callLater(self._reevaluate_every, self._reevaluate)
        else:
            self._timer = None

    def _reevaluate(self) -> None:
        self._timer = None
        for game in self._games:
            self._form_matches((game, RANKED_QUEUE))
        self._arm_timer()

    def _form_matches(self, key: tuple[str, str]) -> None:
        game, kind = key
        queue = self._queues[key]
        rules = self._games[game]
        size = rules.match_size
        if kind == NORMAL_QUEUE:
            groups = fifo_groups(list(queue.values()), size, rules.team_size)
        else:
            groups = ranked_groups(
                list(queue.values()),
                size,
                self._windows[game],
                self._clock.seconds(),
                rules.team_size,
            )
        for players in groups:
            for ticket in players:
                del queue[ticket.player_id]
                del self._queue_of[ticket.player_id]
        # Every match's tickets are out of their queue before any is announced.
        for tickets in groups:
            players = tuple(seat for t in tickets for seat in t.seats)
            self._announce(Match(self._new_id(), game, players, self._clock.seconds()))

    def _announce(self, match: Match) -> None:
        for listener in list(self._listeners):
            try:
                listener(match)
            except Exception:
                # One failing listener must not keep the match from the others.
                self.log.failure("match listener failed for {match_id}", match_id=match.match_id)
