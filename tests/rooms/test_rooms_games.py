"""The built-in games played to a result through the seat router, rooms and bots.

No sockets: an outbox keeps each session's latest state, and each player's bot
chooses its next action from that view (as a real client would), sending it
through `SeatRouter.message_received`. Like vinom's own clients, a bot has
one action in flight: it acts again once a state or an error has answered it
(and the room's action rate paces it as time advances).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import Timeline, make_match
from vinom.games.dice import DiceGame
from vinom.games.duel import DuelGame
from vinom.games.interfaces import IBot, IGame
from vinom.games.maze import MazeGame
from vinom.games.owedrahn import OweDrahnGame
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.protocol.events import RELIABLE, SessionConnected
from vinom.rooms.client_messages import encode_action
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import Phase
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.router import SeatRouter


def make_router(game: IGame, keeper: ViewKeeper, time: Timeline) -> SeatRouter:
    return SeatRouter(find_game=GameRegistry([game]).get, outbox=keeper, timers=time.timers)


class ViewKeeper:
    """Keeps, per session, the newest state (dropping any not newer) and the errors,
    and which action ids have been answered."""

    def __init__(self) -> None:
        self.views: dict[int, tuple[int, Mapping[str, Any]]] = {}
        self.errors: list[tuple[int, dict[str, Any]]] = []
        self.closed: list[int] = []
        self.ack_delays: dict[int, tuple[float, float]] = {}
        self.phases: dict[int, list[str]] = {}
        self.applied: dict[int, int] = {}
        self.refused: set[tuple[int, int]] = set()

    def answered(self, session_id: int, action_id: int) -> bool:
        """True once the action was applied (a state shows it) or refused (an error)."""
        return (
            self.applied.get(session_id, 0) >= action_id or (session_id, action_id) in self.refused
        )

    def send_message(self, session_id: int, channel: int, data: bytes) -> None:
        message = decode_server_message(data)
        assert message is not None, data
        kind = message["t"]
        if kind == "state":
            held = self.views.get(session_id)
            if held is None or message["v"] > held[0]:
                self.views[session_id] = (message["v"], message["s"])
            if message["i"] is not None:
                self.applied[session_id] = max(self.applied.get(session_id, 0), message["i"])
        elif kind == "error":
            assert channel == RELIABLE
            self.errors.append((session_id, message))
            if message["i"] is not None:
                self.refused.add((session_id, message["i"]))
        elif kind == "phase":
            self.phases.setdefault(session_id, []).append(message["p"])

    def close_session(self, session_id: int) -> None:
        self.closed.append(session_id)

    def set_ack_delays(self, session_id: int, own_s: float, peer_s: float) -> bool:
        self.ack_delays[session_id] = (own_s, peer_s)
        return True


class BuiltInGamesTests(SynchronousTestCase):
    def play(
        self,
        game: IGame,
        players: int = 2,
        options: Mapping[str, Any] | None = None,
        seed: int = 7,
    ) -> tuple[Room, ViewKeeper, SeatRouter]:
        time = Timeline()
        keeper = ViewKeeper()
        router = make_router(game, keeper, time)
        ids = [f"p-{n:016x}" for n in range(players)]
        room = router.add_match(
            make_match("m-1", ids, game.name),
            time.now,
            RoomConfig(options=options or {}),
            random.Random(seed),
        )
        rng = random.Random(seed)
        bots: dict[int, IBot] = {}
        for session_id, player_id in enumerate(ids, start=1):
            router.session_connected(
                SessionConnected(session_id, player_id, "m-1", ("127.0.0.1", 1000 + session_id)),
                time.now,
            )
            bots[session_id] = game.make_bot(player_id, rng)
        action_id = 0
        in_flight: dict[int, int] = {}
        for _ in range(40000):
            if room.ended:
                break
            acted = False
            if room.phase is Phase.PLAYING:
                for session_id, bot in bots.items():
                    waiting = in_flight.get(session_id)
                    if waiting is not None and not keeper.answered(session_id, waiting):
                        continue
                    action = bot.choose_action(keeper.views[session_id][1])
                    if action is not None:
                        action_id += 1
                        in_flight[session_id] = action_id
                        router.message_received(
                            session_id, RELIABLE, encode_action(action, action_id), time.now
                        )
                        acted = True
            if not acted:
                time.advance(0.05)
        self.assertTrue(room.ended, f"{game.name} did not end")
        self.assertEqual(room.phase, Phase.FINISHED)
        self.assertEqual(room.game_errors, 0)
        assert room.ending.result is not None
        self.assertIn("winners", room.ending.result)
        for session_id in bots:
            self.assertEqual(keeper.phases[session_id][-1], "finished")
            # Every player's newest state is the final one.
            self.assertEqual(keeper.views[session_id][0], room.version)
        # Bots play legal moves: nothing they sent was rejected as illegal.
        self.assertEqual(
            [e for _, e in keeper.errors if e["code"] not in ("stale", "not_your_turn")], []
        )
        self.assertEqual(router.counters["internal_errors"], 0)
        time.advance(10)
        self.assertEqual(len(router.registry), 0)
        self.assertEqual(sorted(keeper.closed), sorted(bots))
        self.assertIsNone(time.next_timer())
        return room, keeper, router

    def test_maze(self) -> None:
        room, _, router = self.play(MazeGame(), players=2)
        self.assertGreater(router.counters["actions_applied"], 10)
        result = room.ending.result
        self.assertIn(result and result["reason"], ("all_collected", "time_up"))

    def test_maze_four_players(self) -> None:
        self.play(MazeGame(), players=4)

    def test_tictactoe(self) -> None:
        self.play(TicTacToeGame())

    def test_dice(self) -> None:
        self.play(DiceGame())

    def test_owedrahn(self) -> None:
        self.play(OweDrahnGame(), players=3)

    def test_duel_to_a_target(self) -> None:
        room, _, router = self.play(DuelGame(), options={"target": 50})
        self.assertEqual(room.ending.result and room.ending.result["reason"], "target")
        self.assertGreaterEqual(router.counters["actions_applied"], 50)


class MazeConcurrencyTests(SynchronousTestCase):
    def test_simultaneous_moves_both_apply_and_a_replayed_move_is_stale(self) -> None:
        from vinom.games.maze import DIRECTIONS

        time = Timeline()
        keeper = ViewKeeper()
        router = make_router(MazeGame(), keeper, time)
        room = router.add_match(make_match("m-1", ["p-a", "p-b"], "maze"), time.now)
        for session_id, player_id in ((1, "p-a"), (2, "p-b")):
            router.session_connected(
                SessionConnected(session_id, player_id, "m-1", ("h", 1)), time.now
            )
        time.advance(MazeGame().countdown)
        self.assertEqual(room.phase, Phase.PLAYING)
        version, view = keeper.views[1]
        moves = {}
        for session_id, player in zip((1, 2), view["players"], strict=True):
            x, y = player["pos"]
            cell = view["cells"][y * view["width"] + x]
            direction = next(d for d, (bit, *_rest) in DIRECTIONS.items() if not cell & bit)
            moves[session_id] = {"move": direction, "from": [x, y]}
        # Both moves are made from the same room version.
        router.message_received(1, RELIABLE, encode_action(moves[1], 1), time.now)
        router.message_received(2, RELIABLE, encode_action(moves[2], 1), time.now)
        self.assertEqual(router.counters["actions_applied"], 2)
        self.assertEqual(room.version, version + 2)
        self.assertEqual(keeper.errors, [])
        # The same move again (a retransmission, or a client behind): stale, to its sender.
        router.message_received(1, RELIABLE, encode_action(moves[1], 2), time.now)
        [(session_id, error)] = keeper.errors
        self.assertEqual((session_id, error["code"], error["i"]), (1, "stale", 2))
        self.assertEqual(room.version, version + 2)


# Actions a hostile or buggy client might send: the right keys with wrong values.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.sampled_from(["N", "E", "S", "W", "roll", "bank"]),
    st.lists(st.integers(-3, 12), max_size=7),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1), max_size=2),
)
_keys = st.sampled_from(
    ["move", "from", "cell", "rematch", "seq", "roll", "select", "bank", "reset", "target", "x"]
)


class HostileActionTests(SynchronousTestCase):
    """Random actions through every built-in game: each is applied or answered with an
    error, never a failure inside the game, and the room plays on."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        game_index=st.integers(0, 4),
        actions=st.lists(
            st.tuples(st.integers(1, 3), st.dictionaries(_keys, _values, max_size=3)),
            min_size=1,
            max_size=15,
        ),
    )
    def test_random_actions(
        self, game_index: int, actions: list[tuple[int, dict[str, Any]]]
    ) -> None:
        game = (MazeGame(countdown=0), TicTacToeGame(), DiceGame(), OweDrahnGame(), DuelGame())[
            game_index
        ]
        time = Timeline()
        keeper = ViewKeeper()
        router = make_router(game, keeper, time)
        players = 3 if game.name == "owedrahn" else 2
        ids = [f"p-{n}" for n in range(players)]
        room = router.add_match(make_match("m-1", ids, game.name), time.now, rng=random.Random(3))
        for session_id, player_id in enumerate(ids, start=1):
            router.session_connected(
                SessionConnected(session_id, player_id, "m-1", ("h", 1)), time.now
            )
        time.advance(game.countdown)
        self.assertEqual(room.phase, Phase.PLAYING)
        for number, (session_id, action) in enumerate(actions):
            if session_id > players:
                continue
            version = room.version
            errors = len(keeper.errors)
            router.message_received(session_id, RELIABLE, encode_action(action, number), time.now)
            if room.version == version:
                # Rejected: one error, to the sender, naming the action.
                self.assertEqual(len(keeper.errors), errors + 1)
                self.assertEqual(keeper.errors[-1][0], session_id)
                self.assertEqual(keeper.errors[-1][1]["i"], number)
        self.assertEqual(room.game_errors, 0, [e for _, e in keeper.errors])
        self.assertEqual(router.counters["internal_errors"], 0)
