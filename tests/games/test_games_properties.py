"""Properties every game keeps: garbage never crashes, state never changes, views are plain.

For each built-in game, hypothesis drives random mid-game states (reached by
bots) with random actions: well-formed, nearly well-formed and garbage. An
action is either applied or refused with an `IllegalAction` of a known code;
the old state is never modified; every view is msgpack-safe plain data.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from tests.games.test_games_support import assert_plain, bot_states, play_bots, seats, snapshot
from vinom.games.common import ERROR_CODES
from vinom.games.dice import DiceGame
from vinom.games.duel import DuelGame
from vinom.games.interfaces import IGame, IllegalAction, Outcome, Seat
from vinom.games.maze import MazeGame
from vinom.games.owedrahn import OweDrahnGame
from vinom.games.registry import GameRegistry
from vinom.games.rules import GameRules
from vinom.games.tictactoe import TicTacToeGame

GAMES: dict[str, IGame] = {
    game.name: game
    for game in (MazeGame(), TicTacToeGame(), DiceGame(), OweDrahnGame(), DuelGame())
}
KEYS = ["move", "from", "cell", "rematch", "roll", "select", "bank", "give_up_life", "next", "seq"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-2, max_value=20)
    | st.floats(allow_nan=True)
    | st.text(max_size=6)
    | st.sampled_from(["N", "E", "S", "W", "p-0000000000000001", "p-0000000000000000"])
    | st.binary(max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
near_misses = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)
well_formed = st.one_of(
    st.fixed_dictionaries(
        {
            "move": st.sampled_from("NESW"),
            "from": st.lists(st.integers(min_value=-1, max_value=10), min_size=2, max_size=2),
        }
    ),
    st.fixed_dictionaries({"cell": st.integers(min_value=-1, max_value=9)}),
    st.fixed_dictionaries({"rematch": st.booleans()}),
    st.fixed_dictionaries({"roll": st.just(True)}),
    st.fixed_dictionaries({"bank": st.just(True)}),
    st.fixed_dictionaries(
        {"select": st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=6)}
    ),
    st.fixed_dictionaries(
        {"give_up_life": st.just(True)},
        optional={"next": st.sampled_from(["p-0000000000000000", "p-0000000000000001", "x"])},
    ),
    st.fixed_dictionaries({"seq": st.integers(min_value=-1, max_value=40)}),
)
actions = st.one_of(well_formed, near_misses, values)


def encodes(test: TestCase, view: Any) -> None:
    """The view is plain data and survives a msgpack round trip unchanged."""
    assert_plain(test, view)
    test.assertEqual(msgpack.unpackb(msgpack.packb(view, use_bin_type=True), raw=False), view)


class PropertyTests(TestCase):
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        name=st.sampled_from(sorted(GAMES)),
        players=st.integers(min_value=2, max_value=4),
        seed=st.integers(min_value=0, max_value=2**32),
        steps=st.integers(min_value=0, max_value=60),
        who=st.integers(min_value=0, max_value=3),
        action=actions,
        mode=st.sampled_from(["given", "bot", "bot_altered"]),
        garbage=values,
    )
    def test_any_action_is_applied_or_refused(
        self,
        name: str,
        players: int,
        seed: int,
        steps: int,
        who: int,
        action: Any,
        mode: str,
        garbage: Any,
    ) -> None:
        game = GAMES[name]
        table = seats(min(players, game.max_players))
        state = bot_states(game, table, seed, steps)
        before = snapshot(state)
        seat = table[who % len(table)]
        if mode != "given":
            # Start from what the seat's bot would do (legal, if it wants to
            # act at all) and, for "bot_altered", spoil one of its values.
            bot = game.make_bot(seat.player_id, random.Random(seed))
            action = dict(bot.choose_action(game.view(state, seat.player_id)) or {})
            if mode == "bot_altered" and action:
                action[sorted(action)[who % len(action)]] = garbage
        try:
            outcome = game.apply_action(state, seat, action, random.Random(seed))
        except IllegalAction as error:
            self.assertIn(error.code, ERROR_CODES)
            self.assertIsInstance(error.message, str)
        else:
            self.assertIsInstance(outcome, Outcome)
            for event in outcome.events:
                encodes(self, dict(event.data))
            encodes(self, game.view(outcome.state, seat.player_id))
            encodes(self, game.result(outcome.state))
        self.assertEqual(state, before, "apply_action changed the old state")

    @settings(max_examples=150, deadline=None)
    @given(
        name=st.sampled_from(sorted(GAMES)),
        seed=st.integers(min_value=0, max_value=2**32),
        steps=st.integers(min_value=0, max_value=40),
        hook=st.sampled_from(["join", "leave", "reconnect", "time_up", "tick"]),
        who=st.integers(min_value=0, max_value=1),
    )
    def test_lifecycle_hooks_on_any_state(
        self, name: str, seed: int, steps: int, hook: str, who: int
    ) -> None:
        game = GAMES[name]
        table = seats(2)
        state = bot_states(game, table, seed, steps)
        before = snapshot(state)
        if hook == "time_up":
            outcome = game.time_up(state)
            self.assertTrue(game.is_finished(outcome.state))
        elif hook == "tick":
            outcome = game.tick(state, 0.05, random.Random(seed))
        else:
            outcome = getattr(game, hook)(state, table[who])
        self.assertEqual(state, before)
        for player in [*table, None]:
            encodes(self, game.view(outcome.state, player.player_id if player else None))
        result = game.result(outcome.state)
        encodes(self, result)
        self.assertIsInstance(result["winners"], list)
        self.assertIsInstance(result["reason"], str)
        if hook == "leave" and not game.is_finished(state):
            self.assertIsNotNone(game.check_join(outcome.state, table[who]))

    def test_bots_finish_every_game(self) -> None:
        # A bots-only game of every installed game, as a room would drive it,
        # ends with a result; every intermediate state is checked on the way.
        registry = GameRegistry(GAMES.values())
        for name in registry.names():
            game = registry.get(name)
            for seed, count in ((1, game.min_players), (2, game.max_players)):
                previous: list[Any] = []

                def check(state: Any, game: IGame = game, previous: list[Any] = previous) -> None:
                    if previous:
                        old, copy = previous[-1]
                        self.assertEqual(old, copy, f"{game.name}: a state changed after the fact")
                    previous[:] = [(state, snapshot(state))]
                    assert_plain(self, game.view(state, "p-0000000000000000"))

                options = {"target": 300} if name == "duel" else {}
                state, moves = play_bots(game, count, seed, options, on_state=check)
                self.assertTrue(game.is_finished(state), name)
                result = game.result(state)
                encodes(self, result)
                self.assertNotEqual(result["reason"], "time_up", name)
                self.assertTrue(set(result["winners"]) <= {s.player_id for s in seats(count)})
                self.assertGreater(moves, 0)

    def test_a_shared_view_is_the_same_for_every_seat(self) -> None:
        """A game that says `shared_view = True` is trusted to show every seat the
        same view (the room sends one player's view to all): check it on every
        state of bot games. (The test suite also runs every room with
        VINOM_CHECK_VIEWS on; see tests/__init__.py.)"""
        shared = [game for game in GAMES.values() if GameRules.of(game).shared_view]
        self.assertEqual(sorted(g.name for g in shared), sorted(GAMES))  # none hides anything
        for game in shared:
            for seed, count in ((3, game.min_players), (4, game.max_players)):
                table = seats(count)

                def check(state: Any, game: IGame = game, table: list[Seat] = table) -> None:
                    first = game.view(state, table[0].player_id)
                    for seat in table[1:]:
                        self.assertEqual(game.view(state, seat.player_id), first, game.name)

                options = {"target": 50} if game.name == "duel" else {}
                play_bots(game, count, seed, options, on_state=check)

    def test_views_without_a_player(self) -> None:
        for game in GAMES.values():
            state = game.create(seats(2), {}, random.Random(4))
            encodes(self, game.view(state, None))
            encodes(self, game.result(state))
            self.assertFalse(game.is_finished(state))
            self.assertEqual(game.result(state)["reason"], "playing")
