"""vinom.lobby.match_ratings: which ends are rated and how a game's result becomes the
store's, two lobbies hearing one end rate it once, and the ranked results stream's
deliveries are rated once and told once (on a real SQLite store)."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import TestCase

from vinom.accounts.interfaces import Identity
from vinom.accounts.sql import open_store
from vinom.errors import BackendUnavailable
from vinom.games.rules import GameCatalogue, GameRules
from vinom.lobby.match_ratings import MatchRatings, ranked_result
from vinom.lobby.players import Players
from vinom.match import Match, MatchEnded, Ticket
from vinom.store.memory import MemoryPlayerStore

GAMES = GameCatalogue([GameRules("duel", 2), GameRules("duo", 4, team_size=2)])


def match(
    game: str, *players: str, queue: str = "ranked", bot: str = "", party: tuple[str, ...] = ()
) -> Match:
    tickets = tuple(
        Ticket(p, p, game, None, 0.0, queue, bot=p == bot, party_id="p-1" if p in party else None)
        for p in players
    )
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
        # One party on two sides (the matchmakers never seat one so): never rated.
        self.assertIsNone(ranked_result(match("duel", "a", "b", party=("a", "b")), result,
                                        GAMES))  # fmt: skip
        split = match("duo", "a", "b", "c", "d", party=("b", "c"))
        self.assertIsNone(ranked_result(split, result, GAMES))
        # A party within one team is.
        self.assertIsNotNone(
            ranked_result(match("duo", "a", "b", "c", "d", party=("c", "d")), result, GAMES))


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


class Connection:
    """What MatchRatings tells a player's connection: the frames pushed to it."""

    closing = False

    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []

    def push(self, frame: dict[str, object]) -> None:
        self.frames.append(frame)


class Unavailable:
    """An account database that does not answer."""

    def record_match(self, result: object, now: float) -> Deferred[object]:
        return fail(BackendUnavailable("the account database did not answer"))


class ResultsStreamTests(TestCase):
    """`record_result`, the ranked results stream's subscriber (vinom.cluster.ranked)."""

    async def test_an_end_from_the_stream_and_the_hosting_is_rated_and_told_once(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        store = await open_store(None, data_dir, reactor)
        self.addCleanup(store.close)
        a = await store.account_for(Identity("device", "dev-aaaaaaaa"), "Ann", 1.0)
        b = await store.account_for(Identity("device", "dev-bbbbbbbb"), "Bob", 1.0)
        ended = match("duel", a.account_id, b.account_id)
        outcome = finished({"winners": [b.account_id]})
        players = Players(MemoryPlayerStore())
        ann = Connection()
        players.bind(a.account_id, ann)  # type: ignore[arg-type]
        lobby = MatchRatings(store, GAMES, players, reactor)
        # The stream delivers it (twice: a claim after a lost acknowledgement), and the
        # lobby that followed the match hears it too.
        await lobby.record_result(ended, outcome)
        await lobby.record_result(ended, outcome)
        await lobby.match_ended(ended, outcome)
        history = await store.history(a.account_id, 10)
        self.assertEqual([h.match_id for h in history], ["m-1"])
        rating = (await store.ratings_of([b.account_id], "duel", "ranked"))[b.account_id]
        self.assertEqual(rating.matches, 1)
        self.assertEqual([(f["type"], f["match_id"], f["change"]) for f in ann.frames],
                         [("rating", "m-1", round(history[0].change.change, 2))])  # fmt: skip
        self.assertEqual((lobby.recorded, lobby.write_failures), (1, 0))
        # Not a rated one: done with, nothing recorded.
        normal = match("duel", a.account_id, b.account_id, queue="normal")
        self.assertIsNone(await lobby.record_result(normal, outcome))

    async def test_a_result_refused_for_good_is_done_with_a_failed_write_is_not(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        store = await open_store(None, data_dir, reactor)
        self.addCleanup(store.close)
        players = Players(MemoryPlayerStore())
        outcome = finished({"winners": ["x"]})
        # Players without accounts: the store refuses it (UnknownAccount), for good.
        refused = MatchRatings(store, GAMES, players, reactor)
        self.assertIsNone(await refused.record_result(match("duel", "x", "y"), outcome))
        # The database does not answer: the Deferred fails, and the stream delivers the
        # end again later.
        down = MatchRatings(Unavailable(), GAMES, players, reactor)  # type: ignore[arg-type]
        with self.assertRaises(BackendUnavailable):
            await down.record_result(match("duel", "x", "y"), outcome)
        # Each failed write is counted for the operators (vinom_rating_write_failures_total),
        # the one refused for good and each try of the one that did not answer.
        self.assertIsNone(await down.match_ended(match("duel", "x", "y"), outcome))
        self.assertEqual((refused.write_failures, down.write_failures, down.recorded), (1, 2, 0))
