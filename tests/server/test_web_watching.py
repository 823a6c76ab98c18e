"""Watching in the browser: a spectator's page and a replay's page, on a real
`twistd -n vinom`, in real headless Chromium.

- The arena (vinom/games/arena.py, its board beside it) played by two bots over
  UDP: a page that watches it by id draws both players' dots, moving, over
  WebSocket and over WebTransport, and tells the viewer nothing about keys;
- the arena's replay (`--web-replays`, a record in `--record-dir`): the page
  draws every player's dot and moves them as the replay plays;
- what the page offers a viewer: "Replay a finished match" only where
  `/replays/` answers; Watch with an id no match has says so; the generic
  board gives a spectator no box to send an action in; a board whose module
  does not load is said to have failed, not to be missing.

No console error on any page (tests/support/browser.py).
"""

# slow: drives Chromium (tests/support/browser.py) and a twistd child process

from __future__ import annotations

import os
import random
from typing import Any

from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import WAIT, click, pause, wait_for_game, wait_for_screen
from tests.support.browser import Browser, open_browser
from tests.support.ports import free_udp_range
from tests.support.servers import start_twistd
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.game import GameSession
from vinom.games.arena import ArenaGame
from vinom.games.interfaces import IGame

# Every animation frame from now on: the dots drawn, by seat, and the board's line.
DOTS = """
window.__dots = [];
const frame = () => {
  const dots = {};
  for (const c of document.querySelectorAll('.vb-arena-dot')) {
    dots[c.dataset.seat] = [Number(c.getAttribute('cx')), Number(c.getAttribute('cy')),
                            c.classList.contains('vb-me')];
  }
  window.__dots.push(dots);
  requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
"""

# Before the page watches: every message its GameSocket sends (after the token's
# request packet, which goes to the connection itself), by its type.
COUNT_SENT = """
const done = arguments[arguments.length - 1];
import('/game.js').then((g) => {
  window.__sent = [];
  const send = g.GameSocket.prototype.send;
  g.GameSocket.prototype.send = function (message, unreliable) {
    window.__sent.push(message.t);
    return send.call(this, message, unreliable);
  };
  done(true);
}, (e) => done(String(e)));
"""


async def name_and_lobby(browser: Browser, url: str, name: str, game: str) -> None:
    """Open the page, give a name, and wait for `game` in the lobby's list."""
    await browser.get(url)
    await wait_for_screen(browser, "name")
    await browser.run(lambda d: d.find_element(By.ID, "name-input").send_keys(name))
    await click(browser, "#name-submit")
    await wait_for_screen(browser, "lobby")
    await browser.wait_until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#games li[data-game="{game}"]'), WAIT
    )


async def type_into(browser: Browser, field: str, text: str, button: str) -> None:
    def typed(driver: Any) -> None:
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(text)
        driver.find_element(By.ID, button).click()

    await browser.run(typed)


def bots_playing(
    case: TestCase, lobby: LobbyAddress, game: IGame, think_time: float = 0.0
) -> list[GameSession]:
    """Two bots queue for `game` on `lobby` and play; stopped at the test's end. The
    sessions, as they open."""
    sessions: list[GameSession] = []
    for n in range(2):
        playing = Deferred.fromCoroutine(play_bot(
            reactor, lobby, game, f"bot{n}", rng=random.Random(n), think_time=think_time,
            on_session=sessions.append,
        ))  # fmt: skip
        playing.addErrback(lambda failure: failure.trap(CancelledError))
        case.addCleanup(playing.cancel)
    return sessions


async def match_of(sessions: list[GameSession]) -> str:
    """The id of the match the bots' sessions are in, once one is welcomed."""
    await until(lambda: any(s.welcome is not None for s in sessions))
    return str(next(s.welcome for s in sessions if s.welcome is not None)["match"])


class ArenaSpectatorTests(TestCase):
    """A page watching the arena draws both players' dots, moving."""

    timeout = 180

    async def test_a_spectator_sees_both_dots_over_websocket(self) -> None:
        server = await start_twistd(self, {}, "--games", "arena", web=True)
        await self.watch(server.lobby, server.url, "websocket")

    async def test_a_spectator_sees_both_dots_over_webtransport(self) -> None:
        server = await start_twistd(
            self, {}, "--games", "arena", "--webtransport", str(free_udp_range(1)), web=True,
        )  # fmt: skip
        await self.watch(server.lobby, server.url, "webtransport")

    async def watch(self, lobby: LobbyAddress, url: str, kind: str) -> None:
        sessions = bots_playing(self, lobby, ArenaGame(2))
        match_id = await match_of(sessions)
        browser = await open_browser(self)
        await name_and_lobby(browser, url, "Eve", "arena")
        counted = await browser.run(lambda d: d.execute_async_script(COUNT_SENT))
        self.assertIs(counted, True, counted)
        await type_into(browser, "watch-input", match_id, "watch-start")
        await wait_for_game(browser, "arena")
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "game-transport").get_attribute("data-kind"), WAIT
        )
        shown = await browser.run(
            lambda d: d.find_element(By.ID, "game-transport").get_attribute("data-kind")
        )
        self.assertEqual(shown, kind)
        both = await both_dots_drawn(self, browser)
        # Nobody's own: a spectator has no dot of theirs.
        self.assertFalse(any(dot[2] for f in both for dot in f.values()))
        status = await browser.text_of(".vb-arena-status")
        self.assertEqual(status, "Watching: every player's dot.")
        # Nothing sent to the game: a spectator's messages would be dropped unread.
        self.assertEqual(await browser.run(lambda d: d.execute_script("return window.__sent;")), [])
        await browser.check()


async def both_dots_drawn(test: TestCase, browser: Browser) -> list[dict[str, list[object]]]:
    """The arena frames drawn over about a second in which both players' dots are on
    the board, asserted to show both dots and to move (the bots play)."""
    await browser.run(lambda d: d.execute_script(DOTS))
    await browser.wait_until(lambda d: d.execute_script(
        "return window.__dots.filter((f) => Object.keys(f).length === 2).length > 40;"
    ), WAIT)  # fmt: skip
    frames = await browser.run(lambda d: d.execute_script("return window.__dots;"))
    both = [f for f in frames if len(f) == 2]
    test.assertEqual(set(both[-1]), {"0", "1"})
    # The bots move: the dots drawn are not all in one place.
    test.assertGreater(len({str(f) for f in both}), 10)
    return both


class ArenaReplayTests(TestCase):
    timeout = 120

    async def replay(self, game: IGame, files: dict[str, str]) -> Browser:
        """A page replaying a bots' match of `game` (installed with `files`) from its
        record, on a server with `--web-replays`."""
        from tests.rooms.test_rooms_record import bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings

        records = os.path.abspath(self.mktemp())
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4, limit=20.0)
        record = RecordFiles(RecordSettings(directory=records))
        record.write("m-replayed", 0.0, data, closed=True)
        record.close()
        server = await start_twistd(
            self, files, "--games", game.name, "--web-replays", "--record-dir", records,
            web=True,
        )  # fmt: skip
        browser = await open_browser(self)
        await name_and_lobby(browser, server.url, "Rex", game.name)
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "replay-form").is_displayed(), WAIT
        )
        await type_into(browser, "replay-input", "m-replayed", "replay-start")
        return browser

    async def test_the_arenas_replay_draws_every_dot(self) -> None:
        browser = await self.replay(ArenaGame(2), {})
        await wait_for_game(browser, "arena")
        await both_dots_drawn(self, browser)
        status = await browser.text_of(".vb-arena-status")
        self.assertEqual(status, "A replay: every player's dot.")
        await browser.check()

    async def test_a_replay_of_a_game_without_a_board_has_no_action_box(self) -> None:
        from vinom.games.registry import GameRegistry

        browser = await self.replay(GameRegistry.from_plugins().get("duel"), {})
        await wait_for_game(browser, "generic")
        await browser.wait_until(lambda d: d.execute_script(
            "return document.querySelector('[data-testid=generic-view]').textContent !== '';"
        ), WAIT)  # fmt: skip
        boxes = await browser.run(lambda d: d.execute_script(
            "return document.querySelectorAll('#board form, #board input, #board button').length;"
        ))  # fmt: skip
        self.assertEqual(boxes, 0)
        await browser.check()


# A game whose own board module has a syntax error (a `;` where a key should be).
BROKEN_PLUGIN = """
from pathlib import Path

from vinom.games.arena import ArenaGame


class BrokenBoardGame(ArenaGame):
    name = "broken"
    display_name = "Broken"
    board = Path(__file__).resolve().parent.parent.parent / "broken_board" / "broken.js"
    board_stylesheet = None


broken = BrokenBoardGame(2)
"""
BROKEN_BOARD = "export default {\n  create(element, game) {\n    return {; };\n  },\n};\n"


async def generic_hint(browser: Browser) -> str | None:
    return await browser.text_of("[data-testid=generic-hint]")


class WhatTheViewerIsOfferedTests(TestCase):
    timeout = 120

    async def test_no_replay_form_where_replays_are_off_and_an_unknown_match_said_so(
        self,
    ) -> None:
        server = await start_twistd(self, {}, web=True)
        browser = await open_browser(self)
        await name_and_lobby(browser, server.url, "Eve", "tictactoe")
        # The page has asked the server what it offers by now (its one import).
        await browser.wait_until(lambda d: d.execute_script(
            "return performance.getEntriesByType('resource')"
            ".some((e) => e.name.endsWith('/settings.js'));"
        ), WAIT)  # fmt: skip
        await pause(0.3)
        shown = await browser.run(lambda d: d.find_element(By.ID, "replay-form").is_displayed())
        self.assertFalse(shown)
        self.assertTrue(await browser.run(
            lambda d: d.find_element(By.ID, "watch-form").is_displayed()
        ))  # fmt: skip
        await type_into(browser, "watch-input", "m-0123456789abcdef", "watch-start")
        await browser.wait_until(lambda d: not d.find_element(By.ID, "notice").get_attribute(
            "hidden"), WAIT)  # fmt: skip
        self.assertEqual(
            await browser.text_of("#notice-text"),
            "No running match has the id m-0123456789abcdef: it may have ended.",
        )
        await browser.check()

    async def test_a_spectator_of_a_game_without_a_board_gets_no_action_box(self) -> None:
        from vinom.games.registry import GameRegistry

        server = await start_twistd(self, {}, "--games", "duel", web=True)
        duel = GameRegistry.from_plugins().get("duel")
        sessions = bots_playing(self, server.lobby, duel, think_time=1.0)
        match_id = await match_of(sessions)
        browser = await open_browser(self)
        await name_and_lobby(browser, server.url, "Eve", "duel")
        await type_into(browser, "watch-input", match_id, "watch-start")
        await wait_for_game(browser, "generic")
        await browser.wait_until(lambda d: d.execute_script(
            "return document.querySelector('[data-testid=generic-view]').textContent !== '';"
        ), WAIT)  # fmt: skip
        boxes = await browser.run(lambda d: d.execute_script(
            "return document.querySelectorAll('#board form, #board input, #board button').length;"
        ))  # fmt: skip
        self.assertEqual(boxes, 0)
        self.assertEqual(
            await generic_hint(browser),
            "This game has no board of its own yet: the match is shown as JSON, players by name.",
        )
        await browser.check()

    async def test_a_board_with_a_syntax_error_is_one_line_at_start_and_failed_on_the_page(
        self,
    ) -> None:
        from tests.server.test_startup import only_line

        server = await start_twistd(
            self, {"twisted/plugins/broken_games.py": BROKEN_PLUGIN,
                   "broken_board/broken.js": BROKEN_BOARD},
            "--games", "broken", web=True,
        )  # fmt: skip
        line = only_line(self, server.output, "syntax error")
        self.assertTrue(line.endswith(
            "vinom: game 'broken': its board "
            f"{os.path.join(server.data_dir, 'path', 'broken_board', 'broken.js')} has a"
            " syntax error at line 3, column 13; its players will see that the board failed"
            " to load"
        ), line)  # fmt: skip
        browser = await open_browser(self)
        await name_and_lobby(browser, server.url, "Ann", "broken")
        await click(browser, '[data-action="create-room"][data-game="broken"]')
        await wait_for_screen(browser, "room")
        await click(browser, "#room-add-bot")
        await wait_for_game(browser, "generic")
        hint = await generic_hint(browser)
        assert hint is not None
        self.assertTrue(hint.startswith(
            "This game's board did not load (the server's log and the browser's console say"
            " why): its view is shown as JSON"
        ), hint)  # fmt: skip
        # Told, not thrown: the page's console has a warning naming the error, no error.
        await browser.check()
