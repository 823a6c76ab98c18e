"""Match placement: from a formed match to `match_found` on each player's connection.

`MatchPlacer` listens to the matchmaker. For each match it asks the hosting
service for a game host, telling the players `waiting_for_server` while no
port is free and withdrawing the match if one of its players leaves meanwhile;
then (the hosting having saved the placement in the player store) it delivers
each connected player's `match_found` (through `TokenDelivery`), which closes
the connection. A player who is not connected then can still `reconnect` for
a token while the match runs. When the match ends (the hosting removing its
placement) the gone players this lobby answers for are forgotten.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from attrs import evolve, frozen
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.errors import BackendUnavailable
from vinom.hosting.interfaces import (
    HostingStopped,
    IMatchHosting,
    MatchWithdrawn,
    NoHostAvailable,
)
from vinom.lobby import errors
from vinom.lobby.codec import error_frame, queued_frame
from vinom.lobby.connection import LobbyConnection, PlayerState
from vinom.lobby.delivery import TokenDelivery, UnroutableHost
from vinom.lobby.limits import LobbyLimits
from vinom.lobby.players import Players, log_failure
from vinom.lobby.requeue import Requeues
from vinom.match import HOST_CRASHED, Match, MatchEnded, Ticket
from vinom.protocol.address import HostAddress
from vinom.store.interfaces import IPlayerStore, MatchPlacement

Frame = dict[str, Any]

# The `reason` of a `queued` frame putting a player back whose match found no game host.
NO_HOST = "no_host"

# How many ended matches `MatchPlacer.recent_matches` remembers.
RECENT_MATCHES = 50

@frozen
class RunningMatch:
    """A match placed on a game host and not ended: where, and since when."""

    match: Match
    address: HostAddress
    placed_at: float


@frozen
class EndedMatch:
    """A match that ended: `phase` `finished` or `aborted`, with the reason and the
    winners' player ids (empty when aborted or drawn). `placed_at` is None for a
    match that ended before it was placed (its game host failed to start)."""

    match: Match
    phase: str
    reason: str
    winners: tuple[str, ...]
    placed_at: float | None
    ended_at: float


class MatchPlacer:
    """Places formed matches on game hosts and delivers their tokens."""

    log = Logger()

    def __init__(
        self,
        *,
        hosting: IMatchHosting,
        store: IPlayerStore,
        players: Players,
        limits: LobbyLimits,
        delivery: TokenDelivery,
        clock: IReactorTime,
        requeues: Requeues,
        requeue: Callable[[Ticket], Deferred[int]] | None = None,
        ended: Callable[[Match, MatchEnded | None], object] | None = None,
    ) -> None:
        self._hosting = hosting
        # Told of every end this lobby hears (vinom.lobby.match_ratings rates ranked ones).
        self._ended = ended
        # Puts a ticket back at the head of its queue (the matchmaker's `requeue`).
        self._requeue = requeue
        # The players this lobby answers for of each match not ended (`_answers_for`
        # when it formed): a player it does not may be another lobby's (a store shared
        # through Redis), whose record is not ours to remove.
        self._ours: dict[str, frozenset[str]] = {}
        self._requeues = requeues
        self._store = store
        self._players = players
        self._limits = limits
        self._delivery = delivery
        self._clock = clock
        # Players of matches formed but not yet placed on a game host.
        self._pending: dict[str, Match] = {}
        # Matches waiting for a free port, in the allocator's (FIFO) order.
        self._waiting: dict[str, Match] = {}
        # Matches a player of left before they were placed, withdrawn or asked to be.
        self._withdrawn: set[str] = set()
        self.matches_withdrawn = 0
        # For the operations endpoint: matches formed, and ended by how.
        self.matches_formed = 0
        self.matches_ended: Counter[tuple[str, str]] = Counter()
        self._running: dict[str, RunningMatch] = {}
        # (match id, player id) of players taken out of running matches (`remove_player`).
        self._removed: set[tuple[str, str]] = set()
        self._recent: deque[EndedMatch] = deque(maxlen=RECENT_MATCHES)
        # The recent matches ended `host_crashed`, by id: a host that comes back with
        # the match's own end replaces it (`_match_ended`).
        self._crashed: OrderedDict[str, EndedMatch] = OrderedDict()
        # Waiting for the last match of this lobby's players to end (a drain).
        self._players_matches_waiters: list[Deferred[None]] = []

    @property
    def waiting_matches(self) -> int:
        """Matches formed and waiting for a free game port."""
        return len(self._waiting)

    @property
    def running_matches(self) -> list[RunningMatch]:
        """The matches placed on a game host and not ended, oldest first."""
        return list(self._running.values())

    @property
    def recent_matches(self) -> list[EndedMatch]:
        """The last `RECENT_MATCHES` matches that ended, newest first."""
        return list(reversed(self._recent))

    @property
    def players_matches(self) -> int:
        """The matches not ended (formed, waiting for a host or
        running) with a player this lobby answers for (`_answers_for` when the match
        formed); their ends reach it through the hosting's `on_ended`."""
        return sum(1 for ours in self._ours.values() if ours)

    def when_players_matches_end(self) -> Deferred[None]:
        """Fires once `players_matches` is 0 (at once if it is)."""
        if not self.players_matches:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._players_matches_waiters.append(waiter)
        return waiter

    def _check_players_matches(self) -> None:
        if self._players_matches_waiters and not self.players_matches:
            waiters, self._players_matches_waiters = self._players_matches_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def pending_match(self, player_id: str) -> Match | None:
        """The player's match, if it is formed but not yet placed."""
        return self._pending.get(player_id)

    def remove_player(self, player_id: str) -> Deferred[int]:
        """Take the player out of each running match of theirs this lobby answers for
        them in, as their `leave` would (a ban: `IMatchHosting.remove_player`; in a
        cluster, the lobby that queued them tells the host, once); fires with how many
        took them out. A match already told leaves them out of later calls."""
        calls = []
        for match_id in self._running:
            key = (match_id, player_id)
            if player_id in self._ours.get(match_id, ()) and key not in self._removed:
                d = self._hosting.remove_player(match_id, player_id)
                calls.append(d.addCallback(self._player_removed, key))
        return gatherResults(calls, consumeErrors=True).addCallback(sum)

    def _player_removed(self, removed: bool, key: tuple[str, str]) -> bool:
        if removed and key[0] in self._running:
            self._removed.add(key)
        return removed

    def confirm_running(self, match_id: str) -> Deferred[bool]:
        """Whether a placed match's game host is alive (`IMatchHosting.confirm_running`):
        if it died, the match has ended here (its players' places kept) when this fires."""
        return self._hosting.confirm_running(match_id)

    def waiting_frame(self, match: Match) -> Frame:
        """The `queued` frame (status `waiting_for_server`) of a match not yet placed."""
        position = 1
        for match_id in self._waiting:
            if match_id == match.match_id:
                break
            position += 1
        return _waiting_frame(match, position)

    def match_formed(self, match: Match) -> None:
        """The matchmaker's listener.

        With lobbies sharing Redis a lobby hears the matches holding its players
        (whichever lobby's call formed them: one formed here for other lobbies'
        players is theirs alone), and follows each until it is placed: if one of
        those lobbies dies, the others place it. A match of players it does not hold
        reaches it only when one of them reconnects through it while the match waits
        for a game host (the matchmaker's `adopt`).
        """
        self._ours[match.match_id] = frozenset(
            p for p in match.player_ids if self._answers_for(p)
        )
        self.matches_formed += 1
        self.log.info(
            "match {match_id} formed for {game}: {players}",
            match_id=match.match_id,
            game=match.game,
            players=list(match.player_ids),
        )
        self._limits.match_formed(match.match_id, match.player_ids)
        for player_id in match.player_ids:
            self._pending[player_id] = match
            connection = self._players.connection_of(player_id)
            if connection is not None:
                connection.matched(match.game)
        d = self._hosting.host_match(
            match,
            on_waiting=partial(self._match_waiting, match),
            on_ended=partial(self._match_ended, match),
        )
        d.addCallback(self._place, match)
        d.addErrback(self._placement_failed, match)
        # Formed with a player of it gone from here (they left as it formed).
        self.withdraw_if_abandoned(match)

    def _answers_for(self, player_id: str) -> bool:
        """Whether this lobby answers for a player: it holds their connection, or it
        queued them and they left as their ticket was matched (their address still
        counts the match here until it ends)."""
        return self._players.is_connected(player_id) or self._limits.is_pending(player_id)

    def withdraw_if_abandoned(self, match: Match) -> None:
        """Withdraw a match not placed yet once a player of it this lobby answers for
        has left (checked as a player leaves, and as the match forms).

        Its game host would wait its connect deadline for them, holding a port ahead
        of real players, while the others wait there for an opponent who is gone: they
        go back to the head of the queue at once instead, in every lobby of the match
        (the hosting's `withdraw`: with hosts shared through Redis, the others hear
        it). The one who left is forgotten. A match placed first goes on.
        """
        match_id = match.match_id
        if match_id in self._running or match_id in self._withdrawn:
            return  # placed, or asked already
        ours = self._ours.get(match_id, frozenset())
        if all(self._players.is_connected(player_id) for player_id in ours):
            return
        self._withdrawn.add(match_id)
        self._hosting.withdraw(match_id).addErrback(
            lambda f: self.log.failure("withdrawing {match_id} failed", f, match_id=match_id)
        )

    def _match_waiting(self, match: Match, position: int) -> None:
        self._waiting[match.match_id] = match
        frame = _waiting_frame(match, position)
        for connection in self._connections_in(match):
            connection.push(dict(frame))

    def _connections_in(self, match: Match) -> list[LobbyConnection]:
        found = []
        for player_id in match.player_ids:
            connection = self._players.connection_of(player_id)
            if connection is not None and connection.state is PlayerState.MATCHED:
                found.append(connection)
        return found

    def _place(self, address: HostAddress, match: Match) -> None:
        self._waiting.pop(match.match_id, None)
        self._withdrawn.discard(match.match_id)
        placement = MatchPlacement(match, address, self._clock.seconds())
        self._running[match.match_id] = RunningMatch(match, address, placement.placed_at)
        self._deliver(placement)

    def _deliver(self, placement: MatchPlacement) -> None:
        match = placement.match
        for ticket in match.players:
            if self._pending.get(ticket.player_id) is match:
                del self._pending[ticket.player_id]
            connection = self._players.connection_of(ticket.player_id)
            if connection is None or connection.state is not PlayerState.MATCHED:
                # Gone: the player can still `reconnect` for a token while the match runs.
                continue
            try:
                frame = self._delivery.match_found_frame(match, ticket, placement.address)
            except UnroutableHost as e:
                # An operator's mistake (a lobby with --relay sharing hosts with lobbies
                # without it): one line, and the player may queue again.
                self.log.warn("match {match_id}: {reason}", match_id=match.match_id,
                              reason=str(e))  # fmt: skip
                connection.push(error_frame(errors.MATCH_FAILED, "the game server of this "
                                            "match cannot be reached through the relay"),
                                final=True)  # fmt: skip
                continue
            except Exception:
                self.log.failure(
                    "issuing a connect token for {player_id} failed", player_id=ticket.player_id
                )
                connection.push(
                    error_frame(errors.INTERNAL_ERROR, "no connect token could be issued"),
                    final=True,
                )
                continue
            connection.push(frame, final=True)

    def _placement_failed(self, failure: Failure, match: Match) -> None:
        withdrawn = failure.check(MatchWithdrawn) or (
            match.match_id in self._withdrawn and failure.check(CancelledError))
        if withdrawn:
            self.matches_withdrawn += 1
            self.log.info("match {match_id} withdrawn: a player of it left before it was "
                          "placed", match_id=match.match_id)  # fmt: skip
        elif failure.check(NoHostAvailable):
            self.log.warn(
                "no game host took match {match_id}: {reason}",
                match_id=match.match_id,
                reason=failure.getErrorMessage(),
            )
        elif failure.check(CancelledError, HostingStopped):
            # Shutting down: the waiting match was withdrawn, not broken.
            self.log.info(
                "match {match_id} withdrawn: the server is stopping", match_id=match.match_id
            )
        elif failure.check(BackendUnavailable, CannotListenError):
            # Redis away (restarting, failing over), or every free port of the game port
            # range held by another process (each skipped with a line of its own, an
            # operator's mistake): one line, no traceback.
            self.log.warn("match {match_id} not placed: {error}", match_id=match.match_id,
                          error=failure.value)  # fmt: skip
        else:
            self.log.failure("no game host for match {match_id}", failure, match_id=match.match_id)
        self._waiting.pop(match.match_id, None)
        self._withdrawn.discard(match.match_id)
        ours = self._ours.pop(match.match_id, None)
        for ticket in match.players:
            player_id = ticket.player_id
            if self._pending.get(player_id) is match:
                del self._pending[player_id]
            connection = self._players.connection_of(player_id)
            if (
                # (Withdrawn: its players still here go back to the queue at once.)
                (failure.check(NoHostAvailable) or withdrawn)
                and self._requeue is not None
                and connection is not None
                and connection.state is PlayerState.MATCHED
                # A party's members are not put back one by one (that would split
                # it): they get match_failed and their leader queues them again.
                and ticket.party_id is None
            ):
                # No game host took it: the player goes back to the head of the queue.
                self._requeue_connected(connection, ticket)
                continue
            self._limits.uncount_pending(player_id)
            if connection is None:
                if ours is None or player_id in ours:
                    self._players.forget(player_id)
            elif connection.state is PlayerState.MATCHED:
                connection.match_failed()
                connection.push(
                    error_frame(
                        errors.MATCH_FAILED,
                        "no game server could host the match; queue again",
                    )
                )
        self._check_players_matches()

    def _requeue_connected(
        self, connection: LobbyConnection, ticket: Ticket, reason: str = NO_HOST
    ) -> None:
        """Put a connected player whose match found no game host (or ended before they
        were told of it) back at the head of the queue, told as players whose match was
        aborted are (`queued`, `requeued`, with `reason`)."""
        assert self._requeue is not None
        player_id = ticket.player_id
        connection.match_failed()
        connection.queued(ticket.game)
        self._limits.requeued(player_id)

        def queued(position: int) -> None:
            self.log.info(
                "player {player_id} is back at the head of the {game} queue ({reason})",
                player_id=player_id,
                game=ticket.game,
                reason="no game host" if reason == NO_HOST else reason,
            )
            connection.push(queued_frame(ticket.game, ticket.queue, position, requeued=True,
                                         reason=reason))

        def refused(failure: Failure) -> None:
            self.log.warn("requeueing {player_id} failed: {error}", player_id=player_id,
                          error=failure.value)  # fmt: skip
            self._limits.uncount_pending(player_id)
            if connection.state is PlayerState.QUEUED:
                connection.unqueued()
            connection.push(
                error_frame(errors.MATCH_FAILED, "no game server could host the match; queue again")
            )

        self._requeue(ticket).addCallbacks(queued, refused)

    def _match_ended(self, match: Match, outcome: MatchEnded | None) -> None:
        crashed = self._crashed.pop(match.match_id, None)
        if crashed is not None and outcome is not None:
            self._ended_after_all(crashed, outcome)
            return
        self.log.info("match {match_id} ended", match_id=match.match_id)
        if self._ended is not None:
            self._ended(match, outcome)
        if outcome is None:
            self.matches_ended["aborted", "host_failed"] += 1
        else:
            self.matches_ended[outcome.phase, outcome.reason or ""] += 1
        running = self._running.pop(match.match_id, None)
        self._removed -= {(match.match_id, p) for p in match.player_ids}
        ended = EndedMatch(
            match,
            phase="aborted" if outcome is None else outcome.phase,
            reason="host_failed" if outcome is None else outcome.reason or "",
            winners=() if outcome is None else _winners(outcome.result),
            placed_at=None if running is None else running.placed_at,
            ended_at=self._clock.seconds(),
        )
        self._recent.append(ended)
        if ended.reason == HOST_CRASHED:
            self._crashed[match.match_id] = ended
            while len(self._crashed) > RECENT_MATCHES:
                self._crashed.popitem(last=False)
        # Aborted because others never came: those who did keep a place at the head
        # of the queue (vinom.lobby.requeue).
        # Aborted because its game-host process crashed: all of its players keep one.
        requeued: tuple[str, ...] = ()
        reason = "" if outcome is None else outcome.reason or ""
        if outcome is not None and reason == "players_missing":
            requeued = outcome.joined
        elif reason == HOST_CRASHED:
            requeued = match.player_ids
        ours = self._ours.pop(match.match_id, None)
        # Players gone from this lobby: forgotten with the placement, in one store call.
        forget: list[str] = []
        for ticket in match.players:
            player_id = ticket.player_id
            if ours is not None and player_id not in ours and not self._players.is_connected(
                player_id
            ):
                # Another lobby's player: that lobby keeps their place or forgets them.
                continue
            if player_id in requeued:
                self._requeues.keep(ticket, reason)
                self._limits.requeued(player_id)
                self.log.info(
                    "player {player_id} keeps a place at the head of the {game} queue",
                    player_id=player_id,
                    game=match.game,
                )
                continue
            self._limits.uncount_pending(player_id)
            if not self._players.is_connected(player_id):
                forget.append(player_id)
        # The gone players this lobby answers for, in one store call (the hosting removed
        # the placement).
        if forget:
            d = self._store.remove_placement(match.match_id, forget=forget)
            d.addErrback(log_failure, self.log, "removing the placement of {player_id}",
                         match.match_id)  # fmt: skip
        self._check_players_matches()


    def _ended_after_all(self, crashed: EndedMatch, outcome: MatchEnded) -> None:
        """A match ended `host_crashed` whose host came back with its own end (it was cut
        off from Redis, not from its players): that end replaces it in the counts and
        the recent matches. The places kept at the head of the queue for its players
        stand (they lapse unclaimed, or a player who claimed one is queued already)."""
        self.log.info("match {match_id} ended {phase} after all: its game host came back "
                      "with its end", match_id=crashed.match.match_id,
                      phase=outcome.phase)  # fmt: skip
        self.matches_ended[crashed.phase, crashed.reason] -= 1
        self.matches_ended[outcome.phase, outcome.reason or ""] += 1
        corrected = evolve(crashed, phase=outcome.phase, reason=outcome.reason or "",
                           winners=_winners(outcome.result))  # fmt: skip
        for i, ended in enumerate(self._recent):
            if ended is crashed:
                self._recent[i] = corrected


def _winners(result: Mapping[str, Any] | None) -> tuple[str, ...]:
    # Games report their winners' player ids under "winners" (vinom.games.common).
    winners = (result or {}).get("winners", ())
    if not isinstance(winners, list | tuple):
        return ()
    return tuple(str(w) for w in winners)


def _waiting_frame(match: Match, position: int) -> Frame:
    return {
        "type": "queued",
        "game": match.game,
        "position": position,
        "status": "waiting_for_server",
    }
