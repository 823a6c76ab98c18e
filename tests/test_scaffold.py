"""`vinom new-game NAME`: the package it writes is taken by `pip install` as it is,
passes its own tests, and is found by a real server through its Twisted plugin
alone, where `vinom bots` plays it to the end and a real headless Chromium draws
and plays the board the package ships (package data, served by the server under
its own policy; no path reaches another file); a name or directory it cannot
use is one line and a non-zero exit."""

# slow: runs the scaffold in a fresh virtualenv (tests/support/fresh_venv.py)

from __future__ import annotations

import http.client
import io
import json
import os
import re
import ssl
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.error import ProcessDone
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

import vinom
from tests.server.test_web_client import click, enter, wait_for_game, wait_for_screen
from tests.support.browser import Browser, check_chromium, open_browser
from tests.support.fresh_venv import FreshVenv, Twistd, make_venv, start_twistd
from tests.support.terminal import in_a_terminal
from tests.support.waiting import until
from vinom import cli

# Where `vinom` is imported from (the checkout, or site-packages under tox).
PACKAGE_ROOT = Path(vinom.__file__).resolve().parent.parent
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"


def guide_tree() -> list[str]:
    """The files of the package in docs/getting-started.md's picture of `vinom new-game
    pebbles`, as paths (a line's depth is its indent, four characters a level)."""
    text = GUIDE.read_text(encoding="utf-8")
    block = text[text.index("```\npebbles/\n") + 4 :]
    block = block[: block.index("```")]
    files, parents = [], ["pebbles"]
    for line in block.splitlines()[1:]:
        marker = max(line.find("├── "), line.find("└── "))
        depth = marker // 4 + 1
        name = line[marker + 4 :].split()[0]
        parents[depth:] = [name.rstrip("/")]
        if not name.endswith("/"):
            files.append("/".join(parents[1:]))
    return sorted(files)


def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


class NewGameCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.work = Path(self.mktemp()).resolve()
        self.work.mkdir()

    def test_writes_a_package_in_a_directory_named_after_the_game(self) -> None:
        # The command as a user types it, in a directory of their own.
        done = subprocess.run(
            [sys.executable, "-m", "vinom.cli", "new-game", "stone-pile"],
            cwd=self.work, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)),
        )  # fmt: skip
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        project = self.work / "stone-pile"
        files = sorted(
            path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()
        )
        self.assertEqual(
            files,
            [
                ".gitignore",
                "README.md",
                "pyproject.toml",
                "stone_pile/__init__.py",
                "stone_pile/board/stone-pile.css",
                "stone_pile/board/stone-pile.js",
                "stone_pile/game.py",
                "tests/__init__.py",
                "tests/test_game.py",
                "twisted/plugins/stone_pile_plugin.py",
            ],
        )
        # What to do next, with the real paths.
        self.assertIn("pip install ./stone-pile\n", done.stdout)
        self.assertIn("vinom bots --game stone-pile --count 2\n", done.stdout)
        game = (project / "stone_pile" / "game.py").read_text(encoding="utf-8")
        self.assertIn('name = "stone-pile"', game)
        self.assertIn("class StonePileGame(Game[StonePileState]):", game)
        self.assertIn("shared_view = True", game)  # said explicitly, whatever the default
        self.assertNotIn("{{", "".join(p.read_text(encoding="utf-8") for p in project.rglob("*.*")))
        # The same command to refresh Twisted's plugin cache as every page of the docs.
        self.assertIn(f"  {cli.PLUGIN_CACHE_COMMAND}\n", done.stdout)
        self.assertIn(f"\n{cli.PLUGIN_CACHE_COMMAND}\n", GUIDE.read_text(encoding="utf-8"))
        self.assertIn(
            f"\n{cli.PLUGIN_CACHE_COMMAND}\n", (project / "README.md").read_text(encoding="utf-8")
        )

    def test_the_guide_shows_what_new_game_writes(self) -> None:
        code, _out, err = run_main("new-game", "pebbles", "--directory", str(self.work / "p"))
        self.assertEqual((code, err), (0, ""))
        written = sorted(
            path.relative_to(self.work / "p").as_posix()
            for path in (self.work / "p").rglob("*") if path.is_file()
        )  # fmt: skip
        self.assertEqual(guide_tree(), written)
        # The view the guide shows has the game's keys.
        text = GUIDE.read_text(encoding="utf-8")
        shown = text[text.index('{\n  "stones"') :]
        shown = json.loads(shown[: shown.index("\n}\n") + 2])
        view = subprocess.run(
            [sys.executable, "-c",
             "import json, random; from vinom.games import Seat; from pebbles.game import "
             "PebblesGame as G; seats = [Seat('p-a', 'Ann', 0), Seat('p-b', 'Bot', 1)]; "
             "print(json.dumps(G().view(G().create(seats, {}, random.Random(1)), 'p-a')))"],
            cwd=self.work / "p", capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)),
        )  # fmt: skip
        self.assertEqual(view.returncode, 0, view.stderr)
        self.assertEqual(sorted(json.loads(view.stdout)), sorted(shown))

    def test_the_guides_edit_keeps_the_tests_passing(self) -> None:
        # getting-started section 8: "Edit game.py: `STONES = 21` ..., or `MOST = 3` ...".
        text = GUIDE.read_text(encoding="utf-8")
        section = text[text.index("## 8. Change the rules") :]
        section = section[: section.index("\n## ")]
        edits = re.findall(r"`([A-Z_]+) = (\d+)`", section)
        self.assertEqual([name for name, _ in edits], ["STONES", "MOST"], section)
        code, _out, err = run_main("new-game", "pebbles", "--directory", str(self.work / "p"))
        self.assertEqual((code, err), (0, ""))
        game = self.work / "p" / "pebbles" / "game.py"
        source = game.read_text(encoding="utf-8")
        for name, value in edits:  # as written in the file, then changed as the guide says
            self.assertIn(f"\n{name} = {value}\n", source)
            source = source.replace(f"\n{name} = {value}\n", f"\n{name} = {int(value) + 4}\n")
        game.write_text(source, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "twisted.trial", "tests"], cwd=self.work / "p",
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), "."])),
        )  # fmt: skip
        self.assertIn("PASSED (successes=7)", done.stdout, done.stdout + done.stderr)
        # `vinom games` says the rules as changed (MOST = 7), and lists no test game to
        # this newcomer: duel (the benchmarks') is counted, and listed with --all.
        listed = {}
        for argv in ((), ("--all",)):
            ran = subprocess.run(
                [sys.executable, "-m", "vinom.cli", "games", *argv], cwd=self.work / "p",
                capture_output=True, text=True, timeout=120,
                env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), "."])),
            )  # fmt: skip
            self.assertEqual(ran.returncode, 0, ran.stderr)
            listed[argv] = {line.split()[0]: line for line in ran.stdout.splitlines() if line}
        table = listed[()]
        self.assertTrue(table["pebbles"].endswith(
            "Take 1 to 7 stones in turn; whoever takes the last stone wins"), table)  # fmt: skip
        self.assertNotIn("duel", "".join(table.values()))
        self.assertEqual(table["(1"], "(1 more installed game, offered only when a server's "
                         "--games names it: vinom games --all)")  # fmt: skip
        self.assertIn("duel*", listed[("--all",)])
        self.assertTrue(listed[("--all",)]["pebbles"].endswith("Take 1 to 7 stones in turn; "
                        "whoever takes the last stone wins"))  # fmt: skip

    def assert_refused(self, *argv: str, says: str) -> None:
        before = sorted(self.work.iterdir())
        code, out, err = run_main("new-game", *argv)
        self.assertNotEqual(code, 0)
        self.assertEqual(out, "")
        self.assertEqual(len(err.splitlines()), 1, err)  # one line, no help page, no traceback
        self.assertTrue(err.startswith("vinom: "), err)
        self.assertIn(says, err)
        self.assertEqual(sorted(self.work.iterdir()), before)  # nothing written

    def test_a_name_that_cannot_name_a_game_is_one_line(self) -> None:
        for name in ("Nim", "9lives", "my game", "n" * 33, "nim!", ""):
            self.assert_refused(
                name, "--directory", str(self.work / "x"), says="cannot name a game"
            )

    def test_a_name_that_would_clash_is_one_line(self) -> None:
        where = ("--directory", str(self.work / "x"))
        self.assert_refused("class", *where, says="cannot name a game package")
        self.assert_refused("tests", *where, says="cannot name a game package")
        self.assert_refused("json", *where, says="a Python module named 'json' exists already")
        self.assert_refused("maze", *where, says="a game named 'maze' is installed already")

    def test_an_existing_directory_is_one_line(self) -> None:
        taken = self.work / "taken"
        taken.mkdir()
        self.assert_refused("nim", "--directory", str(taken), says=f"{taken} exists already")
        self.assertEqual(list(taken.iterdir()), [])
        missing = self.work / "no" / "such"
        self.assert_refused("nim", "--directory", str(missing), says=f"cannot create {missing}")


class NewGameInstalledTests(TestCase):
    """The package in a fresh virtualenv, on a real `twistd -n vinom`."""

    timeout = 120

    async def test_installs_passes_its_tests_and_bots_play_it_on_a_server(self) -> None:
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        venv = make_venv(self, [str(PACKAGE_ROOT)])
        written = venv.run([venv.python, "-m", "vinom.cli", "new-game", "stone-pile"], cwd=work)
        self.assertIn("pip install ./stone-pile", written.stdout)
        venv.pip_install(work / "stone-pile")
        # Installed into the virtualenv, plugin module included.
        self.assertTrue(venv.import_path("stone_pile").startswith(str(venv.root)))
        plugin = venv.import_path("twisted.plugins.stone_pile_plugin")
        self.assertTrue(plugin.startswith(str(venv.root)), plugin)
        # Its own tests pass, with the virtualenv's Python.
        tests = venv.run([venv.python, "-m", "twisted.trial", "tests"], cwd=work / "stone-pile")
        self.assertIn("PASSED (successes=7)", tests.stdout)
        # From any directory, vinom lists it (through the installed plugin).
        listed = venv.run([venv.python, "-m", "vinom.cli", "games"], cwd=venv.root)
        self.assertIn(["stone-pile"], [line.split()[:1] for line in listed.stdout.splitlines()])

        # A server with its defaults offers every installed game: bots play it there,
        # with the debug check that a game saying shared_view = True means it.
        server = await start_twistd(self, venv, env={"VINOM_CHECK_VIEWS": "1"})
        out, err, code = await getProcessOutputAndValue(
            str(venv.python),
            [
                "-m", "vinom.cli", "bots", "--game", "stone-pile", "--count", "4", "--json",
                "--timeout", "60", "--lobby", f"127.0.0.1:{server.lobby_port}",
                "--trust", str(server.certificate),
            ],
            env=venv.env, path=str(work), reactor=reactor,
        )  # fmt: skip
        self.assertEqual(code, 0, (out + err).decode() + server.output())
        summary = json.loads(out)
        self.assertEqual(
            {key: summary[key] for key in ("bots", "matches", "finished", "error", "timeout")},
            {"bots": 4, "matches": 2, "finished": 4, "error": 0, "timeout": 0},
        )
        self.assertEqual(summary["wins"], 2)  # one winner a match: somebody took the last stone
        self.assertEqual(summary["actions_rejected"], 0)
        await self.play_in_the_terminal(venv, server, work)
        self.assertNotIn("SharedViewMismatch", server.output())

    async def play_in_the_terminal(self, venv: FreshVenv, server: Twistd, work: Path) -> None:
        """`vinom play stone-pile` in a pseudo-terminal (the generic text view) against a
        bot, `b` (the game's bot picks my move) pressed until the match is over."""
        env = {**venv.env, "TERM": "xterm", "LINES": "30", "COLUMNS": "100"}
        lobby = ["--lobby", f"127.0.0.1:{server.lobby_port}", "--trust", str(server.certificate)]
        terminal, process = in_a_terminal(
            self, [str(venv.python), "-m", "vinom.cli", "play", "stone-pile", "--name", "tui",
                   *lobby], env, path=str(work),
        )  # fmt: skip
        await until(lambda: b"queued" in terminal.output, "the terminal player to queue")
        bot = getProcessOutputAndValue(
            str(venv.python),
            ["-m", "vinom.cli", "bots", "--game", "stone-pile", "--count", "1", "--json",
             "--think", "0.1", "--timeout", "60", *lobby],
            env=venv.env, path=str(work), reactor=reactor,
        )  # fmt: skip
        def ended() -> bool:
            if bot.called:
                return True
            process.write(b"b")  # the next key for the terminal player
            return False

        await until(ended, "the match to end", timeout=60, every=0.3)
        out, err, code = await bot
        self.assertEqual(code, 0, (out + err).decode())
        self.assertEqual(json.loads(out)["finished"], 1)
        await until(lambda: b"game over" in terminal.output, "the result on the screen")
        process.write(b"q")
        self.assertIsInstance(await terminal.ended, ProcessDone)


# What the game's own board shows, read in one call: its stones (with the size and
# shape its style sheet gives them), its move buttons, and the result once shown.
# `arguments[0]`: the game's name, which prefixes the board's classes.
STONES_DRAWN = """
const name = arguments[0];
const board = document.querySelector(`#board [data-board="${name}"] .vb-${name}`);
if (board === null) return null;
const stones = [...board.querySelectorAll(`.vb-${name}-stone`)];
const style = stones.length ? getComputedStyle(stones[0]) : null;
const result = document.getElementById('result-panel');
return {
  stones: stones.length,
  count: board.querySelector(`.vb-${name}-count`).textContent,
  stone: style ? [style.width, style.height, style.borderTopLeftRadius] : null,
  buttons: [...board.querySelectorAll('button[data-take]')]
    .map((b) => [b.dataset.take, !b.disabled]),
  done: result.hidden ? null : result.dataset.outcome,
};
"""

# Paths that would reach a file outside the served board if anything joined them to
# a directory of the package: the game's module, the package's own files, the system's.
TRAVERSALS = (
    "/boards/../stone_pile/game.py",
    "/boards/%2e%2e/%2e%2e/stone_pile/game.py",
    "/boards/..%2f..%2fstone_pile%2fgame.py",
    "/boards/stone-pile.js/../game.py",
    "/boards/stone-pile.js%2f..%2f..%2fgame.py",
    "/boards/stone-pile/../../../../../../etc/passwd",
    "/boards/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/boards/..%5c..%5cgame.py",
    "/boards/board/stone-pile.js",
    "/boards/stone-pile.py",
    "/boards/game.py",
    "/boards/stone-pile.js%00.py",
)


def https_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no client tidies it up), trusting any certificate;
    blocking: call it in a thread."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


class NewGameBoardTests(TestCase):
    """The board `vinom new-game` writes, from the package installed in a fresh virtualenv,
    on a real `twistd -n vinom` and in a real headless Chromium."""

    timeout = 150

    async def test_the_packages_board_is_served_drawn_and_played_in_the_browser(self) -> None:
        check_chromium()  # before the set-up: fail at once without a browser
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        venv = make_venv(self, [str(PACKAGE_ROOT)])
        venv.run([venv.python, "-m", "vinom.cli", "new-game", "stone-pile"], cwd=work)
        venv.pip_install(work / "stone-pile")
        installed = Path(venv.import_path("stone_pile")).parent / "board"
        self.assertTrue(str(installed).startswith(str(venv.root)), installed)
        server = await start_twistd(self, venv, web=True)
        assert server.web_port is not None
        port = server.web_port

        # Served as the web client's own files are: the same policy, types and headers.
        _, page_headers, _ = await deferToThread(https_get, port, "/")
        policy = page_headers["content-security-policy"]
        code, _, listed = await deferToThread(https_get, port, "/boards.js")
        self.assertEqual(code, 200)
        self.assertIn(b'"stone-pile"', listed)
        for name, kind in (("stone-pile.js", "text/javascript"), ("stone-pile.css", "text/css")):
            code, headers, body = await deferToThread(https_get, port, f"/boards/{name}")
            self.assertEqual(code, 200, name)
            self.assertEqual(headers["content-type"], f"{kind}; charset=utf-8", name)
            self.assertEqual(headers["content-security-policy"], policy, name)
            self.assertEqual(headers["x-content-type-options"], "nosniff", name)
            self.assertEqual(body, (installed / name).read_bytes(), name)
        # Nothing else of the package, nor of the machine, whatever the path says.
        for path in TRAVERSALS:
            code, _, body = await deferToThread(https_get, port, path)
            self.assertTrue(400 <= code < 500, (path, code))
            self.assertNotIn(b"StonePileGame", body, path)
            self.assertNotIn(b"root:", body, path)

        browser = await open_browser(self)
        await enter(browser, f"https://127.0.0.1:{port}/", "Ann")
        await click(browser, '[data-action="create-room"][data-game="stone-pile"]')
        await wait_for_screen(browser, "room")
        await click(browser, "#room-add-bot")
        await wait_for_game(browser, "stone-pile")  # the package's board, not the generic one
        drawn = await browser.wait_until(
            lambda d: (seen := d.execute_script(STONES_DRAWN, "stone-pile")) and seen["stones"]
            and seen
        )
        # Its style sheet applied (a stone is a 28 px disc: nothing but the sheet says so).
        self.assertEqual(drawn["stone"], ["28px", "28px", "50%"], drawn)
        self.assertEqual(drawn["count"], f"{drawn['stones']} stones left", drawn)
        self.assertEqual([take for take, _ in drawn["buttons"]], ["1", "2", "3"], drawn)
        await browser.check()
        # Played to the end by its buttons: each click a move the game accepts.
        self.assertIn(await play_stones_board(browser, "stone-pile"), ("win", "lose"))


async def play_stones_board(browser: Browser, name: str) -> str:
    """Play the board `vinom new-game NAME` writes by its buttons, as a player does:
    on each turn the move that leaves a multiple of four; the outcome the page shows."""
    seen: Any = None

    async def over() -> str | None:
        nonlocal seen
        seen = await browser.run(lambda d: d.execute_script(STONES_DRAWN, name))
        if seen is not None and seen["done"]:
            return str(seen["done"])
        usable = [take for take, enabled in (seen or {}).get("buttons", []) if enabled]
        if usable:
            await click(browser, f'#board button[data-take="{seen["stones"] % 4 or 1}"]')
        return None

    return str(await until(over, lambda: f"the match's end: {seen}", 60, every=0.2))
