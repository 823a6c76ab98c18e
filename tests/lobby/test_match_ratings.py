"""vinom.lobby.match_ratings: which ends are rated and how a game's result becomes the
store's, and two lobbies hearing one end rate it once (on a real SQLite store)."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vinom.accounts.interfaces import Identity
from vinom.accounts.sql import open_store
from vinom.games.rules import GameCatalogue, GameRules
from vinom.lobby.match_ratings import MatchRatings, ranked_result
from vinom.lobby.players import Players
from vinom.match import Match, MatchEnded, Ticket
from vinom.store.memory import MemoryPlayerStore

GAMES = GameCatalogue([GameRules("duel", 2), GameRules("duo", 4, team_size=2)])


def match(game: str, *players: str, queue: str = "ranked", bot: str = "") -> Match:
    tickets = tuple(Ticket(p, p, game, None, 0.0, queue, bot=p == bot) for p in players)
    return Match("m-1", game, tickets, 0.0)


def finished(result: dict[str, object]) -> MatchEnded:
    return MatchEnded("m-1", "finished", result, None)


class RankedResultTests(TestCase):
    def test_winners_placements_draws_and_teams(self) -> None:
        duel = match("duel", "a", "b")
        won = ranked_result(duel, finished({"winners": ["b"], "reason": "line"}), GAMES)
        assert won is not None
        self.assertEqual((won.teams, won.places), ((("a",), ("b",)), (2, 1)))
        drawn = ranked_result(duel, finished({"winners": [], "reason": "draw"}), GAMES)
        assert drawn is not None
        self.assertEqual(drawn.places, (1, 1))
        placed = ranked_result(duel, finished({"placements": {"a": 1, "b": 2}}), GAMES)
        assert placed is not None
        self.assertEqual(placed.places, (1, 2))
        # A game with teams: seats [0, 2) and [2, 4).
        duo = match("duo", "a", "b", "c", "d")
        teams = ranked_result(duo, finished({"winners": ["d"]}), GAMES)
        assert teams is not None
        self.assertEqual((teams.teams, teams.places), ((("a", "b"), ("c", "d")), (2, 1)))

    def test_what_is_not_rated(self) -> None:
        result = finished({"winners": ["a"]})
        self.assertIsNone(ranked_result(match("duel", "a", "b", queue="normal"), result, GAMES))
        self.assertIsNone(ranked_result(match("duel", "a", "b", bot="b"), result, GAMES))
        self.assertIsNone(ranked_result(match("duel", "a", "b"), None, GAMES))
        aborted = MatchEnded("m-1", "aborted", None, "players_missing")
        self.assertIsNone(ranked_result(match("duel", "a", "b"), aborted, GAMES))
        abandoned = finished({"winners": [], "reason": "abandoned"})
        self.assertIsNone(ranked_result(match("duel", "a", "b"), abandoned, GAMES))


class OnceTests(TestCase):
    async def test_two_lobbies_hearing_one_end_rate_it_once(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        store = await open_store(None, data_dir, reactor)
        self.addCleanup(store.close)
        a = await store.account_for(Identity("device", "dev-aaaaaaaa"), "Ann", 1.0)
        b = await store.account_for(Identity("device", "dev-bbbbbbbb"), "Bob", 1.0)
        ended = match("duel", a.account_id, b.account_id)
        outcome = finished({"winners": [a.account_id]})
        lobbies = [MatchRatings(store, GAMES, Players(MemoryPlayerStore()), reactor)
                   for _ in range(2)]  # fmt: skip
        for lobby in lobbies:
            await lobby.match_ended(ended, outcome)
        history = await store.history(a.account_id, 10)
        self.assertEqual([h.match_id for h in history], ["m-1"])
        rating = (await store.ratings_of([a.account_id], "duel", "ranked"))[a.account_id]
        self.assertEqual(rating.matches, 1)
        self.assertGreater(history[0].change.change, 0)
