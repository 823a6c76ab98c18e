"""Tests for vinom.rooms.room and vinom.rooms.registry: the match lifecycle of one room.

Rooms are sans-I/O: each test says what time it is (`Timeline`), and the
room's deadlines run when that time passes them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import RecordingOutbox, SeqGame, SeqState, Timeline, make_match
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.protocol.interfaces import Admission
from vinom.rooms.messages import Phase, encode_state
from vinom.rooms.registry import SHARED_RNG, RoomExists, RoomRegistry
from vinom.rooms.room import Room, RoomConfig, SharedViewMismatch

A, B, C = "p-a", "p-b", "p-c"
SA, SB, SC = 101, 102, 103


class SharedSeqGame(SeqGame):
    """SeqGame without secrets: the same view for everyone, and it says so."""

    shared_view = True

    def __init__(self) -> None:
        super().__init__()
        self.view_calls: list[str | None] = []

    def view(self, state: SeqState, player_id: str | None) -> Mapping[str, Any]:
        self.view_calls.append(player_id)
        return {"seqs": list(state.seqs), "ticks": state.ticks}


class RawOutbox:
    """Records sends as (session id, channel, bytes), as they would go out."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []

    def send_message(self, session_id: int, channel: int, data: bytes) -> None:
        self.sent.append((session_id, channel, data))


class RoomTestCase(SynchronousTestCase):
    def make_room(self, game: SeqGame | None = None, **config: Any) -> Room:
        self.time = Timeline()
        self.sender = RecordingOutbox()
        self.ended: list[Room] = []
        self.game = game if game is not None else SeqGame()
        room = Room(
            match=make_match(),
            game=self.game,
            outbox=self.sender,
            timers=self.time.timers,
            config=RoomConfig(**config),
            rng=random.Random(1),
            on_end=self.ended.append,
        )
        room.start(self.time.now)
        return room

    def playing_room(self, game: SeqGame | None = None, **config: Any) -> Room:
        room = self.make_room(game, **config)
        self.assertTrue(room.player_connected(A, SA, self.time.now))
        self.assertTrue(room.player_connected(B, SB, self.time.now))
        self.assertEqual(room.phase, Phase.PLAYING)
        self.sender.clear()
        return room

    def assertNoTimers(self) -> None:
        self.assertIsNone(self.time.next_timer())


class AdmissionTests(RoomTestCase):
    def test_seats_and_strangers(self) -> None:
        room = self.make_room()
        self.assertEqual(room.admission(A), Admission.ACCEPT)
        self.assertEqual(room.admission(B), Admission.ACCEPT)
        self.assertEqual(room.admission("p-stranger"), Admission.REFUSE)
        self.assertFalse(room.player_connected("p-stranger", 9, self.time.now))
        self.assertEqual(self.sender.sent, [])

    def test_second_connection_refused(self) -> None:
        room = self.make_room()
        self.assertTrue(room.player_connected(A, SA, self.time.now))
        self.assertEqual(room.admission(A), Admission.REFUSE)
        self.assertFalse(room.player_connected(A, 999, self.time.now))
        self.assertEqual(room.session_of(A), SA)
        self.assertEqual(self.sender.to(999), [])

    def test_game_rejects_join(self) -> None:
        room = self.make_room(SeqGame(join_rejects="banned"))
        self.assertEqual(room.admission(A), Admission.FULL)
        # The game's reason is kept for the host's log and counters.
        self.assertEqual(room.check_admission(A), (Admission.FULL, "banned"))
        self.assertFalse(room.player_connected(A, SA, self.time.now))

    def test_reasons_only_for_the_games_refusals(self) -> None:
        room = self.make_room()
        self.assertEqual(room.check_admission(A), (Admission.ACCEPT, None))
        self.assertEqual(room.check_admission("p-stranger"), (Admission.REFUSE, None))
        room.abort("test", self.time.now)
        self.assertEqual(room.check_admission(A), (Admission.FULL, None))

    def test_check_join_that_raises_refuses_with_a_reason(self) -> None:
        game = SeqGame()
        room = self.make_room(game)

        def broken(state: SeqState, seat: object) -> str | None:
            raise RuntimeError("a bug in check_join")

        game.check_join = broken  # type: ignore[method-assign]
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.assertEqual(
            room.check_admission(A),
            (Admission.FULL, "check_join failed: RuntimeError: a bug in check_join"),
        )
        self.assertEqual(room.game_errors, 1)
        # One error line that names the game, the exception and where it was
        # raised: no traceback, nothing critical (the host is fine, the game is not).
        [event] = [e for e in logged if "check_join" in e.get("log_format", "")]
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertNotIn("log_failure", event)
        text = formatEvent(event)
        self.assertIn("check_join raised RuntimeError: a bug in check_join at ", text)
        self.assertIn("test_rooms.py:", text)
        self.assertIn(f"player {A} was refused", text)


class GameCheckTests(RoomTestCase):
    """A game handed straight to a room is checked like a plugin before it runs."""

    def test_tick_rate_out_of_range(self) -> None:
        for rate in (120.0, 0.5, -1.0, float("nan"), float("inf")):
            self.assertRaises(ValueError, self.make_room, SeqGame(tick_rate=rate))
        for rate in (0.0, 1.0, 60.0):
            self.assertEqual(self.make_room(SeqGame(tick_rate=rate)).game.tick_rate, rate)

    def test_bad_action_rate(self) -> None:
        for rate in (-1.0, float("inf"), float("nan")):
            self.assertRaises(ValueError, self.make_room, SeqGame(action_rate=rate))
        game = SeqGame()
        game.action_rate = True  # type: ignore[attr-defined]
        self.assertRaises(ValueError, self.make_room, game)

    def test_not_a_game(self) -> None:
        self.assertRaises(ValueError, self.make_room, object())

    def test_action_rate_from_the_game_or_the_default(self) -> None:
        self.assertEqual(self.make_room(SeqGame(action_rate=4.0)).action_rate, 4.0)
        self.assertEqual(self.make_room(SeqGame(action_rate=0.0)).action_rate, 0.0)
        self.assertEqual(self.make_room(SeqGame()).action_rate, 20.0)

    def test_ended_room_is_full_for_its_players(self) -> None:
        room = self.playing_room()
        room.abort("test", self.time.now)
        self.assertEqual(room.admission(A), Admission.FULL)
        self.assertEqual(room.admission("p-stranger"), Admission.REFUSE)


class LifecycleTests(RoomTestCase):
    def test_first_connection(self) -> None:
        room = self.make_room()
        self.assertEqual((room.phase, room.version), (Phase.WAITING, 0))
        self.assertEqual(room.remaining(self.time.now), 30.0)
        self.time.advance(2)
        room.player_connected(A, SA, self.time.now)
        messages = self.sender.to(SA, channel=RELIABLE)
        self.assertEqual(
            [m["t"] for m in messages], ["welcome", "event", "state"], "welcome comes first"
        )
        welcome = messages[0]
        self.assertEqual((welcome["match"], welcome["game"], welcome["seat"]), ("m-1", "seq", 0))
        self.assertEqual([p["id"] for p in welcome["players"]], [A, B])
        self.assertFalse(welcome["reconnected"])
        self.assertEqual(messages[1]["e"], "join")
        state = messages[2]
        self.assertEqual((state["v"], state["p"], state["r"]), (1, "waiting", 28.0))
        self.assertEqual(state["s"]["mine"], "secret-p-a")
        self.assertEqual(self.game_hooks(room), [("join", A)])

    def game_hooks(self, room: Room) -> list[tuple[str, str]]:
        return list(room.state.hooks)

    def test_all_connected_starts_play_without_countdown(self) -> None:
        room = self.make_room()
        room.player_connected(A, SA, self.time.now)
        room.player_connected(B, SB, self.time.now)
        self.assertEqual(room.phase, Phase.PLAYING)
        # Two joins and one phase change.
        self.assertEqual(room.version, 3)
        phase = self.sender.to(SA, "phase")
        self.assertEqual(phase, [{"t": "phase", "p": "playing", "v": 3, "r": 60.0}])
        # A, already there, sees the state of the started room on the unreliable
        # channel; B, whose arrival started it, gets it reliably right after its
        # welcome, and no unreliable state (a body carries those first).
        latest = self.sender.to(SA, "state", UNRELIABLE)[-1]
        self.assertEqual((latest["v"], latest["p"]), (3, "playing"))
        self.assertEqual(self.sender.to(SB, "state", UNRELIABLE), [])
        first = self.sender.to(SB, "state", RELIABLE)[0]
        self.assertEqual((first["v"], first["p"]), (3, "playing"))
        # A presence message told A that B connected.
        self.assertEqual(
            self.sender.to(SA, "presence"), [{"t": "presence", "id": B, "status": "connected"}]
        )
        self.assertEqual(self.sender.to(SB, "presence"), [])

    def test_countdown(self) -> None:
        room = self.make_room(SeqGame(countdown=3.0))
        room.player_connected(A, SA, self.time.now)
        room.player_connected(B, SB, self.time.now)
        self.assertEqual(room.phase, Phase.COUNTDOWN)
        self.assertEqual(room.remaining(self.time.now), 3.0)
        self.assertEqual(self.sender.to(SB, "phase")[-1]["p"], "countdown")
        self.assertFalse(room.handle_action(A, {"seq": 1}, 1, self.time.now))
        self.assertEqual(self.sender.to(SA, "error")[-1]["code"], "not_playing")
        self.time.advance(2.9)
        self.assertEqual(room.phase, Phase.COUNTDOWN)
        self.time.advance(0.1)
        self.assertEqual(room.phase, Phase.PLAYING)
        self.assertEqual(self.sender.to(SB, "phase")[-1]["p"], "playing")
        self.assertTrue(room.handle_action(A, {"seq": 1}, 1, self.time.now))

    def test_connect_deadline_aborts(self) -> None:
        room = self.make_room(connect_deadline=10.0)
        room.player_connected(A, SA, self.time.now)
        self.time.advance(9.9)
        self.assertEqual(room.phase, Phase.WAITING)
        self.time.advance(0.1)
        self.assertEqual(room.phase, Phase.ABORTED)
        self.assertEqual(room.ending.abort_reason, "players_missing")
        self.assertEqual(self.ended, [room])
        phase = self.sender.to(SA, "phase")[-1]
        self.assertEqual((phase["p"], phase["reason"]), ("aborted", "players_missing"))
        self.assertEqual(self.sender.to(SA, "state", RELIABLE)[-1]["p"], "aborted")
        self.assertNoTimers()

    def test_a_disconnected_player_is_missing_at_the_deadline(self) -> None:
        room = self.make_room(connect_deadline=10.0)
        room.player_connected(A, SA, self.time.now)
        room.player_disconnected(A, SA, self.time.now)
        room.player_connected(B, SB, self.time.now)
        self.assertEqual(room.phase, Phase.WAITING)
        self.time.advance(10)
        self.assertEqual(room.ending.abort_reason, "players_missing")
        self.assertNoTimers()

    def test_leaving_while_waiting_aborts(self) -> None:
        room = self.make_room()
        room.player_connected(A, SA, self.time.now)
        room.player_left(A, self.time.now)
        self.assertEqual((room.phase, room.ending.abort_reason), (Phase.ABORTED, "player_left"))
        self.assertNoTimers()

    def test_time_limit_finishes_with_result(self) -> None:
        room = self.playing_room(SeqGame(time_limit=20.0))
        room.handle_action(B, {"seq": 1}, 1, self.time.now)
        self.time.advance(19.5)
        self.assertAlmostEqual(room.remaining(self.time.now) or 0, 0.5)
        self.assertEqual(room.phase, Phase.PLAYING)
        version = room.version
        self.time.advance(0.5)
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(room.ending.result, {"winners": [B], "reason": "time"})
        # time_up changed the state and the phase changed: two versions.
        self.assertEqual(room.version, version + 2)
        for session in (SA, SB):
            self.assertEqual(self.sender.to(session, "event")[-1]["e"], "time_up")
            phase = self.sender.to(session, "phase")[-1]
            self.assertEqual(phase["p"], "finished")
            self.assertEqual(phase["result"], {"winners": [B], "reason": "time"})
            final = self.sender.to(session, "state", RELIABLE)[-1]
            self.assertEqual((final["v"], final["p"]), (room.version, "finished"))
        self.assertEqual(self.ended, [room])
        self.assertNoTimers()

    def test_a_result_no_message_can_carry_ends_the_match_as_the_games_error(self) -> None:
        # An integer past 64 bits is a fine Python result but no MessagePack one: the
        # match still ends, and everyone is told, as for a result that raises.
        game = SeqGame()
        game.result = lambda state: {"winners": [A], "score": 2**70}  # type: ignore[method-assign]
        room = self.playing_room(game)
        self.assertTrue(room.handle_action(A, {"win": True}, 5, self.time.now))
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(room.ending.result, {"winners": [], "reason": "error"})
        self.assertEqual(room.game_errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(OverflowError)), 1)
        for session in (SA, SB):
            self.assertEqual(self.sender.to(session, "phase")[-1]["result"],
                             {"winners": [], "reason": "error"})  # fmt: skip
        self.assertEqual(self.ended, [room])

    def test_game_finishes_on_action(self) -> None:
        room = self.playing_room()
        self.assertTrue(room.handle_action(A, {"win": True}, 5, self.time.now))
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(room.ending.result, {"winners": [A], "reason": "won"})
        self.assertEqual(self.ended, [room])
        self.assertNoTimers()
        self.assertFalse(room.handle_action(B, {"seq": 1}, 1, self.time.now))
        self.assertEqual(self.sender.to(SB, "error")[-1]["code"], "not_playing")

    def test_abort_is_final(self) -> None:
        room = self.playing_room()
        room.abort("shutdown", self.time.now)
        version = room.version
        room.abort("again", self.time.now)
        self.assertEqual((room.ending.abort_reason, room.version), ("shutdown", version))
        self.assertEqual(self.ended, [room])


class ActionTests(RoomTestCase):
    def test_versions_grow_by_one_per_applied_action(self) -> None:
        room = self.playing_room()
        start = room.version
        for n in range(1, 6):
            self.assertTrue(room.handle_action(A, {"seq": n}, n, self.time.now))
            self.assertEqual(room.version, start + n)
        self.assertTrue(room.handle_action(B, {"seq": 1}, 77, self.time.now))
        self.assertEqual(room.version, start + 6)

    def test_state_on_change_to_each_player_with_their_view(self) -> None:
        room = self.playing_room()
        room.handle_action(A, {"seq": 1}, 41, self.time.now)
        [to_a] = self.sender.to(SA, "state", UNRELIABLE)
        [to_b] = self.sender.to(SB, "state", UNRELIABLE)
        self.assertEqual(to_a["v"], room.version)
        self.assertEqual(to_a["s"], {"seqs": [1, 0], "ticks": 0, "mine": "secret-p-a"})
        self.assertEqual(to_b["s"], {"seqs": [1, 0], "ticks": 0, "mine": "secret-p-b"})
        # Each player's state carries their own last applied action id.
        self.assertEqual((to_a["i"], to_b["i"]), (41, None))
        self.assertEqual([c for _, c, _ in self.sender.sent], [UNRELIABLE, UNRELIABLE])

    def test_a_shared_view_is_built_once_per_change(self) -> None:
        game = SharedSeqGame()
        # The optimisation itself, without the debug check the test suite turns on.
        room = self.playing_room(game, check_views=False)
        del game.view_calls[:]
        room.handle_action(A, {"seq": 1}, 41, self.time.now)
        self.assertEqual(len(game.view_calls), 1)
        [to_a] = self.sender.to(SA, "state", UNRELIABLE)
        [to_b] = self.sender.to(SB, "state", UNRELIABLE)
        self.assertEqual(to_a["s"], {"seqs": [1, 0], "ticks": 0})
        self.assertEqual(to_b["s"], to_a["s"])
        self.assertEqual((to_a["v"], to_b["v"]), (room.version, room.version))
        # Only the action id differs: each player's own.
        self.assertEqual((to_a["i"], to_b["i"]), (41, None))
        room.handle_action(B, {"seq": 1}, 7, self.time.now)
        self.assertEqual([m["i"] for m in self.sender.to(SB, "state", UNRELIABLE)], [None, 7])
        self.assertEqual([m["i"] for m in self.sender.to(SA, "state", UNRELIABLE)], [41, 41])

    def test_a_shared_view_gives_each_player_the_bytes_of_their_own_state(self) -> None:
        """Encoded once per change, yet each of three players gets exactly the state
        message `encode_state` makes for them: the shared view, their own action id."""
        game = SharedSeqGame()
        self.time = Timeline()
        outbox = RawOutbox()
        room = Room(
            match=make_match(players=(A, B, C)),
            game=game,
            outbox=outbox,
            timers=self.time.timers,
            config=RoomConfig(check_views=False),
            rng=random.Random(1),
        )
        started = self.time.now
        room.start(started)
        for player_id, session_id in ((A, SA), (B, SB), (C, SC)):
            self.assertTrue(room.player_connected(player_id, session_id, self.time.now))
        self.assertEqual(room.phase, Phase.PLAYING)
        seqs = {A: 0, B: 0, C: 0}
        ids: dict[str, int | None] = {A: None, B: None, C: None}
        for player_id, action_id in ((A, 41), (B, None), (C, 2**40), (A, None), (B, 41)):
            self.time.advance(0.25)
            del outbox.sent[:], game.view_calls[:]
            now = self.time.now
            seqs[player_id] += 1
            ids[player_id] = action_id
            self.assertTrue(room.handle_action(player_id, {"seq": seqs[player_id]}, action_id, now))
            self.assertEqual(len(game.view_calls), 1)
            view = {"seqs": [seqs[A], seqs[B], seqs[C]], "ticks": 0}
            self.assertEqual(
                outbox.sent,
                [
                    (session_id, UNRELIABLE, encode_state(
                        room.version, Phase.PLAYING, room.remaining(now), view, ids[p],
                        room.tick_number, round((now - started) * 1000)))
                    for p, session_id in ((A, SA), (B, SB), (C, SC))
                ],
            )  # fmt: skip

    def test_the_view_check_catches_a_game_that_lies_about_sharing(self) -> None:
        """With `check_views` (VINOM_CHECK_VIEWS), a game that says shared_view =
        True but hides something is reported, and each player gets their own view."""

        class Liar(SeqGame):
            shared_view = True  # but the view below has a secret per player

        room = self.playing_room(Liar(), check_views=True)
        room.handle_action(A, {"seq": 1}, 41, self.time.now)
        [error] = self.flushLoggedErrors(SharedViewMismatch)
        self.assertIn("view(state, 'p-a') != view(state, 'p-b')", str(error.value))
        [to_a] = self.sender.to(SA, "state", UNRELIABLE)
        [to_b] = self.sender.to(SB, "state", UNRELIABLE)
        self.assertEqual(to_a["s"]["mine"], "secret-p-a")
        self.assertEqual(to_b["s"]["mine"], "secret-p-b")
        # Reported once per room, not per change.
        room.handle_action(B, {"seq": 1}, 7, self.time.now)
        self.assertEqual(self.flushLoggedErrors(SharedViewMismatch), [])
        self.assertEqual(self.sender.to(SB, "state", UNRELIABLE)[-1]["s"]["mine"], "secret-p-b")

    def test_the_view_check_passes_an_honest_game_and_is_off_by_default(self) -> None:
        game = SharedSeqGame()
        room = self.playing_room(game, check_views=True)
        del game.view_calls[:]
        room.handle_action(A, {"seq": 1}, 41, self.time.now)
        self.assertEqual(self.flushLoggedErrors(SharedViewMismatch), [])
        self.assertEqual(sorted(map(str, game.view_calls)), [A, A, B])  # checked, then built once
        for value, expected in (("1", True), ("on", True), ("", False), ("0", False)):
            self.patch(os, "environ", {"VINOM_CHECK_VIEWS": value})
            self.assertIs(RoomConfig().check_views, expected)

    def test_views_are_per_player_unless_shared(self) -> None:
        game = SharedSeqGame()
        game.shared_view = False
        room = self.playing_room(game)
        del game.view_calls[:]
        room.handle_action(A, {"seq": 1}, 41, self.time.now)
        self.assertEqual(sorted(game.view_calls), [A, B])

    def test_simultaneous_moves_of_two_players_both_apply(self) -> None:
        room = self.playing_room()
        # Both made from the same room version: per-player versions do not clash.
        self.assertTrue(room.handle_action(A, {"seq": 1}, 1, self.time.now))
        self.assertTrue(room.handle_action(B, {"seq": 1}, 1, self.time.now))
        self.assertEqual(room.state.seqs, (1, 1))

    def test_stale_action_is_an_error_to_its_sender_only(self) -> None:
        room = self.playing_room()
        room.handle_action(A, {"seq": 1}, 1, self.time.now)
        self.sender.clear()
        state, version = room.state, room.version
        self.assertFalse(room.handle_action(A, {"seq": 1}, 2, self.time.now))
        self.assertEqual(
            self.sender.sent,
            [(SA, RELIABLE, {"t": "error", "code": "stale", "message": "expected seq 2", "i": 2})],
        )
        self.assertIs(room.state, state)
        self.assertEqual(room.version, version)

    def test_game_bug_is_an_internal_error_and_changes_nothing(self) -> None:
        room = self.playing_room()
        state, version = room.state, room.version
        self.assertFalse(room.handle_action(B, {"boom": 1}, 3, self.time.now))
        self.assertEqual(
            [(s, c, m["t"], m["code"], m["i"]) for s, c, m in self.sender.sent],
            [(SB, RELIABLE, "error", "internal_error", 3)],
        )
        self.assertIs(room.state, state)
        self.assertEqual(room.version, version)
        self.assertEqual(room.game_errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        # The room goes on.
        self.assertTrue(room.handle_action(B, {"seq": 1}, 4, self.time.now))

    def test_events_go_to_their_recipients_on_the_reliable_channel(self) -> None:
        room = self.playing_room()
        room.handle_action(B, {"whisper": "psst"}, 1, self.time.now)
        self.assertEqual(
            [m["e"] for m in self.sender.to(SB, "event", RELIABLE)], ["whisper", "shout"]
        )
        self.assertEqual([m["e"] for m in self.sender.to(SA, "event", RELIABLE)], ["shout"])
        whisper = self.sender.to(SB, "event")[0]
        self.assertEqual((whisper["d"], whisper["v"]), ({"text": "psst"}, room.version))
        self.assertEqual(self.sender.to(SA, "event", UNRELIABLE), [])

    def test_sync_sends_the_state_reliably(self) -> None:
        room = self.playing_room()
        room.send_state(A, self.time.now)
        [state] = self.sender.to(SA, "state", RELIABLE)
        self.assertEqual(state["v"], room.version)
        self.assertEqual(self.sender.to(SB), [])


class PeriodicTests(RoomTestCase):
    def test_state_is_sent_periodically(self) -> None:
        room = self.playing_room(state_interval=0.5)
        self.time.advance(0.5)
        self.assertEqual(len(self.sender.to(SA, "state", UNRELIABLE)), 1)
        self.assertEqual(len(self.sender.to(SB, "state", UNRELIABLE)), 1)
        self.time.pump([0.5] * 4)
        states = self.sender.to(SA, "state", UNRELIABLE)
        self.assertEqual(len(states), 5)
        self.assertEqual({s["v"] for s in states}, {room.version})
        self.assertEqual([s["r"] for s in states], [59.5, 59.0, 58.5, 58.0, 57.5])

    def test_periodic_state_can_be_turned_off(self) -> None:
        self.playing_room(state_interval=0)
        self.time.advance(10)
        self.assertEqual(self.sender.sent, [])

    def test_waiting_players_get_periodic_state(self) -> None:
        room = self.make_room(state_interval=1.0)
        room.player_connected(A, SA, self.time.now)
        self.sender.clear()
        self.time.advance(1)
        [state] = self.sender.to(SA, "state", UNRELIABLE)
        self.assertEqual(state["p"], "waiting")

    def test_ticks(self) -> None:
        room = self.playing_room(SeqGame(tick_rate=10), state_interval=0)
        version = room.version
        self.time.pump([0.1] * 10)
        self.assertEqual(room.state.ticks, 10)
        self.assertAlmostEqual(room.state.elapsed, 1.0)
        self.assertEqual(room.version, version + 10)
        self.assertEqual(len(self.sender.to(SA, "state", UNRELIABLE)), 10)

    def test_ticks_that_change_nothing_send_nothing(self) -> None:
        room = self.playing_room(SeqGame(tick_rate=30, tick_changes=False), state_interval=0)
        version = room.version
        self.time.pump([1 / 30] * 30)
        self.assertEqual(room.version, version)
        self.assertEqual(self.sender.sent, [])

    def test_ticks_stop_when_the_game_ends(self) -> None:
        room = self.playing_room(SeqGame(tick_rate=10, time_limit=1.0))
        self.time.pump([0.1] * 11)
        self.assertEqual(room.phase, Phase.FINISHED)
        ticks = room.state.ticks
        self.assertNoTimers()
        self.time.advance(5)
        self.assertEqual(room.state.ticks, ticks)


class ReconnectionTests(RoomTestCase):
    def test_reconnect_within_the_window(self) -> None:
        room = self.playing_room(SeqGame(time_limit=300), reconnect_grace=30.0)
        room.handle_action(A, {"seq": 1}, 1, self.time.now)
        room.player_disconnected(A, SA, self.time.now)
        self.assertTrue(room.in_grace(A))
        self.assertEqual(
            self.sender.to(SB, "presence"), [{"t": "presence", "id": A, "status": "disconnected"}]
        )
        self.time.advance(20)
        # Meanwhile the others play on, and A receives nothing.
        room.handle_action(B, {"seq": 1}, 1, self.time.now)
        self.assertEqual(room.admission(A), Admission.ACCEPT)
        self.sender.clear()
        self.assertTrue(room.player_connected(A, 201, self.time.now))
        self.assertFalse(room.in_grace(A))
        messages = self.sender.to(201, channel=RELIABLE)
        self.assertEqual([m["t"] for m in messages], ["welcome", "event", "state"])
        self.assertTrue(messages[0]["reconnected"])
        self.assertEqual(messages[1]["e"], "reconnect")
        self.assertEqual(messages[2]["s"]["seqs"], [1, 1])
        self.assertEqual(messages[2]["v"], room.version)
        self.assertEqual(messages[2]["i"], 1, "the seat's last action id is kept")
        self.assertEqual(room.state.hooks[-1], ("reconnect", A))
        # The seat is A's again: the window's timer is gone and play goes on.
        self.time.advance(60)
        self.assertNotIn(("leave", A), room.state.hooks)
        self.assertTrue(room.handle_action(A, {"seq": 2}, 2, self.time.now))

    def test_window_lapses_leave_hook_runs(self) -> None:
        room = self.playing_room(reconnect_grace=30.0)
        room.player_disconnected(A, SA, self.time.now)
        version = room.version
        self.time.advance(29.9)
        self.assertNotIn(("leave", A), room.state.hooks)
        self.time.advance(0.1)
        self.assertEqual(room.state.hooks[-1], ("leave", A))
        self.assertEqual(room.version, version + 1)
        self.assertTrue(room.has_left(A))
        self.assertEqual(room.admission(A), Admission.FULL)
        self.assertIn({"t": "presence", "id": A, "status": "left"}, self.sender.to(SB))
        self.assertEqual(room.phase, Phase.PLAYING)

    def test_a_game_that_ends_when_a_player_leaves(self) -> None:
        room = self.playing_room(SeqGame(finish_on_leave=True), reconnect_grace=5.0)
        room.player_disconnected(B, SB, self.time.now)
        self.time.advance(5)
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(room.ending.result, {"winners": [A], "reason": "left"})
        self.assertEqual(self.sender.to(SA, "phase")[-1]["result"]["winners"], [A])
        self.assertNoTimers()

    def test_everyone_gone_abandons_the_room(self) -> None:
        room = self.playing_room(reconnect_grace=5.0)
        room.player_disconnected(A, SA, self.time.now)
        room.player_disconnected(B, SB, self.time.now)
        self.time.advance(5)
        self.assertEqual((room.phase, room.ending.abort_reason), (Phase.ABORTED, "abandoned"))
        self.assertEqual(self.ended, [room])
        self.assertNoTimers()

    def test_explicit_leave_skips_the_window(self) -> None:
        room = self.playing_room()
        room.player_left(A, self.time.now)
        self.assertTrue(room.has_left(A))
        self.assertFalse(room.in_grace(A))
        self.assertEqual(room.state.hooks[-1], ("leave", A))
        self.assertEqual(room.admission(A), Admission.FULL)

    def test_stale_close_of_an_old_session_is_ignored(self) -> None:
        room = self.playing_room()
        room.player_disconnected(A, SA, self.time.now)
        room.player_connected(A, 201, self.time.now)
        room.player_disconnected(A, SA, self.time.now)
        self.assertEqual(room.session_of(A), 201)
        self.assertFalse(room.in_grace(A))

    def test_disconnect_after_the_end_holds_no_timer(self) -> None:
        room = self.playing_room()
        room.handle_action(A, {"win": True}, 1, self.time.now)
        room.player_disconnected(B, SB, self.time.now)
        self.assertNoTimers()
        self.assertEqual(room.session_ids(), [SA])


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.time = Timeline()
        self.sender = RecordingOutbox()
        self.registry = RoomRegistry(self.time.timers, linger=2.0)
        self.removed: list[Room] = []
        self.ended: list[Room] = []
        self.registry.add_removal_listener(self.removed.append)
        self.registry.add_end_listener(self.ended.append)

    def create(
        self, match_id: str, config: RoomConfig | None = None, rng: random.Random | None = None
    ) -> Room:
        return self.registry.create(
            make_match(match_id), SeqGame(), self.sender, self.time.now, config, rng
        )

    def test_rooms_without_a_generator_share_the_process_one_across_registries(self) -> None:
        # One game host (and registry) per match: seeding a generator for each cost
        # about 15 us a match.
        other = RoomRegistry(self.time.timers)
        self.assertIs(self.create("m-1").actions.rng, SHARED_RNG)
        room = other.create(make_match("m-2"), SeqGame(), self.sender, self.time.now)
        self.assertIs(room.actions.rng, SHARED_RNG)
        seeded = random.Random(7)
        self.assertIs(self.create("m-3", rng=seeded).actions.rng, seeded)

    def test_create_and_look_up(self) -> None:
        room = self.create("m-1")
        self.assertIs(self.registry.get("m-1"), room)
        self.assertIn("m-1", self.registry)
        self.assertIsNone(self.registry.get("m-2"))
        self.assertEqual(len(self.registry), 1)
        self.assertEqual(list(self.registry), [room])
        # Created rooms are started: the connect deadline runs.
        self.assertEqual(room.remaining(self.time.now), 30.0)
        self.assertRaises(RoomExists, self.create, "m-1")

    def test_rooms_share_the_registrys_generator_unless_given_one(self) -> None:
        first = self.create("m-1")
        second = self.create("m-2")
        seeded = random.Random(5)
        third = self.create("m-3", rng=seeded)
        # The room hands its generator to the part that draws from it.
        self.assertIs(first.actions.rng, self.registry.rng)
        self.assertIs(second.actions.rng, self.registry.rng)
        self.assertIs(third.actions.rng, seeded)

    def test_ended_room_is_removed_after_its_linger(self) -> None:
        room = self.create("m-1", RoomConfig(connect_deadline=5))
        other = self.create("m-2")
        self.time.advance(5)
        self.assertEqual(room.phase, Phase.ABORTED)
        self.assertEqual(self.ended, [room])
        self.time.advance(1.9)
        self.assertIs(self.registry.get("m-1"), room, "lingers for its final messages")
        self.time.advance(0.1)
        self.assertIsNone(self.registry.get("m-1"))
        self.assertEqual(self.removed, [room])
        self.assertIs(self.registry.get("m-2"), other)

    def test_remove_a_running_room(self) -> None:
        room = self.create("m-1", RoomConfig(state_interval=0))
        self.assertIs(self.registry.remove("m-1", self.time.now), room)
        self.assertEqual((room.phase, room.ending.abort_reason), (Phase.ABORTED, "closed"))
        self.assertEqual(self.removed, [room])
        self.assertEqual(self.ended, [room])
        self.assertIsNone(self.time.next_timer())
        self.assertIsNone(self.registry.remove("m-1", self.time.now))

    def test_removing_early_drops_the_linger_deadline(self) -> None:
        room = self.create("m-1", RoomConfig(state_interval=0))
        room.abort("test", self.time.now)
        self.assertEqual(self.registry.next_timer(), 2.0)
        self.assertEqual(self.time.next_timer(), 2.0)
        self.registry.remove("m-1", self.time.now)
        self.assertIsNone(self.registry.next_timer())
        self.assertIsNone(self.time.next_timer())
        self.assertEqual(self.removed, [room])

    def test_a_new_room_under_a_removed_ones_id_does_not_inherit_its_linger(self) -> None:
        old = self.create("m-1", RoomConfig(state_interval=0))
        self.create("m-2", RoomConfig(state_interval=0)).abort("test", self.time.now)
        old.abort("test", self.time.now)
        self.registry.remove("m-1", self.time.now)
        new = self.create("m-1", RoomConfig(state_interval=0))
        self.time.advance(2)
        self.assertIs(self.registry.get("m-1"), new)
        self.assertIsNone(self.registry.get("m-2"))

    def test_many_rooms_share_one_timer_queue(self) -> None:
        rooms = [self.create(f"m-{n}", RoomConfig(connect_deadline=n + 1)) for n in range(50)]
        self.time.pump([1.0] * 60)
        self.assertTrue(all(room.ended for room in rooms))
        self.assertEqual(len(self.registry), 0)
        self.assertIsNone(self.time.next_timer())
        # Every deadline that moved left at most one stale entry behind.
        self.assertLessEqual(len(self.time.timers), 1)


# Issue 74 item 4's bars for `Room` (the class alone: it has no bases) ...
TARGET_ROOM_LINES = 400
TARGET_ROOM_ATTRIBUTES = 15
# ... and where it stands: measured (within the bars now), and may only come down.
ROOM_LINES = 337
ROOM_ATTRIBUTES = 12


class RoomSizeTests(RoomTestCase):
    """`Room` stays a size a reader can hold, by owning its parts rather than
    inheriting them: no base but `object`, its lines and attributes (attrs fields
    and any other instance attribute) within `ROOM_LINES` and `ROOM_ATTRIBUTES`,
    which come down to the targets; its seating, actions, sending, real-time loop,
    schedule and match end are parts it holds, each a class of its own with its own
    tests."""

    def test_the_room_has_no_mixins(self) -> None:
        self.assertEqual(Room.__mro__, (Room, object))

    def test_the_room_class_and_its_attributes_stay_small(self) -> None:
        import inspect

        import attrs

        lines = len(inspect.getsource(Room).splitlines())
        self.assertLessEqual(lines, max(ROOM_LINES, TARGET_ROOM_LINES))
        room = self.make_room()
        names = {f.name for f in attrs.fields(Room)} | set(getattr(room, "__dict__", ()))
        self.assertLessEqual(len(names), max(ROOM_ATTRIBUTES, TARGET_ROOM_ATTRIBUTES))
        # A room has no __dict__ (its attributes are slots); its parts hold their own.
        self.assertEqual(Room.__dictoffset__, 0)
        for part in ("seating", "actions", "sending", "realtime", "schedule", "ending"):
            self.assertTrue(hasattr(room, part), part)
