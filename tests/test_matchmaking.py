"""Tests for the in-memory FIFO matchmaker."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from vinom.matchmaking.fifo import FifoMatchmaker, UnknownGame, new_match_id
from vinom.matchmaking.interfaces import AlreadyQueued, IMatchmaker, Match, Ticket


def ticket(player_id: str, game: str = "tictactoe", at: float = 0.0) -> Ticket:
    return Ticket(player_id, player_id.upper(), game, None, at)


class FifoMatchmakerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.matchmaker = FifoMatchmaker({"tictactoe": 2, "maze": 3}, self.clock)
        self.matches: list[Match] = []
        self.matchmaker.add_listener(self.matches.append)

    def enqueue(self, t: Ticket) -> int:
        return self.successResultOf(self.matchmaker.enqueue(t))

    def test_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IMatchmaker, self.matchmaker))

    def test_positions_count_from_one(self) -> None:
        self.assertEqual(self.enqueue(ticket("a", "maze")), 1)
        self.assertEqual(self.enqueue(ticket("b", "maze")), 2)
        self.assertEqual(self.successResultOf(self.matchmaker.position("b")), 2)
        self.assertIsNone(self.successResultOf(self.matchmaker.position("zz")))

    def test_match_forms_when_the_queue_reaches_the_game_size(self) -> None:
        self.clock.advance(12.5)
        self.enqueue(ticket("a"))
        self.assertEqual(self.matches, [])
        self.assertEqual(self.enqueue(ticket("b")), 2)
        [match] = self.matches
        self.assertEqual(match.game, "tictactoe")
        self.assertEqual(match.player_ids, ("a", "b"))
        self.assertEqual(match.formed_at, 12.5)
        self.assertRegex(match.match_id, r"^m-[0-9a-f]{16}$")
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        self.assertIsNone(self.successResultOf(self.matchmaker.position("a")))

    def test_fifo_order_within_a_game(self) -> None:
        for player in "abcdef":
            self.enqueue(ticket(player, "maze"))
        self.assertEqual([m.player_ids for m in self.matches], [("a", "b", "c"), ("d", "e", "f")])

    def test_games_have_separate_queues(self) -> None:
        self.enqueue(ticket("a", "maze"))
        self.enqueue(ticket("b", "tictactoe"))
        self.enqueue(ticket("c", "maze"))
        self.assertEqual(self.matches, [])
        self.enqueue(ticket("d", "tictactoe"))
        self.assertEqual([m.player_ids for m in self.matches], [("b", "d")])

    def test_cancel_removes_the_ticket(self) -> None:
        self.enqueue(ticket("a"))
        self.assertTrue(self.successResultOf(self.matchmaker.cancel("a")))
        self.assertFalse(self.successResultOf(self.matchmaker.cancel("a")))
        self.enqueue(ticket("b"))
        self.assertEqual(self.matches, [])
        self.enqueue(ticket("c"))
        self.assertEqual([m.player_ids for m in self.matches], [("b", "c")])

    def test_cancel_moves_later_players_up(self) -> None:
        self.enqueue(ticket("a", "maze"))
        self.enqueue(ticket("b", "maze"))
        self.successResultOf(self.matchmaker.cancel("a"))
        self.assertEqual(self.successResultOf(self.matchmaker.position("b")), 1)
        self.assertEqual(self.enqueue(ticket("c", "maze")), 2)

    def test_a_player_is_never_in_two_queues(self) -> None:
        self.enqueue(ticket("a", "maze"))
        self.failureResultOf(self.matchmaker.enqueue(ticket("a", "tictactoe")), AlreadyQueued)
        self.failureResultOf(self.matchmaker.enqueue(ticket("a", "maze")), AlreadyQueued)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        self.assertEqual(self.matchmaker.queue_length("maze"), 1)

    def test_cancel_after_the_match_formed_is_false(self) -> None:
        self.enqueue(ticket("a"))
        self.enqueue(ticket("b"))
        self.assertFalse(self.successResultOf(self.matchmaker.cancel("a")))
        self.assertEqual(len(self.matches), 1)

    def test_unknown_game_is_refused(self) -> None:
        self.failureResultOf(self.matchmaker.enqueue(ticket("a", "chess")), UnknownGame)
        self.assertIsNone(self.successResultOf(self.matchmaker.position("a")))

    def test_a_failing_listener_does_not_stop_the_others(self) -> None:
        def broken(match: Match) -> None:
            raise RuntimeError("boom")

        matchmaker = FifoMatchmaker({"tictactoe": 2}, self.clock)
        heard: list[Match] = []
        matchmaker.add_listener(broken)
        matchmaker.add_listener(heard.append)
        matchmaker.enqueue(ticket("a"))
        matchmaker.enqueue(ticket("b"))
        self.assertEqual(len(heard), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_ticket_carries_its_seat_order_and_values(self) -> None:
        first = Ticket("a", "Ann", "tictactoe", 1500.0, 3.0)
        second = Ticket("b", "Bob", "tictactoe", None, 4.0)
        self.enqueue(first)
        self.enqueue(second)
        self.assertEqual(self.matches[0].players, (first, second))

    def test_match_sizes_must_be_positive(self) -> None:
        self.assertRaises(ValueError, FifoMatchmaker, {"x": 0}, self.clock)

    def test_match_ids_are_distinct(self) -> None:
        ids = {new_match_id() for _ in range(200)}
        self.assertEqual(len(ids), 200)
        self.assertTrue(all(re.fullmatch(r"m-[0-9a-f]{16}", i) for i in ids))


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
        matchmaker = FifoMatchmaker(sizes, clock)
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
