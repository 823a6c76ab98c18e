"""docs/games.md's tutorial, run as written: a third-party game plugin in its own package;
and what games.md says of the server's options, checked against the server."""

# slow: starts child processes

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

import vinom
from tests.support.servers import start_twistd
from tests.support.waiting import until
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession, connect_game
from vinom.client.netcode import Interpolation, blend
from vinom.server.options import Options

# Where `vinom` is imported from (the checkout, or site-packages under tox).
PACKAGE_ROOT = Path(vinom.__file__).resolve().parent.parent
DOC = Path(__file__).resolve().parents[2] / "docs" / "games.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


class TutorialTests(TestCase):
    def setUp(self) -> None:
        # Every block that starts with "# <path>.py" is a file of the package.
        self.root = Path(self.mktemp()).resolve()
        self.files = {}
        for block in python_blocks():
            first = block.splitlines()[0]
            if first.startswith("# ") and first.endswith(".py"):
                path = self.root / first[2:]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block, encoding="utf-8")
                self.files[first[2:]] = path
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(self.root), str(PACKAGE_ROOT)]))

    def run_python(self, script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=self.env,
            cwd=str(self.root),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def test_package_files(self) -> None:
        self.assertEqual(
            sorted(self.files),
            [
                "acme_nim/__init__.py",
                "acme_nim/nim.py",
                "setup.py",
                "twisted/plugins/acme_nim_plugin.py",
            ],
        )
        self.assertFalse((self.root / "twisted" / "plugins" / "__init__.py").exists())
        self.assertFalse((self.root / "twisted" / "__init__.py").exists())

    def test_plugin_found_and_played(self) -> None:
        out = self.run_python(
            "from vinom.games.registry import GameRegistry, format_games\n"
            "registry = GameRegistry.from_plugins()\n"
            "print(format_games(registry))\n"
        )
        names = [line.split()[0] for line in out.splitlines()[1:] if line]
        for name in ("nim", "maze", "tictactoe", "dice", "owedrahn", "arena"):
            self.assertIn(name, names)
        # duel, the benchmarks' game that a server offers only when named, is counted.
        self.assertNotIn("duel", names)
        self.assertIn("(1 more installed game", out)
        driver = next(b for b in python_blocks() if "print(game.result(state))" in b)
        result = self.run_python(driver)
        self.assertIn("'winners': ['p-", result)
        self.assertIn("'reason': 'won'", result)

    def test_leaving_ends_the_game_for_the_other_player(self) -> None:
        out = self.run_python(
            "import random\n"
            "from vinom.games import Seat\n"
            "from acme_nim.nim import NimGame\n"
            "game = NimGame()\n"
            "seats = [Seat('p-a', 'Ann', 0), Seat('p-b', 'Bob', 1)]\n"
            "state = game.create(seats, {}, random.Random(1))\n"
            "after = game.leave(state, seats[0]).state\n"
            "print(game.is_finished(after), game.result(after)['winners'],"
            " game.result(after)['reason'])\n"
            "print(game.leave(after, seats[1]).state is after)\n"
        )
        self.assertEqual(out.splitlines(), ["True ['p-b'] opponent_left", "True"])

    def test_one_plugin_cache_command_everywhere(self) -> None:
        """Every page that tells how to refresh Twisted's plugin cache gives the same command."""
        docs = Path(__file__).resolve().parents[2]
        pages = [*sorted((docs / "docs").glob("*.md")), docs / "README.md"]
        commands = {
            line.strip()
            for page in pages
            for line in page.read_text(encoding="utf-8").splitlines()
            if "getPlugins(" in line and line.strip().startswith("python")
        }
        refresh = "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
        self.assertEqual(commands, {f'python -c "{refresh}"'})


class ReferenceTests(TestCase):
    """docs/games.md's reference tables say what the code does."""

    def test_action_rate_table_matches_the_games(self) -> None:
        from vinom.games.registry import GameRegistry
        from vinom.games.rules import GameRules

        text = DOC.read_text(encoding="utf-8")
        table = text[text.index("| game | `action_rate` |"):]
        table = table[: table.index("\n\n")]
        documented = {}
        for row in table.splitlines()[2:]:
            names, rate = (cell.strip() for cell in row.strip("|").split("|"))
            for name in names.split(","):
                documented[name.strip()] = float(rate.replace(",", ""))
        registry = GameRegistry.from_plugins()
        builtin = {"maze", "tictactoe", "dice", "owedrahn", "duel", "arena"}
        self.assertEqual(set(documented), builtin)
        for name, rate in documented.items():
            self.assertEqual(GameRules.of(registry.get(name)).action_rate, rate, name)
        # The duel section gives the same value, not another one.
        duel = text[text.index("### duel"):]
        duel = duel[: duel.index("\n## ")]
        self.assertIn("`action_rate` 1,000", duel)
        self.assertNotIn("unlimited", duel)

    def test_tutorial_comes_before_the_reference(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        headings = [line for line in text.splitlines() if line.startswith("## ")]
        self.assertEqual(headings[0], "## Tutorial: a game in your own package")

    def test_the_reference_points_back_to_the_tutorial(self) -> None:
        # The tutorial is the first section: nothing may call it "below".
        text = DOC.read_text(encoding="utf-8")
        self.assertNotIn("tutorial below", text)
        section = text[text.index("## The `Game` base class") :]
        self.assertIn("[tutorial](#tutorial-a-game-in-your-own-package) above", section)

    def test_match_size_option_as_the_server_takes_it(self) -> None:
        # games.md's `match_size` row names the operator's override; the server takes
        # the example it gives, and operations.md documents the same option.
        text = DOC.read_text(encoding="utf-8")
        [row] = [line for line in text.splitlines() if line.startswith("| `match_size` |")]
        example = re.search(r"`--match-size (\w+)=(\d+)`", row)
        assert example is not None, row
        self.assertIn("`twistd vinom --match-size GAME=N`", row)
        options = Options()
        options.parseOptions(["--match-size", f"{example[1]}={example[2]}", "--websocket",
                              "none", "--ops-port", "none", "--data-dir", self.mktemp()])
        self.assertEqual(options["match-sizes"], {example[1]: int(example[2])})
        operations = (DOC.parent / "operations.md").read_text(encoding="utf-8")
        self.assertIn(f"`--match-size {example[1]}={example[2]}`", operations)


class RealTimeExampleTests(TestCase):
    """games.md's real-time example ("A complete example"), run as written."""

    def test_the_glide_example_runs_and_predicts_the_server(self) -> None:
        [block] = [b for b in python_blocks() if b.startswith('"""glide:')]
        root = Path(self.mktemp()).resolve()
        root.mkdir()
        (root / "glide.py").write_text(block, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "glide.py"], cwd=str(root), capture_output=True, text=True,
            env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)), timeout=120,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)
        line = re.compile(
            r"tick (\d+): server has Ann at \((.+)\), her client predicts \((.+)\); "
            r"clock ([\d.]+); Bob drawn at \((.+)\)"
        )
        found = [line.fullmatch(text) for text in done.stdout.splitlines()[:-1]]
        self.assertEqual([m[1] for m in found if m], ["20", "40", "60"], done.stdout)
        for m in found:
            assert m is not None
            self.assertEqual(m[2], m[3])  # predicted where the server has her
            self.assertEqual(float(m[4]), float(m[1]))  # the clock: the server's tick
        # Bob moved, and was drawn moving.
        self.assertEqual(len({m[5] for m in found if m}), 3)
        self.assertEqual(done.stdout.splitlines()[-1], "corrections: 0")


class GlideOnAServerTests(TestCase):
    """games.md's real-time example, run as written on a real `twistd -n vinom`: the
    module as the doc gives it, installed with a plugin file as the tutorial's;
    two players join over UDP, steer, and see their dots glide."""

    timeout = 90

    async def test_two_players_join_the_glide_example_and_steer(self) -> None:
        [block] = [b for b in python_blocks() if b.startswith('"""glide:')]
        plugin = "from glide import Glide\n\nglide = Glide()\n"
        server = await start_twistd(
            self, {"glide.py": block, "twisted/plugins/glide_example_plugin.py": plugin},
            "--games", "glide",
        )  # fmt: skip
        found = await gatherResults(
            [LobbyPlayer(reactor, server.lobby, name).find_match("glide") for name in "AB"]
        )
        sessions = list(await gatherResults([connect_game(reactor, f) for f in found]))
        for session in sessions:
            self.addCleanup(session.disconnect)

        def playing(session: GameSession) -> bool:
            return session.state is not None and session.state["p"] == "playing"

        await until(lambda: all(playing(s) for s in sessions), "both players playing", 30.0)
        me = sessions[0].view["me"]
        start = sessions[0].view["dots"][me]
        sessions[0].send_input({"steer": [40.0, 0.0]})

        def moved() -> bool:
            dot = sessions[0].view["dots"][me]
            return dot["vx"] == 40.0 and dot["x"] != start["x"]

        await until(moved, "Ann's dot gliding", 30.0)
        # The other player sees it too, and the host said nothing alarming.
        await until(lambda: sessions[1].view["dots"][me]["vx"] == 40.0, "Bob sees it", 30.0)
        said = server.output.decode(errors="replace")
        self.assertNotIn("CRITICAL", said)
        self.assertNotIn("Traceback", said)


class EntitiesDocTests(TestCase):
    def test_games_md_and_protocol_md_agree_on_maps_keyed_by_id(self) -> None:
        """Both pages tell a game to keep entities that come and go in maps keyed by
        id (a delta patches a list by index); and a client that interpolates does
        match a map's entities by key, as games.md says, with no rule to write."""
        games = DOC.read_text(encoding="utf-8")
        protocol = (DOC.parent / "protocol.md").read_text(encoding="utf-8")
        self.assertIn("keep entities that come and go in maps keyed by id", protocol)
        self.assertIn("Keep entities that come and go in **maps keyed by id**", games)
        before = {"players": {"7": {"x": 0.0}, "9": {"x": 10.0}}}
        after = {"players": {"9": {"x": 20.0}, "11": {"x": 5.0}}}
        self.assertEqual(
            blend(before, after, 0.5, Interpolation(fields=("players.*.x",))),
            {"players": {"9": {"x": 15.0}, "11": {"x": 5.0}}},
        )


class ArenaWireDocTests(TestCase):
    def test_games_md_gives_the_arena_input_and_view_as_the_code_has_them(self) -> None:
        """games.md, "The arena's wire": the input the arena takes, its speed cap, its
        side for two players and the view's keys, checked against vinom/games/arena.py."""
        import random

        from vinom.games import IllegalAction, Seat
        from vinom.games.arena import MAX_SPEED, RADIUS, ArenaGame

        games = DOC.read_text(encoding="utf-8")
        self.assertIn('`{"move": [vx, vy], "n": k}`', games)
        self.assertIn(f"`MAX_SPEED`, {MAX_SPEED:g}", games)
        self.assertIn(f"within {RADIUS:g} of the viewer", games)
        game, rng = ArenaGame(2), random.Random(1)
        self.assertIn(f"({game.size:g} for two players)", games)
        seats = [Seat("a", "A", 0), Seat("b", "B", 1)]
        state = game.create(seats, {}, rng)
        moved = game.apply_action(state, seats[0], {"move": [300.0, 0.0], "n": 1}, rng).state
        self.assertEqual((moved.vx[0], moved.vy[0]), (MAX_SPEED, 0.0))  # scaled down
        for bad in ({"move": [1.0, 0.0]}, {"move": [1.0], "n": 1}, {"move": "N", "n": 1}):
            self.assertRaises(IllegalAction, game.apply_action, state, seats[0], bad, rng)
        ticked = game.tick(moved, 0.05, rng).state
        view = game.view(ticked, "a")
        self.assertEqual(sorted(view), ["ack", "me", "players", "ticks"])
        self.assertEqual((view["me"], view["ack"]), (0, 1))
        self.assertEqual(len(view["players"][0]), 5)
