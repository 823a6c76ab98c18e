"""Make docs/images/web-lobby.png, web-tictactoe.png and web-dice.png: the web client.

    python -m tests.web_screenshot [output-directory]

From a checkout (with selenium, chromium and chromium-driver installed, as
scripts/test sets up). It starts a whole server in this process with its web
server on a free loopback port, opens two headless Chromiums (tests/browser.py's
settings), photographs the lobby with an open room, then has the two pages
queue for tictactoe, play three moves and photographs the match; then one
of them leaves, opens a dice room, adds the game's bot, rolls on its turn,
picks a scoring die and photographs the dice board.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.internet.threads import deferToThread

from tests.browser import check_chromium, start_chromium
from tests.ports import free_tcp_port, free_udp_range
from vinom.tap import Options, makeService

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "images"

_MOVE = """
const grid = document.querySelector('[data-testid=ttt-board]');
if (grid === null || grid.dataset.turn !== 'mine') return false;
const cells = [...grid.querySelectorAll('.ttt-cell')];
const cell = [4, 0, 8, 2, 6, 1, 3, 5, 7].map((i) => cells[i]).find((c) => !c.disabled);
if (cell === undefined) return false;
cell.click();
return true;
"""


def until(driver: Any, script: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not driver.execute_script(script):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the page never got there: {script}")
        time.sleep(0.1)


def shoot(driver: Any, path: Path) -> None:
    time.sleep(0.6)  # let the last animation end
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def enter(driver: Any, url: str, name: str) -> None:
    driver.get(url)
    until(driver, "return document.body.dataset.screen === 'name';")
    driver.find_element(By.ID, "name-input").send_keys(name)
    driver.find_element(By.ID, "name-submit").click()
    until(driver, "return document.querySelector('#games li') !== null;")


def play(ann: Any, bob: Any, url: str, output: Path) -> None:
    enter(ann, url, "Ann")
    enter(bob, url, "Bob")
    bob.find_element(By.CSS_SELECTOR, '[data-action="create-room"][data-game="dice"]').click()
    until(bob, "return document.body.dataset.screen === 'room';")
    ann.find_element(By.ID, "rooms-refresh").click()
    until(ann, "return document.querySelector('#room-list [data-room-id]') !== null;")
    shoot(ann, output / "web-lobby.png")
    bob.find_element(By.ID, "room-leave").click()
    until(bob, "return document.body.dataset.screen === 'lobby';")
    for driver in (ann, bob):
        driver.find_element(By.CSS_SELECTOR, '[data-action="queue"][data-game="tictactoe"]').click()
    for driver in (ann, bob):
        until(driver, "return document.querySelector('[data-testid=ttt-board]') !== null;")
    moves = 0
    while moves < 3:
        for driver in (ann, bob):
            if moves < 3 and driver.execute_script(_MOVE):
                moves += 1
                time.sleep(0.5)
        time.sleep(0.1)
    until(ann, "return document.querySelectorAll('.ttt-cell[data-mark=X], .ttt-cell[data-mark=O]')"
               ".length === 3;")
    shoot(ann, output / "web-tictactoe.png")

    bob.find_element(By.ID, "game-leave").click()
    until(bob, "return !document.getElementById('result-panel').hidden;")
    bob.find_element(By.ID, "play-again").click()
    until(bob, "return document.querySelector('#games li') !== null;")
    bob.find_element(By.CSS_SELECTOR, '[data-action="create-room"][data-game="dice"]').click()
    until(bob, "return document.body.dataset.screen === 'room';")
    bob.find_element(By.ID, "room-add-bot").click()
    until(bob, "return document.querySelector('[data-testid=dice-turn]') !== null;")
    turn = "const t = document.querySelector('[data-testid=dice-turn]');"
    until(bob, turn + "return t.dataset.mine === 'true' && t.dataset.phase === 'roll';")
    bob.find_element(By.CSS_SELECTOR, "[data-testid=dice-roll]").click()
    until(bob, turn + "return t.dataset.phase !== 'roll' || t.dataset.mine !== 'true';")
    for die in bob.find_elements(By.CSS_SELECTOR, "[data-testid=dice-tray] button.die"):
        if die.is_enabled() and die.get_attribute("data-face") in ("1", "5"):
            die.click()
            break
    shoot(bob, output / "web-dice.png")


async def photograph(reactor: Any, output: Path) -> None:
    check_chromium()
    data_dir = tempfile.mkdtemp(prefix="vinom-screenshot-")
    base = free_udp_range(4)
    port = free_tcp_port()
    options = Options()
    options.parseOptions([
        "--lobby", "ssl:0:interface=127.0.0.1",
        "--udp-ports", f"{base}-{base + 3}",
        "--udp-interface", "127.0.0.1",
        "--data-dir", data_dir,
        "--ops-port", "none",
        "--websocket", f"ssl:{port}:interface=127.0.0.1",
        "--host-workers", "0",
        "--drain-timeout", "0",
    ])
    root = makeService(options, reactor)
    root.startService()
    drivers: list[Any] = []
    try:
        await root.getServiceNamed("web")._waitingForPort
        for _ in range(2):
            drivers.append(await deferToThread(
                start_chromium, tempfile.mkdtemp(prefix="vinom-chromium-"), 1200, 760
            ))
        output.mkdir(parents=True, exist_ok=True)
        await deferToThread(play, drivers[0], drivers[1], f"https://127.0.0.1:{port}/", output)
    finally:
        for driver in drivers:
            await deferToThread(driver.quit)
        await root.stopService()


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    react(lambda reactor: Deferred.fromCoroutine(photograph(reactor, output)))


if __name__ == "__main__":
    main()
