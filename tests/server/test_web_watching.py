"""Watching in the browser: a spectator's page and a replay's page, on a real
`twistd -n vinom`, in real headless Chromium.

- The arena (benchmarks/arena.py, its board beside it) played by two bots over
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
from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import TestCase

from benchmarks.arena import ArenaGame
from tests.server.test_web_client import WAIT, click, pause, wait_for_game, wait_for_screen
from tests.support.browser import Browser, open_browser
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import start_twistd
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.game import GameSession
from vinom.games.interfaces import IGame

ARENA_PLUGIN = "from benchmarks.arena import ArenaGame\n\narena = ArenaGame(2)\n"

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
        server = await start_twistd(
            self, {"twisted/plugins/arena_games.py": ARENA_PLUGIN}, "--games", "arena", web=True
        )
        await self.watch(server.lobby, server.url, "websocket")

    async def test_a_spectator_sees_both_dots_over_webtransport(self) -> None:
        server = await start_twistd(
            self, {"twisted/plugins/arena_games.py": ARENA_PLUGIN}, "--games", "arena",
            "--webtransport", str(free_udp_range(1)), web=True,
        )  # fmt: skip
        await self.watch(server.lobby, server.url, "webtransport")

    async def watch(self, lobby: LobbyAddress, url: str, kind: str) -> None:
        sessions = bots_playing(self, lobby, ArenaGame(2))
        match_id = await match_of(sessions)
        browser = await open_browser(self)
        await name_and_lobby(browser, url, "Eve", "arena")
        await type_into(browser, "watch-input", match_id, "watch-start")
        await wait_for_game(browser, "arena")
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "game-transport").get_attribute("data-kind"), WAIT
        )
        shown = await browser.run(
            lambda d: d.find_element(By.ID, "game-transport").get_attribute("data-kind")
        )
        self.assertEqual(shown, kind)
        await browser.run(lambda d: d.execute_script(DOTS))
        # A second of frames with both dots drawn.
        await browser.wait_until(lambda d: d.execute_script(
            "return window.__dots.filter((f) => Object.keys(f).length === 2).length > 40;"
        ), WAIT)  # fmt: skip
        frames = await browser.run(lambda d: d.execute_script("return window.__dots;"))
        both = [f for f in frames if len(f) == 2]
        self.assertEqual(set(both[-1]), {"0", "1"})
        # Nobody's own: a spectator has no dot of theirs.
        self.assertFalse(any(dot[2] for f in both for dot in f.values()))
        # The bots move: the dots drawn are not all in one place.
        self.assertGreater(len({str(f) for f in both}), 10)
        status = await browser.text_of(".vb-arena-status")
        self.assertEqual(status, "Watching: every player's dot.")
        await browser.check()


class ArenaReplayTests(TestCase):
    timeout = 120

    async def test_the_arenas_replay_draws_every_dot(self) -> None:
        from tests.rooms.test_rooms_record import bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings

        records = os.path.abspath(self.mktemp())
        game = ArenaGame(2)
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4, limit=20.0)
        files = RecordFiles(RecordSettings(directory=records))
        files.write("m-arena", 0.0, data, closed=True)
        files.close()
        server = await start_twistd(
            self, {"twisted/plugins/arena_games.py": ARENA_PLUGIN}, "--games", "arena",
            "--web-replays", "--record-dir", records, web=True,
        )  # fmt: skip
        browser = await open_browser(self)
        await name_and_lobby(browser, server.url, "Rex", "arena")
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "replay-form").is_displayed(), WAIT
        )
        await type_into(browser, "replay-input", "m-arena", "replay-start")
        await wait_for_game(browser, "arena")
        await browser.run(lambda d: d.execute_script(DOTS))
        await browser.wait_until(lambda d: d.execute_script(
            "return window.__dots.filter((f) => Object.keys(f).length === 2).length > 40;"
        ), WAIT)  # fmt: skip
        frames = await browser.run(lambda d: d.execute_script("return window.__dots;"))
        both = [f for f in frames if len(f) == 2]
        self.assertEqual(set(both[-1]), {"0", "1"})
        self.assertGreater(len({str(f) for f in both}), 10)
        status = await browser.text_of(".vb-arena-status")
        self.assertEqual(status, "A replay: every player's dot.")
        await browser.check()
