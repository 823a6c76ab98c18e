"""`vinom.games.Game`: defaults for every optional hook, per-verb handlers, terminal views."""

# slow: starts child processes

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

from attrs import evolve, frozen
from twisted.trial import unittest

import vinom
from vinom.client.canvas import GenericUI
from vinom.client.game_views import ui_for
from vinom.games import Game, IGame, IllegalAction, Outcome, Seat
from vinom.games.registry import check_game

PACKAGE_ROOT = Path(vinom.__file__).resolve().parent.parent


@frozen
class CountState:
    players: tuple[str, ...]
    left: tuple[bool, ...]
    scores: tuple[int, ...]
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()


class Count(Game[CountState]):
    name = "count"
    description = "Add to your score"

    def create(self, seats, options, rng):  # type: ignore[no-untyped-def]
        players = tuple(seat.player_id for seat in seats)
        return CountState(players, (False,) * len(players), (0,) * len(players))

    def view(self, state: CountState, player_id: str | None) -> dict[str, object]:
        return {"scores": list(state.scores)}

    def on_add(self, state: CountState, seat: Seat, action, rng) -> Outcome:  # type: ignore[no-untyped-def]
        scores = list(state.scores)
        scores[seat.index] += 1
        return Outcome(evolve(state, scores=tuple(scores)))


SEATS = [Seat("a", "A", 0), Seat("b", "B", 1)]


class GameBaseTests(unittest.TestCase):
    def setUp(self) -> None:
        self.game = Count()
        self.rng = random.Random(1)
        self.state = self.game.create(SEATS, {}, self.rng)

    def test_is_a_valid_plugin(self) -> None:
        self.assertTrue(IGame.providedBy(self.game))
        check_game(self.game)

    def test_verb_handler(self) -> None:
        out = self.game.apply_action(self.state, SEATS[1], {"add": True}, self.rng)
        self.assertEqual(self.game.view(out.state, None), {"scores": [0, 1]})

    def test_each_class_has_its_own_verbs(self) -> None:
        class CountAndDouble(Count):
            def on_double(self, state: CountState, seat: Seat, action, rng) -> Outcome:  # type: ignore[no-untyped-def]
                return Outcome(evolve(state, scores=tuple(2 * s for s in state.scores)))

        self.assertEqual(Count.verbs(), frozenset({"add"}))
        self.assertEqual(CountAndDouble.verbs(), frozenset({"add", "double"}))
        self.assertEqual(Count().verbs(), frozenset({"add"}))
        with self.assertRaises(IllegalAction):
            self.game.apply_action(self.state, SEATS[0], {"double": True}, self.rng)
        doubled = CountAndDouble().apply_action(self.state, SEATS[0], {"double": True}, self.rng)
        self.assertEqual(doubled.state.scores, (0, 0))

    def test_unknown_verb(self) -> None:
        for action in ({"jump": True}, {}, [1]):
            with self.assertRaises(IllegalAction) as caught:
                self.game.apply_action(self.state, SEATS[0], action, self.rng)  # type: ignore[arg-type]
            self.assertEqual(caught.exception.code, "bad_action")

    def test_default_hooks(self) -> None:
        for hook in (self.game.join, self.game.reconnect, self.game.leave):
            self.assertEqual(hook(self.state, SEATS[0]).state, self.state)
        self.assertEqual(self.game.tick(self.state, 0.1, self.rng).state, self.state)
        self.assertIsNone(self.game.check_join(self.state, SEATS[0]))
        self.assertIsNotNone(self.game.check_join(self.state, Seat("z", "Z", 0)))
        after = self.game.apply_action(self.state, SEATS[0], {"add": True}, self.rng).state
        ended = self.game.time_up(after).state
        self.assertTrue(self.game.is_finished(ended))
        self.assertEqual(
            self.game.result(ended),
            {"winners": ["a"], "reason": "time_up", "scores": {"a": 1, "b": 0}},
        )

    def test_default_join_and_idle_rules_read_only_what_a_state_has(self) -> None:
        """A state with only `players` (and its own end, as docs/games.md's `glide`):
        a seated player may join until the game is over; everyone counts as idle."""

        @frozen
        class Dots:
            players: tuple[str, ...]
            over: bool = False

        class DotsGame(Game[Dots]):
            name = "dots"

            def is_finished(self, state: Dots) -> bool:
                return state.over

        game, state = DotsGame(), Dots(("a", "b"))
        self.assertIsNone(game.check_join(state, SEATS[0]))
        self.assertEqual(game.check_join(state, Seat("z", "Z", 0)), "not seated in this game")
        self.assertEqual(game.idle_players(state), ("a", "b"))
        over = Dots(("a", "b"), over=True)
        self.assertEqual(game.check_join(over, SEATS[0]), "the game is over")
        self.assertEqual(game.idle_players(over), ())

    def test_generic_terminal_view_by_default(self) -> None:
        self.assertIsInstance(ui_for(self.game), GenericUI)


VIEW_MODULE = '''
"""A third-party game's terminal view, in a module of its own."""


class AcmeUI:
    help = "acme: press space"

    def draw(self, canvas, area, view, ctx):
        canvas.put(area.top, area.left, "ACME", 0)

    def key(self, key, view, ctx):
        return None
'''

GAME_PLUGIN = '''
"""A third-party game that names its own terminal view."""

from vinom.games.duel import DuelGame
from vinom.games.maze import MazeGame


class Acme(DuelGame):
    name = "acme"
    description = "Duel with its own screen"
    terminal_view = "acme_view:AcmeUI"


class BigMaze(MazeGame):
    name = "bigmaze"
    description = "The maze under another name"


acme = Acme()
bigmaze = BigMaze()
'''


class PluginTerminalViewTests(unittest.TestCase):
    def test_plugin_view_in_a_fresh_process(self) -> None:
        root = Path(self.mktemp()).resolve()
        plugins = root / "twisted" / "plugins"
        plugins.mkdir(parents=True)
        (plugins / "acme.py").write_text(textwrap.dedent(GAME_PLUGIN))
        (root / "acme_view.py").write_text(textwrap.dedent(VIEW_MODULE))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(PACKAGE_ROOT)]))
        script = (
            "from vinom.games.registry import GameRegistry\n"
            "from vinom.client.game_views import ui_for\n"
            "registry = GameRegistry.from_plugins()\n"
            "print(ui_for(registry.get('acme')).help)\n"
            "for name in ('duel', 'maze', 'tictactoe', 'bigmaze'):\n"
            "    print(type(ui_for(registry.get(name))).__name__)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        # A plugin's own view; the generic view for a game the client has none for; the
        # client's views of the built-in games, by class, so a game derived from one
        # keeps its base's view.
        self.assertEqual(
            done.stdout.splitlines(),
            ["acme: press space", "GenericUI", "MazeUI", "TicTacToeUI", "MazeUI"],
        )
