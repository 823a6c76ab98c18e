"""Make docs/images/web-maze.png and docs/images/web-owedrahn.png: the two boards mid-game.

    python -m tests.board_screenshots [output-directory]

From a checkout (with selenium, chromium and chromium-driver installed, as
scripts/test sets up). It serves the boards with tests/board_harness.py's page,
gives each a real mid-game state (a 12 x 12 maze after the game's own bots
made some moves; an Owe Drahn game of four after scripted rolls) and
photographs it in headless Chromium (tests/browser.py's settings).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from selenium.webdriver.support.ui import WebDriverWait
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.internet.threads import deferToThread

from tests.board_harness import (
    game_info,
    harness_url,
    listen,
    maze_midgame,
    owedrahn_midgame,
    room_state,
    table,
)
from tests.browser import check_chromium, start_chromium
from vinom.games.maze import MazeGame
from vinom.games.owedrahn import OweDrahnGame

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def shots() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(file name, board, game info, state) for each picture."""
    seats = table(4)
    maze = maze_midgame(seats, 12, 12, seed=5, moves=6)
    owe = owedrahn_midgame(seats)
    return [
        ("web-maze.png", "maze", game_info(seats, 0),
         room_state(MazeGame().view(maze, seats[0].player_id), 40)),
        ("web-owedrahn.png", "owedrahn", game_info(seats, 0),
         room_state(OweDrahnGame().view(owe, seats[0].player_id), 12)),
    ]


def photograph_all(url_of: Any, output: Path) -> None:
    """Blocking: start Chromium, photograph each board, quit."""
    profile = tempfile.mkdtemp(prefix="vinom-chromium-")
    driver = start_chromium(profile, 1060, 900)
    try:
        # Still pictures: no pulsing ring caught half-way (the boards honour the setting).
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
        )
        output.mkdir(parents=True, exist_ok=True)
        for filename, board, info, state in shots():
            driver.get(url_of(board))
            ready = WebDriverWait(driver, 15, poll_frequency=0.1).until(
                lambda d: d.execute_script("return window.harnessReady || window.harnessFailure")
            )
            if ready is not True:
                raise RuntimeError(f"the {board} board did not load: {ready}")
            driver.execute_script(
                "harness.create(arguments[0]); harness.update(arguments[1]);", info, state
            )
            # Let the token and die animations settle before the picture.
            driver.execute_async_script("setTimeout(arguments[0], 800)")
            element = driver.find_element("css selector", "#board > *")
            (output / filename).write_bytes(element.screenshot_as_png)
            print(f"wrote {output / filename}")
    finally:
        driver.quit()


async def main_async(reactor: Any, output: Path) -> None:
    check_chromium()
    port = listen(reactor)
    try:
        await deferToThread(photograph_all, lambda board: harness_url(port, board), output)
    finally:
        await port.stopListening()


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    react(lambda reactor: Deferred.fromCoroutine(main_async(reactor, output)))


if __name__ == "__main__":
    main()
