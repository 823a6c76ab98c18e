"""The web client's game session over WebTransport (`--webtransport`), in a real
headless Chromium (tests/support/browser.py): it plays over WebTransport when the
server offers it, with the development certificate taken by its hash (no flag,
no trust store), and over the WebSocket when it does not or cannot; the page
says which, and shows no console error either way. The games: tictactoe (turns,
reliable messages) and the real-time arena (vinom/games/arena.py with its board,
installed as a user installs a game: snaps and inputs as datagrams)."""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import re
from typing import Any

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.server.test_web_arena import SIZE as ARENA_SIZE
from tests.server.test_web_arena import torus
from tests.server.test_web_client import (
    WAIT,
    click,
    consistent,
    enter,
    play_tictactoe,
    start_web_server,
    wait_for_game,
    wait_for_screen,
)
from tests.support.browser import Browser, open_browser
from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import start_server, start_twistd
from tests.support.waiting import until
from vinom.client.game import connect_game
from vinom.client.lobby import connect_lobby

QUEUE = '[data-action="queue"][data-game="tictactoe"]'
ARENA_QUEUE = '[data-action="queue"][data-game="arena"]'

# The arena's dots as drawn: [the own dot's centre, {seat: centre} of the others].
DOTS = """
const others = {};
let me = null;
for (const c of document.querySelectorAll('[data-board=arena] .vb-arena-dot')) {
  const at = [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))];
  if (c.classList.contains('vb-me')) me = at; else others[c.dataset.seat] = at;
}
return [me, others];
"""


def rightwards(before: list[float], after: list[float]) -> float:
    """How far right `after` is of `before` on the arena's torus (negative: left)."""
    dx = (after[0] - before[0]) % ARENA_SIZE
    return dx if dx <= ARENA_SIZE / 2 else dx - ARENA_SIZE


def downwards(before: list[float], after: list[float]) -> float:
    return rightwards([before[1]], [after[1]])


async def transport_shown(browser: Browser) -> Any:
    """The page's Link fact once it names a transport: (its text, its kind)."""
    await browser.wait_until(lambda d: d.find_element(By.ID, "game-transport")
                             .get_attribute("data-kind"), WAIT)  # fmt: skip
    return await browser.run(lambda d: d.execute_script(
        "const e = document.getElementById('game-transport');"
        " return [e.textContent, e.dataset.kind];"
    ))  # fmt: skip


class WebTransportBrowserTests(TestCase):
    timeout = 180

    async def two_play_tictactoe(
        self, url: str, transport: list[str], expect: re.Pattern[str] | None = None
    ) -> None:
        """Ann and Bob, each in a Chromium, enter at `url`, queue for tictactoe and play it
        to its end, each page's Link fact saying `transport` ([its text, its kind]);
        `expect`: a console entry the test's network makes each Chromium log."""
        ann, bob = await open_browser(self), await open_browser(self)
        for page in (ann, bob):
            if expect is not None:
                page.expect(expect)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, QUEUE)
        await click(bob, QUEUE)
        for page in (ann, bob):
            await wait_for_game(page, "tictactoe")
            self.assertEqual(await transport_shown(page), transport)
        outcomes = await play_tictactoe({ann: True, bob: False})
        self.assertTrue(consistent(outcomes), outcomes)

    async def test_two_browsers_play_tictactoe_over_webtransport_on_twistd(self) -> None:
        udp, ops = free_udp_range(1), free_tcp_port()
        server = await start_twistd(self, {}, "--webtransport", str(udp),
                                    "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
                                    web=True)  # fmt: skip
        url = f"https://127.0.0.1:{server.web_port}/"
        await self.two_play_tictactoe(url, ["WebTransport", "webtransport"])
        text = await fetch_metrics(ops)
        self.assertIn("vinom_webtransport_sessions_opened_total 2.0", text)
        # Nobody played over the WebSocket.
        self.assertIn("vinom_game_sockets_opened_total 0.0", text)

    async def test_two_browsers_play_the_realtime_arena_over_webtransport_on_twistd(
        self,
    ) -> None:
        udp, ops = free_udp_range(1), free_tcp_port()
        server = await start_twistd(
            self, {}, "--games", "arena", "--webtransport", str(udp),
            "--ops-port", f"tcp:{ops}:interface=127.0.0.1", web=True,
        )  # fmt: skip
        ann, bob = await open_browser(self), await open_browser(self)
        pages = {"Ann": ann, "Bob": bob}
        for name, page in pages.items():
            await page.get(server.url)
            await wait_for_screen(page, "name")
            await page.run(lambda d, name=name: d.find_element(By.ID, "name-input")
                           .send_keys(name))  # fmt: skip
            await click(page, "#name-submit")
            await page.wait_until(lambda d: d.find_elements(By.CSS_SELECTOR, ARENA_QUEUE), WAIT)
        for page in pages.values():
            await click(page, ARENA_QUEUE)
        for page in pages.values():
            await wait_for_game(page, "arena")
            self.assertEqual(await transport_shown(page), ["WebTransport", "webtransport"])
            await page.wait_until(lambda d: d.execute_script(
                "return document.getElementById('game-phase').dataset.phase;") == "playing",
                WAIT)  # fmt: skip
            await page.wait_until(lambda d: (lambda dots: dots[0] and len(dots[1]) == 1)(
                d.execute_script(DOTS)), WAIT)  # fmt: skip

        async def dots(page: Browser) -> Any:
            return await page.run(lambda d: d.execute_script(DOTS))

        async def move(page: Browser, key: str, way: Any, start: list[float]) -> None:
            # While the key is held, the own dot goes that way (the arena: 100 a second).
            await page.run(lambda d: ActionChains(d).key_down(key).perform())
            await page.wait_until(lambda d: way(start, d.execute_script(DOTS)[0]) > 30, WAIT)
            await page.run(lambda d: ActionChains(d).key_up(key).perform())

        async def seen_moving(page: Browser, way: Any, start: list[float]) -> None:
            # The other page draws it that way once the server's snaps say so (the
            # server may have moved it a tick less than its own page predicted; where
            # it is at rest is checked below).
            await page.wait_until(lambda d: way(
                start, next(iter(d.execute_script(DOTS)[1].values()))) > 20, WAIT)

        ann_start, (ann_seen_by_bob,) = (await dots(ann))[0], (await dots(bob))[1].values()
        bob_start, (bob_seen_by_ann,) = (await dots(bob))[0], (await dots(ann))[1].values()
        await move(ann, Keys.ARROW_RIGHT, rightwards, ann_start)
        await seen_moving(bob, rightwards, ann_seen_by_bob)
        await move(bob, Keys.ARROW_DOWN, downwards, bob_start)
        await seen_moving(ann, downwards, bob_seen_by_ann)
        # At rest again, each page draws the other where that player's own page does.
        # Both are read afresh on every try: the own page may still be fading in a
        # correction from the server's last snap when the key comes up.
        for me, other in ((ann, bob), (bob, ann)):
            async def agree(me: Browser = me, other: Browser = other) -> bool:
                own = (await dots(me))[0]
                return torus(own, next(iter((await dots(other))[1].values()))) < 0.05

            await until(agree, "each page drawing the other where its own page does",
                        WAIT, every=0.1)  # fmt: skip
        own_ann, own_bob = (await dots(ann))[0], (await dots(bob))[0]
        self.assertEqual(own_ann[1], ann_start[1], "Ann moved right only")
        self.assertEqual(own_bob[0], bob_start[0], "Bob moved down only")

        text = await fetch_metrics(ops)
        self.assertIn("vinom_webtransport_sessions_opened_total 2.0", text)
        self.assertIn("vinom_game_sockets_opened_total 0.0", text)
        counts = samples(text, "vinom_webtransport_messages_total", "direction", "way")
        # The snaps (up to 20 a second to each page while a dot moves) and the inputs
        # came as datagrams.
        self.assertGreater(counts.get(("out", "datagram"), 0), 10, counts)
        self.assertGreater(counts.get(("in", "datagram"), 0), 4, counts)
        for page in pages.values():
            await page.check()

    async def test_a_spectator_of_a_quiet_match_stays_past_the_idle_timeout(self) -> None:
        # Two players seated in a tictactoe match on twistd, nobody moving; Eve's page
        # watches it over WebTransport. Nothing travels to her page or from it while
        # the match is quiet, past QUIC's idle timeout (10 s) that used to drop it.
        server = await start_twistd(self, {}, "--webtransport", str(free_udp_range(1)),
                                    web=True)  # fmt: skip
        lobbies = [await connect_lobby(reactor, "127.0.0.1", server.lobby.port,
                                       trust=server.lobby.trust) for _ in range(2)]  # fmt: skip
        for n, lobby in enumerate(lobbies):
            self.addCleanup(lobby.close)
            await lobby.hello(f"p{n}")
        found = await gatherResults([lobby.queue("tictactoe") for lobby in lobbies])
        players = [await connect_game(reactor, f) for f in found]
        for player in players:
            self.addCleanup(player.disconnect)
        await until(lambda: all(p.phase == "playing" for p in players), "the match to play")
        eve = await open_browser(self)
        await enter(eve, server.url, "Eve")
        await eve.run(lambda d: d.find_element(By.ID, "watch-input").send_keys(found[0].game_id))
        await click(eve, "#watch-start")
        await wait_for_game(eve, "tictactoe")
        self.assertEqual(await transport_shown(eve), ["WebTransport", "webtransport"])
        await deferLater(reactor, 15.0, lambda: None)
        # Still watching: the next move is drawn, and no lost connection was told.
        for player in players:  # whoever's turn it is takes the centre
            player.send_action({"cell": 4})
        await eve.wait_until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.ttt-cell')]"
            ".filter(c => c.dataset.mark).length;") == 1, WAIT)  # fmt: skip
        page = await eve.run(lambda d: d.find_element(By.TAG_NAME, "body").text)
        self.assertNotIn("The connection to the game was lost", page)
        self.assertEqual(await transport_shown(eve), ["WebTransport", "webtransport"])
        await eve.check()

    async def test_without_a_listener_the_page_plays_over_the_websocket(self) -> None:
        _server, url = await start_web_server(self)
        await self.two_play_tictactoe(url, ["WebSocket", "websocket"])

    async def test_a_listener_that_does_not_answer_falls_back_to_the_websocket(self) -> None:
        # The offer names the UDP port, but nothing is read from it (as behind a
        # firewall that drops UDP): the page gives up on WebTransport after a second.
        web = free_tcp_port()
        server = await start_server(self, "--websocket", f"ssl:{web}:interface=127.0.0.1",
                                    "--webtransport", str(free_udp_range(1)), ports=4)  # fmt: skip
        listening = server.service("webtransport").listening
        listening.stopReading()
        # Chromium's own network log says so when the QUIC handshake it still tries
        # times out (4 s; sooner than this test ends on a loaded machine).
        blocked = re.compile(
            r"console: network - Failed to establish a connection to "
            r"https://127\.0\.0\.1:\d+/game: net::ERR_QUIC_PROTOCOL_ERROR\."
            r"QUIC_NETWORK_IDLE_TIMEOUT \(.*\)\."
        )
        await self.two_play_tictactoe(f"https://127.0.0.1:{web}/", ["WebSocket", "websocket"],
                                      expect=blocked)  # fmt: skip
        self.assertEqual(server.service("webtransport").server.sessions_opened, 0)

