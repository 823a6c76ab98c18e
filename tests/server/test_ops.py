"""The operations endpoint (vinom.server.ops) of a whole server on real sockets: /health,
/ready and /metrics, read over HTTP while bots play a match and while it drains."""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

import twisted
import vinom
from tests.support.browser import Browser, open_browser
from tests.support.metrics import samples
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from vinom.client.bots import play_bot
from vinom.client.lobby import client_tls_options
from vinom.games.registry import GameRegistry
from vinom.server.build import build_info


def metric_value(text: bytes, name: str) -> float:
    """One sample of a `/metrics` page, by its name and labels as written there."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text.decode(), re.MULTILINE)
    assert found is not None, f"{name} not in\n{text.decode()}"
    return float(found.group(1))


async def http_get(url: str) -> tuple[int, bytes]:
    response = await Agent(reactor).request(b"GET", url.encode())
    return response.code, await readBody(response)


class OpsEndpointTests(TestCase):
    timeout = 60

    async def get(self, server: RunningServer, path: str) -> tuple[int, bytes]:
        listening = await server.service("ops").port()
        return await http_get(f"http://127.0.0.1:{listening.getHost().port}{path}")

    def metric(self, text: bytes, name: str) -> float:
        return metric_value(text, name)

    async def play_one_match(self, server: RunningServer) -> None:
        """Two bots play a tictactoe match on `server` to its end."""
        game = GameRegistry.from_plugins().get("tictactoe")
        reports = await gatherResults([
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, game, f"bot{n}", rng=random.Random(n))
            )
            for n in range(2)
        ])
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])

    async def test_health_ready_and_metrics_through_a_match_and_a_drain(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=2)
        self.assertEqual(await self.get(server, "/health"), (200, b"ok\n"))
        self.assertEqual(await self.get(server, "/ready"), (200, b"ready\n"))
        code, text = await self.get(server, "/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(self.metric(text, "vinom_free_ports"), 2)
        self.assertEqual(self.metric(text, 'vinom_queue_depth{game="tictactoe"}'), 0)
        self.assertGreater(self.metric(text, "process_cpu_seconds_total"), 0)

        await self.play_one_match(server)
        code, text = await self.get(server, "/metrics")
        self.assertEqual(self.metric(text, "vinom_matches_formed_total"), 1)
        self.assertEqual(self.metric(text, "vinom_handshakes_completed_total"), 2)
        self.assertGreater(self.metric(text, 'vinom_datagrams_total{direction="in"}'), 10)
        self.assertGreater(self.metric(text, 'vinom_datagrams_total{direction="out"}'), 10)

        # Draining: no longer ready, still healthy.
        server.root.before_stop()  # what SIGTERM starts (vinom.server.drain)
        self.assertEqual(await self.get(server, "/ready"), (503, b"draining\n"))
        self.assertEqual(await self.get(server, "/health"), (200, b"ok\n"))
        code, text = await self.get(server, "/metrics")
        self.assertEqual(self.metric(text, "vinom_draining"), 1)

    async def test_a_record_directory_gone_mid_run_is_counted_and_the_match_plays_on(
        self,
    ) -> None:
        records = os.path.abspath(self.mktemp())
        server = await start_server(
            self, "--ops-port", "tcp:0:interface=127.0.0.1", "--record-dir", records, ports=2
        )
        code, text = await self.get(server, "/metrics")
        self.assertEqual(self.metric(text, "vinom_record_write_errors_total"), 0)
        # An operator's mistake after the start: a file where the directory was.
        if os.path.isdir(records):
            os.rmdir(records)
        with open(records, "w") as f:
            f.write("not a directory")
        await self.play_one_match(server)
        code, text = await self.get(server, "/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(self.metric(text, "vinom_matches_formed_total"), 1)
        self.assertEqual(self.metric(text, "vinom_record_write_errors_total"), 1)

    async def test_the_record_files_on_disk_and_the_build_are_figures(self) -> None:
        """An operator sees the records' count and size (/metrics, /status) and which vinom
        runs (vinom_build_info: version, compiled or pure build, Twisted's version)."""
        records = os.path.abspath(self.mktemp())
        server = await start_server(
            self, "--ops-port", "tcp:0:interface=127.0.0.1", "--record-dir", records, ports=2
        )
        _code, text = await self.get(server, "/metrics")
        build = samples(text.decode(), "vinom_build_info", "version", "build", "twisted")
        self.assertEqual(build, {(vinom.__version__, build_info()["code"],
                                  twisted.__version__): 1.0})  # fmt: skip
        self.assertEqual(self.metric(text, "vinom_record_files"), 0)
        self.assertEqual(self.metric(text, "vinom_record_bytes"), 0)

        await self.play_one_match(server)

        def on_disk() -> list[int]:
            return [p.stat().st_size for p in Path(records).iterdir()
                    if p.name.endswith(".vrec")]  # fmt: skip

        await until(lambda: sum(on_disk()) > 0, "the match's record on disk")
        _code, text = await self.get(server, "/metrics")
        self.assertEqual(self.metric(text, "vinom_record_files"), len(on_disk()))
        self.assertEqual(self.metric(text, "vinom_record_bytes"), sum(on_disk()))
        _code, body = await self.get(server, "/status")
        self.assertEqual(json.loads(body)["records"],
                         {"files": len(on_disk()), "bytes": sum(on_disk())})  # fmt: skip

    async def test_worker_figures_reach_the_lobby_process(self) -> None:
        server = await start_server(
            self, "--ops-port", "tcp:0:interface=127.0.0.1", "--host-workers", "2", ports=2
        )
        pool = server.service("game-host-processes")
        await until(lambda: all(w.live for w in pool.workers()), timeout=30)
        self.assertEqual(await self.get(server, "/health"), (200, b"ok\n"))
        self.assertEqual(await self.get(server, "/ready"), (200, b"ready\n"))
        code, text = await self.get(server, "/metrics")
        self.assertEqual(code, 200)
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        up = {s.labels["worker"]: s.value for s in families["vinom_worker_up"].samples}
        self.assertEqual(up, {"0": 1.0, "1": 1.0})
        spawned = [s for s in families["vinom_host_spawn_seconds"].samples
                   if s.name == "vinom_host_spawn_seconds_count"]
        self.assertEqual(spawned[0].value, 2)

        await self.play_one_match(server)
        # The workers' counters arrive with their heartbeats (every second).
        await pool.refresh()
        code, text = await self.get(server, "/metrics")
        self.assertEqual(code, 200)
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        self.assertEqual(self.metric(text, "vinom_handshakes_completed_total"), 2)
        self.assertGreater(self.metric(text, 'vinom_datagrams_total{direction="in"}'), 10)
        cpu = [s.value for s in families["vinom_worker_cpu_seconds"].samples]
        self.assertEqual(len(cpu), 2)
        self.assertGreater(sum(cpu), 0)
        restarts = [s.value for s in families["vinom_worker_restarts"].samples]
        self.assertEqual(restarts, [0, 0])
        self.assertIn("vinom_session_rtt_seconds", families)


class ClosedAfterReading(Protocol):
    """A client that writes `request` once connected and keeps what it reads until
    the server closes the connection: `closed` fires with it."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(self.received)


class LobbyErrorMetricTests(TestCase):
    timeout = 60

    async def test_the_final_too_many_errors_is_counted_with_the_rest(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=2)
        ops = (await server.service("ops").port()).getHost().port
        # A client that sends nothing but bad frames: 10 (--max-protocol-errors) are
        # answered malformed_json, then too_many_errors, and the lobby closes.
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", server.lobby.port,
                                      client_tls_options(server.lobby.trust))  # fmt: skip
        client = await connectProtocol(endpoint, ClosedAfterReading(b"{not json\n" * 12))
        frames = [json.loads(line) for line in (await client.closed).splitlines()]
        self.assertEqual([f["code"] for f in frames], ["malformed_json"] * 10 + ["too_many_errors"])

        code, text = await http_get(f"http://127.0.0.1:{ops}/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(metric_value(text, 'vinom_lobby_errors_total{code="malformed_json"}'), 10)
        self.assertEqual(metric_value(text, 'vinom_lobby_errors_total{code="too_many_errors"}'), 1)


class DashboardTokenTests(TestCase):
    """With --ops-token-file, the dashboard in a real headless Chromium asks for the
    token once, sends it with every poll, and keeps it for the tab."""

    timeout = 60

    async def test_the_page_asks_for_the_token_and_sends_it(self) -> None:
        token = "a-long-random-ops-token"
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1",
                                    "--ops-token-file", path, ports=2)  # fmt: skip
        listening = await server.service("ops").port()
        browser = await open_browser(self)
        await browser.get(f"http://127.0.0.1:{listening.getHost().port}/")
        form = "#token-form"
        await browser.wait_until(lambda d: d.find_element(By.CSS_SELECTOR, form).is_displayed())
        self.assertEqual(await browser.text_of("#connection"),
                         "the server asks for its operations token")  # fmt: skip
        # Asked before its first poll: nothing was refused yet.
        self.assertEqual(await browser.collect(), [])

        await self.enter(browser, "not-the-token")
        await browser.wait_for_text("#token-message", "That token was refused; try again.")
        refused = await browser.collect()
        self.assertTrue(refused and all("401" in p for p in refused), refused)
        browser.problems.clear()  # the one refusal this test asked for

        await self.enter(browser, token)
        await browser.wait_for_text("#free-ports", "2")
        self.assertFalse(await browser.run(
            lambda d: d.find_element(By.CSS_SELECTOR, form).is_displayed()))  # fmt: skip
        # The tab keeps it: a reload polls at once, without asking.
        await browser.reload()
        await browser.wait_for_text("#free-ports", "2")
        self.assertFalse(await browser.run(
            lambda d: d.find_element(By.CSS_SELECTOR, form).is_displayed()))  # fmt: skip

    async def enter(self, browser: Browser, text: str) -> None:
        def type_and_submit(driver: Any) -> None:
            driver.find_element(By.ID, "token").send_keys(text)
            driver.find_element(By.CSS_SELECTOR, "#token-form button").click()

        await browser.run(type_and_submit)
