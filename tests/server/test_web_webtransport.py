"""The web client's game session over WebTransport (`--webtransport`), in a real
headless Chromium (tests/support/browser.py): it plays over WebTransport when the
server offers it, with the development certificate taken by its hash (no flag,
no trust store), and over the WebSocket when it does not or cannot; the page
says which, and shows no console error either way."""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.server.test_web_client import (
    WAIT,
    click,
    consistent,
    enter,
    play_tictactoe,
    start_web_server,
    wait_for_game,
)
from tests.support.browser import Browser, open_browser
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import start_server, start_twistd

QUEUE = '[data-action="queue"][data-game="tictactoe"]'


async def transport_shown(browser: Browser) -> Any:
    """The page's Link fact once it names a transport: (its text, its kind)."""
    await browser.wait_until(lambda d: d.find_element(By.ID, "game-transport")
                             .get_attribute("data-kind"), WAIT)  # fmt: skip
    return await browser.run(lambda d: d.execute_script(
        "const e = document.getElementById('game-transport');"
        " return [e.textContent, e.dataset.kind];"
    ))  # fmt: skip


async def metrics(port: int) -> str:
    response = await Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}/metrics".encode())
    return (await readBody(response)).decode()


class WebTransportBrowserTests(TestCase):
    timeout = 180

    async def test_two_browsers_play_tictactoe_over_webtransport_on_twistd(self) -> None:
        udp, ops = free_udp_range(1), free_tcp_port()
        server = await start_twistd(self, {}, "--webtransport", str(udp),
                                    "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
                                    web=True)  # fmt: skip
        url = f"https://127.0.0.1:{server.web_port}/"
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, QUEUE)
        await click(bob, QUEUE)
        for page in (ann, bob):
            await wait_for_game(page, "tictactoe")
            self.assertEqual(await transport_shown(page), ["WebTransport", "webtransport"])
        outcomes = await play_tictactoe({ann: True, bob: False})
        self.assertTrue(consistent(outcomes), outcomes)
        text = await metrics(ops)
        self.assertIn("vinom_webtransport_sessions_opened_total 2.0", text)
        # Nobody played over the WebSocket.
        self.assertIn("vinom_game_sockets_opened_total 0.0", text)

    async def test_without_a_listener_the_page_plays_over_the_websocket(self) -> None:
        server, url = await start_web_server(self)
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, QUEUE)
        await click(bob, QUEUE)
        for page in (ann, bob):
            await wait_for_game(page, "tictactoe")
            self.assertEqual(await transport_shown(page), ["WebSocket", "websocket"])
        outcomes = await play_tictactoe({ann: True, bob: False})
        self.assertTrue(consistent(outcomes), outcomes)
        del server

    async def test_a_listener_that_does_not_answer_falls_back_to_the_websocket(self) -> None:
        # The offer names the UDP port, but nothing is read from it (as behind a
        # firewall that drops UDP): the page gives up on WebTransport after a second.
        web = free_tcp_port()
        server = await start_server(self, "--websocket", f"ssl:{web}:interface=127.0.0.1",
                                    "--webtransport", str(free_udp_range(1)), ports=4)  # fmt: skip
        listening = server.service("webtransport").listening
        listening.stopReading()
        url = f"https://127.0.0.1:{web}/"
        ann, bob = await open_browser(self), await open_browser(self)
        await enter(ann, url, "Ann")
        await enter(bob, url, "Bob")
        await click(ann, QUEUE)
        await click(bob, QUEUE)
        for page in (ann, bob):
            await wait_for_game(page, "tictactoe")
            self.assertEqual(await transport_shown(page), ["WebSocket", "websocket"])
        outcomes = await play_tictactoe({ann: True, bob: False})
        self.assertTrue(consistent(outcomes), outcomes)
        self.assertEqual(server.service("webtransport").server.sessions_opened, 0)

