"""Tests for vinom.rooms.router: admission, binding sessions to seats of rooms, rooms' removal."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame, Timeline, make_match
from vinom.protocol.events import RELIABLE, UNRELIABLE, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.rooms.client_messages import encode_action, encode_input, encode_leave, encode_sync
from vinom.rooms.messages import Phase
from vinom.rooms.registry import RoomExists, RoomRegistry
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.router import (
    INPUT_MESSAGES_PER_TICK,
    INPUT_RATE_LIMITED,
    STREAM,
    SeatRouter,
)

A, B = "p-a", "p-b"
SA, SB = 11, 12


class RouterTestCase(SynchronousTestCase):
    """A seat router on a Timeline with a RecordingOutbox; subclasses may start the
    time later and bring other games. A session the router closes is reported
    closed back to it, as the endpoint does."""

    start_at = 0.0

    def make_games(self) -> dict[str, Any]:
        return {"seq": SeqGame(), "seq-countdown": SeqGame(countdown=3)}

    def setUp(self) -> None:
        self.time = Timeline(self.start_at)
        self.sender = RecordingOutbox()
        self.games = self.make_games()
        self.router = SeatRouter(
            find_game=self.games.__getitem__,
            outbox=self.sender,
            timers=self.time.timers,
            registry=RoomRegistry(self.time.timers, linger=2.0),
        )
        self.sender.on_close = lambda session_id: self.router.session_closed(
            SessionClosed(session_id, "closed"), self.time.now
        )

    def connect(self, session_id: int, player_id: str, match_id: str = "m-1") -> None:
        self.router.session_connected(
            SessionConnected(session_id, player_id, match_id, ("127.0.0.1", 40000 + session_id)),
            self.time.now,
        )

    def close(self, session_id: int, reason: str = "timeout") -> None:
        self.router.session_closed(SessionClosed(session_id, reason), self.time.now)

    def act(self, session_id: int, action: dict[str, Any], action_id: int | None = None) -> None:
        self.router.message_received(
            session_id, RELIABLE, encode_action(action, action_id), self.time.now
        )

    def playing(self) -> Room:
        room = self.router.add_match(make_match("m-1"), self.time.now)
        self.connect(SA, A)
        self.connect(SB, B)
        self.assertEqual(room.phase, Phase.PLAYING)
        self.sender.clear()
        return room


class MatchTests(RouterTestCase):
    def test_add_match(self) -> None:
        room = self.router.add_match(make_match("m-1"), self.time.now)
        self.assertIs(self.router.room("m-1"), room)
        self.assertEqual(room.seats[1].player_id, B)
        self.assertRaises(RoomExists, self.router.add_match, make_match("m-1"), 0.0)
        self.assertRaises(KeyError, self.router.add_match, make_match("m-2", game="chess"), 0.0)

    def test_room_config_default_and_per_match(self) -> None:
        manager = SeatRouter(
            find_game=self.games.__getitem__,
            outbox=self.sender,
            timers=self.time.timers,
            config=RoomConfig(connect_deadline=7),
        )
        now = self.time.now
        self.assertEqual(manager.add_match(make_match("m-1"), now).remaining(now), 7)
        room = manager.add_match(make_match("m-2"), now, RoomConfig(connect_deadline=3))
        self.assertEqual(room.remaining(now), 3)


class AdmissionTests(RouterTestCase):
    def test_only_players_of_hosted_matches(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.ACCEPT)
        self.assertEqual(self.router.admit(B, "m-1", self.time.now), Admission.ACCEPT)
        self.assertEqual(self.router.admit(A, "m-other", self.time.now), Admission.REFUSE)
        self.assertEqual(self.router.admit("p-c", "m-1", self.time.now), Admission.REFUSE)

    def test_player_of_another_match_here(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.router.add_match(make_match("m-2", players=("p-c", "p-d")), self.time.now)
        self.assertEqual(self.router.admit("p-c", "m-1", self.time.now), Admission.REFUSE)
        self.assertEqual(self.router.admit("p-c", "m-2", self.time.now), Admission.ACCEPT)

    def test_second_connection_refused(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.connect(SA, A)
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.REFUSE)

    def test_finished_room_is_full(self) -> None:
        room = self.playing()
        self.act(SA, {"win": True})
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.FULL)
        self.assertEqual(self.router.admit("p-c", "m-1", self.time.now), Admission.REFUSE)

    def test_removed_room_refuses(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.router.registry.remove("m-1", self.time.now)
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.REFUSE)

    def test_seat_in_its_reconnection_window(self) -> None:
        self.playing()
        self.close(SA)
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.ACCEPT)
        self.assertEqual(self.router.admit(B, "m-1", self.time.now), Admission.REFUSE)

    def test_session_no_longer_admissible_is_closed(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.connect(SA, A)
        # Admitted during a handshake that completed after another session took the seat.
        self.connect(77, A)
        self.connect(78, A, "m-unknown")
        self.assertEqual(self.sender.closed, [77, 78])
        self.assertEqual(self.router.counters["sessions_refused"], 2)
        self.assertEqual(self.sender.to(77), [])
        self.assertEqual(self.router.session_player(SA), (A, "m-1"))
        self.assertIsNone(self.router.session_player(77))


class RoutingTests(RouterTestCase):
    def test_connect_sends_welcome_and_state(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.connect(SA, A)
        self.assertEqual(
            [m["t"] for m in self.sender.to(SA, channel=RELIABLE)], ["welcome", "event", "state"]
        )
        self.assertEqual(self.router.session_count, 1)

    def test_the_acting_player_is_the_sessions(self) -> None:
        room = self.playing()
        # The payload names B, but the session is A's: A moves.
        self.act(SA, {"seq": 1, "player": B, "player_id": B}, 1)
        self.assertEqual(room.state.seqs, (1, 0))
        self.assertEqual(self.router.counters["actions_applied"], 1)
        self.assertEqual(self.sender.to(SA, "state", UNRELIABLE)[-1]["i"], 1)
        self.assertIsNone(self.sender.to(SB, "state", UNRELIABLE)[-1]["i"])

    def test_illegal_action_is_an_error_to_the_sender_only(self) -> None:
        room = self.playing()
        version = room.version
        self.act(SB, {"seq": 5}, 9)
        self.assertEqual(
            self.sender.sent,
            [(SB, RELIABLE, {"t": "error", "code": "stale", "message": "expected seq 1", "i": 9})],
        )
        self.assertEqual(room.version, version)
        self.assertEqual(self.router.counters["actions_rejected"], 1)

    def test_sync(self) -> None:
        room = self.playing()
        self.router.message_received(SB, RELIABLE, encode_sync(), self.time.now)
        [state] = self.sender.to(SB, "state", RELIABLE)
        self.assertEqual(state["v"], room.version)

    def test_leave(self) -> None:
        room = self.playing()
        self.router.message_received(SA, RELIABLE, encode_leave(), self.time.now)
        self.assertEqual(self.sender.closed, [SA])
        self.assertTrue(room.has_left(A))
        self.assertIsNone(self.router.session_player(SA))
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.FULL)
        self.assertIn({"t": "presence", "id": A, "status": "left"}, self.sender.to(SB))

    def test_drops_are_counted_and_answered_with_nothing(self) -> None:
        room = self.playing()
        version = room.version
        self.router.message_received(999, RELIABLE, encode_action({"seq": 1}), self.time.now)
        self.router.message_received(SA, UNRELIABLE, encode_action({"seq": 1}), self.time.now)
        self.router.message_received(SA, RELIABLE, b"\xc1garbage", self.time.now)
        self.router.message_received(SA, RELIABLE, msgpack.packb({"t": "teleport"}), self.time.now)
        self.router.message_received(
            SA, RELIABLE, msgpack.packb({"t": "action", "a": 5}), self.time.now
        )
        self.assertEqual(
            dict(self.router.drops),
            {
                "unknown_session": 1,
                "wrong_channel": 1,
                "not_msgpack": 1,
                "unknown_type": 1,
                "bad_action": 1,
            },
        )
        self.assertEqual(self.sender.sent, [])
        self.assertEqual(room.version, version)

    def test_messages_after_close_are_dropped(self) -> None:
        room = self.playing()
        self.close(SA)
        self.act(SA, {"seq": 1})
        self.assertEqual(self.router.drops["unknown_session"], 1)
        self.assertEqual(room.state.seqs, (0, 0))

    def test_game_bug_does_not_escape(self) -> None:
        room = self.playing()
        self.act(SA, {"boom": True}, 3)
        self.assertEqual(self.sender.to(SA, "error")[-1]["code"], "internal_error")
        self.flushLoggedErrors(RuntimeError)
        self.act(SA, {"seq": 1}, 4)
        self.assertEqual(room.state.seqs, (1, 0))

    def test_two_rooms_are_separate(self) -> None:
        first = self.router.add_match(make_match("m-1"), self.time.now)
        second = self.router.add_match(make_match("m-2", players=("p-c", "p-d")), self.time.now)
        for session, player, match in (
            (1, A, "m-1"),
            (2, B, "m-1"),
            (3, "p-c", "m-2"),
            (4, "p-d", "m-2"),
        ):
            self.connect(session, player, match)
        self.sender.clear()
        self.act(3, {"seq": 1})
        self.assertEqual((first.state.seqs, second.state.seqs), ((0, 0), (1, 0)))
        self.assertEqual({s for s, _, _ in self.sender.sent}, {3, 4})


class ReconnectionTests(RouterTestCase):
    def test_reconnect_with_a_new_session(self) -> None:
        room = self.playing()
        self.act(SA, {"seq": 1}, 1)
        self.close(SA)
        self.assertTrue(room.in_grace(A))
        self.time.advance(10)
        self.act(SB, {"seq": 1}, 1)
        self.connect(21, A)
        self.assertEqual(self.router.session_player(21), (A, "m-1"))
        self.assertEqual(room.state.hooks[-1], ("reconnect", A))
        welcome, _event, state = self.sender.to(21, channel=RELIABLE)
        self.assertTrue(welcome["reconnected"])
        self.assertEqual((state["v"], state["s"]["seqs"]), (room.version, [1, 1]))
        self.act(21, {"seq": 2}, 2)
        self.assertEqual(room.state.seqs, (2, 1))

    def test_window_lapses(self) -> None:
        room = self.playing()
        self.close(SA)
        self.time.advance(30)
        self.assertEqual(room.state.hooks[-1], ("leave", A))
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.FULL)


class BannedPlayerTests(RouterTestCase):
    """`remove_player`: a player whose account was banned is taken out as their `leave`
    would take them out, connected or not."""

    def test_a_connected_player_is_taken_out_as_a_leaver(self) -> None:
        room = self.playing()
        self.assertTrue(self.router.remove_player("m-1", A, self.time.now))
        self.assertEqual(self.sender.closed, [SA])
        self.assertTrue(room.has_left(A))
        self.assertEqual(room.state.hooks[-1], ("leave", A))
        self.assertIsNone(self.router.session_player(SA))
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.FULL)
        self.assertIn({"t": "presence", "id": A, "status": "left"}, self.sender.to(SB))
        # Once out, again is nothing; nor is a player or match that is not here.
        self.assertFalse(self.router.remove_player("m-1", A, self.time.now))
        self.assertFalse(self.router.remove_player("m-1", "p-nobody", self.time.now))
        self.assertFalse(self.router.remove_player("m-2", B, self.time.now))

    def test_a_player_in_their_reconnection_window_loses_the_seat_at_once(self) -> None:
        room = self.playing()
        self.close(SA)
        self.assertTrue(room.in_grace(A))
        self.assertTrue(self.router.remove_player("m-1", A, self.time.now))
        self.assertFalse(room.in_grace(A))
        self.assertTrue(room.has_left(A))
        self.assertEqual(room.state.hooks[-1], ("leave", A))
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.FULL)


class RemovalTests(RouterTestCase):
    """Ended rooms linger, then go with their sessions (the core reports the host
    idle when none is left: tests/hosting/test_hosting_core.py)."""

    def test_finished_room_lingers_then_goes_with_its_sessions(self) -> None:
        room = self.playing()
        self.act(SA, {"win": True})
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(self.sender.closed, [])
        self.time.advance(1.9)
        self.assertIs(self.router.room("m-1"), room)
        self.time.advance(0.1)
        self.assertIsNone(self.router.room("m-1"))
        self.assertEqual(sorted(self.sender.closed), [SA, SB])
        self.assertEqual(self.router.session_count, 0)
        self.assertIsNone(self.time.next_timer())

    def test_rooms_go_each_after_its_own_end(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        second = self.router.add_match(
            make_match("m-2"), self.time.now, RoomConfig(connect_deadline=60)
        )
        self.time.advance(30)  # m-1 aborted
        self.time.advance(2)  # and removed after the linger
        self.assertIsNone(self.router.room("m-1"))
        self.assertEqual(len(self.router.registry), 1)
        self.time.advance(30)
        self.assertEqual(second.ending.abort_reason, "players_missing")
        self.time.advance(2)
        self.assertEqual(len(self.router.registry), 0)

    def test_ended_room_goes_when_its_last_player_disconnects(self) -> None:
        self.playing()
        self.act(SA, {"win": True})
        self.close(SA, "disconnect")
        self.assertIsNotNone(self.router.room("m-1"))
        self.close(SB, "disconnect")
        self.assertIsNone(self.router.room("m-1"))
        self.assertEqual(self.sender.closed, [])
        self.assertIsNone(self.time.next_timer())

    def test_shutdown(self) -> None:
        room = self.playing()
        self.router.add_match(make_match("m-2", players=("p-c", "p-d")), self.time.now)
        self.router.shutdown("shutdown", self.time.now)
        self.assertEqual((room.phase, room.ending.abort_reason), (Phase.ABORTED, "shutdown"))
        self.assertEqual(self.sender.to(SA, "phase")[-1]["reason"], "shutdown")
        self.assertEqual(sorted(self.sender.closed), [SA, SB])
        self.assertEqual(len(self.router.registry), 0)
        self.assertIsNone(self.time.next_timer())


class GarbageTests(RouterTestCase):
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        messages=st.lists(
            st.tuples(
                st.sampled_from([SA, SB, 999]),
                st.sampled_from([RELIABLE, UNRELIABLE, STREAM, 7]),
                st.one_of(
                    st.binary(max_size=64),
                    st.builds(
                        msgpack.packb,
                        st.dictionaries(
                            st.sampled_from(["t", "a", "i"]),
                            st.one_of(
                                # Not "leave": that is a valid message with an effect.
                                st.sampled_from(["action", "sync", "state", "hello"]),
                                st.integers(min_value=-(2**63), max_value=2**64 - 1),
                                st.text(max_size=5),
                                st.lists(st.integers(-1000, 1000), max_size=3),
                                st.none(),
                            ),
                            max_size=3,
                        ),
                    ),
                ),
            ),
            max_size=10,
        )
    )
    def test_garbage_never_raises_and_changes_nothing(
        self, messages: list[tuple[int, int, bytes]]
    ) -> None:
        self.setUp()
        room = self.playing()
        state, version = room.state, room.version
        for session_id, channel, data in messages:
            self.router.message_received(session_id, channel, data, self.time.now)
        # Garbage may be a `sync` (a state sent reliably to that player), never
        # a change: no action can be valid, since "a" is never a map here.
        self.assertIs(room.state, state)
        self.assertEqual(room.version, version)
        self.assertEqual(self.router.counters["internal_errors"], 0)
        for _session, channel, message in self.sender.sent:
            self.assertEqual((channel, message["t"]), (RELIABLE, "state"))
        self.assertEqual(self.sender.closed, [])


class InputRoutingTests(RouterTestCase):
    """`input` reaches a ticking room's jitter buffer unreliable over UDP, and on the
    one ordered channel of a stream session (WebSocket, WebTransport: `STREAM`);
    on UDP's reliable channel it is dropped as `wrong_channel`, and a turn-based
    room takes none. Each session's input messages are rate-limited."""

    def make_games(self) -> dict[str, Any]:
        return {"seq": SeqGame(), "seq-tick": SeqGame(tick_rate=20)}

    def start(self, game: str) -> Room:
        room = self.router.add_match(make_match("m-1", game=game), self.time.now)
        self.connect(SA, A)
        self.connect(SB, B)
        self.assertEqual(room.phase, Phase.PLAYING)
        return room

    def test_inputs_from_udp_and_stream_sessions_reach_a_ticking_room(self) -> None:
        room = self.start("seq-tick")
        tick = room.tick_number
        self.router.message_received(
            SA, UNRELIABLE, encode_input(None, [(tick + 1, {"seq": 1})]), self.time.now
        )
        self.router.message_received(
            SB, STREAM, encode_input(None, [(tick + 1, {"seq": 1})]), self.time.now
        )
        self.time.advance(0.2)
        self.assertEqual(room.state.seqs, (1, 1))
        self.assertEqual(room.input_counts["applied"], 2)
        self.assertEqual(self.router.input_counts()["applied"], 2)
        self.assertEqual(self.router.drops["wrong_channel"], 0)

    def test_an_input_on_the_reliable_channel_is_dropped(self) -> None:
        """docs/protocol.md §14: over UDP an `input` travels on channel 0; one on
        channel 1 is dropped and counted `wrong_channel`, even in a ticking room."""
        room = self.start("seq-tick")
        self.router.message_received(
            SA, RELIABLE, encode_input(None, [(room.tick_number + 1, {"seq": 1})]), self.time.now
        )
        self.time.advance(0.2)
        self.assertEqual(room.state.seqs, (0, 0))
        self.assertEqual(self.router.drops["wrong_channel"], 1)
        self.assertEqual(self.router.input_counts()["held"], 0)

    def test_input_messages_are_limited_per_session(self) -> None:
        """At most INPUT_MESSAGES_PER_TICK a tick (a burst of a second's worth):
        the rest are dropped before they are read, counted `input_rate_limited`
        (within FLOOD_SECONDS of them: tests/hosting/test_hosting_core.py)."""
        self.assertEqual(INPUT_MESSAGES_PER_TICK, 4)
        room = self.start("seq-tick")
        rate = INPUT_MESSAGES_PER_TICK * 20  # the game's tick rate
        flood = encode_input(None, [(room.tick_number + 1, {"seq": 1})])
        for _ in range(500):
            self.router.message_received(SA, UNRELIABLE, flood, self.time.now)
        # A second's burst got through (one input, then its copies), the rest not.
        self.assertEqual(self.router.drops[INPUT_RATE_LIMITED], 500 - rate)
        self.assertEqual(room.input_counts["held"] + room.input_counts["duplicate"], rate)
        # The other session has a bucket of its own, and the stream one is limited too.
        for _ in range(rate + 10):
            self.router.message_received(SB, STREAM, flood, self.time.now)
        self.assertEqual(self.router.drops[INPUT_RATE_LIMITED], 500 - rate + 10)
        # The bucket refills at its rate: a tick later, four more.
        self.time.advance(0.05)
        for _ in range(10):
            self.router.message_received(SA, UNRELIABLE, flood, self.time.now)
        self.assertEqual(self.router.drops[INPUT_RATE_LIMITED], 500 - rate + 10 + 6)

    def test_a_turn_based_room_takes_no_input(self) -> None:
        room = self.start("seq")
        for channel in (UNRELIABLE, RELIABLE, STREAM):
            self.router.message_received(
                SA, channel, encode_input(None, [(1, {"seq": 1})]), self.time.now
            )
        self.time.advance(0.2)
        self.assertEqual(room.state.seqs, (0, 0))
        self.assertEqual(self.router.drops["wrong_channel"], 3)
