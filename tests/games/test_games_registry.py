"""The game registry: explicit lists, Twisted plugin discovery, third-party games."""

# slow: starts child processes

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast

from twisted.internet.testing import Clock
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import directlyProvides

import twisted.plugins
import vinom
from vinom.errors import UnknownGame
from vinom.games.dice import DiceGame
from vinom.games.duel import DuelGame
from vinom.games.interfaces import IGame
from vinom.games.maze import MazeGame
from vinom.games.owedrahn import OweDrahnGame
from vinom.games.registry import GameRegistry, check_game, format_games
from vinom.games.rules import DEFAULT_ACTION_RATE, GameRules, RatingWindow, SnapshotBudget
from vinom.match import Ticket
from vinom.matchmaking.memory import MemoryMatchmaker

BUILT_IN = ["arena", "dice", "duel", "maze", "owedrahn", "tictactoe"]
# Where `vinom` is imported from (the checkout, or site-packages under tox).
PACKAGE_ROOT = Path(vinom.__file__).resolve().parent.parent
CHECKOUT = Path(__file__).resolve().parents[2]

THIRD_PARTY_PLUGIN = '''
"""A game shipped by someone else's package."""

from vinom.games.duel import DuelGame


class CountUp(DuelGame):
    """Duel under another name."""

    name = "{name}"
    description = "Count up, third-party edition"


{name} = CountUp()
'''


class WindowedGame(DuelGame):
    """A game that declares the rating window of its ranked queue."""

    name = "windowed"
    rating_window = RatingWindow(base=30, growth=3, max=300)


def write_plugin(root: Path, module: str, source: str) -> None:
    """Write `root/twisted/plugins/<module>.py` (no __init__.py, as Twisted wants)."""
    plugins = root / "twisted" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / f"{module}.py").write_text(textwrap.dedent(source))


class RegistryTests(TestCase):
    """A registry built from an explicit list."""

    def test_lookup(self) -> None:
        maze, dice = MazeGame(), DiceGame()
        registry = GameRegistry([maze, dice])
        self.assertIs(registry.get("maze"), maze)
        self.assertEqual(registry.names(), ["dice", "maze"])
        self.assertEqual(registry.rules().match_sizes(), {"dice": 2, "maze": 2})
        self.assertIn("dice", registry)
        self.assertNotIn("chess", registry)
        self.assertEqual(len(registry), 2)
        self.assertEqual([game.name for game in registry], ["dice", "maze"])
        self.assertEqual(set(registry.as_mapping()), {"dice", "maze"})

    def test_unknown_game(self) -> None:
        registry = GameRegistry([MazeGame()])
        with self.assertRaises(KeyError) as caught:
            registry.get("chess")
        self.assertIsInstance(caught.exception, UnknownGame)
        self.assertEqual(
            str(caught.exception), "no game named 'chess' is installed (installed: maze)"
        )
        self.assertRaises(UnknownGame, registry.get, ["not", "a", "name"])

    def test_one_unknown_game_for_the_registry_and_the_matchmaker(self) -> None:
        # One `except UnknownGame` (vinom.errors) catches both: a name the registry does
        # not have (`vinom play`, --games) and a ticket for a game a matchmaker keeps no
        # queue for; each is still what its callers caught before (KeyError, ValueError).
        registry = GameRegistry([MazeGame()])
        matchmaker = MemoryMatchmaker(registry.rules(), Clock())
        ticket = Ticket("p-1", "Ann", "chess", None, 0.0)
        refused = self.failureResultOf(matchmaker.enqueue(ticket), UnknownGame).value
        for error in (self.assertRaises(UnknownGame, registry.get, "chess"), refused):
            self.assertIsInstance(error, KeyError)
            self.assertIsInstance(error, ValueError)

    def test_duplicate_names_rejected(self) -> None:
        self.assertRaises(ValueError, GameRegistry, [MazeGame(), MazeGame()])

    def test_invalid_games_rejected(self) -> None:
        class Named(DuelGame):
            name = "Duel Two"

        class Crowded(DuelGame):
            name = "crowded"
            match_size = 3

        class Frantic(DuelGame):
            name = "frantic"
            tick_rate = 120.0

        class Sloppy(DuelGame):
            name = "sloppy"
            tick_rate = "fast"

        for game in (
            object(),
            Named(),
            Crowded(),
            Frantic(),
            Sloppy(),
            DuelGame(time_limit=0),
            DuelGame(countdown=None),
            DuelGame(time_limit=True),
        ):
            self.assertRaises(ValueError, check_game, game)
            self.assertRaises(ValueError, GameRegistry, [game])

    def test_optional_attributes_checked_when_present(self) -> None:
        bad_rates = (-1.0, float("inf"), float("nan"), True, "10", None)
        for rate in bad_rates:
            self.assertRaises(ValueError, check_game, DuelGame(action_rate=rate))  # type: ignore[arg-type]

        class Coy(DuelGame):
            name = "coy"
            shared_view = "yes"

        self.assertRaises(ValueError, check_game, Coy())
        check_game(DuelGame(action_rate=2.5))

    def test_a_rating_window_is_checked_and_read_without_importing_the_matchmaker(
        self,
    ) -> None:
        registry = GameRegistry([WindowedGame(), MazeGame()])
        windows = {name: rules.rating_window for name, rules in registry.rules().items()}
        self.assertEqual(windows, {"windowed": RatingWindow(30.0, 3.0, 300.0), "maze": None})
        rows = {row["name"]: row["rating_window"] for row in registry.describe()}
        self.assertEqual(rows, {"windowed": (30.0, 3.0, 300.0), "maze": None})

        class Window:
            """Not a RatingWindow: any object with the three values will do."""

            def __init__(self, base: object, growth: object, max: object = None) -> None:
                self.base, self.growth, self.max = base, growth, max

        class Uncapped(DuelGame):
            name = "uncapped"
            rating_window = Window(10, 0.5)

        self.assertEqual(GameRegistry([Uncapped()]).rules()["uncapped"].rating_window,
                         RatingWindow(10, 0.5, None))  # fmt: skip
        for bad in (Window(-1, 1), Window(1, float("inf")), Window("10", 1), Window(1, 1, True),
                    Window(1, None), 100):  # fmt: skip
            game = Uncapped()
            game.rating_window = bad  # type: ignore[assignment]
            with self.subTest(window=bad):
                e = self.assertRaises(ValueError, check_game, game)
                self.assertIn("rating_window", str(e))

    def test_a_team_size_is_checked_against_the_match_size(self) -> None:
        class Pairs(DuelGame):
            name = "pairs"
            max_players = 4
            match_size = 4
            team_size = 2

        registry = GameRegistry([Pairs(), MazeGame()])
        teams = {name: rules.team_size for name, rules in registry.rules().items()}
        self.assertEqual(teams, {"pairs": 2, "maze": None})
        rows = {row["name"]: row["team_size"] for row in registry.describe()}
        self.assertEqual(rows, {"pairs": 2, "maze": None})
        for bad in (3, 8, 0, -2, True, 2.0, "2"):
            game = Pairs()
            game.team_size = bad  # type: ignore[assignment]
            with self.subTest(team_size=bad):
                e = self.assertRaises(ValueError, check_game, game)
                self.assertIn("team_size", str(e))

    def test_a_snapshot_budget_is_for_a_game_with_a_tick(self) -> None:
        class Ticking(DuelGame):
            name = "ticking"
            tick_rate = 20

        budget = SnapshotBudget(400, "players")
        for tick_rate, value in ((0, budget), (20, 400), (20, {"bytes": 400})):
            game = Ticking()
            game.tick_rate, game.snapshot_budget = tick_rate, value  # type: ignore[attr-defined]
            with self.subTest(tick_rate=tick_rate, budget=value):
                e = self.assertRaises(ValueError, check_game, game)
                self.assertIn("snapshot_budget", str(e))
        # A budget's entities are rows of the view schema: none declared, one line.
        game = Ticking()
        game.snapshot_budget = budget  # type: ignore[attr-defined]
        e = self.assertRaises(ValueError, check_game, game)
        self.assertEqual(str(e), "game 'ticking': snapshot_budget needs a view_schema: the "
                         "entities that may wait are one of its rows fields (docs/games.md, "
                         '"A byte budget")')  # fmt: skip
        game.view_schema = [["players", ["rows", [["int", 0, 9]]]]]  # type: ignore[attr-defined]
        self.assertIs(GameRegistry([game]).rules()["ticking"].snapshot_budget, budget)
        self.assertIsNone(GameRules.of(MazeGame()).snapshot_budget)

    def test_games_without_the_optional_attributes_still_work(self) -> None:
        class Plain:
            """A third-party game class written before the optional attributes existed."""

        game = DuelGame()
        # Copy the game's IGame surface onto an object lacking the optional attributes.
        plain = Plain()
        for attribute in IGame.names():
            setattr(plain, attribute, getattr(game, attribute))
        directlyProvides(plain, IGame)
        self.assertFalse(hasattr(plain, "action_rate") or hasattr(plain, "shared_view"))
        check_game(plain)
        rules = GameRules.of(plain)
        self.assertEqual((rules.action_rate, rules.shared_view), (DEFAULT_ACTION_RATE, False))
        [row] = GameRegistry([plain]).describe()  # type: ignore[list-item]
        self.assertEqual((row["action_rate"], row["shared_view"]), (DEFAULT_ACTION_RATE, False))

    def test_built_in_action_rates(self) -> None:
        rates = {row["name"]: row["action_rate"] for row in GameRegistry.from_plugins().describe()}
        # The maze's rate is a rule of the game; duel (the benchmark) is high but finite.
        self.assertEqual(
            {name: rates[name] for name in BUILT_IN},
            {"arena": 40.0, "dice": 20.0, "duel": 1000.0, "maze": 10.0, "owedrahn": 20.0,
             "tictactoe": 20.0},
        )
        self.assertTrue(all(rate > 0 for rate in rates.values()), "no built-in game is unlimited")
        self.assertEqual(MazeGame(action_rate=3.0).action_rate, 3.0)

    def test_offered(self) -> None:
        registry = GameRegistry.from_plugins()
        self.assertNotIn("duel", registry.offered())
        self.assertEqual(registry.offered().names(), [n for n in BUILT_IN if n != "duel"])
        self.assertEqual(registry.offered(["duel", "maze", "duel"]).names(), ["duel", "maze"])
        self.assertRaises(UnknownGame, registry.offered, ["chess"])

    def test_describe(self) -> None:
        registry = GameRegistry([MazeGame(), DuelGame()])
        rows = registry.describe()
        self.assertEqual([row["name"] for row in rows], ["duel", "maze"])
        self.assertEqual(rows[1]["players"], [2, 4])
        self.assertEqual(rows[1]["match_size"], 2)
        self.assertEqual(rows[1]["time_limit"], 300.0)
        self.assertEqual(rows[1]["module"], "vinom.games.maze")
        self.assertEqual([row["display_name"] for row in rows], ["Duel", "Maze"])
        table = format_games(registry).splitlines()
        self.assertEqual(
            table[0].split(), ["NAME", "GAME", "PLAYERS", "MATCH", "TIME", "DESCRIPTION"]
        )
        self.assertEqual(table[1].split()[:5], ["maze", "Maze", "2-4", "2", "300s"])
        # duel is offered only when --games names it: counted, not listed to a newcomer.
        self.assertNotIn("duel", "\n".join(table))
        self.assertEqual(table[2:], ["", "(1 more installed game, offered only when a "
                                     "server's --games names it: vinom games --all)"])  # fmt: skip
        # Every game (--all): duel marked, and the mark explained.
        every = format_games(registry, every=True).splitlines()
        self.assertEqual(every[1].split()[:2], ["duel*", "Duel"])
        self.assertEqual(every[2].split()[0], "maze")
        self.assertIn("* not offered by a server unless named", every[-1])

    def test_display_names(self) -> None:
        """A game's display name is its own, or its registry name in words."""

        class Plain(MazeGame):
            name = "snakes_and-ladders"
            display_name = None

        registry = GameRegistry([OweDrahnGame(), Plain()])
        shown = {row["name"]: row["display_name"] for row in registry.describe()}
        self.assertEqual(
            shown, {"owedrahn": "Owe Drahn", "snakes_and-ladders": "Snakes and ladders"}
        )
        table = format_games(registry)
        self.assertNotIn("*", table)  # both offered by default: no mark, no footnote

        class Blank(MazeGame):
            name = "blank"
            display_name = " "

        self.assertRaises(ValueError, GameRegistry, [Blank()])


class PluginTests(TestCase):
    """Games found as Twisted plugins."""

    def test_built_in_games(self) -> None:
        registry = GameRegistry.from_plugins()
        for name in BUILT_IN:
            self.assertIn(name, registry)
            self.assertTrue(IGame.providedBy(registry.get(name)))
        self.assertEqual(
            {name: registry.rules()[name].match_size for name in BUILT_IN},
            dict.fromkeys(BUILT_IN, 2),
        )

    def test_no_init_in_plugin_directory(self) -> None:
        self.assertFalse((CHECKOUT / "twisted" / "plugins" / "__init__.py").exists())
        self.assertTrue((CHECKOUT / "twisted" / "plugins" / "vinom_games.py").exists())

    def add_plugin_dirs(self, *roots: Path) -> None:
        """Put extra `twisted/plugins` directories on the plugin path for this test."""
        path = list(twisted.plugins.__path__)
        path.extend(str(root / "twisted" / "plugins") for root in roots)
        self.patch(twisted.plugins, "__path__", path)
        self.patch(sys, "path", [*sys.path, *(str(root) for root in roots)])

        def forget() -> None:
            for name in list(sys.modules):
                if name.startswith("twisted.plugins.acme_"):
                    del sys.modules[name]

        self.addCleanup(forget)

    def test_third_party_plugin(self) -> None:
        root = Path(self.mktemp())
        write_plugin(root, "acme_countup", THIRD_PARTY_PLUGIN.format(name="countup"))
        self.add_plugin_dirs(root)
        registry = GameRegistry.from_plugins()
        self.assertIn("countup", registry)
        self.assertEqual(registry.get("countup").description, "Count up, third-party edition")
        for name in BUILT_IN:
            self.assertIn(name, registry)

    def test_same_game_twice_kept_once(self) -> None:
        # The same game on the path twice (a source tree and an installed copy).
        first, second = Path(self.mktemp()), Path(self.mktemp())
        write_plugin(first, "acme_twice_a", THIRD_PARTY_PLUGIN.format(name="twice"))
        write_plugin(second, "acme_twice_b", THIRD_PARTY_PLUGIN.format(name="twice"))
        self.add_plugin_dirs(first, second)
        registry = GameRegistry.from_plugins()
        self.assertEqual(registry.names().count("twice"), 1)

    def test_unusable_plugin_skipped(self) -> None:
        root = Path(self.mktemp())
        broken = THIRD_PARTY_PLUGIN.format(name="broken") + "\nbroken.match_size = 9\n"
        write_plugin(root, "acme_broken", broken)
        write_plugin(root, "acme_fine", THIRD_PARTY_PLUGIN.format(name="fine"))
        self.add_plugin_dirs(root)
        registry = GameRegistry.from_plugins()
        self.assertNotIn("broken", registry)
        self.assertIn("fine", registry)
        self.assertIn("maze", registry)

    def test_a_budget_below_the_minimum_skips_that_game_alone_in_one_line(self) -> None:
        # The budget is made in the class body: the module still imports, and its other
        # game is offered; the one declaring 32 bytes is one line naming it and 64.
        root = Path(self.mktemp())
        source = THIRD_PARTY_PLUGIN.format(name="fine") + textwrap.dedent("""
            from vinom.games import SnapshotBudget


            class Tight(CountUp):
                name = "tight"
                tick_rate = 20
                snapshot_budget = SnapshotBudget(32, "seq")


            tight = Tight()
            """)  # fmt: skip
        write_plugin(root, "acme_tight", source)
        self.add_plugin_dirs(root)
        lines: list[str] = []
        observer = cast(ILogObserver, lambda event: lines.append(formatEvent(event)))
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        registry = GameRegistry.from_plugins()
        self.assertIn("fine", registry)
        self.assertNotIn("tight", registry)
        [line] = [line for line in lines if "tight" in line]
        self.assertIn(
            "game 'tight': snapshot_budget must be whole bytes, at least 64 (room for an "
            "entity past a snap's header), not 32", line,
        )  # fmt: skip
        self.assertNotIn("Traceback", "".join(lines))

    def test_discovered_in_a_fresh_process(self) -> None:
        # No patching: a directory on PYTHONPATH with twisted/plugins/<x>.py
        # is all a third-party package needs.
        root = Path(self.mktemp()).resolve()
        write_plugin(root, "acme_fresh", THIRD_PARTY_PLUGIN.format(name="fresh"))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(PACKAGE_ROOT)]))
        script = (
            "from vinom.games.registry import GameRegistry;"
            "print(' '.join(GameRegistry.from_plugins().names()))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        names = done.stdout.split()
        self.assertIn("fresh", names)
        for name in BUILT_IN:
            self.assertIn(name, names)
