"""A new user's first hour, end to end, as docs/getting-started.md tells it.

A fresh virtualenv; `pip install` of this checkout from the package index, as
the user types it (pure Python: VINOM_NO_EXTENSIONS=1, to keep it quick),
which brings none of the extras (docs/operations.md, "Installing"): no Redis
client, no psycopg, no qh3, no tree-sitter; an option that needs one says so
in one line, naming it; `vinom new-game` makes a game that
is installed next to it; `twistd -n vinom` starts from an empty directory
(every port moved to a free one on loopback, everything else the defaults);
then a real headless Chromium opens the web client with the server's real
headers, accepts its self-signed certificate, plays tictactoe against a bot
to the end, moves in the maze against a bot, and plays the new game on the
board its package ships against a bot, checking that each board is drawn and
that the console never shows an error; last, `vinom bots` plays the new game on the
same server, from the server's directory, as the guide has it.
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import (
    WAIT,
    click,
    enter,
    my_player_row,
    pause,
    play_tictactoe,
    wait_for_game,
    wait_for_screen,
)
from tests.support.browser import Browser, check_chromium, open_browser
from tests.support.fresh_venv import (
    FreshVenv,
    Twistd,
    canonical,
    copy_checkout,
    make_index_venv,
    start_twistd,
)
from tests.test_scaffold import play_stones_board
from vinom.cli import PLUGIN_CACHE_COMMAND

# tox runs the tests from a directory of links (tests -> the checkout's tests/):
# the checkout is where the link leads.
CHECKOUT = Path(__file__).resolve().parent.parent
GAME = "pebbles"
# What only the extras bring (setup.py, extras_require): none in a lean install.
EXTRAS_ONLY = ("txredisapi", "hiredis", "psycopg", "psycopg-binary", "qh3", "tree-sitter",
               "tree-sitter-javascript")  # fmt: skip
# An option that needs an extra, and the one line a lean install answers it with.
NEEDS_EXTRA = [
    (["--redis", "redis://127.0.0.1:1"], "--redis", "cluster", "txredisapi"),
    (["--database", "postgresql://x/y"], "--database postgresql://...", "postgres", "psycopg"),
    (["--webtransport", "7381"], "--webtransport", "webtransport", "qh3"),
]

# Where each tictactoe cell is drawn.
_TTT_CELLS = """
return [...document.querySelectorAll('#board .ttt-cell')].map((cell) => {
  const r = cell.getBoundingClientRect();
  return [r.left, r.top, r.width, r.height];
});
"""

# What the maze board draws, measured: the grid (the board's largest SVG), its
# walls (the path with the most segments), the rewards (shapes outside the
# tokens) and my token, with the styles the browser computed for them.
_MAZE_DRAWN = """
const me = arguments[0];
const board = document.querySelector('#board [data-board="maze"]');
if (board === null) return null;
const area = (e) => { const r = e.getBoundingClientRect(); return r.width * r.height; };
const grid = [...board.querySelectorAll('svg')].sort((a, b) => area(b) - area(a))[0];
if (grid === undefined || grid.viewBox.baseVal === null) return null;
const box = grid.getBoundingClientRect();
const scale = box.width / grid.viewBox.baseVal.width;  // pixels per SVG unit
const segments = (p) => (p.getAttribute('d') || '').split('M').length - 1;
const walls = [...grid.querySelectorAll('path')].sort((a, b) => segments(b) - segments(a))[0];
const wallStyle = walls ? getComputedStyle(walls) : null;
const rewards = [...grid.querySelectorAll('circle, polygon, rect')]
  .filter((e) => e.closest('[data-player]') === null && e.closest('defs') === null)
  .map((e) => ({box: e.getBoundingClientRect(), fill: getComputedStyle(e).fill}))
  .filter((e) => e.box.width > 0 && e.box.width < box.width / 2);
const token = grid.querySelector(`[data-player="${me}"]`);
const tokenBox = token ? token.getBoundingClientRect() : null;
return {
  grid: [box.left, box.top, box.width, box.height],
  window: [window.innerWidth, window.innerHeight],
  wallSegments: walls ? segments(walls) : 0,
  wallStroke: wallStyle ? wallStyle.stroke : 'none',
  wallPixels: wallStyle ? parseFloat(wallStyle.strokeWidth) * scale : 0,
  rewards: rewards.map((e) => [e.box.width, e.box.height, e.fill]),
  token: tokenBox ? [tokenBox.width, tokenBox.height] : null,
};
"""

class Console:
    """Every error the page's console showed, read as the test goes (reading empties it)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.errors: list[dict[str, Any]] = []

    async def read(self) -> list[dict[str, Any]]:
        log = await self.browser.run(lambda d: d.get_log("browser"))
        self.errors += [entry for entry in log if entry["level"] == "SEVERE"]
        return self.errors


class NewUserTests(TestCase):
    # A minute with pip's cache warm; the first run downloads the dependencies' wheels.
    timeout = 600

    async def test_install_play_in_the_browser_and_add_a_game(self) -> None:
        check_chromium()  # before minutes of set-up: fail at once without a browser
        venv = make_index_venv(self)
        venv.pip_install_from_index(copy_checkout(self, CHECKOUT))
        self.assertTrue(venv.import_path("vinom").startswith(str(venv.root)))
        installed = venv.installed()
        self.assertIn("vinom", installed)
        self.assertEqual([name for name in EXTRAS_ONLY if canonical(name) in installed], [])
        self.refuses_what_needs_an_extra(venv)
        # The user's own game, installed next to vinom, Twisted's plugin cache refreshed.
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        venv.run([venv.script("vinom"), "new-game", GAME], cwd=home)
        venv.pip_install_from_index(home / GAME)
        code = PLUGIN_CACHE_COMMAND.removeprefix('python -c "').removesuffix('"')
        venv.run([venv.python, "-c", code], cwd=home)

        server = await start_twistd(self, venv, web=True, ops=True)
        # The game's own board, served unchecked: its syntax check is the boards extra's.
        self.assertIn(
            f"vinom: the boards of {GAME} are served unchecked: checking their syntax at start "
            "needs vinom's boards extra (pip install 'vinom[boards]')", server.output()
        )  # fmt: skip
        url = f"https://127.0.0.1:{server.web_port}/"
        browser = await open_browser(self)
        console = Console(browser)
        await enter(browser, url, "Ann")
        offered = await browser.run(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#games li')].map(li => li.dataset.game);"
        ))  # fmt: skip
        built_in = ["arena", "dice", "maze", "owedrahn", "tictactoe"]
        self.assertEqual(sorted(offered), sorted([*built_in, GAME]))
        self.assertEqual(await console.read(), [])

        await self.start_against_a_bot(browser, "tictactoe")
        self.assert_tictactoe_drawn(await browser.run(lambda d: d.execute_script(_TTT_CELLS)))
        [outcome] = await play_tictactoe({browser: True})
        self.assertIn(outcome, ("win", "lose", "draw"))
        self.assertEqual(await console.read(), [])

        await self.play_again(browser)
        await self.start_against_a_bot(browser, "maze")
        await browser.wait_for_text("#game-phase", "Playing", 60)
        me = (await my_player_row(browser))["id"]
        drawn = await browser.wait_until(lambda d: d.execute_script(_MAZE_DRAWN, me), WAIT)
        self.assert_maze_drawn(drawn)
        await self.move_in_the_maze(browser, me)
        self.assertEqual(await console.read(), [])

        await self.play_again(browser)
        # The board the new game's package ships (package data, not vinom's files).
        await self.start_against_a_bot(browser, GAME)
        outcome = await play_stones_board(browser, GAME)
        self.assertIn(outcome, ("win", "lose"))
        self.assertEqual(await console.read(), [])

        await self.bots_play(server)

    def refuses_what_needs_an_extra(self, venv: FreshVenv) -> None:
        """Each option whose extra is missing is one line naming the extra: `twistd vinom`
        exits 1 as at any other mistake in its options, `vinom accounts` 2 (usage)."""
        where = Path(self.mktemp()).resolve()
        where.mkdir()
        for words, option, extra, missing in NEEDS_EXTRA:
            done = venv.run([venv.script("twistd"), "-n", "--pidfile=", "vinom", *words],
                            cwd=where, check=False)  # fmt: skip
            said = (f"{option} needs vinom's {extra} extra ({missing} is not installed): "
                    f"pip install 'vinom[{extra}]' (twistd vinom --help lists the options)")
            self.assertEqual((done.returncode, (done.stdout + done.stderr).splitlines()),
                             (1, [f"vinom: {said}"]), words)  # fmt: skip
        done = venv.run([venv.script("vinom"), "accounts", "show", "a-0123456789abcdef",
                         "--database", "postgresql://x/y"], cwd=where, check=False)  # fmt: skip
        self.assertEqual((done.returncode, done.stderr.splitlines()), (2, [
            "vinom: --database postgresql://... needs vinom's postgres extra (psycopg is not "
            "installed): pip install 'vinom[postgres]' (vinom accounts --help lists the options)"
        ]))  # fmt: skip
        self.assertEqual(list(where.iterdir()), [])

    async def start_against_a_bot(self, browser: Browser, game: str) -> None:
        """Open a room for `game`, fill the other seat with its bot, wait for its board."""
        await click(browser, f'[data-action="create-room"][data-game="{game}"]')
        await wait_for_screen(browser, "room")
        await click(browser, "#room-add-bot")
        await wait_for_game(browser, game)

    async def play_again(self, browser: Browser) -> None:
        await browser.wait_until(lambda d: d.find_element(By.ID, "play-again").is_displayed())
        await click(browser, "#play-again")
        await wait_for_screen(browser, "lobby")

    def assert_tictactoe_drawn(self, cells: list[list[float]]) -> None:
        """Nine square cells a finger can hit, in three rows of three, none on another."""
        self.assertEqual(len(cells), 9, cells)
        for _left, _top, width, height in cells:
            self.assertTrue(40 <= width <= 250 and 40 <= height <= 250, cells)
            self.assertLess(abs(width - height), 0.2 * width, cells)
        for axis in (0, 1):
            starts = sorted({round(cell[axis]) for cell in cells})
            self.assertEqual(len(starts), 3, cells)
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            self.assertTrue(all(gap >= 0.9 * cells[0][2 + axis] for gap in gaps), cells)

    def assert_maze_drawn(self, drawn: dict[str, Any]) -> None:
        """A maze a player can read: on screen, with visible walls, coins and tokens
        smaller than a cell (the default maze is 10 x 10 cells)."""
        _left, _top, width, height = drawn["grid"]
        window_width, window_height = drawn["window"]
        self.assertTrue(200 <= width <= window_width and 200 <= height <= window_height, drawn)
        cell = width / 10
        self.assertGreater(drawn["wallSegments"], 20, drawn)
        self.assertNotIn(drawn["wallStroke"], ("none", "rgba(0, 0, 0, 0)"), drawn)
        self.assertGreaterEqual(drawn["wallPixels"], 1.0, drawn)
        self.assertGreater(len(drawn["rewards"]), 0, drawn)
        for reward_width, reward_height, fill in drawn["rewards"]:
            self.assertLess(max(reward_width, reward_height), cell, drawn)
            self.assertNotIn(fill, ("none", "rgb(0, 0, 0)"), drawn)
        self.assertIsNotNone(drawn["token"], drawn)
        self.assertTrue(0 < max(drawn["token"]) <= 1.2 * cell, drawn)

    async def move_in_the_maze(self, browser: Browser, me: str) -> None:
        """An arrow key moves my token (some direction from the corner is open)."""
        mine = f'svg [data-player="{me}"]'

        def where(driver: Any) -> tuple[str, str]:
            token = driver.find_element(By.CSS_SELECTOR, mine)
            return token.get_attribute("data-x"), token.get_attribute("data-y")

        start = await browser.run(where)
        for key in (Keys.ARROW_UP, Keys.ARROW_DOWN, Keys.ARROW_LEFT, Keys.ARROW_RIGHT):
            await browser.run(
                lambda d, key=key: d.find_element(By.TAG_NAME, "body").send_keys(key)
            )
            await pause(0.5)
            if await browser.run(where) != start:
                break
        self.assertNotEqual(await browser.run(where), start, "no arrow key moved the player")
        await click(browser, "#game-leave")
        await browser.wait_for_text("#result-text", "You left the match.", WAIT)

    async def bots_play(self, server: Twistd) -> None:
        """`vinom bots` from the server's directory: it trusts ./vinom-data/dev-cert.pem."""
        out, err, code = await getProcessOutputAndValue(
            str(server.venv.script("vinom")),
            ["bots", "--game", GAME, "--count", "2", "--json", "--timeout", "60",
             "--lobby", f"127.0.0.1:{server.lobby_port}"],
            env=server.venv.env, path=str(server.directory), reactor=reactor,
        )  # fmt: skip
        self.assertEqual(code, 0, (out + err).decode() + server.output())
        summary = json.loads(out)
        self.assertEqual((summary["finished"], summary["matches"], summary["wins"]), (2, 1, 1))
