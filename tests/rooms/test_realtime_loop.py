"""The real-time loop alone (vinom.rooms.realtime): its seats' feeds, driven without a room.

A `RealTimeLoop` is made of a game's rules as a room makes it, seated with
`Member`s, and given inputs, acks and connections directly; what it holds for
each seat is its `SeatFeed`, never the `Member`.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import SeqGame
from vinom.games.interfaces import Seat
from vinom.games.rules import GameRules
from vinom.rooms.delta import Quantisation, SnapshotHistory
from vinom.rooms.member import Member
from vinom.rooms.realtime import RealTimeLoop


def seated_loop(tick_rate: float = 20.0) -> tuple[RealTimeLoop, tuple[Member, ...]]:
    loop = RealTimeLoop.of(GameRules.of(SeqGame(tick_rate=tick_rate)), Quantisation(), False)
    assert loop is not None
    members = tuple(Member(Seat(player_id=p, name=p, index=i)) for i, p in enumerate("ab"))
    loop.seat(members)
    return loop, members


class SeatFeedTests(SynchronousTestCase):
    def test_a_game_without_a_tick_has_no_loop(self) -> None:
        self.assertIsNone(RealTimeLoop.of(GameRules.of(SeqGame()), Quantisation(), False))

    def test_a_feed_per_seat_in_seat_order(self) -> None:
        loop, members = seated_loop()
        self.assertEqual(list(loop.feeds), ["a", "b"])
        self.assertEqual([f.member for f in loop.feeds.values()], list(members))
        for feed in loop.feeds.values():
            self.assertEqual((feed.inputs, feed.snapshots, feed.priorities), (None, None, None))

    def test_a_connection_gives_the_seat_a_new_snapshot_history(self) -> None:
        loop, _ = seated_loop()
        loop.connected("a")
        first = loop.feeds["a"].snapshots
        self.assertIsInstance(first, SnapshotHistory)
        self.assertIsNone(loop.feeds["b"].snapshots)
        loop.connected("a")  # a reconnection holds none of the last session's views
        self.assertIsNot(loop.feeds["a"].snapshots, first)

    def test_inputs_wait_in_the_seats_feed_until_their_tick(self) -> None:
        loop, _ = seated_loop()
        loop.offer("a", None, ((2, {"seq": 1}), (1, {"seq": 0})), playing=True)
        feed = loop.feeds["a"]
        self.assertIsNotNone(feed.inputs)
        self.assertIsNone(loop.feeds["b"].inputs)
        self.assertEqual(loop.input_counts["held"], 2)
        self.assertEqual(list(loop.take(feed, 1)), [(1, {"seq": 0})])
        self.assertEqual(list(loop.take(feed, 2)), [(2, {"seq": 1})])
        self.assertEqual(list(loop.take(loop.feeds["b"], 2)), [])

    def test_inputs_of_a_seat_not_playing_are_counted_not_held(self) -> None:
        loop, _ = seated_loop()
        loop.offer("b", None, ((1, {"seq": 1}),), playing=False)
        self.assertIsNone(loop.feeds["b"].inputs)
        self.assertEqual(loop.input_counts["not_playing"], 1)

    def test_an_ack_of_a_tick_not_run_is_never_a_baseline(self) -> None:
        loop, _ = seated_loop()
        loop.connected("a")
        loop.offer("a", 5, (), playing=True)
        self.assertEqual(loop.input_counts["bad_ack"], 1)
