"""A browser stalled when its match is found still plays it.

The lobby ends a WebSocket after `match_found` with a close frame and waits
for the answer up to its `close_timeout` (10 s), then resets the connection.
A browser that is not scheduled for seconds (a loaded machine, a sleeping
laptop) answers late: what was sent must still reach its page. Here every process
of one page's Chromium is stopped (SIGSTOP) for 2.5 s across the moment its
match forms, in real headless Chromium on a real server; both pages must then
show the board, with no console error.
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import signal

import psutil
from selenium.webdriver.common.by import By
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import (
    WAIT,
    click,
    enter,
    pause,
    start_web_server,
    wait_for_game,
)
from tests.support.browser import Browser, open_browser

QUEUE = '[data-action="queue"][data-game="tictactoe"]'
STALL = 2.5


def chromium_processes(browser: Browser) -> list[psutil.Process]:
    """Every process of `browser`'s Chromium (its WebDriver's children)."""
    return psutil.Process(browser.driver.service.process.pid).children(recursive=True)


class StalledBrowserMatchTests(TestCase):
    timeout = 120

    async def test_a_browser_stalled_when_its_match_is_found_still_plays_it(self) -> None:
        _server, url = await start_web_server(self)
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, QUEUE)
        await ann.wait_until(lambda d: d.find_element(By.ID, "queue-panel").is_displayed(), WAIT)
        stalled = chromium_processes(ann)
        self.assertTrue(stalled)
        for process in stalled:
            process.send_signal(signal.SIGSTOP)
        try:
            await click(bob, QUEUE)
            await wait_for_game(bob, "tictactoe")
            await pause(STALL)
        finally:
            for process in stalled:
                process.send_signal(signal.SIGCONT)
        await wait_for_game(ann, "tictactoe")
        await ann.check()
        await bob.check()
