"""The seat router's per-player rate limits and its record of refused joins.

The security review found that a maze client could send a whole tour of the
maze (198 moves in about six datagrams) and win before the other player moved,
each move costing the host a state for every other player, and that `sync`
floods cost a full reliable state each. These tests pin the limits down.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.logger import capturedLogs

from tests.rooms.test_rooms_fixtures import SeqGame, make_match
from tests.rooms.test_seat_router import RouterTestCase
from vinom.games.duel import DuelGame
from vinom.games.maze import DIRECTIONS, MazeGame, MazeState
from vinom.games.registry import GameRegistry
from vinom.protocol.events import RELIABLE, SessionClosed
from vinom.protocol.interfaces import Admission
from vinom.rooms.client_messages import encode_sync
from vinom.rooms.messages import Phase
from vinom.rooms.room import Room

A, B = "p-a", "p-b"
SA, SB = 11, 12


def tour(state: MazeState, start: tuple[int, int]) -> list[tuple[str, tuple[int, int]]]:
    """A depth-first walk through the whole maze from `start`: (direction, from) moves."""
    width = state.width
    seen = {start}
    moves: list[tuple[str, tuple[int, int]]] = []
    back = {"N": "S", "S": "N", "E": "W", "W": "E"}

    def go(x: int, y: int) -> None:
        for direction, (bit, dx, dy, _) in DIRECTIONS.items():
            if state.cells[y * width + x] & bit or (x + dx, y + dy) in seen:
                continue
            seen.add((x + dx, y + dy))
            moves.append((direction, (x, y)))
            go(x + dx, y + dy)
            moves.append((back[direction], (x + dx, y + dy)))

    go(*start)
    return moves


class LimitsTestCase(RouterTestCase):
    start_at = 1000.0

    def make_games(self) -> dict[str, Any]:
        return {"seq": SeqGame(action_rate=10.0), "maze": MazeGame(), "duel": DuelGame()}

    def playing(self, game: str = "seq") -> Room:
        room = self.router.add_match(make_match("m-1", game=game), self.time.now)
        self.connect(SA, A)
        self.connect(SB, B)
        self.time.advance(room.game.countdown)
        self.assertEqual(room.phase, Phase.PLAYING)
        self.sender.clear()
        return room

    def errors(self, session_id: int) -> list[tuple[str, int | None]]:
        return [(m["code"], m["i"]) for m in self.sender.to(session_id, "error")]

    def release_pending(self) -> bool:
        """Whether held actions wait for a token: a deadline sooner than the room's own
        and its lingering's."""
        room = self.router.room("m-1")
        own = [room.schedule.next_timer() if room is not None else None,
               self.router.registry.next_timer()]  # fmt: skip
        pending = self.time.next_timer()
        return pending is not None and pending < min(
            (t for t in own if t is not None), default=math.inf
        )


class MazeSpeedHackTests(LimitsTestCase):
    def test_a_whole_tour_at_once_does_not_win_the_game(self) -> None:
        room = self.playing("maze")
        state = room.state
        moves = tour(state, state.positions[0])
        self.assertGreater(len(moves), 100)
        for number, (direction, (x, y)) in enumerate(moves):
            self.act(SA, {"move": direction, "from": [x, y]}, number)
        # A burst of two seconds' worth (20 moves at 10/s) is applied, 8 more wait.
        counters, drops = self.router.counters, self.router.drops
        self.assertEqual(counters["actions_applied"], 20)
        self.assertEqual(counters["actions_delayed"], 8)
        self.assertEqual(drops["rate_limited"], len(moves) - 28)
        self.assertEqual(room.phase, Phase.PLAYING)
        # The sender hears of it once, about the first action dropped.
        self.assertEqual(self.errors(SA), [("rate_limited", 28)])
        # The other player got one state per applied move, no more.
        self.assertEqual(len(self.sender.to(SB, "state")), 20)
        self.assertEqual(self.errors(SB), [])

        # The held moves go in order at the game's rate.
        self.time.advance(0.1)
        self.assertEqual(counters["actions_applied"], 21)
        self.time.advance(0.7)
        self.assertEqual(counters["actions_applied"], 28)
        self.assertEqual(room.state.positions[0], moves[28][1])
        self.assertEqual(counters["actions_rejected"], 0)
        self.assertFalse(self.release_pending())

        # The other player was never limited by the first one's flood.
        x, y = room.state.positions[1]
        cell = room.state.cells[y * room.state.width + x]
        direction = next(d for d, (bit, *_rest) in DIRECTIONS.items() if not cell & bit)
        self.act(SB, {"move": direction, "from": [x, y]}, 1)
        self.assertEqual(counters["actions_applied"], 29)

    def test_a_notice_at_most_once_per_interval(self) -> None:
        self.playing()
        for n in range(1, 41):
            self.act(SA, {"seq": n}, n)
        # 20 applied, 8 held: the 29th is the first dropped.
        self.assertEqual(self.errors(SA), [("rate_limited", 29)])
        # Half a second later 5 held actions went, and 5 more places are free.
        self.time.advance(0.5)
        self.assertEqual(self.router.counters["actions_applied"], 25)
        for n in range(100, 120):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(self.router.drops["rate_limited"], 12 + 15)
        self.assertEqual(self.errors(SA), [("rate_limited", 29)])
        # A second after the first notice, the next drop is told again.
        self.time.advance(0.5)
        for n in range(200, 220):
            self.act(SA, {"seq": n}, n)
        limited = [e for e in self.errors(SA) if e[0] == "rate_limited"]
        self.assertEqual(limited, [("rate_limited", 29), ("rate_limited", 205)])


class PacingTests(LimitsTestCase):
    def test_one_action_in_flight_is_slowed_never_stalled(self) -> None:
        # Like vinom's bots: the next action as soon as the last one shows in a state.
        room = self.playing()
        sent = 0
        for _ in range(100):
            applied = [m["i"] for m in self.sender.to(SA, "state") if m["i"] is not None]
            if sent == 0 or (applied and applied[-1] == sent):
                sent += 1
                self.act(SA, {"seq": sent}, sent)
            else:
                self.time.advance(0.01)
        self.assertEqual(self.errors(SA), [])
        self.assertEqual(self.router.drops["rate_limited"], 0)
        # 20 at once, then 10 per second over the 0.8 s or so of waiting.
        self.assertEqual(room.state.seqs[0], self.router.counters["actions_applied"])
        self.assertGreaterEqual(room.state.seqs[0], 26)
        self.assertLessEqual(room.state.seqs[0], 30)

    def test_held_actions_keep_their_order_and_ids(self) -> None:
        room = self.playing()
        for n in range(1, 25):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(room.state.seqs[0], 20)
        self.time.advance(0.4)
        self.assertEqual(room.state.seqs[0], 24)
        self.assertEqual(self.sender.to(SA, "state")[-1]["i"], 24)
        self.assertEqual(self.errors(SA), [])

    def test_held_actions_go_with_their_session(self) -> None:
        self.playing()
        for n in range(1, 25):
            self.act(SA, {"seq": n}, n)
        self.assertTrue(self.release_pending())
        self.router.session_closed(SessionClosed(SA, "timeout"), self.time.now)
        self.assertFalse(self.release_pending())
        self.time.advance(1.0)
        self.assertEqual(self.router.counters["actions_applied"], 20)

    def test_actions_held_when_the_match_ends_are_dropped_without_errors(self) -> None:
        room = self.playing()
        for n in range(1, 25):
            self.act(SA, {"seq": n}, n)
        self.act(SB, {"win": True}, 1)
        self.assertEqual(room.phase, Phase.FINISHED)
        self.time.advance(0.5)
        self.assertEqual(self.router.drops["held_at_end"], 4)
        self.assertEqual(self.errors(SA), [])
        self.assertEqual(self.router.counters["actions_applied"], 21)
        self.assertFalse(self.release_pending())

    def test_reconnecting_does_not_refill_the_bucket(self) -> None:
        room = self.playing()
        for n in range(1, 21):
            self.act(SA, {"seq": n}, n)
        self.router.session_closed(SessionClosed(SA, "timeout"), self.time.now)
        self.connect(21, A)
        self.assertEqual(room.session_of(A), 21)
        self.act(21, {"seq": 21}, 21)
        self.assertEqual(self.router.counters["actions_applied"], 20)
        self.assertEqual(self.router.counters["actions_delayed"], 1)
        self.time.advance(0.1)
        self.assertEqual(room.state.seqs[0], 21)

    def test_a_player_idle_since_connecting_gets_one_burst_at_the_first_action(self) -> None:
        # The buckets are made at the first action (an idle seat holds none): a long
        # wait earns no more than the burst, and the limit holds from that action on.
        room = self.playing()
        self.time.advance(30.0)
        for n in range(1, 25):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(room.state.seqs[0], 20)
        self.assertEqual(self.router.counters["actions_delayed"], 4)
        self.time.advance(0.4)
        self.assertEqual(room.state.seqs[0], 24)
        self.assertEqual(self.errors(SA), [])

    def test_a_sync_first_leaves_actions_limited(self) -> None:
        # A sync makes the player's buckets (the action bucket with them).
        room = self.playing()
        self.router.message_received(SA, RELIABLE, encode_sync(), self.time.now)
        for n in range(1, 25):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(room.state.seqs[0], 20)
        self.assertEqual(self.router.counters["actions_delayed"], 4)

    def test_a_reconnection_before_any_action_starts_with_a_full_bucket(self) -> None:
        room = self.playing()
        self.router.session_closed(SessionClosed(SA, "timeout"), self.time.now)
        self.connect(21, A)
        for n in range(1, 25):
            self.act(21, {"seq": n}, n)
        self.assertEqual(room.state.seqs[0], 20)
        self.assertEqual(self.router.counters["actions_delayed"], 4)

    def test_the_room_going_away_drops_the_players_limits(self) -> None:
        self.playing()
        for n in range(1, 25):
            self.act(SA, {"seq": n}, n)
        self.router.registry.remove("m-1", self.time.now)
        self.assertIsNone(self.time.next_timer())
        # A new match with the same ids starts with full buckets.
        self.playing()
        for n in range(1, 21):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(self.router.drops["rate_limited"], 0)


class _Spinning(BaseException):
    """Raised by the watchdog's alarm; not an Exception, so no handler on the way swallows it."""


@contextmanager
def fails_if_it_spins(case: LimitsTestCase, seconds: float = 5.0) -> Iterator[None]:
    """Fail the test, rather than hang it, if the block runs longer than `seconds`."""

    def alarm(signum: int, frame: object) -> None:
        raise _Spinning()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Spinning:
        case.fail(f"the host was still running its deadlines after {seconds:g} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class WallClockPacingTests(LimitsTestCase):
    """Held actions at the reactor's time, the wall clock, where floats are 0.24 us apart.

    The play benchmark's duel players (1000 moves/s allowed, a burst of 2000)
    once emptied their bucket, and the host then ran the release of their
    held moves again and again at the same instant: a 1 ms wait rounds to
    4194 steps of 2**-22 s, a hair short of the token, and the tiny wait left
    after that added to the time gave the same time back. The reactor never
    got control again (no datagram, WebSocket frame or command answered).
    """

    start_at = 1_795_476_040.0  # the clock of the host that hung

    def empty_bucket(self) -> Room:
        room = self.playing("duel")
        for n in range(1, 2001):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(self.router.counters["actions_applied"], 2000)
        return room

    def run_to_next_deadline(self) -> None:
        """Advance to the host's next deadline exactly, as its reactor timer fires there."""
        due = self.time.next_timer()
        assert due is not None
        with fails_if_it_spins(self):
            self.time.advance(due - self.time.now)

    def test_held_moves_are_applied_at_the_games_rate(self) -> None:
        room = self.empty_bucket()
        started = self.time.now
        for n in range(2001, 2004):
            self.act(SA, {"seq": n}, n)
        self.assertEqual(self.router.counters["actions_delayed"], 3)
        for n in range(2001, 2004):
            self.run_to_next_deadline()
            self.assertEqual(room.state.seqs[0], n)
        # One move a millisecond (to the float), each applied as its token came.
        self.assertAlmostEqual(self.time.now - started, 0.003, delta=1e-6)
        self.assertEqual(self.sender.to(SA, "state")[-1]["i"], 2003)
        self.assertEqual(self.errors(SA), [])
        self.assertFalse(self.release_pending())

    def test_a_move_a_hair_before_its_token_waits_for_it(self) -> None:
        room = self.empty_bucket()
        # 4194 steps of 2**-22 s: 0.99993 of a token, 72 ns short of a whole one.
        self.time.advance(4194 / 2**22)
        self.act(SA, {"seq": 2001}, 2001)
        self.assertEqual(self.router.counters["actions_delayed"], 1)
        # No token now: the move waits for a time after now, not for now itself.
        due = self.time.next_timer()
        assert due is not None
        self.assertGreater(due, self.time.now)
        self.run_to_next_deadline()
        self.assertEqual(room.state.seqs[0], 2001)
        self.assertFalse(self.release_pending())


class UnlimitedTests(LimitsTestCase):
    def test_an_action_rate_of_zero_is_unlimited(self) -> None:
        room = self.playing("duel")
        for n in range(1, 1001):
            self.act(SA, {"seq": n})
        self.assertEqual(room.state.seqs, (1000, 0))
        self.assertEqual(self.router.counters["actions_delayed"], 0)
        self.assertEqual(self.router.drops["rate_limited"], 0)

    def test_a_game_without_an_action_rate_gets_the_default(self) -> None:
        self.games["seq"] = SeqGame()
        room = self.playing()
        for n in range(1, 101):
            self.act(SA, {"seq": n}, n)
        # 20 per second, a burst of 40; 8 held.
        self.assertEqual(room.state.seqs[0], 40)
        self.assertEqual(self.router.drops["rate_limited"], 52)


class SyncLimitTests(LimitsTestCase):
    def test_sync_floods_are_dropped(self) -> None:
        self.playing()
        for _ in range(10):
            self.router.message_received(SA, RELIABLE, encode_sync(), self.time.now)
        # 2 per second, a burst of 4: six dropped, silently.
        self.assertEqual(len(self.sender.to(SA, "state", RELIABLE)), 4)
        self.assertEqual(self.router.drops["sync_rate_limited"], 6)
        self.assertEqual(self.sender.to(SA, "error"), [])
        self.time.advance(0.5)
        self.router.message_received(SA, RELIABLE, encode_sync(), self.time.now)
        self.router.message_received(SA, RELIABLE, encode_sync(), self.time.now)
        self.assertEqual(len(self.sender.to(SA, "state", RELIABLE)), 5)
        # Another player's syncs are their own.
        self.router.message_received(SB, RELIABLE, encode_sync(), self.time.now)
        self.assertEqual(len(self.sender.to(SB, "state", RELIABLE)), 1)

    def test_sync_limit_in_an_unlimited_game_outlives_the_session(self) -> None:
        room = self.playing("duel")
        for _ in range(5):
            self.router.message_received(SA, RELIABLE, encode_sync(), self.time.now)
        self.router.session_closed(SessionClosed(SA, "timeout"), self.time.now)
        self.connect(21, A)
        self.assertEqual(room.session_of(A), 21)
        self.router.message_received(21, RELIABLE, encode_sync(), self.time.now)
        self.assertEqual(self.router.drops["sync_rate_limited"], 2)


class RefusedJoinTests(LimitsTestCase):
    def test_the_games_reason_is_counted_and_logged(self) -> None:
        self.games["seq"] = SeqGame(join_rejects="the table is closed")
        self.router.add_match(make_match("m-1"), self.time.now)
        with capturedLogs() as events:
            self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.FULL)
        self.assertEqual(self.router.counters["joins_refused"], 1)
        [event] = events
        self.assertIn("the table is closed", event["log_format"].format(**event))
        self.assertEqual((event["player_id"], event["match_id"]), (A, "m-1"))

    def test_the_log_is_rate_limited_the_count_is_not(self) -> None:
        self.games["seq"] = SeqGame(join_rejects="no")
        self.router.add_match(make_match("m-1"), self.time.now)
        with capturedLogs() as events:
            for _ in range(50):
                self.router.admit(A, "m-1", self.time.now)
            self.time.advance(self.router.log_interval)
            self.router.admit(B, "m-1", self.time.now)
        self.assertEqual(self.router.counters["joins_refused"], 51)
        self.assertEqual([e["unlogged"] for e in events], [0, 49])

    def test_other_refusals_are_not_the_games(self) -> None:
        self.router.add_match(make_match("m-1"), self.time.now)
        self.assertEqual(self.router.admit("p-stranger", "m-1", self.time.now), Admission.REFUSE)
        self.assertEqual(self.router.admit(A, "m-other", self.time.now), Admission.REFUSE)
        self.assertEqual(self.router.counters["joins_refused"], 0)


class GameCheckTests(LimitsTestCase):
    def test_a_game_with_a_bad_tick_rate_is_not_hosted(self) -> None:
        self.games["seq"] = SeqGame(tick_rate=120.0)
        self.assertRaises(ValueError, self.router.add_match, make_match("m-1"), self.time.now)
        self.assertEqual(len(self.router.registry), 0)
        self.assertEqual(self.router.admit(A, "m-1", self.time.now), Admission.REFUSE)

    def test_registry_games_pass(self) -> None:
        registry = GameRegistry.from_plugins()
        for name in registry.names():
            self.games[name] = registry.get(name)
        self.router.add_match(make_match("m-1", game="tictactoe"), self.time.now)
        self.assertEqual(self.router.room("m-1").action_rate, 20.0)  # type: ignore[union-attr]
