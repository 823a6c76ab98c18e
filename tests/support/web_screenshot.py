"""Make the web client's pictures in docs/images: web-lobby.png, web-tictactoe.png,
web-dice.png, web-maze.png and web-owedrahn.png.

    python -m tests.support.web_screenshot [output-directory]

From a checkout (with selenium, chromium and chromium-driver installed, as
scripts/test sets up). It starts a whole server in this process with its web
server on a free loopback port, and every picture is the real page from that
server, with its real headers (Content-Security-Policy included), in a real
match: it opens two headless Chromiums (tests/support/browser.py's settings),
photographs the lobby with an open room, then has the two pages queue for
tictactoe, play three moves and photographs the match; then one of them
leaves, opens a dice room, adds the game's bot, rolls on its turn, picks a
scoring die and photographs the dice board; then a maze room against the
game's bot, a few moves walked with the arrow keys; then an Owe Drahn room
filled with bots, a few rolls. A page that reports a policy violation or a
console error (tests/support/browser.py, `page_problems`) stops the script: no
picture of a broken page.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.internet.threads import deferToThread

from tests.support.browser import check_chromium, page_problems, start_chromium
from tests.support.ports import free_tcp_port, free_udp_range
from vinom.server.tap import Options, makeService

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "images"

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
    problems = page_problems(driver)
    if problems:
        raise RuntimeError(f"the page went wrong before {path.name}: {problems}")
    driver.execute_script("scrollTo(0, 0);")
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def fill_room_with_bots(driver: Any, game: str) -> None:
    """Open a room of `game` and add the game's bot until the match starts."""
    driver.find_element(By.CSS_SELECTOR, f'[data-action="create-room"][data-game="{game}"]').click()
    until(driver, "return document.body.dataset.screen === 'room';")
    while driver.execute_script(
        "return document.body.dataset.screen === 'room'"
        " && !document.getElementById('room-add-bot').hidden;"
    ):
        driver.find_element(By.ID, "room-add-bot").click()
        time.sleep(0.5)
    until(driver, f"return document.querySelector('#board [data-board=\"{game}\"]') !== null;")
    until(driver, "return document.getElementById('game-phase').dataset.phase === 'playing';")


def leave_and_play_again(driver: Any) -> None:
    driver.find_element(By.ID, "game-leave").click()
    until(driver, "return !document.getElementById('result-panel').hidden;")
    driver.find_element(By.ID, "play-again").click()
    until(driver, "return document.querySelector('#games li') !== null;")


_KEYS = {"N": Keys.ARROW_UP, "E": Keys.ARROW_RIGHT, "S": Keys.ARROW_DOWN, "W": Keys.ARROW_LEFT}

# Where my token is in the maze: [x, y] (none yet: []).
_WHERE = """
const token = document.querySelector('.vb-token.vb-me');
if (token === null) return [];
return [token.dataset.x, token.dataset.y].map(Number);
"""


def walk_the_maze(driver: Any, steps: int) -> None:
    """Press arrow keys, a move at a time: each press that moves the token counts."""
    moved = 0
    tries = 0
    last = driver.execute_script(_WHERE)
    while moved < steps and tries < 60:
        tries += 1
        for direction in ("E", "S", "E", "S", "W", "N"):
            driver.find_element(By.TAG_NAME, "body").send_keys(_KEYS[direction])
            time.sleep(0.25)
            here = driver.execute_script(_WHERE)
            if here != last:
                moved += 1
                last = here
                break


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
    # Clicked from the page: the list may be drawn again (with the welcome's names)
    # between finding the button and clicking it.
    until(bob, "const b = document.querySelector('[data-action=create-room][data-game=dice]');"
               "if (b !== null) b.click(); return b !== null;")
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

    leave_and_play_again(bob)
    fill_room_with_bots(bob, "maze")
    walk_the_maze(bob, 6)
    shoot(bob, output / "web-maze.png")

    leave_and_play_again(bob)
    fill_room_with_bots(bob, "owedrahn")
    rolls = 0
    deadline = time.monotonic() + 60
    while rolls < 2 and time.monotonic() < deadline:
        roll = bob.find_element(By.CSS_SELECTOR, ".vb-roll")
        if roll.is_enabled():
            roll.click()
            rolls += 1
        time.sleep(0.6)
    until(bob, "return document.querySelector('.vb-caption').textContent.includes('rolled');")
    shoot(bob, output / "web-owedrahn.png")


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
        "--matches", "here",
        "--limit", "drain-timeout=0",
    ])
    root = makeService(options, reactor)
    root.startService()
    drivers: list[Any] = []
    try:
        await root.getServiceNamed("web").port()
        for _ in range(2):
            driver = await deferToThread(
                start_chromium, tempfile.mkdtemp(prefix="vinom-chromium-"), 1200, 760
            )
            # Still pictures: no pulsing ring or rolling die caught half-way.
            driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
            )
            drivers.append(driver)
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
