"""Tests for the in-memory player store."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from vinom.matchmaking.interfaces import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.store.interfaces import IPlayerStore, MatchPlacement, PlayerRecord
from vinom.store.memory import MemoryPlayerStore


def placement(match_id: str, *players: str, port: int = 7400) -> MatchPlacement:
    tickets = tuple(Ticket(p, p.upper(), "tictactoe", None, 0.0) for p in players)
    return MatchPlacement(
        Match(match_id, "tictactoe", tickets, 1.0), HostAddress("127.0.0.1", port), 2.0
    )


class MemoryPlayerStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = MemoryPlayerStore()

    def test_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IPlayerStore, self.store))

    def test_players_are_saved_found_and_removed(self) -> None:
        record = PlayerRecord("p-1", "Ann", "ab" * 32, 5.0)
        self.assertIsNone(self.successResultOf(self.store.save_player(record)))
        self.assertEqual(self.successResultOf(self.store.get_player("p-1")), record)
        self.assertIsNone(self.successResultOf(self.store.get_player("p-2")))
        self.successResultOf(self.store.remove_player("p-1"))
        self.assertIsNone(self.successResultOf(self.store.get_player("p-1")))
        # Removing an unknown player is not an error.
        self.successResultOf(self.store.remove_player("p-1"))
        self.assertEqual(self.store.player_count, 0)

    def test_placement_is_found_by_match_and_by_player(self) -> None:
        placed = placement("m-1", "a", "b")
        self.successResultOf(self.store.save_placement(placed))
        self.assertEqual(self.successResultOf(self.store.get_placement("m-1")), placed)
        self.assertEqual(self.successResultOf(self.store.placement_for_player("b")), placed)
        self.assertIsNone(self.successResultOf(self.store.placement_for_player("c")))
        self.assertEqual(placed.port, 7400)
        self.assertEqual(placed.player_ids, ("a", "b"))
        ticket = placed.ticket_of("b")
        assert ticket is not None
        self.assertEqual(ticket.name, "B")
        self.assertIsNone(placed.ticket_of("c"))

    def test_removing_a_placement_clears_its_players(self) -> None:
        self.successResultOf(self.store.save_placement(placement("m-1", "a", "b")))
        self.successResultOf(self.store.remove_placement("m-1"))
        self.assertIsNone(self.successResultOf(self.store.get_placement("m-1")))
        self.assertIsNone(self.successResultOf(self.store.placement_for_player("a")))
        self.assertEqual(self.store.placement_count, 0)

    def test_removing_an_old_placement_keeps_a_players_newer_match(self) -> None:
        self.successResultOf(self.store.save_placement(placement("m-1", "a", "b")))
        newer = placement("m-2", "a", "c", port=7401)
        self.successResultOf(self.store.save_placement(newer))
        self.successResultOf(self.store.remove_placement("m-1"))
        self.assertEqual(self.successResultOf(self.store.placement_for_player("a")), newer)
        self.assertIsNone(self.successResultOf(self.store.placement_for_player("b")))
        # Removing an unknown placement is not an error.
        self.successResultOf(self.store.remove_placement("m-9"))
