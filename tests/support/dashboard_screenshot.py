"""Make docs/images/dashboard.png: the operations dashboard of a busy server, in Chromium.

    python -m tests.support.dashboard_screenshot [output.png]

From a checkout (with selenium, chromium and chromium-driver installed, as
scripts/test sets up). It starts a whole server in this process with two
game-host workers, lets bots finish a few matches, keeps two matches running,
one bot waiting in a queue and an open room, and photographs the dashboard
in headless Chromium (tests/support/browser.py's settings).
"""

from __future__ import annotations

import base64
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react
from twisted.internet.threads import deferToThread

from tests.support.browser import check_chromium, start_chromium
from tests.support.ports import free_udp_range
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry
from vinom.server.tap import Options, makeService

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"


async def photograph(reactor: Any, output: Path) -> None:
    check_chromium()
    data_dir = tempfile.mkdtemp(prefix="vinom-screenshot-")
    base = free_udp_range(8)
    options = Options()
    options.parseOptions([
        "--lobby", "ssl:0:interface=127.0.0.1",
        "--udp-ports", f"{base}-{base + 7}",
        "--udp-interface", "127.0.0.1",
        "--data-dir", data_dir,
        "--ops-port", "tcp:0:interface=127.0.0.1",
        "--websocket", "none",
        "--host-workers", "2",
        "--limit", "drain-timeout=0",
    ])
    root = makeService(options, reactor)
    root.startService()
    try:
        lobby_port = (await root.getServiceNamed("lobby-listener").port()).getHost().port
        ops_port = (await root.getServiceNamed("ops").port()).getHost().port
        lobby = LobbyAddress("127.0.0.1", lobby_port, f"{data_dir}/dev-cert.pem")
        pool = root.getServiceNamed("game-host-processes")
        await until(lambda: all(w.live for w in pool.workers()), "live workers", 30, clock=reactor)
        registry = GameRegistry.from_plugins()
        names = iter(["ada", "bo", "cy", "di", "eve", "fay", "gus", "hal", "ivy", "jo", "kai"])
        rng = random.Random(7)

        def bot(game: str, think: float) -> Deferred[Any]:
            return Deferred.fromCoroutine(play_bot(
                reactor, lobby, registry.get(game), next(names),
                rng=random.Random(rng.random()), think_time=think,
            ))

        # A few matches that end (the recent table), then two that keep running.
        for _ in range(2):
            for d in [bot("tictactoe", 0.0), bot("tictactoe", 0.0)]:
                await d
        playing = [bot("tictactoe", 2.0), bot("tictactoe", 2.0),
                   bot("dice", 2.0), bot("dice", 2.0)]
        queued = bot("tictactoe", 0.0)  # alone in its queue until the server stops
        owner = await connect_lobby(reactor, "127.0.0.1", lobby_port, trust=lobby.trust)
        await owner.hello("lee")
        await owner.create_room("maze")
        lobby_factory = root.getServiceNamed("lobby")
        await until(lambda: len(lobby_factory.placer.running_matches) == 2, "two matches", 30,
                    clock=reactor)
        await deferLater(reactor, 2.5, lambda: None)  # sessions measure their round trips

        def shoot(driver: Any) -> None:
            driver.get(f"http://127.0.0.1:{ops_port}/dashboard/")
            driver.implicitly_wait(5)
            driver.find_element("css selector", "#running tr[data-match-id]")
            # The whole page, not only the window's height of it.
            shot = driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(base64.b64decode(shot["data"]))

        profile = tempfile.mkdtemp(prefix="vinom-chromium-")
        driver = await deferToThread(start_chromium, profile, 1280, 900)
        try:
            await deferToThread(shoot, driver)
        finally:
            await deferToThread(driver.quit)
        await owner.close()
        for d in [*playing, queued]:
            d.addErrback(lambda _: None)
    finally:
        await root.stopService()
    print(f"wrote {output}")


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    react(lambda reactor: Deferred.fromCoroutine(photograph(reactor, output)))


if __name__ == "__main__":
    main()
