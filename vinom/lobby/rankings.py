"""Leaderboards and match histories as players read them: the one JSON form of the
lobby's `leaderboard` and `history` frames and of the web server's `/leaderboard/`
and `/history/` (docs/lobby.md, docs/web.md).

`Rankings` checks a request (the game, the queue) and asks the account store;
what goes wrong is a `LobbyError` with the lobby's code, which the web server
turns into its HTTP status (vinom.server.web). A rating is its shown value
(vinom.accounts.records.Rating.shown), rounded to two decimals as every number
here is.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime

from vinom.accounts.interfaces import IAccountStore
from vinom.accounts.records import HistoryEntry, LeaderboardEntry
from vinom.errors import LobbyError
from vinom.games.rules import GameCatalogue
from vinom.lobby import errors
from vinom.lobby.codec import quote_for_message
from vinom.match import QUEUES


def _shown(value: float) -> float:
    return round(value, 2)


def leaderboard_row(entry: LeaderboardEntry) -> dict[str, Any]:
    rating = entry.rating
    return {
        "rank": entry.rank,
        "player_id": entry.account_id,
        "name": entry.display_name,
        "rating": _shown(rating.shown),
        "mu": _shown(rating.mu),
        "sigma": _shown(rating.sigma),
        "matches": rating.matches,
    }


def history_row(entry: HistoryEntry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "match_id": entry.match_id,
        "game": entry.game,
        "queue": entry.queue,
        "ended": entry.ended,
        "result": entry.outcome,
        "opponents": [
            {"player_id": o.account_id, "name": o.display_name} for o in entry.opponents
        ],
        "rating": _shown(entry.change.after.shown),
        "change": _shown(entry.change.change),
    }
    if len(entry.opponents) > 1 and entry.outcome != "draw":
        # More than two players: where this one finished.
        row["placement"] = entry.place
    return row


NO_ACCOUNTS_MESSAGE = (
    "this server keeps no accounts: leaderboards and histories need players who sign in "
    "(an account database)"
)


class Rankings:
    """A lobby's (or web server's) leaderboards and histories, from its account store
    (None: the server keeps no accounts, and every request is `no_accounts`)."""

    def __init__(
        self, accounts: IAccountStore | None, games: GameCatalogue, clock: IReactorTime
    ) -> None:
        self._accounts = accounts
        self._games = games
        # Public: the web server's limit on these requests counts time by it too.
        self.clock = clock

    @property
    def has_accounts(self) -> bool:
        return self._accounts is not None

    def _store(self) -> IAccountStore:
        if self._accounts is None:
            raise LobbyError(errors.NO_ACCOUNTS, NO_ACCOUNTS_MESSAGE)
        return self._accounts

    def leaderboard(
        self, game: str, queue: str, limit: int, around: str | None = None
    ) -> Deferred[dict[str, Any]]:
        """The reply of a `leaderboard` request: the top `limit` rows, or the page around
        the player `around`."""
        try:
            store = self._store()
            if game not in self._games:
                raise LobbyError(errors.UNKNOWN_GAME, f"no game called {quote_for_message(game)}")
            if queue not in QUEUES:
                raise LobbyError(
                    errors.UNKNOWN_QUEUE,
                    f"no queue called {quote_for_message(queue)}: the queues are "
                    + " and ".join(f'"{q}"' for q in QUEUES),
                )
        except LobbyError as e:
            return fail(e)
        now = self.clock.seconds()
        if around is None:
            d = store.top(game, queue, limit, now)
        else:
            d = store.around(around, game, queue, limit, now)
        return d.addCallback(
            lambda rows: {"type": "leaderboard", "game": game, "queue": queue,
                          "entries": [leaderboard_row(r) for r in rows]}
        )  # fmt: skip

    def history(self, player_id: str, limit: int) -> Deferred[dict[str, Any]]:
        """The reply of a `history` request: the player's last `limit` rated matches,
        newest first."""
        try:
            store = self._store()
        except LobbyError as e:
            return fail(e)
        d = store.history(player_id, limit)
        return d.addCallback(
            lambda rows: {"type": "history", "player_id": player_id,
                          "matches": [history_row(r) for r in rows]}
        )  # fmt: skip
