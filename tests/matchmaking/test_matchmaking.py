"""The IMatchmaker contract, run against the in-memory and the Redis matchmaker.

`MatchmakerContract` is one suite; `MemoryMatchmakerTests` runs it on
`MemoryMatchmaker`, `RedisMatchmakerTests` on `RedisMatchmaker` with a real
redis-server (tests/support/redis_server.py). Both are driven by a `Clock`, so rating
windows widen exactly as far as a test says. The FIFO property test at the end
checks the in-memory `normal` queues against a plain reference model;
tests/cluster/test_matchmaking_redis.py has what only Redis has (races, lobbies that
die, restarts).
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import itertools
import re
from typing import Any

import txredisapi
from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.support.redis_server import start_redis
from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings
from vinom.errors import UnknownGame
from vinom.games.rules import GameCatalogue
from vinom.match import Match, Ticket, new_match_id
from vinom.matchmaking.interfaces import (
    AlreadyQueued,
    IMatchmaker,
    PartyTooLarge,
    UnknownQueue,
)
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.matchmaking.windows import RatingWindow

# maze4: the maze set up for four, where parties of two meet solo players.
# duo4: four players in two teams of two; quads: eight in two teams of four.
SIZES = {"tictactoe": 2, "maze": 3, "maze4": 4, "duo4": 4, "quads": 8}
TEAMS = {"duo4": 2, "quads": 4}
WINDOWS = {"tictactoe": RatingWindow(base=100, growth=20, max=None),
           "maze": RatingWindow(base=50, growth=10, max=200),
           "maze4": RatingWindow(base=50, growth=10, max=200),
           "duo4": RatingWindow(base=50, growth=10, max=200)}


def ticket(
    player_id: str,
    game: str = "tictactoe",
    at: float = 0.0,
    rating: float | None = None,
    queue: str = "normal",
) -> Ticket:
    return Ticket(player_id, player_id.upper(), game, rating, at, queue)


def ranked(
    player_id: str, rating: float | None, game: str = "tictactoe", at: float = 0.0
) -> Ticket:
    return ticket(player_id, game, at, rating, "ranked")


def party(
    leader: str, *others: str, game: str = "maze4", rating: float | None = None,
    queue: str = "normal", at: float = 0.0,
) -> Ticket:
    """A party's ticket: the leader's, carrying the other members' tickets."""
    members = tuple(
        Ticket(p, p.upper(), game, rating, at, queue, party_id="P-" + leader) for p in others
    )
    return Ticket(leader, leader.upper(), game, rating, at, queue, party_id="P-" + leader,
                  members=members)  # fmt: skip


class MatchmakerContract:
    """What every IMatchmaker does. Subclasses say how to make one (`make`)
    and how to wait until what a timer started has finished (`settle`)."""

    clock: Clock
    matchmaker: Any
    matches: list[Match]

    async def make(
        self,
        sizes: dict[str, int],
        windows: dict[str, RatingWindow],
        teams: dict[str, int] | None = None,
    ) -> Any:
        raise NotImplementedError

    async def settle(self) -> None:
        """Wait until the work the clock started (matching passes) is done."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.clock = Clock()
        self.matchmaker = await self.make(SIZES, WINDOWS, TEAMS)
        self.matches = []
        self.matchmaker.add_listener(self.matches.append)

    async def enqueue(self, t: Ticket) -> int:
        return int(await self.matchmaker.enqueue(t))

    async def position(self, player_id: str) -> int | None:
        result: int | None = await self.matchmaker.position(player_id)
        return result

    async def advance(self, seconds: float) -> None:
        """Let time pass, one second at a time (the re-evaluation timer's period)."""
        for _ in range(int(seconds)):
            self.clock.advance(1.0)
            await self.settle()

    def assert_matched(self, *groups: tuple[str, ...]) -> None:
        self.assertEqual([m.player_ids for m in self.matches], list(groups))  # type: ignore[attr-defined]

    async def test_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IMatchmaker, self.matchmaker))  # type: ignore[attr-defined]

    async def test_positions_count_from_one(self) -> None:
        self.assertEqual(await self.enqueue(ticket("a", "maze")), 1)
        self.assertEqual(await self.enqueue(ticket("b", "maze")), 2)
        self.assertEqual(await self.position("b"), 2)
        self.assertIsNone(await self.position("zz"))

    async def test_match_forms_when_the_queue_reaches_the_game_size(self) -> None:
        self.clock.advance(12.5)
        await self.enqueue(ticket("a"))
        self.assertEqual(self.matches, [])
        self.assertEqual(await self.enqueue(ticket("b")), 2)
        await self.settle()
        [match] = self.matches
        self.assertEqual(match.game, "tictactoe")
        self.assertEqual(match.player_ids, ("a", "b"))
        self.assertEqual(match.formed_at, 12.5)
        self.assertRegex(match.match_id, r"^m-[0-9a-f]{16}$")
        self.assertIsNone(await self.position("a"))

    async def test_fifo_order_within_a_game(self) -> None:
        for player in "abcdef":
            await self.enqueue(ticket(player, "maze"))
        await self.settle()
        self.assert_matched(("a", "b", "c"), ("d", "e", "f"))

    async def test_games_have_separate_queues(self) -> None:
        await self.enqueue(ticket("a", "maze"))
        await self.enqueue(ticket("b", "tictactoe"))
        await self.enqueue(ticket("c", "maze"))
        self.assertEqual(self.matches, [])
        await self.enqueue(ticket("d", "tictactoe"))
        await self.settle()
        self.assert_matched(("b", "d"))

    async def test_normal_and_ranked_are_separate_queues(self) -> None:
        await self.enqueue(ticket("a"))
        await self.enqueue(ranked("b", 1500))
        await self.advance(3)
        self.assertEqual(self.matches, [])
        self.assertEqual(await self.position("b"), 1)
        await self.enqueue(ticket("c"))
        await self.enqueue(ranked("d", 1510))
        await self.settle()
        self.assert_matched(("a", "c"), ("b", "d"))

    async def test_cancel_removes_the_ticket(self) -> None:
        await self.enqueue(ticket("a"))
        self.assertTrue(await self.matchmaker.cancel("a"))
        self.assertFalse(await self.matchmaker.cancel("a"))
        await self.enqueue(ticket("b"))
        self.assertEqual(self.matches, [])
        await self.enqueue(ticket("c"))
        await self.settle()
        self.assert_matched(("b", "c"))

    async def test_cancel_moves_later_players_up(self) -> None:
        await self.enqueue(ticket("a", "maze"))
        await self.enqueue(ticket("b", "maze"))
        await self.matchmaker.cancel("a")
        self.assertEqual(await self.position("b"), 1)
        self.assertEqual(await self.enqueue(ticket("c", "maze")), 2)

    async def test_a_player_is_never_in_two_queues(self) -> None:
        await self.enqueue(ticket("a", "maze"))
        for again in (ticket("a", "tictactoe"), ticket("a", "maze"), ranked("a", 1000)):
            with self.assertRaises(AlreadyQueued):  # type: ignore[attr-defined]
                await self.matchmaker.enqueue(again)
        with self.assertRaises(AlreadyQueued):  # type: ignore[attr-defined]
            await self.matchmaker.requeue(ticket("a", "tictactoe"))
        await self.enqueue(ticket("b", "tictactoe"))
        await self.settle()
        self.assertEqual(self.matches, [])
        self.assertEqual(await self.position("a"), 1)

    async def test_cancel_after_the_match_formed_is_false(self) -> None:
        await self.enqueue(ticket("a"))
        await self.enqueue(ticket("b"))
        await self.settle()
        self.assertFalse(await self.matchmaker.cancel("a"))
        self.assertEqual(len(self.matches), 1)

    async def test_a_matched_player_may_queue_again(self) -> None:
        await self.enqueue(ticket("a"))
        await self.enqueue(ticket("b"))
        self.assertEqual(await self.enqueue(ticket("a")), 1)
        self.assertEqual(await self.position("a"), 1)
        await self.enqueue(ticket("c"))
        await self.settle()
        self.assert_matched(("a", "b"), ("a", "c"))

    async def test_unknown_game_and_queue_are_refused(self) -> None:
        # vinom.errors.UnknownGame, the registry's too: a ValueError as a ticket's bad
        # field, and a KeyError as a lookup by name (what `except KeyError` caught).
        with self.assertRaises(UnknownGame) as unknown:  # type: ignore[attr-defined]
            await self.matchmaker.enqueue(ticket("a", "chess"))
        self.assertIsInstance(unknown.exception, ValueError)  # type: ignore[attr-defined]
        self.assertIsInstance(unknown.exception, KeyError)  # type: ignore[attr-defined]
        self.assertEqual(str(unknown.exception), "no game named 'chess'")
        with self.assertRaises(UnknownQueue):  # type: ignore[attr-defined]
            await self.matchmaker.enqueue(ticket("a", queue="casual"))
        self.assertIsNone(await self.position("a"))

    async def test_requeue_puts_the_ticket_at_the_head(self) -> None:
        await self.enqueue(ticket("a", "maze"))
        self.assertEqual(await self.matchmaker.requeue(ticket("c", "maze")), 1)
        self.assertEqual(await self.position("c"), 1)
        self.assertEqual(await self.position("a"), 2)
        self.assertEqual(await self.enqueue(ticket("d", "maze")), 3)
        await self.settle()
        self.assert_matched(("c", "a", "d"))

    async def test_ranked_requeue_puts_the_ticket_at_the_head(self) -> None:
        await self.enqueue(ranked("a", 1000, "maze"))
        self.assertEqual(await self.matchmaker.requeue(ranked("b", 3000, "maze")), 1)
        self.assertEqual(await self.position("a"), 2)

    async def test_a_failing_listener_does_not_stop_the_others(self) -> None:
        def broken(match: Match) -> None:
            raise RuntimeError("boom")

        matchmaker = await self.make({"tictactoe": 2}, {})
        heard: list[Match] = []
        matchmaker.add_listener(broken)
        matchmaker.add_listener(heard.append)
        await matchmaker.enqueue(ticket("a"))
        await matchmaker.enqueue(ticket("b"))
        await self.settle()
        self.assertEqual(len(heard), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)  # type: ignore[attr-defined]

    async def test_ticket_carries_its_seat_order_and_values(self) -> None:
        first = Ticket("a", "Ann", "tictactoe", 1500.25, 3.125)
        second = Ticket("b", "Bob", "tictactoe", None, 4.0)
        await self.enqueue(first)
        await self.enqueue(second)
        await self.settle()
        self.assertEqual(self.matches[0].players, (first, second))
        third = ranked("c", 1234.5678901234567, at=1e-7)
        fourth = ranked("d", 1234.5, at=0.1)
        await self.enqueue(third)
        await self.enqueue(fourth)
        await self.settle()
        self.assertEqual(self.matches[1].players, (third, fourth))

    # -- rating windows

    async def test_ranked_tickets_within_the_window_match_at_once(self) -> None:
        await self.enqueue(ranked("a", 1500))
        await self.enqueue(ranked("b", 1600))  # exactly the base window of 100
        await self.settle()
        self.assert_matched(("a", "b"))

    async def test_the_window_widens_with_waiting_time(self) -> None:
        # tictactoe: 100 + 20 per second. 1500 and 1700 are 200 apart: both
        # tickets must have waited 5 s.
        await self.enqueue(ranked("a", 1500, at=0.0))
        self.clock.advance(2.0)
        await self.enqueue(ranked("b", 1700, at=2.0))
        await self.advance(4)  # now 6: a's window 220, b's 180
        self.assertEqual(self.matches, [])
        await self.advance(1)  # now 7: b's window 200
        self.assert_matched(("a", "b"))
        self.assertEqual(self.matches[0].formed_at, 7.0)

    async def test_the_window_stops_at_its_max(self) -> None:
        # maze: 50 + 10 per second, at most 200: a and b, 201 apart, never
        # match; nor do a and c. Three that fit each other wait for d and e.
        await self.enqueue(ranked("a", 1000, "maze"))
        await self.enqueue(ranked("b", 1201, "maze"))
        await self.enqueue(ranked("c", 1400, "maze"))
        await self.advance(60)
        self.assertEqual(self.matches, [])
        await self.enqueue(ranked("d", 1100, "maze", at=60.0))
        await self.enqueue(ranked("e", 1150, "maze", at=60.0))
        await self.settle()
        self.assertEqual(self.matches, [])  # d's and e's windows are 50
        await self.advance(15)  # 200 now
        # a is the oldest: its match is a and the first two that fit everyone.
        self.assert_matched(("a", "d", "e"))
        self.assertEqual(await self.position("b"), 1)
        self.assertEqual(await self.position("c"), 2)

    async def test_the_oldest_ticket_is_matched_first(self) -> None:
        await self.enqueue(ranked("a", 1000, at=0.0))
        await self.enqueue(ranked("b", 1090, at=0.0))
        await self.settle()
        self.assert_matched(("a", "b"))
        self.clock.advance(10.0)
        await self.enqueue(ranked("c", 2000, at=0.0))  # window 300 now
        await self.enqueue(ranked("d", 2250, at=10.0))  # window 100: no match with c
        await self.enqueue(ranked("e", 2050, at=10.0))
        await self.settle()
        # c is the oldest; e fits c; d waits.
        self.assert_matched(("a", "b"), ("c", "e"))
        self.assertEqual(await self.position("d"), 1)

    async def test_younger_tickets_match_when_the_oldest_fits_none(self) -> None:
        await self.enqueue(ranked("a", 3000))
        await self.enqueue(ranked("b", 1000))
        await self.enqueue(ranked("c", 1050))
        await self.settle()
        self.assert_matched(("b", "c"))
        self.assertEqual(await self.position("a"), 1)

    async def test_tickets_without_a_rating_match_anyone(self) -> None:
        await self.enqueue(ranked("a", 1000))
        await self.enqueue(ranked("b", 5000))
        await self.enqueue(ranked("c", None))
        await self.settle()
        self.assert_matched(("a", "c"))

    async def test_every_pair_of_a_match_is_within_both_windows(self) -> None:
        # maze needs three: a and c are 100 apart, outside the base window of 50.
        await self.enqueue(ranked("a", 1000, "maze"))
        await self.enqueue(ranked("b", 1050, "maze"))
        await self.enqueue(ranked("c", 1100, "maze"))
        await self.advance(4)  # windows 90
        self.assertEqual(self.matches, [])
        await self.advance(1)  # windows 100
        self.assert_matched(("a", "b", "c"))

    async def test_the_normal_queue_ignores_ratings(self) -> None:
        await self.enqueue(ticket("a", rating=0.0))
        await self.enqueue(ticket("b", rating=10_000.0))
        await self.settle()
        self.assert_matched(("a", "b"))

    # -- parties: one ticket, several seats, never split

    async def test_a_party_of_two_is_matched_with_two_solo_players(self) -> None:
        self.assertEqual(await self.enqueue(party("a", "b")), 1)
        self.assertEqual(await self.enqueue(ticket("s1", "maze4")), 2)
        self.assertEqual(self.matches, [])
        await self.enqueue(ticket("s2", "maze4"))
        await self.settle()
        self.assert_matched(("a", "b", "s1", "s2"))
        [match] = self.matches
        # Every player has a ticket of their own; the party's say so.
        self.assertEqual([t.party_id for t in match.players], ["P-a", "P-a", None, None])
        self.assertEqual([t.members for t in match.players], [(), (), (), ()])
        self.assertEqual(match.players[1], party("a", "b").members[0])
        self.assertIsNone(await self.position("a"))

    async def test_party_members_sit_together_after_the_players_before_them(self) -> None:
        await self.enqueue(ticket("s1", "maze4"))
        await self.enqueue(party("a", "b"))
        await self.enqueue(ticket("s2", "maze4"))
        await self.settle()
        self.assert_matched(("s1", "a", "b", "s2"))

    async def test_two_parties_fill_a_match(self) -> None:
        await self.enqueue(party("a", "b"))
        await self.enqueue(party("c", "d"))
        await self.settle()
        self.assert_matched(("a", "b", "c", "d"))

    async def test_a_party_larger_than_the_match_is_refused(self) -> None:
        with self.assertRaises(PartyTooLarge):  # type: ignore[attr-defined]
            await self.matchmaker.enqueue(party("a", "b", "c", game="tictactoe"))
        self.assertIsNone(await self.position("a"))
        await self.enqueue(ticket("x"))
        await self.enqueue(ticket("y"))
        await self.settle()
        self.assert_matched(("x", "y"))

    async def test_a_party_as_large_as_the_match_is_a_match_alone(self) -> None:
        await self.enqueue(ticket("s1"))
        await self.enqueue(party("a", "b", game="tictactoe"))
        await self.settle()
        self.assert_matched(("a", "b"))
        self.assertEqual(await self.position("s1"), 1)

    async def test_a_party_that_does_not_fit_waits_and_solos_fill_around_it(self) -> None:
        # Four seats. Two parties of three never fit together: the second waits,
        # keeping its place, while a solo player completes the first's match.
        await self.enqueue(party("a", "b", "c"))
        await self.enqueue(party("d", "e", "f"))
        await self.settle()
        self.assertEqual(self.matches, [])
        self.assertEqual(await self.enqueue(ticket("s1", "maze4")), 3)
        await self.settle()
        self.assert_matched(("a", "b", "c", "s1"))
        self.assertEqual(await self.position("d"), 1)
        # At the head now, that party takes the next solo player; the party of
        # two queued after it waits.
        await self.enqueue(party("g", "h"))
        await self.enqueue(ticket("s2", "maze4"))
        await self.settle()
        self.assert_matched(("a", "b", "c", "s1"), ("d", "e", "f", "s2"))
        self.assertEqual(await self.position("g"), 1)

    async def test_the_oldest_player_is_matched_with_a_party_that_fills_the_seats(self) -> None:
        # Four seats: s1 and s2 cannot play with the party of three, s1 can:
        # the earliest tickets that fill the match with the oldest are s1 and the party.
        await self.enqueue(ticket("s1", "maze4"))
        await self.enqueue(ticket("s2", "maze4"))
        await self.enqueue(party("a", "b", "c"))
        await self.settle()
        self.assert_matched(("s1", "a", "b", "c"))
        self.assertEqual(await self.position("s2"), 1)

    async def test_a_party_is_never_split_across_matches(self) -> None:
        # Three seats: s1, s2 and a party of two cannot all play; s1 and the
        # party fill one match; s2 waits for two more.
        await self.enqueue(ticket("s1", "maze"))
        await self.enqueue(ticket("s2", "maze"))
        await self.enqueue(party("a", "b", game="maze"))
        await self.settle()
        self.assert_matched(("s1", "a", "b"))
        self.assertEqual(await self.position("s2"), 1)
        await self.enqueue(party("c", "d", game="maze"))
        await self.enqueue(party("e", "f", game="maze"))
        await self.settle()
        self.assert_matched(("s1", "a", "b"), ("s2", "c", "d"))
        self.assertEqual(await self.position("e"), 1)

    async def test_cancelling_the_leader_takes_the_whole_party_out(self) -> None:
        await self.enqueue(party("a", "b"))
        self.assertTrue(await self.matchmaker.cancel("a"))
        await self.enqueue(ticket("s1", "maze4"))
        await self.enqueue(ticket("s2", "maze4"))
        await self.settle()
        self.assertEqual(self.matches, [])
        self.assertEqual(await self.position("s1"), 1)

    async def test_a_requeued_party_goes_to_the_head_as_one(self) -> None:
        await self.enqueue(ticket("s1", "maze4"))
        self.assertEqual(await self.matchmaker.requeue(party("a", "b", "c")), 1)
        await self.enqueue(ticket("s2", "maze4"))
        await self.settle()
        self.assert_matched(("a", "b", "c", "s1"))
        self.assertEqual(await self.position("s2"), 1)

    async def test_a_ranked_party_is_rated_by_its_ticket(self) -> None:
        # duo4 windows: 50 + 10 per second. The party is rated 1500 as one.
        await self.enqueue(party("a", "b", game="duo4", rating=1500.0, queue="ranked"))
        await self.enqueue(ranked("far", 1700, "duo4"))
        await self.enqueue(ranked("s1", 1540, "duo4"))
        await self.settle()
        self.assertEqual(self.matches, [])
        await self.enqueue(ranked("s2", 1510, "duo4"))
        await self.settle()
        self.assert_matched(("a", "b", "s1", "s2"))
        self.assertEqual(await self.position("far"), 1)

    async def test_a_ranked_queue_never_seats_a_party_against_itself(self) -> None:
        # Without teams every player is a side: a party of two in a two-seat ranked
        # match would play (and farm its rating) against itself. With teams a
        # party fills at most one of them.
        for game, members in (("tictactoe", ("b",)), ("maze4", ("b",)),
                              ("duo4", ("b", "c"))):  # fmt: skip
            with self.assertRaises(PartyTooLarge) as refused:  # type: ignore[attr-defined]
                await self.matchmaker.enqueue(party("a", *members, game=game, queue="ranked"))
            self.assertEqual(refused.exception.largest, 2 if game == "duo4" else 1)
            self.assertIsNone(await self.position("a"))
        # The same party plays together in the normal queue.
        await self.enqueue(party("a", "b", game="tictactoe"))
        await self.settle()
        self.assert_matched(("a", "b"))


    # -- teams: a party sits in one team

    async def test_a_party_of_two_is_one_team_against_two_solo_players(self) -> None:
        await self.enqueue(party("a", "b", game="duo4"))
        await self.enqueue(ticket("s1", "duo4"))
        await self.enqueue(ticket("s2", "duo4"))
        await self.settle()
        # Seats 0-1 are team 0, seats 2-3 team 1.
        self.assert_matched(("a", "b", "s1", "s2"))

    async def test_a_party_queued_between_solo_players_still_sits_in_one_team(self) -> None:
        # Without teams this is s1 a b s2 (the party in seats 1 and 2, which
        # would be two teams); with teams the solo players make the first team.
        await self.enqueue(ticket("s1", "duo4"))
        await self.enqueue(party("a", "b", game="duo4"))
        await self.enqueue(ticket("s2", "duo4"))
        await self.settle()
        self.assert_matched(("s1", "s2", "a", "b"))

    async def test_two_parties_are_the_two_teams(self) -> None:
        await self.enqueue(party("a", "b", game="duo4"))
        await self.enqueue(party("c", "d", game="duo4"))
        await self.settle()
        self.assert_matched(("a", "b", "c", "d"))

    async def test_a_party_waits_if_the_teams_cannot_seat_it_with_those_before(
        self,
    ) -> None:
        # Two teams of four. P3 and P2 fill five seats, but no ticket behind
        # them completes both teams (P3' would need a team of its own); P3,
        # P3' and two solo players do: P3 with s1, P3' with s2.
        await self.enqueue(party("a", "b", "c", game="quads"))
        await self.enqueue(party("d", "e", game="quads"))
        await self.enqueue(party("f", "g", "h", game="quads"))
        await self.enqueue(ticket("s1", "quads"))
        await self.settle()
        self.assertEqual(self.matches, [])
        await self.enqueue(ticket("s2", "quads"))
        await self.settle()
        self.assert_matched(("a", "b", "c", "s1", "f", "g", "h", "s2"))
        self.assertEqual(await self.position("d"), 1)

    async def test_a_party_larger_than_a_team_is_refused(self) -> None:
        with self.assertRaises(PartyTooLarge):  # type: ignore[attr-defined]
            await self.matchmaker.enqueue(party("a", "b", "c", game="duo4"))
        self.assertIsNone(await self.position("a"))
        # The same party fits the four seats of a game without teams.
        await self.enqueue(party("a", "b", "c", game="maze4"))
        self.assertEqual(await self.position("a"), 1)

    async def test_a_ranked_party_sits_in_one_team(self) -> None:
        await self.enqueue(ranked("s1", 1500, "duo4"))
        await self.enqueue(party("a", "b", game="duo4", rating=1510.0, queue="ranked"))
        await self.enqueue(ranked("s2", 1490, "duo4"))
        await self.settle()
        self.assert_matched(("s1", "s2", "a", "b"))

    async def test_team_sizes_must_divide_the_match_size(self) -> None:
        with self.assertRaises(ValueError):  # type: ignore[attr-defined]
            await self.make({"duo4": 4}, {}, {"duo4": 3})


class MemoryMatchmakerTests(MatchmakerContract, TestCase):
    async def make(
        self,
        sizes: dict[str, int],
        windows: dict[str, RatingWindow],
        teams: dict[str, int] | None = None,
    ) -> Any:
        games = GameCatalogue.sized(sizes, team_sizes=teams, windows=windows)
        matchmaker = MemoryMatchmaker(games, self.clock)
        self.addCleanup(matchmaker.stop)
        return matchmaker

    def test_fifo_matchmaker_is_its_old_name(self) -> None:
        self.assertIs(MemoryMatchmaker, MemoryMatchmaker)

    def test_queue_length_counts_one_queue_or_all(self) -> None:
        self.matchmaker.enqueue(ticket("a"))
        self.matchmaker.enqueue(ranked("b", 1000))
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 2)
        self.assertEqual(self.matchmaker.queue_length("tictactoe", "ranked"), 1)
        self.assertEqual(self.matchmaker.queue_length("chess"), 0)

    def test_an_idle_matchmaker_leaves_nothing_on_its_clock(self) -> None:
        self.matchmaker.enqueue(ticket("a"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.matchmaker.enqueue(ranked("b", 1000))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.matchmaker.enqueue(ranked("c", 1000))
        # b and c are matched at once: no ranked ticket waits, nothing is scheduled.
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.matchmaker.enqueue(ranked("d", 1000))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        # Nor once the last ranked ticket is cancelled (a lobby that drained and stopped).
        self.matchmaker.cancel("d")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_match_sizes_must_be_positive(self) -> None:
        self.assertRaises(ValueError, GameCatalogue.sized, {"x": 0})

    def test_windows_are_not_negative(self) -> None:
        self.assertRaises(ValueError, RatingWindow, base=-1)
        self.assertRaises(ValueError, RatingWindow, growth=-1)
        self.assertEqual(RatingWindow().width(2.0), 140.0)
        self.assertEqual(RatingWindow(max=120.0).width(2.0), 120.0)

    def test_match_ids_are_distinct(self) -> None:
        ids = {new_match_id() for _ in range(200)}
        self.assertEqual(len(ids), 200)
        self.assertTrue(all(re.fullmatch(r"m-[0-9a-f]{16}", i) for i in ids))


class RedisMatchmakerTests(MatchmakerContract, TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await start_redis(self)
        await super().setUp()

    async def make(
        self,
        sizes: dict[str, int],
        windows: dict[str, RatingWindow],
        teams: dict[str, int] | None = None,
    ) -> Any:
        # One connection: commands answer in the order they were sent, so a
        # call made after the clock started a pass answers after that pass.
        pool = txredisapi.lazyConnectionPool("127.0.0.1", self.redis.port, poolsize=1,
                                             reconnect=True)
        self.addCleanup(pool.disconnect)
        matchmaker = RedisMatchmaker(
            pool, TCP4ClientEndpoint(reactor, "127.0.0.1", self.redis.port),
            GameCatalogue.sized(sizes, team_sizes=teams, windows=windows), self.clock,
            settings=RedisMatchmakerSettings(lobby_lease=3600.0),
        )
        await matchmaker.start()
        self.addCleanup(matchmaker.stop)
        return matchmaker

    async def settle(self) -> None:
        # The tick's heartbeat answers before this; then the passes it started end.
        await self.matchmaker.position("nobody")
        await self.matchmaker.settled()


class _Model:
    """A reference model of FIFO matching: plain lists, no cleverness."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.queues: dict[str, list[str]] = {g: [] for g in sizes}
        self.matches: list[tuple[str, tuple[str, ...]]] = []

    def queued(self, player: str) -> bool:
        return any(player in q for q in self.queues.values())

    def enqueue(self, player: str, game: str) -> int | None:
        if self.queued(player):
            return None
        queue = self.queues[game]
        queue.append(player)
        position = len(queue)
        while len(queue) >= self.sizes[game]:
            taken = tuple(queue[: self.sizes[game]])
            del queue[: self.sizes[game]]
            self.matches.append((game, taken))
        return position

    def cancel(self, player: str) -> bool:
        for queue in self.queues.values():
            if player in queue:
                queue.remove(player)
                return True
        return False


class FifoMatchmakerPropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["enqueue", "cancel"]),
                st.sampled_from(["p0", "p1", "p2", "p3", "p4", "p5"]),
                st.sampled_from(["duel", "trio"]),
            ),
            max_size=80,
        )
    )
    def test_random_enqueue_and_cancel_sequences(
        self, operations: list[tuple[str, str, str]]
    ) -> None:
        sizes = {"duel": 2, "trio": 3}
        clock = Clock()
        matchmaker = MemoryMatchmaker(GameCatalogue.sized(sizes), clock)
        matches: list[Match] = []
        model = _Model(sizes)

        def heard(match: Match) -> None:
            # When a match is announced none of its players is still queued.
            for player in match.player_ids:
                self.assertIsNone(self.successResultOf(matchmaker.position(player)))
            matches.append(match)

        matchmaker.add_listener(heard)
        accepted: dict[str, int] = {}
        for step, (kind, player, game) in enumerate(operations):
            clock.advance(1)
            if kind == "enqueue":
                expected = model.enqueue(player, game)
                d = matchmaker.enqueue(Ticket(player, player, game, None, float(step)))
                if expected is None:
                    self.failureResultOf(d, AlreadyQueued)
                else:
                    self.assertEqual(self.successResultOf(d), expected)
                    accepted[player] = accepted.get(player, 0) + 1
            else:
                self.assertEqual(
                    self.successResultOf(matchmaker.cancel(player)), model.cancel(player)
                )
            for game_name, queue in model.queues.items():
                self.assertEqual(matchmaker.queue_length(game_name), len(queue))
                for index, queued in enumerate(queue):
                    self.assertEqual(self.successResultOf(matchmaker.position(queued)), index + 1)
        self.assertEqual([(m.game, m.player_ids) for m in matches], model.matches)
        for match in matches:
            self.assertEqual(len(match.players), sizes[match.game])
            self.assertEqual(len(set(match.player_ids)), len(match.player_ids))
            self.assertTrue(all(t.game == match.game for t in match.players))
        # Each ticket is matched at most once: a player is in k matches only if
        # they were queued successfully at least k times.
        self.assertEqual(len({m.match_id for m in matches}), len(matches))
        for player in {p for m in matches for p in m.player_ids}:
            in_matches = sum(player in m.player_ids for m in matches)
            self.assertLessEqual(in_matches, accepted[player])


class RankedWindowPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(0, 3000).map(float)),
                st.sampled_from([0.0, 0.5, 1.0, 3.0]),
                st.sampled_from(["duel", "trio"]),
            ),
            max_size=40,
        )
    )
    def test_ranked_matches_are_always_within_every_window(
        self, arrivals: list[tuple[float | None, float, str]]
    ) -> None:
        windows = {"duel": RatingWindow(base=50, growth=25, max=None),
                   "trio": RatingWindow(base=20, growth=40, max=300)}
        clock = Clock()
        matchmaker = MemoryMatchmaker(
            GameCatalogue.sized({"duel": 2, "trio": 3}, windows=windows), clock
        )
        matches: list[Match] = []
        matchmaker.add_listener(matches.append)
        for index, (rating, wait, game) in enumerate(arrivals):
            clock.advance(wait)
            matchmaker.enqueue(Ticket(f"p{index}", "p", game, rating, clock.seconds(), "ranked"))
        for _ in range(20):
            clock.advance(1.0)
        for match in matches:
            window = windows[match.game]
            for a in match.players:
                for b in match.players:
                    if a is b or a.rating is None or b.rating is None:
                        continue
                    difference = abs(a.rating - b.rating)
                    self.assertLessEqual(difference, window.width(match.formed_at - a.queued_at))
        # Nobody matched twice; everyone else is still queued.
        matched = [p for m in matches for p in m.player_ids]
        self.assertEqual(len(matched), len(set(matched)))
        self.assertEqual(
            matchmaker.queue_length("duel") + matchmaker.queue_length("trio"),
            len(arrivals) - len(matched),
        )


def _brute_force_match(
    sizes: list[int], seats: int, team_size: int | None = None
) -> list[int] | None:
    """The earliest (lexicographically, by queue index) set of tickets, including the
    first, whose sizes sum to `seats` (and, with teams, that can be seated with no
    ticket split across teams): the reference for the fill rule."""

    def seatable(chosen: list[int]) -> bool:
        if team_size is None:
            return True
        # Every assignment of tickets to teams, tried plainly.
        teams = seats // team_size
        for assignment in itertools.product(range(teams), repeat=len(chosen)):
            load = [0] * teams
            for index, team in zip(chosen, assignment, strict=True):
                load[team] += sizes[index]
            if all(seated == team_size for seated in load):
                return True
        return False

    def search(start: int, left: int, chosen: list[int]) -> list[int] | None:
        if left == 0:
            return chosen if seatable(chosen) else None
        for index in range(start, len(sizes)):
            if sizes[index] <= left:
                found = search(index + 1, left - sizes[index], [*chosen, index])
                if found is not None:
                    return found
        return None

    if not sizes or sizes[0] > seats:
        return None
    return search(1, seats - sizes[0], [0])


class PartyFillPropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["enqueue", "enqueue", "cancel"]),
                st.integers(1, 4),
                st.integers(0, 9),
            ),
            max_size=60,
        )
    )
    def test_parties_are_never_split_and_what_waits_cannot_fill_a_match(
        self, operations: list[tuple[str, int, int]]
    ) -> None:
        seats = 4
        matchmaker = MemoryMatchmaker(GameCatalogue.sized({"maze": seats}), Clock())
        matches: list[Match] = []
        matchmaker.add_listener(matches.append)
        waiting: list[Ticket] = []  # in queue order
        number = 0
        for kind, size, pick in operations:
            if kind == "cancel":
                if waiting:
                    gone = waiting.pop(pick % len(waiting))
                    self.assertTrue(self.successResultOf(matchmaker.cancel(gone.player_id)))
                continue
            ids = [f"p{number + k}" for k in range(size)]
            number += size
            members = tuple(Ticket(p, p, "maze", None, 0.0, party_id=ids[0]) for p in ids[1:])
            waiting.append(
                Ticket(ids[0], ids[0], "maze", None, 0.0, party_id=ids[0], members=members)
            )
            formed_before = len(matches)
            self.successResultOf(matchmaker.enqueue(waiting[-1]))
            new = matches[formed_before:]
            # Before this enqueue nothing could fill a match: at most one forms now,
            # the reference's choice: the earliest set with the oldest possible anchor.
            self.assertLessEqual(len(new), 1)
            expected = None
            for anchor in range(len(waiting)):
                found = _brute_force_match([q.size for q in waiting[anchor:]], seats)
                if found is not None:
                    expected = [waiting[anchor + i] for i in found]
                    break
            if expected is None:
                self.assertEqual(new, [])
                continue
            [match] = new
            self.assertEqual(match.player_ids, tuple(p for q in expected for p in q.player_ids))
            for q in expected:
                waiting.remove(q)
            # Whatever waits cannot fill a match, from any anchor.
            for anchor in range(len(waiting)):
                self.assertIsNone(_brute_force_match([q.size for q in waiting[anchor:]], seats))
            for q in waiting:
                self.assertIsNotNone(self.successResultOf(matchmaker.position(q.player_id)))
        self.assertEqual(matchmaker.queue_length("maze"), len(waiting))
        seated = [p for m in matches for p in m.player_ids]
        self.assertEqual(len(seated), len(set(seated)))


class TeamFillPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    # Two teams of four: P3 P2 P3' s1 s2 is P3 s1 | P3' s2 (P3 and P2 fit the
    # seats but no ticket behind them completes the teams).
    @example((8, 4), [("enqueue", n, 0) for n in (3, 2, 3, 1, 1)])
    @given(
        st.sampled_from([(4, 2), (6, 2), (6, 3), (8, 4), (9, 3)]),
        st.lists(
            st.tuples(
                st.sampled_from(["enqueue", "enqueue", "cancel"]),
                st.integers(1, 4),
                st.integers(0, 9),
            ),
            max_size=60,
        ),
    )
    def test_every_party_sits_in_one_team(
        self, shape: tuple[int, int], operations: list[tuple[str, int, int]]
    ) -> None:
        seats, team_size = shape
        matchmaker = MemoryMatchmaker(
            GameCatalogue.sized({"duo": seats}, team_sizes={"duo": team_size}), Clock()
        )
        matches: list[Match] = []
        matchmaker.add_listener(matches.append)
        waiting: list[Ticket] = []  # in queue order
        number = 0
        for kind, size, pick in operations:
            if kind == "cancel":
                if waiting:
                    gone = waiting.pop(pick % len(waiting))
                    self.assertTrue(self.successResultOf(matchmaker.cancel(gone.player_id)))
                continue
            ids = [f"p{number + k}" for k in range(size)]
            number += size
            members = tuple(Ticket(p, p, "duo", None, 0.0, party_id=ids[0]) for p in ids[1:])
            t = Ticket(ids[0], ids[0], "duo", None, 0.0, party_id=ids[0], members=members)
            if size > team_size:
                self.failureResultOf(matchmaker.enqueue(t), PartyTooLarge)
                continue
            waiting.append(t)
            formed_before = len(matches)
            self.successResultOf(matchmaker.enqueue(t))
            for match in matches[formed_before:]:
                self.assertEqual(len(match.players), seats)
                # Seats [k * team_size, (k + 1) * team_size) are team k: a
                # party's players all have the same team.
                team_of = {p.player_id: i // team_size for i, p in enumerate(match.players)}
                parties: dict[str, set[int]] = {}
                for p in match.players:
                    parties.setdefault(p.party_id or p.player_id, set()).add(team_of[p.player_id])
                self.assertTrue(all(len(teams) == 1 for teams in parties.values()), match)
                # The reference's choice: the earliest seatable set with the
                # oldest possible anchor (seated team by team).
                expected = None
                for anchor in range(len(waiting)):
                    sizes = [q.size for q in waiting[anchor:]]
                    found = _brute_force_match(sizes, seats, team_size)
                    if found is not None:
                        expected = [waiting[anchor + i] for i in found]
                        break
                assert expected is not None
                matched = set(match.player_ids)
                self.assertEqual(matched, {p for q in expected for p in q.player_ids})
                waiting = [q for q in waiting if q.player_id not in matched]
            # Whatever waits cannot fill a match, from any anchor.
            for anchor in range(len(waiting)):
                sizes = [q.size for q in waiting[anchor:]]
                self.assertIsNone(_brute_force_match(sizes, seats, team_size))
            for q in waiting:
                self.assertIsNotNone(self.successResultOf(matchmaker.position(q.player_id)))
        self.assertEqual(matchmaker.queue_length("duo"), len(waiting))
        seated = [p for m in matches for p in m.player_ids]
        self.assertEqual(len(seated), len(set(seated)))
