"""The web client (vinom/webclient/, served at `/` by vinom.server.web) in real headless Chromium.

A whole server runs in the test process (tests/support/servers.py) with its web
server on a loopback port; each player is its own Chromium (tests/support/browser.py)
that loads `https://127.0.0.1:PORT/`, enters a name and plays by clicking the
page, as a person would: over the WebSocket lobby and the game session over
WebSocket, against other browsers, the game's bot (`add_bot`) and the client
library's UDP bot. The page's files and types are checked over HTTPS, and
its MessagePack codec (codec.js on the vendored @msgpack/msgpack) against
Python's msgpack.

What a player sees is checked, not only what the page does: every board is
measured as drawn (tests/support/board_harness.py, `assert_drawn`), any policy
violation or console error fails a test (tests/support/browser.py), the result is
in view at 1280 x 720, the connection badge says why it went offline, and
the status line never keeps saying what stopped being true. Why a match
ended is read from each seat (the winner's, the loser's, the player idled
out) on a real `twistd -n vinom` running two plugin games, installed as a
user installs one.
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import json
import random
import re
import textwrap
from collections.abc import Iterable
from typing import Any

import msgpack
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.ssl import Certificate
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, readBody

from tests.support.board_harness import assert_drawn
from tests.support.browser import Browser, open_browser
from tests.support.ports import free_tcp_port
from tests.support.servers import RunningServer, start_server, start_twistd
from tests.support.waiting import until
from vinom.client.bots import BotReport, play_bot
from vinom.games.dice import best_selection
from vinom.games.registry import GameRegistry

# Each step of a test waits at most this long: generous for a loaded machine.
WAIT = 30.0




async def start_web_server(case: TestCase, ports: int = 4) -> tuple[RunningServer, str]:
    """A whole server with its web server; the page's URL."""
    port = free_tcp_port()
    server = await start_server(
        case, "--websocket", f"ssl:{port}:interface=127.0.0.1", ports=ports
    )
    return server, f"https://127.0.0.1:{port}/"


async def pause(seconds: float = 0.15) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def wait_for_screen(browser: Browser, name: str) -> None:
    await browser.wait_until(
        lambda d: d.execute_script("return document.body.dataset.screen;") == name, WAIT
    )


async def click(browser: Browser, css: str) -> None:
    await browser.run(lambda d: d.find_element(By.CSS_SELECTOR, css).click())


async def enter(browser: Browser, url: str, name: str) -> None:
    """Open the page, type a name, and wait for the lobby's game list."""
    await browser.get(url)
    await wait_for_screen(browser, "name")

    def type_name(driver: Any) -> None:
        field = driver.find_element(By.ID, "name-input")
        field.clear()
        field.send_keys(name)
        driver.find_element(By.ID, "name-submit").click()

    await browser.run(type_name)
    await wait_for_screen(browser, "lobby")
    await browser.wait_until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#games li[data-game="tictactoe"]'), WAIT
    )


async def wait_for_game(browser: Browser, game: str) -> None:
    """Wait until the match's board is drawn."""
    await wait_for_screen(browser, "game")
    await browser.wait_until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#board [data-board="{game}"]'), WAIT
    )


# What a tictactoe player does next, read and done in one call: click the
# first free cell on my turn; after a round, `finisher` ends the match.
_TTT_READ = """
const result = document.getElementById('result-panel');
if (!result.hidden) return {done: result.dataset.outcome};
const grid = document.querySelector('[data-testid=ttt-board]');
if (grid === null) return {};
const round = document.querySelector('[data-testid=ttt-round]');
const cell = grid.dataset.turn === 'mine'
  ? grid.querySelector('.ttt-cell:not(:disabled)') : null;
return {cell: cell, roundOver: !round.hidden};
"""


# The tictactoe board's round box: shown, its text, its buttons hidden, Rematch enabled.
_TTT_ROUND = """
const box = document.querySelector('[data-testid=ttt-round]');
return {hidden: box.hidden, text: box.querySelector('.ttt-round-text').textContent,
        buttons: box.querySelector('.row').hidden,
        rematch: !box.querySelector('[data-testid=ttt-rematch]').disabled};
"""


def tictactoe_step(driver: Any, finisher: bool) -> str | None:
    """One move of a browser tictactoe player; the outcome once the match is over."""
    seen = driver.execute_script(_TTT_READ)
    if seen.get("done"):
        return str(seen["done"])
    if seen.get("roundOver"):
        if finisher:
            button = driver.find_element(By.CSS_SELECTOR, "[data-testid=ttt-finish]")
            # Hidden once the other player declined: the match is over then.
            if button.is_displayed() and button.is_enabled():
                button.click()
    elif seen.get("cell") is not None:
        seen["cell"].click()
    return None


async def play_tictactoe(players: dict[Browser, bool], timeout: float = 45.0) -> list[str]:
    """Play until every page shows the result; the outcomes ("win", "lose", "draw")."""
    outcomes: dict[Browser, str] = {}

    async def every_page_shows_it() -> bool:
        for browser, finisher in players.items():
            if browser not in outcomes:
                outcome = await browser.run(lambda d, f=finisher: tictactoe_step(d, f))
                if outcome is not None:
                    outcomes[browser] = outcome
        return len(outcomes) == len(players)

    await until(every_page_shows_it, lambda: f"the result on every page: {outcomes}",
                timeout, every=0.15)  # fmt: skip
    return [outcomes[browser] for browser in players]


async def board_marks(browser: Browser) -> list[str]:
    marks = await browser.run(lambda d: d.execute_script(
        "return [...document.querySelectorAll('.ttt-cell')].map(c => c.dataset.mark);"
    ))
    return [str(mark) for mark in marks]


async def my_player_row(browser: Browser) -> dict[str, str]:
    """The id and seat of the page's own player, as the players list shows them."""
    row = await browser.run(lambda d: d.execute_script(
        "const row = [...document.querySelectorAll('#game-players li')]"
        "  .find(li => li.innerText.includes('(you)'));"
        "return row ? {id: row.dataset.playerId, seat: row.dataset.seat} : null;"
    ))
    assert row is not None
    return {"id": str(row["id"]), "seat": str(row["seat"])}


async def player_names(browser: Browser) -> list[str]:
    names = await browser.run(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#game-players .player-name')]"
        ".map(e => e.innerText);"
    ))
    return sorted(str(name).removesuffix(" (you)") for name in names)


# What changes with every dice action: whose turn, the phase, the dice.
DICE_SIGNATURE = """
const turn = document.querySelector('[data-testid=dice-turn]');
return [turn.dataset.mine, turn.dataset.phase,
        document.querySelector('[data-testid=dice-tray]').innerText,
        document.querySelector('[data-testid=dice-kept]').childElementCount].join('|');
"""


def consistent(outcomes: Iterable[str]) -> bool:
    return sorted(outcomes) in (["lose", "win"], ["draw", "draw"])


async def assert_in_view(case: TestCase, browser: Browser, css: str) -> None:
    """The element is on screen as the page is now, without scrolling further."""
    box = await browser.run(lambda d: d.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, height: r.height, window: innerHeight};", css
    ))
    case.assertTrue(
        box["height"] > 0 and box["top"] >= 0 and box["bottom"] <= box["window"], (css, box)
    )


async def scrolled(browser: Browser) -> float:
    """How far the page is scrolled down: the player scrolled (or the page did it)."""
    return float(await browser.run(lambda d: d.execute_script("return scrollY;")))


async def status_line(browser: Browser) -> str:
    return await browser.text_of("#game-status") or ""


# What the dice board tells me on my own turn: never shown on another player's.
DICE_INSTRUCTIONS = (
    "Pick the scoring dice to set aside (1s, 5s, three of a kind, runs).",
    "Roll the rest for more, or bank your points.",
    "Roll the dice!",
)


async def open_room_with_bots(browser: Browser, url: str, game: str) -> None:
    """Enter as Ann, open a room of `game`, fill its seats with the game's bot: the match
    starts."""
    await enter(browser, url, "Ann")
    await click(browser, f'[data-action="create-room"][data-game="{game}"]')
    await wait_for_screen(browser, "room")

    async def filled() -> bool:
        if not await browser.run(lambda d: d.execute_script(
            "return document.body.dataset.screen === 'room'"
            " && !document.getElementById('room-add-bot').hidden;"
        )):
            return True
        await click(browser, "#room-add-bot")
        return False

    await until(filled, "the room filled with bots", WAIT, every=0.5)
    await wait_for_game(browser, game)


class WebClientFilesTests(TestCase):
    """The page and its files over HTTPS, as a browser fetches them."""

    timeout = 60

    async def fetch(self, path: str) -> tuple[int, dict[str, str], bytes]:
        trust = self.server.lobby.trust
        assert trust is not None
        with open(trust, "rb") as f:
            policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(f.read()))
        response = await Agent(reactor, contextFactory=policy).request(
            b"GET", f"{self.base}{path}".encode()
        )
        headers = {
            name.decode().lower(): values[0].decode()
            for name, values in response.headers.getAllRawHeaders()
        }
        return response.code, headers, await readBody(response)

    async def test_the_client_is_served_with_the_types_a_browser_needs(self) -> None:
        port = free_tcp_port()
        self.server = await start_server(
            self, "--websocket", f"ssl:{port}:interface=127.0.0.1", ports=1
        )
        self.base = f"https://localhost:{port}"
        code, headers, page = await self.fetch("/")
        self.assertEqual((code, headers["content-type"]), (200, "text/html; charset=utf-8"))
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        csp = headers["content-security-policy"]
        self.assertIn("default-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertIn(b'src="app.js"', page)
        self.assertIn(b'href="style.css"', page)
        # Scripts from the site only, nothing inline: the modules, the vendored
        # MessagePack library among them, import each other by relative paths.
        self.assertIn("script-src 'self';", csp)
        self.assertEqual(re.findall(rb"<script([^>]*)>", page), [b' type="module" src="app.js"'])
        scripts = ["app.js", "lobby.js", "game.js", "codec.js", "delta.js", "fallback.js",
                   "loader.js", "replays.js", "boards/tictactoe.js", "boards/dice.js",
                   "vendor/msgpack/index.mjs", "vendor/msgpack/utils/utf8.mjs"]  # fmt: skip
        for name in scripts:
            code, headers, body = await self.fetch(f"/{name}")
            self.assertEqual(
                (code, headers["content-type"]), (200, "text/javascript; charset=utf-8"), name
            )
            self.assertIn(b"import" if name == "app.js" else b"export", body, name)
        for sheet in ("/style.css", "/boards/maze.css", "/boards/owedrahn.css"):
            code, headers, _ = await self.fetch(sheet)
            self.assertEqual(
                (code, headers["content-type"]), (200, "text/css; charset=utf-8"), sheet
            )
            self.assertIn("default-src 'self'", headers["content-security-policy"])
        # The boards there are, for the page to import only those.
        code, headers, body = await self.fetch("/boards.js")
        self.assertEqual((code, headers["content-type"]), (200, "text/javascript; charset=utf-8"))
        self.assertEqual(headers["content-security-policy"], csp)
        self.assertEqual(
            body, b'export default ["arena", "dice", "maze", "owedrahn", "tictactoe"];\n'
        )
        code, headers, _ = await self.fetch("/index.html")
        self.assertEqual((code, headers["content-type"]), (200, "text/html; charset=utf-8"))
        # No listings, no other files, nothing outside the directory.
        for path in ("/boards/", "/boards/nothing.js", "/nothing-here", "/../setup.py",
                     "/%2e%2e/web.py", "/vendor/msgpack/", "/vendor/msgpack/VERSION"):  # fmt: skip
            code, _, _ = await self.fetch(path)
            self.assertEqual(code, 404, path)


class WebClientInChromiumTests(TestCase):
    """Players in real headless Chromium, clicking the page."""

    timeout = 120

    async def test_the_page_loads_without_console_errors_and_shows_the_games(self) -> None:
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await enter(browser, url, "Ann")
        self.assertEqual(await browser.text_of("#me"), "Ann")
        games = await browser.run(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#games li')].map(li => li.dataset.game);"
        ))
        registry = GameRegistry.from_plugins()
        offered = [
            name for name in registry.names()
            if getattr(registry.get(name), "offered_by_default", True)
        ]
        self.assertEqual(sorted(games), sorted(offered))
        # Each game by its display name, as people read it.
        self.assertEqual(
            await browser.text_of('#games li[data-game="owedrahn"] .game-name'), "Owe Drahn"
        )
        self.assertEqual(await browser.text_of("#room-list"), "No open rooms. Start one!")
        log = await browser.run(lambda d: d.get_log("browser"))
        self.assertEqual([entry for entry in log if entry["level"] == "SEVERE"], [])

    async def test_a_style_the_policy_refuses_fails_a_test_whenever_it_comes(self) -> None:
        # What boards/dom.js's addStyle did for the maze and Owe Drahn boards: a
        # <style> element added long after the page loaded. The page's policy
        # refuses it, and the browser helper sees it, from the page and the console.
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await enter(browser, url, "Ann")
        self.assertEqual(await browser.collect(), [])
        await browser.run(lambda d: d.execute_script(
            "const style = document.createElement('style');"
            "style.textContent = 'body { color: rgb(255, 0, 0); }';"
            "document.head.appendChild(style);"
        ))
        problems: list[str] = []

        async def refused_and_said() -> bool:
            problems[:] = await browser.collect()
            return (any(p.startswith("CSP style-src") for p in problems)
                    and any("Content Security Policy" in p for p in problems))  # fmt: skip

        await until(refused_and_said, lambda: f"the refusal from the page and the console: "
                    f"{problems}", WAIT, every=0.15)  # fmt: skip
        colour = await browser.run(lambda d: d.execute_script(
            "return getComputedStyle(document.body).color;"
        ))
        self.assertNotEqual(colour, "rgb(255, 0, 0)")
        with self.assertRaises(AssertionError):
            await browser.check()
        browser.problems.clear()  # seen: the test's end finds nothing more

    async def test_the_codec_agrees_with_python_msgpack(self) -> None:
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await browser.get(url)
        await wait_for_screen(browser, "name")
        # Every width of every type, as Python's msgpack writes them (smallest encodings).
        values: list[Any] = [
            None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
            2**53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1,
            -(2**53) + 1, 1.5, -0.25, 1e300, "", "x", "é€😀", "a" * 31, "b" * 32, "c" * 255,
            "d" * 256, "e" * 65536, [], [1, [2, [3]]], list(range(16)), list(range(70000)),
            {}, {"t": "state", "v": 3, "s": {"board": ["X", "", "O"]}},
            {f"k{n}": n for n in range(16)},
        ]  # fmt: skip
        encoded = [msgpack.packb(v).hex() for v in values]
        wide = {  # decoded exactly: numbers beyond 2^53 become BigInts
            "cf" + (2**64 - 1).to_bytes(8, "big").hex(): str(2**64 - 1),
            "cf" + (2**53).to_bytes(8, "big").hex(): str(2**53),
            "d3" + (-(2**63)).to_bytes(8, "big", signed=True).hex(): str(-(2**63)),
            "cf" + (5).to_bytes(8, "big").hex(): "5",
            "d3" + (-5).to_bytes(8, "big", signed=True).hex(): "-5",
            "ca" + bytes.fromhex("3fc00000").hex(): "1.5",
            "c4" + "03" + "010203": "bin:010203",
            "d9" + "01" + "41": "A",
            "da" + "0001" + "41": "A",
            "dc" + "0001" + "01": "[1]",
            "de" + "0001" + "a161" + "01": '{"a":1}',
            "d6" + "ff" + "00000001": "ext:-1:00000001",
        }
        refused = ["", "c1", "92" + "01", "a2" + "ff" + "fe", "01" + "02", "cd" + "01"]
        script = """
        const [encoded, wide, refused, done] = arguments;
        import('./codec.js').then((m) => {
          const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
          const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
          const show = (v) => {
            if (typeof v === 'bigint') return v.toString();
            if (v instanceof Uint8Array) return 'bin:' + hex(v);
            if (v instanceof m.Ext) return 'ext:' + v.type + ':' + hex(v.data);
            if (typeof v === 'string') return v;
            return JSON.stringify(v);
          };
          const out = {decoded: [], reencoded: [], wide: {}, refused: [], bin: null, big: []};
          for (const h of encoded) {
            const v = m.decode(bytes(h));
            out.decoded.push(JSON.stringify(v));
            out.reencoded.push(hex(m.encode(v)));
          }
          for (const h of Object.keys(wide)) out.wide[h] = show(m.decode(bytes(h)));
          for (const h of refused) {
            try { m.decode(bytes(h)); out.refused.push('accepted'); }
            catch (e) { out.refused.push(e instanceof m.DecodeError ? 'refused' : String(e)); }
          }
          out.bin = hex(m.encode({b: new Uint8Array([1, 2, 3]), f: new m.Float32(1.5)}));
          out.big = [hex(m.encode(2n ** 64n - 1n)), hex(m.encode(-(2n ** 63n))),
                     hex(m.encode(7n))];
          done(out);
        }, (e) => done({error: String(e)}));
        """
        out = await browser.run(
            lambda d: d.execute_async_script(script, encoded, wide, refused)
        )
        self.assertNotIn("error", out)
        for value, decoded, reencoded, packed in zip(
            values, out["decoded"], out["reencoded"], encoded, strict=True
        ):
            self.assertEqual(json.loads(decoded), value)
            self.assertEqual(reencoded, packed, value if len(packed) < 200 else packed[:20])
        self.assertEqual(out["wide"], wide)
        self.assertEqual(out["refused"], ["refused"] * len(refused))
        self.assertEqual(
            msgpack.unpackb(bytes.fromhex(out["bin"])), {"b": b"\x01\x02\x03", "f": 1.5}
        )
        self.assertEqual(out["bin"][-10:], "ca3fc00000")  # float 32
        self.assertEqual(
            [msgpack.unpackb(bytes.fromhex(h)) for h in out["big"]], [2**64 - 1, -(2**63), 7]
        )

    async def test_two_browsers_play_tictactoe_to_the_result(self) -> None:
        _server, url = await start_web_server(self)
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, '[data-action="queue"][data-game="tictactoe"]')
        await ann.wait_until(lambda d: d.find_element(By.ID, "queue-panel").is_displayed(), WAIT)
        self.assertEqual(await ann.text_of("#queue-detail"), "Position 1 in the queue")
        await click(bob, '[data-action="queue"][data-game="tictactoe"]')
        await wait_for_game(ann, "tictactoe")
        await wait_for_game(bob, "tictactoe")
        self.assertEqual(await player_names(ann), ["Ann", "Bob"])
        self.assertEqual(await player_names(bob), ["Ann", "Bob"])
        self.assertEqual(await ann.text_of("#game-title"), "Tic-tac-toe")
        await assert_drawn(self, ann, "tictactoe")
        outcomes = await play_tictactoe({ann: True, bob: False})
        self.assertTrue(consistent(outcomes), outcomes)
        for page in (ann, bob):
            # The result is what is true now: no turn or rematch line left over.
            self.assertEqual(await status_line(page), "")
            await assert_in_view(self, page, "#result-panel")
        texts = [await ann.text_of("#result-text"), await bob.text_of("#result-text")]
        wording = {"win": "You win!", "lose": "You lose.", "draw": "It's a draw."}
        for outcome, text in zip(outcomes, texts, strict=True):
            assert text is not None
            self.assertTrue(text.startswith(wording[outcome]), (outcome, text))
        self.assertEqual(await ann.text_of("#game-phase"), "Finished")
        # Play again: back to the lobby with the same name, a new player.
        await click(ann, "#play-again")
        await wait_for_screen(ann, "lobby")
        self.assertEqual(await ann.text_of("#me"), "Ann")
        stored = await ann.run(lambda d: d.execute_script(
            "return sessionStorage.getItem('vinom.match');"
        ))
        self.assertIsNone(stored)

    async def test_a_browser_and_a_udp_bot_finish_a_tictactoe_match(self) -> None:
        server, url = await start_web_server(self)
        browser = await open_browser(self)
        await enter(browser, url, "Ann")
        await click(browser, '[data-action="queue"][data-game="tictactoe"]')
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "queue-panel").is_displayed(), WAIT
        )
        bot: Deferred[BotReport] = Deferred.fromCoroutine(play_bot(
            reactor, server.lobby, GameRegistry.from_plugins().get("tictactoe"), "robo",
            rng=random.Random(3), think_time=0.2,
        ))  # fmt: skip
        await wait_for_game(browser, "tictactoe")
        self.assertEqual(await player_names(browser), ["Ann", "robo"])
        # The browser ends the match after a round (or the bot does, playing X).
        [outcome] = await play_tictactoe({browser: True})
        report = await bot
        self.assertEqual(report.outcome, "finished")
        if report.won:
            self.assertEqual(outcome, "lose")
        else:
            self.assertIn(outcome, ("win", "draw"))

    async def test_a_reload_mid_match_reconnects_to_the_same_seat_and_board(self) -> None:
        _server, url = await start_web_server(self)
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, '[data-action="queue"][data-game="tictactoe"]')
        await click(bob, '[data-action="queue"][data-game="tictactoe"]')
        await wait_for_game(ann, "tictactoe")
        await wait_for_game(bob, "tictactoe")
        before = await my_player_row(ann)
        # Two moves, one each.

        async def two_moves() -> bool:
            if sum(1 for mark in await board_marks(ann) if mark) >= 2:
                return True
            for page in (ann, bob):
                await page.run(lambda d: tictactoe_step(d, False))
            return False

        await until(two_moves, "two moves made", WAIT, every=0.3)
        # (A move clicked last may still be on its way: it may land before or during
        # the reload, and is then on both boards.)
        marks = await board_marks(ann)

        await ann.reload()
        await wait_for_game(ann, "tictactoe")
        await ann.wait_until(lambda d: d.execute_script(
            "return document.getElementById('screen-game').dataset.reconnected;") == "true", WAIT)
        self.assertEqual(await my_player_row(ann), before)

        # Her board is Bob's (the server's), with every move made before the reload.
        async def same_board() -> bool:
            mine, theirs = await board_marks(ann), await board_marks(bob)
            return mine == theirs and all(m == n for m, n in zip(marks, mine, strict=True) if m)

        await until(same_board, lambda: f"Ann's board as Bob's, with {marks}", WAIT, every=0.3)
        # Bob sees Ann back (no presence badge) and the match plays on to its result.
        await bob.wait_until(lambda d: d.execute_script(
            "const row = document.querySelector("
            "  `#game-players li[data-player-id='${arguments[0]}']`);"
            "return row !== null && row.dataset.presence === 'connected';", before["id"]), WAIT)
        # "Ann lost the connection." was true while she was away; it is not now.
        self.assertNotIn("lost the connection", await status_line(bob))
        outcomes = await play_tictactoe({ann: True, bob: False})
        self.assertTrue(consistent(outcomes), outcomes)

    async def test_a_private_room_is_joined_by_its_code_from_a_second_browser(self) -> None:
        _server, url = await start_web_server(self)
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, '[data-action="create-private"][data-game="tictactoe"]')
        await wait_for_screen(ann, "room")
        self.assertEqual(await ann.text_of("#room-kind"), "private")
        self.assertEqual(await ann.text_of("#room-seats"), "1 of 2 seats taken")
        code = await ann.text_of("#room-code")
        assert code is not None
        self.assertRegex(code, r"^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{6}$")
        self.assertRegex(await ann.text_of("#room-id") or "", r"^r-[0-9a-f]{16}$")
        # A private room is never listed.
        await click(bob, "#rooms-refresh")
        await pause(0.5)
        self.assertEqual(await bob.text_of("#room-list"), "No open rooms. Start one!")
        # A wrong code is told as such; the right one, in any case, joins.
        await bob.run(lambda d: d.find_element(By.ID, "code-input").send_keys("ZZZZZZ"))
        await click(bob, "#code-join")
        await bob.wait_for_text("#notice-text", "No open room has that id or code.", WAIT)
        await bob.run(lambda d: d.find_element(By.ID, "code-input").clear())
        await bob.run(lambda d: d.find_element(By.ID, "code-input").send_keys(code.lower()))
        await click(bob, "#code-join")
        await wait_for_game(ann, "tictactoe")
        await wait_for_game(bob, "tictactoe")
        self.assertEqual(await player_names(ann), ["Ann", "Bob"])
        self.assertEqual(await player_names(bob), ["Ann", "Bob"])
        # Ann leaves: Bob wins, and Ann is told she left.
        await click(ann, "#game-leave")
        await bob.wait_for_text("#result-text", "You win!", WAIT)
        self.assertIn("opponent left", await bob.text_of("#result-detail") or "")
        await ann.wait_for_text("#result-text", "You left the match.", WAIT)

    async def test_a_browser_plays_dice_against_a_bot_added_to_its_room(self) -> None:
        _server, url = await start_web_server(self)
        browser = await open_browser(self)
        await enter(browser, url, "Ann")
        await click(browser, '[data-action="create-room"][data-game="dice"]')
        await wait_for_screen(browser, "room")
        self.assertEqual(await browser.text_of("#room-kind"), "public")
        await click(browser, "#room-add-bot")
        await wait_for_game(browser, "dice")
        await assert_drawn(self, browser, "dice")
        me = (await my_player_row(browser))["id"]
        # Play by clicking: roll, set aside the best dice, bank at once; a full game to
        # 10,000 would take minutes, so play until three turns of mine and two of the
        # bot's are over, and check the scores add up.
        my_turns = bot_turns = banked = 0
        mine_before: bool | None = None

        async def turns_played() -> bool:
            nonlocal my_turns, bot_turns, banked, mine_before
            if my_turns >= 3 and bot_turns >= 2:
                return True
            seen = await browser.run(lambda d: d.execute_script("""
                const turn = document.querySelector('[data-testid=dice-turn]');
                if (turn === null || turn.dataset.phase === undefined) return null;
                return {mine: turn.dataset.mine === 'true', phase: turn.dataset.phase,
                        status: document.getElementById('game-status').textContent,
                        faces: [...document.querySelectorAll('[data-testid=dice-tray] button.die')]
                          .map(b => Number(b.dataset.face)),
                        scores: Object.fromEntries([...document.querySelectorAll('.dice-player')]
                          .map(r => [r.dataset.playerId, Number(r.dataset.score)]))};
            """))
            if seen is None:
                return False
            if not seen["mine"]:
                # My turn's instructions go with my turn.
                self.assertNotIn(seen["status"], DICE_INSTRUCTIONS)
            if mine_before is not None and seen["mine"] != mine_before:
                if mine_before:
                    my_turns += 1
                else:
                    bot_turns += 1
            mine_before = seen["mine"]
            if seen["mine"]:
                await self.dice_step(browser, seen)
                if seen["phase"] == "decide":
                    banked += 1
            return False

        await until(turns_played, lambda: f"3 turns of mine ({my_turns}) and 2 of the bot's "
                    f"({bot_turns})", 60, every=0.3)  # fmt: skip
        scores = await browser.run(lambda d: d.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('.dice-player')]"
            ".map(r => [r.dataset.playerId, Number(r.dataset.score)]));"
        ))
        self.assertEqual(len(scores), 2)
        self.assertGreater(bot_turns, 0)
        self.assertGreater(banked, 0)
        self.assertEqual(scores[me] % 50, 0)
        self.assertEqual(await browser.text_of("#game-phase"), "Playing")
        await click(browser, "#game-leave")
        await browser.wait_for_text("#result-text", "You left the match.", WAIT)

    async def test_a_browser_walks_the_maze_with_the_arrow_keys_against_a_bot(self) -> None:
        _server, url = await start_web_server(self)
        browser = await open_browser(self, width=1280, height=720)
        await open_room_with_bots(browser, url, "maze")
        await browser.wait_for_text("#game-phase", "Playing", 60)
        # Walls, coins and tokens drawn at their sizes, the field inside the window.
        await assert_drawn(self, browser, "maze")
        me = (await my_player_row(browser))["id"]
        mine = f'.vb-token[data-player="{me}"]'

        def where(driver: Any) -> tuple[str, str, str]:
            # In one script: the board redraws the list on every state (the bots
            # move), so an element found in one call may be gone in the next.
            x, y, score = driver.execute_script(
                "const token = document.querySelector(arguments[0]);"
                "const row = document.querySelector(arguments[1]);"
                "return [token.dataset.x, token.dataset.y, row.innerText];",
                mine, f'li[data-player="{me}"]',
            )  # fmt: skip
            return x, y, score

        start = await browser.run(where)
        # The board sends a key's move only through an open wall: some direction
        # from the corner moves the token, and its first cell holds a reward.
        moved = start
        for key in (Keys.ARROW_UP, Keys.ARROW_DOWN, Keys.ARROW_LEFT, Keys.ARROW_RIGHT):
            await browser.run(
                lambda d, key=key: d.find_element(By.TAG_NAME, "body").send_keys(key)
            )
            await pause(0.5)
            moved = await browser.run(where)
            if moved[:2] != start[:2]:
                break
        self.assertNotEqual(moved[:2], start[:2], "no arrow key moved the player")
        # The move was the server's: the state that moved the token scored its cell.
        await browser.wait_until(lambda d: where(d)[2] != start[2], WAIT)
        # The player scrolls to the bottom of the page, then leaves: the result is
        # in view at 1280 x 720 whatever the scroll.
        await browser.run(lambda d: d.execute_script("scrollTo(0, document.body.scrollHeight);"))
        await click(browser, "#game-leave")
        await browser.wait_for_text("#result-text", "You left the match.", WAIT)
        await assert_in_view(self, browser, "#result-panel")
        self.assertEqual(await status_line(browser), "")

    async def test_a_rematch_offer_stays_until_the_player_answers_it(self) -> None:
        # The room's bot (second seat: the room's opener has the first) waits for
        # the person's answer to a round's end, and plays the rematch the person
        # asks for; when the person ends the match, the last round's outcome stays
        # on screen, with why.
        _server, url = await start_web_server(self)
        browser = await open_browser(self, width=1280, height=720)
        await open_room_with_bots(browser, url, "tictactoe")

        async def round_over() -> bool:
            if (await browser.run(lambda d: d.execute_script(_TTT_READ))).get("roundOver"):
                return True
            await browser.run(lambda d: tictactoe_step(d, False))
            return False

        await until(round_over, "the end of round 1", 45, every=0.15)
        await pause(2.0)  # four times the bot's think time: the offer is still there
        offer = await browser.run(lambda d: d.execute_script(_TTT_ROUND))
        self.assertFalse(offer["hidden"], offer)
        self.assertFalse(offer["buttons"], offer)
        self.assertTrue(offer["rematch"], offer)
        self.assertEqual(await status_line(browser), "Play again, or end the match.")
        await click(browser, "[data-testid=ttt-rematch]")
        await browser.wait_until(lambda d: d.execute_script(_TTT_ROUND)["hidden"], WAIT)
        [outcome] = await play_tictactoe({browser: True})
        self.assertIn(outcome, ("win", "lose", "draw"))
        round_box = await browser.run(lambda d: d.execute_script(_TTT_ROUND))
        self.assertFalse(round_box["hidden"], round_box)
        self.assertRegex(
            round_box["text"],
            r"^(You won round 2!|Bot won round 2\.|Round 2 is a draw\.)"
            r" No rematch: the match is over\.$",
        )
        self.assertTrue(round_box["buttons"])
        await assert_in_view(self, browser, "#result-panel")
        self.assertEqual(await status_line(browser), "")

    async def test_owe_drahn_against_its_bots_is_drawn_and_rolls(self) -> None:
        _server, url = await start_web_server(self)
        browser = await open_browser(self, width=1280, height=720)
        await open_room_with_bots(browser, url, "owedrahn")
        await browser.wait_for_text("#game-phase", "Playing", 60)
        await assert_drawn(self, browser, "owedrahn")
        self.assertEqual(await browser.text_of("#game-title"), "Owe Drahn")
        # Roll on my turn: the die shows what was rolled (the bots roll too).
        await browser.wait_until(lambda d: d.execute_script(
            "const roll = document.querySelector('.vb-roll');"
            "return roll !== null && !roll.disabled;"), 60)
        # The caption says "You rolled" only until the next player rolls, which a bot
        # may do before a loaded machine's next look: every caption it shows counts.
        await browser.run(lambda d: d.execute_script(
            "const caption = document.querySelector('.vb-caption');"
            "window.captionsShown = [];"
            "new MutationObserver(() => window.captionsShown.push(caption.textContent))"
            "  .observe(caption, {childList: true, characterData: true, subtree: true});"))
        await click(browser, ".vb-roll")
        await browser.wait_until(lambda d: any("You rolled" in shown for shown in d.execute_script(
            "return window.captionsShown;")), WAIT)
        await assert_drawn(self, browser, "owedrahn")
        await click(browser, "#game-leave")
        await browser.wait_for_text("#result-text", "You left the match.", WAIT)
        await assert_in_view(self, browser, "#result-panel")

    async def test_the_badge_goes_offline_and_says_why_when_the_lobby_closes(self) -> None:
        server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await enter(browser, url, "Ann")
        self.assertEqual(await browser.text_of("#connection"), "online")
        await click(browser, '[data-action="queue"][data-game="tictactoe"]')
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "queue-panel").is_displayed(), WAIT
        )
        # The server shuts down: the lobby tells its queued players, then closes.
        await server.root.stopService()
        await browser.wait_until(lambda d: d.execute_script(
            "return document.getElementById('connection').dataset.state;") == "offline", WAIT)
        self.assertEqual(
            await browser.text_of("#connection"),
            "offline: The server is shutting down; try again in a moment.",
        )
        self.assertIn("The server is shutting down", await browser.text_of("#notice-text") or "")

    async def test_a_game_socket_closed_for_speed_is_told_on_the_badge(self) -> None:
        # --web-game-rate 2 (a burst of 4): quick key presses in the maze close the
        # page's /game socket with 4008, and the page says so.
        port = free_tcp_port()
        await start_server(self, "--websocket", f"ssl:{port}:interface=127.0.0.1",
                           "--limit", "web-game-rate=2", ports=2)  # fmt: skip
        browser = await open_browser(self)
        await open_room_with_bots(browser, f"https://127.0.0.1:{port}/", "maze")
        await browser.wait_for_text("#game-phase", "Playing", 60)
        # Back and forth through an open wall of my cell: every press is a legal move.
        dirs = await browser.run(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.vb-pad button')]"
            ".filter((b) => !b.disabled).map((b) => b.dataset.dir);"))
        self.assertTrue(dirs)
        keys = {"N": Keys.ARROW_UP, "S": Keys.ARROW_DOWN, "E": Keys.ARROW_RIGHT,
                "W": Keys.ARROW_LEFT}  # fmt: skip
        back = {"N": "S", "S": "N", "E": "W", "W": "E"}

        async def cut_off() -> bool:
            if await browser.text_of("#result-text") == "Disconnected from the match.":
                return True
            for direction in dirs:
                await browser.run(lambda d, k=keys[direction], b=keys[back[direction]]:
                                  d.find_element(By.TAG_NAME, "body").send_keys(k, b, k, b))
            return False

        await until(cut_off, "the page cut off for its flood", WAIT, every=0)
        self.assertEqual(
            await browser.text_of("#connection"),
            "offline: Too many messages were sent too fast.",
        )
        self.assertEqual(
            await browser.text_of("#result-detail"), "Too many messages were sent too fast."
        )

    async def dice_step(self, browser: Browser, seen: dict[str, Any]) -> None:
        """My move: roll, set aside the best-scoring dice, or bank; then wait for its state."""
        phase = seen["phase"]
        before = await browser.run(lambda d: d.execute_script(DICE_SIGNATURE))
        if phase == "roll":
            await click(browser, "[data-testid=dice-roll]:not(:disabled)")
        elif phase == "select" and seen["faces"]:
            indices, points = best_selection(seen["faces"])
            self.assertGreater(points, 0)

            def pick(driver: Any) -> None:
                for index in indices:
                    driver.find_element(
                        By.CSS_SELECTOR, f'[data-testid=dice-tray] button[data-die="{index}"]'
                    ).click()
                button = driver.find_element(By.CSS_SELECTOR, "[data-testid=dice-select]")
                # The board prices the selection as the game does.
                assert button.text == f"Set aside +{points}", (button.text, points)
                button.click()

            await browser.run(pick)
        elif phase == "decide":
            await click(browser, "[data-testid=dice-bank]:not(:disabled)")
        # Every action of mine changes the phase or passes the turn.
        await browser.wait_until(lambda d: d.execute_script(DICE_SIGNATURE) != before, WAIT)


class GenericBoardTests(TestCase):
    """A game with no board module gets the generic board: its view as JSON, actions as JSON."""

    timeout = 120

    async def test_a_game_without_a_board_is_played_with_json(self) -> None:
        port = free_tcp_port()
        await start_server(  # duel, the benchmark game, will never have a board
            self, "--websocket", f"ssl:{port}:interface=127.0.0.1", "--games", "duel", ports=2
        )
        url = f"https://127.0.0.1:{port}/"
        ann, bob = await open_browser(self), await open_browser(self)
        for page, name in ((ann, "Ann"), (bob, "Bob")):
            await page.get(url)
            await wait_for_screen(page, "name")
            await page.run(lambda d, n=name: d.find_element(By.ID, "name-input").send_keys(n))
            await click(page, "#name-submit")
            await wait_for_screen(page, "lobby")
            await click(page, '[data-action="queue"][data-game="duel"]')
        await wait_for_game(ann, "generic")
        await wait_for_game(bob, "generic")
        me = (await my_player_row(ann))["id"]

        def view(driver: Any) -> Any:
            text = driver.execute_script(
                "return document.querySelector('[data-testid=generic-view]').textContent;"
            )
            return json.loads(text) if text else None

        async def send(text: str) -> None:
            def type_and_send(driver: Any) -> None:
                field = driver.find_element(By.CSS_SELECTOR, "[data-testid=generic-action]")
                field.clear()
                field.send_keys(text)
                driver.find_element(By.CSS_SELECTOR, ".generic-form button").click()

            await ann.run(type_and_send)

        # Players by name, never by id: duel's view is keyed by player id.
        await ann.wait_until(lambda d: (view(d) or {}).get("seq", {}).get("Ann") == 0, WAIT)
        shown = await ann.run(lambda d: d.execute_script(
            "return document.querySelector('[data-testid=generic-view]').textContent;"
        ))
        self.assertNotIn(me, shown)
        self.assertIn('"Bob"', shown)
        await send('{"seq": 1}')
        await ann.wait_until(lambda d: view(d)["seq"]["Ann"] == 1, WAIT)
        await bob.wait_until(lambda d: (view(d) or {}).get("seq", {}).get("Ann") == 1, WAIT)
        await send('{"seq": 5}')  # not the next number: the game refuses it
        await ann.wait_until(lambda d: "stale" in d.execute_script(
            "return document.getElementById('game-status').textContent;"), WAIT)
        # The refusal is no longer true once the player acts again.
        await send('{"seq": 2}')
        await ann.wait_until(lambda d: view(d)["seq"]["Ann"] == 2, WAIT)
        self.assertEqual(await status_line(ann), "")
        await send("not json")
        await ann.wait_for_text("#game-status", "That is not JSON.", WAIT)
        self.assertEqual((await ann.run(view))["seq"]["Ann"], 2)


# Each call of the shell's loader (loader.js) in the page: how its promise ended
# within 3 s ("ok", "failed: ..." or "pending": a board that would never draw).
_LOADER_CALL = """
const [what, done] = arguments;
const loader = await import('/loader.js');
const call = what === 'boards' ? loader.boardNames()
  : loader.linkStyle(document, new URL('/boards/maze.css', location.href).href);
const ended = call.then((value) => ({ok: value ?? true}), (error) => ({failed: String(error)}));
const late = new Promise((resolve) => setTimeout(() => resolve({pending: true}), 3000));
done(await Promise.race([ended, late]));
"""

_MAZE_LINKS = """
return [...document.querySelectorAll('link[rel=stylesheet]')]
  .filter((l) => l.href.endsWith('/boards/maze.css')).map((l) => l.sheet !== null);
"""


class BoardLoaderTests(TestCase):
    """A board's list or style sheet that failed to load (a network blip) is tried
    again the next time, not a board that never draws."""

    timeout = 120

    async def test_a_failed_board_list_or_style_sheet_is_tried_again(self) -> None:
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await browser.get(url)
        await wait_for_screen(browser, "name")

        def call(what: str) -> Any:
            return browser.run(lambda d: d.execute_async_script(
                f"(async () => {{ {_LOADER_CALL} }})(...arguments);", what
            ))  # fmt: skip

        def block(urls: list[str]) -> Any:
            return browser.run(lambda d: (
                d.execute_cdp_cmd("Network.enable", {}),
                d.execute_cdp_cmd("Network.setBlockedURLs", {"urls": urls}),
            ))  # fmt: skip

        await block(["*/boards.js*", "*/boards/maze.css*"])
        for what in ("boards", "style", "style"):
            with self.subTest(what=what):
                outcome = await call(what)
                self.assertIn("failed", outcome)
        self.assertEqual(await browser.run(lambda d: d.execute_script(_MAZE_LINKS)), [])
        problems = await browser.collect()
        self.assertTrue(problems)
        self.assertTrue(all("boards" in p or "ERR_BLOCKED" in p for p in problems), problems)
        browser.problems.clear()  # seen: the blocked loads; nothing else may go wrong

        await block([])
        names = await call("boards")
        self.assertIn("maze", names["ok"])
        self.assertEqual(await call("style"), {"ok": True})
        self.assertEqual(await browser.run(lambda d: d.execute_script(_MAZE_LINKS)), [True])


# Two games installed the way a user installs one (a plugin module in a
# `twisted/plugins/` directory on the server's path), with no board of their own:
# `ender` ends when a player sends {"win": REASON} (that player wins, for that
# reason, as a plugin game's own reason would read); `sleeper` idles out its
# first seat after a second, the way a built-in game idles out the player whose
# move it awaits.
RESULT_GAMES = textwrap.dedent(
    '''
    from attrs import evolve, frozen

    from vinom.games.base import Game
    from vinom.games.interfaces import Outcome


    @frozen
    class Table:
        players: tuple
        left: tuple
        scores: tuple
        finished: bool = False
        reason: str = ""
        winners: tuple = ()


    class EnderGame(Game):
        name = "ender"
        description = "test: ends as a player says"
        min_players = max_players = match_size = 2
        time_limit = 300.0
        idle_timeout = 0.0
        offered_by_default = False

        def create(self, seats, options, rng):
            count = len(seats)
            return Table(tuple(s.player_id for s in seats), (False,) * count, (0,) * count)

        def on_win(self, state, seat, action, rng):
            return Outcome(evolve(state, finished=True, reason=str(action["win"]),
                                  winners=(seat.player_id,)))

        def leave(self, state, seat):
            if state.finished:
                return Outcome(state)
            left = tuple(gone or i == seat.index for i, gone in enumerate(state.left))
            state = evolve(state, left=left)
            # As dice, maze and Owe Drahn do: the last player present wins.
            return Outcome(self._last_standing(state, left, "opponents_left") or state)

        def view(self, state, player_id):
            return {"finished": state.finished}


    class SleeperGame(EnderGame):
        name = "sleeper"
        idle_timeout = 1.0

        def idle_players(self, state):
            return () if state.finished else state.players[:1]


    ender = EnderGame()
    sleeper = SleeperGame()
    '''
)

# What the result panel and the generic board's action box show.
_RESULT = """
const input = document.querySelector('[data-testid=generic-action]');
const send = document.querySelector('.generic-form button');
return {panel: !document.getElementById('result-panel').hidden,
        text: document.getElementById('result-text').innerText,
        detail: document.getElementById('result-detail').innerText,
        input: input === null ? null : input.disabled, send: send === null ? null : send.disabled};
"""


class ResultTextTests(TestCase):
    """Why a match ended, as each seat reads it, on a real `twistd -n vinom` with two
    plugin games; and the generic board's action box, which takes no action once the
    match is over."""

    timeout = 180

    async def start_twistd(self) -> str:
        """`twistd -n vinom` offering the plugin games (RESULT_GAMES); the page's URL."""
        server = await start_twistd(
            self, {"twisted/plugins/result_games.py": RESULT_GAMES}, "--games", "ender,sleeper",
            web=True,
        )
        return server.url

    async def enter(self, browser: Browser, url: str, name: str) -> None:
        await browser.get(url)
        await wait_for_screen(browser, "name")
        await browser.run(lambda d: d.find_element(By.ID, "name-input").send_keys(name))
        await click(browser, "#name-submit")
        await wait_for_screen(browser, "lobby")

    async def play(self, pages: dict[str, Browser], game: str) -> None:
        """Each page queues for `game`; wait until both show its (generic) board."""
        for page in pages.values():
            button = f'[data-action="queue"][data-game="{game}"]'
            await page.wait_until(lambda d, b=button: d.find_elements(By.CSS_SELECTOR, b), WAIT)
            await click(page, button)
        for page in pages.values():
            await wait_for_game(page, "generic")

    async def result(self, browser: Browser) -> dict[str, Any]:
        seen: dict[str, Any] = await browser.wait_until(
            lambda d: (lambda r: r if r["panel"] else None)(d.execute_script(_RESULT)), WAIT
        )
        return seen

    async def test_each_seat_reads_why_the_match_ended(self) -> None:
        url = await self.start_twistd()
        ann, bob = await open_browser(self), await open_browser(self)
        await self.enter(ann, url, "Ann")
        await self.enter(bob, url, "Bob")
        pages = {"Ann": ann, "Bob": bob}
        # A plugin game's reason: `won` (the headline says it all), Owe Drahn's
        # `last_alive`, the built-in `target`, and one this page has never heard of.
        expected = {
            "won": ("", ""),
            "last_alive": ("You are the last player with lives left.",
                           "Ann is the last player with lives left."),
            "target": ("You reached the target score.", "Ann reached the target score."),
            "bank_broken": ("The game ended: bank broken.", "The game ended: bank broken."),
        }  # fmt: skip
        for reason, (winner_reads, loser_reads) in expected.items():
            with self.subTest(reason=reason):
                await self.play(pages, "ender")
                await ann.wait_until(lambda d: d.execute_script(
                    "return document.getElementById('game-phase').dataset.phase;") == "playing",
                    WAIT)  # fmt: skip

                def win(driver: Any, reason: str = reason) -> None:
                    field = driver.find_element(By.CSS_SELECTOR, "[data-testid=generic-action]")
                    field.send_keys(json.dumps({"win": reason}))
                    driver.find_element(By.CSS_SELECTOR, ".generic-form button").click()

                await ann.run(win)
                won, lost = await self.result(ann), await self.result(bob)
                self.assertEqual(won["text"], "You win!")
                self.assertEqual(lost["text"], "You lose. Ann won.")
                # The reason's sentence, then the scores (seat order), by name.
                for seen, reads, other in ((won, winner_reads, "Bob"), (lost, loser_reads, "Ann")):
                    self.assertTrue(seen["detail"].startswith(reads), (reason, seen))
                    self.assertEqual(
                        sorted(seen["detail"].removeprefix(reads).strip().split(" · ")),
                        sorted(["You 0", f"{other} 0"]), (reason, seen),
                    )
                # The match is over: the action box takes nothing more.
                for seen in (won, lost):
                    self.assertEqual((seen["input"], seen["send"]), (True, True), seen)
                for page in pages.values():
                    await click(page, "#play-again")
                    await wait_for_screen(page, "lobby")

    async def test_a_player_idled_out_is_told_so_and_the_other_why_they_won(self) -> None:
        url = await self.start_twistd()
        ann, bob = await open_browser(self), await open_browser(self)
        await self.enter(ann, url, "Ann")
        await self.enter(bob, url, "Bob")
        await self.play({"Ann": ann, "Bob": bob}, "sleeper")
        # Seat 0 is awaited and plays nothing: the room idles it out after a second.
        seats = {}
        for page in (ann, bob):
            seats[await page.run(lambda d: d.execute_script(
                "return document.getElementById('screen-game').dataset.seat;"))] = page
        idle, other = seats["0"], seats["1"]
        idle_seen, other_seen = await self.result(idle), await self.result(other)
        self.assertRegex(idle_seen["text"], r"^You lose\. (Ann|Bob) won\.$")
        self.assertTrue(idle_seen["detail"].startswith(
            "You were removed from the match for not playing in time."), idle_seen)
        self.assertEqual(other_seen["text"], "You win!")
        self.assertTrue(other_seen["detail"].startswith(
            "Your opponent stopped playing and was removed."), other_seen)
        for seen in (idle_seen, other_seen):
            self.assertNotIn("left", seen["detail"], seen)
            self.assertEqual((seen["input"], seen["send"]), (True, True), seen)
