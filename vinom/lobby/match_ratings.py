"""Rating ranked matches as they end: the lobby's side of the ratings the server computes.

A lobby whose players sign in (an authenticator other than `guest`) and that
has an account database gives its `MatchPlacer` a `MatchRatings`. When a
ranked match it placed ends with a result, `match_ended` maps the game's
`result` (`winners`, `placements`; teams by seat when the game has teams)
to a `RankedResult` and asks the store to `record_match` it. The store rates
a match once per match id, so two lobbies that hear the same end, or a lobby
that records again after a crash, change nothing more: every caller gets the
same changes back. Each player of the match still connected to this lobby is
then pushed a `rating` frame (docs/lobby.md), once per match.

With hosts elsewhere (a cluster), a match's end reaches only the lobbies that
follow it, and none if they all died; the lobby's `results` backend
(`IRankedResults`, a Redis stream) then hands it every ranked match's end,
whoever followed it, through `record_result`: the match is rated whatever lobby
dies, and a failed write is delivered again later.

A match is rated when every seat was queued `ranked` by a player (no bot, no
open room's seat), it finished (not aborted), and its result is not
`abandoned` (everyone left: nobody won or lost).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.accounts.interfaces import IAccountStore
from vinom.accounts.records import AccountError, RankedResult, RatingChange
from vinom.games.rules import GameCatalogue
from vinom.lobby.players import Players
from vinom.match import Match, MatchEnded, Ticket
from vinom.net.limits import LogLimiter

# The game result's `reason` of a match everyone left: not rated.
ABANDONED = "abandoned"

# The matches whose players here were told their rating, the newest kept: an end heard
# both from the hosting and from the results stream is pushed once.
TOLD_REMEMBERED = 4096


def ranked_result(
    match: Match, outcome: MatchEnded | None, games: GameCatalogue
) -> RankedResult | None:
    """The result the store rates for this match's end, or None if it is not rated
    (not ranked, a bot's seat, aborted, abandoned, a result without a player, or one
    party on two sides)."""
    if outcome is None or outcome.phase != "finished" or outcome.result is None:
        return None
    if not match.ranked:
        return None
    seats = match.players
    result: Mapping[str, Any] = outcome.result
    if result.get("reason") == ABANDONED:
        return None
    players = [t.player_id for t in seats]
    team_size = games[match.game].team_size if match.game in games else None
    teams = None
    if team_size:
        # Teams are seats [0, team_size), [team_size, 2 * team_size), ...
        teams = [players[i : i + team_size] for i in range(0, len(players), team_size)]
    if _party_against_itself(seats, team_size or 1):
        # The matchmakers never seat one (vinom.matchmaking.windows.largest_party);
        # rated, such a match would farm one side's rating from the other's.
        return None
    try:
        return RankedResult.from_game_result(match.match_id, match.game, seats[0].queue,
                                             players, result, teams)  # fmt: skip
    except (AccountError, TypeError, ValueError):
        return None


def _party_against_itself(seats: Sequence[Ticket], team_size: int) -> bool:
    """Do members of one party sit on two sides (teams of `team_size` seats)?"""
    side_of: dict[str, int] = {}
    for seat, ticket in enumerate(seats):
        side = seat // team_size
        if ticket.party_id is not None and side_of.setdefault(ticket.party_id, side) != side:
            return True
    return False


def rating_frame(match_id: str, game: str, queue: str, change: RatingChange) -> dict[str, Any]:
    """The `rating` push of one player: the shown rating after the match and how far it
    moved."""
    return {
        "type": "rating",
        "match_id": match_id,
        "game": game,
        "queue": queue,
        "rating": round(change.after.shown, 2),
        "change": round(change.change, 2),
    }


class MatchRatings:
    """Records each ranked match's result in the account store, once, and tells the
    players connected here their new rating."""

    log = Logger()

    def __init__(
        self, accounts: IAccountStore, games: GameCatalogue, players: Players,
        clock: IReactorTime,
    ) -> None:  # fmt: skip
        self._accounts = accounts
        self._games = games
        self._players = players
        self._clock = clock
        self._log_limit = LogLimiter(1.0, 10, clock)
        # Matches rated through this lobby (each once, however it heard the end), and
        # writes of a rated match the store failed (each try), for the operations endpoint.
        self.recorded = 0
        self.write_failures = 0
        self._told: OrderedDict[str, None] = OrderedDict()

    def match_ended(self, match: Match, outcome: MatchEnded | None) -> Deferred[None] | None:
        """Rate the match if it is a rated one; the Deferred fires once the players
        connected here are told (None: nothing to rate)."""
        result = ranked_result(match, outcome, self._games)
        if result is None:
            return None
        d = self._record(result)
        return d.addCallback(self._recorded, result).addErrback(self._failed, result)

    def record_result(self, match: Match, outcome: MatchEnded) -> Deferred[None]:
        """The results stream's subscriber (`IRankedResults`): rate the match if it is a
        rated one and tell its players connected here. Fails only when the end is to be
        delivered again (the database did not answer); a result the store refuses for
        good (`AccountError`: a player without an account) is logged and done with."""
        result = ranked_result(match, outcome, self._games)
        if result is None:
            return succeed(None)
        d = self._record(result)
        return d.addCallback(self._recorded, result).addErrback(self._refused, result)

    def _record(self, result: RankedResult) -> Deferred[dict[str, RatingChange]]:
        def failed(failure: Failure) -> Failure:
            self.write_failures += 1
            return failure

        return self._accounts.record_match(result, self._clock.seconds()).addErrback(failed)

    def _refused(self, failure: Failure, result: RankedResult) -> None:
        failure.trap(AccountError)
        self._failed(failure, result)

    def _recorded(self, changes: dict[str, RatingChange], result: RankedResult) -> None:
        if result.match_id in self._told:
            return
        self.recorded += 1
        self._told[result.match_id] = None
        while len(self._told) > TOLD_REMEMBERED:
            self._told.popitem(last=False)
        for player_id, change in changes.items():
            connection = self._players.connection_of(player_id)
            if connection is None or connection.closing:
                continue
            connection.push(rating_frame(result.match_id, result.game, result.queue, change))

    def _failed(self, failure: Failure, result: RankedResult) -> None:
        # The match is not rated here; another lobby that heard its end, or the results
        # stream, may rate it, and the match id stays free for it (docs/accounts.md).
        if self._log_limit.allow():
            self.log.warn("rating match {match_id} failed: {why}", match_id=result.match_id,
                          why=failure.getErrorMessage())  # fmt: skip
