"""The operations dashboard (vinom.server.ops, vinom.server.status): `/status` JSON read over HTTP
while bots queue, play and finish on a whole server on real sockets, the
dashboard's files, and the page itself in a real headless Chromium."""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.support.browser import open_browser
from tests.support.ports import free_udp_range
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from tests.support.websocket_client import connect_game_socket
from tests.support.webtransport_client import connect_webtransport
from vinom.client.bots import BotReport, play_bot
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry

# Bots that wait this long before each move keep a tictactoe match running for
# a few seconds: long enough to be seen running, short enough for a fast test.
THINK = 0.4


async def ops_port(server: RunningServer) -> int:
    listening = await server.service("ops").port()
    return int(listening.getHost().port)


async def http_get(server: RunningServer, path: str) -> tuple[int, dict[str, str], bytes]:
    port = await ops_port(server)
    response = await Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}{path}".encode())
    headers = {
        name.decode().lower(): values[0].decode()
        for name, values in response.headers.getAllRawHeaders()
    }
    return response.code, headers, await readBody(response)


async def status(server: RunningServer) -> dict[str, Any]:
    code, headers, body = await http_get(server, "/status")
    assert code == 200, (code, body)
    assert headers["content-type"] == "application/json", headers
    document: dict[str, Any] = json.loads(body)
    return document


async def status_until(server: RunningServer, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Poll /status (as the dashboard does) until `check(document)` holds; the document."""
    seen: list[dict[str, Any]] = []

    async def satisfied() -> bool:
        seen.append(await status(server))
        return bool(check(seen[-1]))

    await until(satisfied, lambda: f"/status to satisfy the check; last:\n{seen[-1:]}", timeout,
                every=0.1)  # fmt: skip
    return seen[-1]


def queue_of(document: dict[str, Any], game: str) -> int:
    return next(q["waiting"] for q in document["queues"] if q["game"] == game)


def start_bot(server: RunningServer, name: str, seed: int) -> Deferred[BotReport]:
    game = GameRegistry.from_plugins().get("tictactoe")
    return Deferred.fromCoroutine(
        play_bot(reactor, server.lobby, game, name, rng=random.Random(seed), think_time=THINK)
    )


class StatusTests(TestCase):
    timeout = 60

    async def test_status_follows_a_match_from_queue_to_result(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=2)
        first = await status(server)
        self.assertFalse(first["draining"])
        self.assertIsNone(first["trouble"])
        self.assertEqual(queue_of(first, "tictactoe"), 0)
        self.assertEqual(
            next(q["match_size"] for q in first["queues"] if q["game"] == "tictactoe"), 2
        )
        self.assertEqual((first["running"], first["recent"]), ([], []))
        self.assertEqual(first["free_ports"], 2)
        self.assertEqual(first["workers"], [])  # game hosts in this process

        ada = start_bot(server, "ada", 1)
        queued = await status_until(server, lambda d: queue_of(d, "tictactoe") == 1)
        self.assertEqual(queued["running"], [])
        bo = start_bot(server, "bo", 2)
        # Both sessions up and round trips measured (a session's RTT is 0 until its
        # first acknowledged packet: seen once on a loaded machine).
        running = await status_until(
            server, lambda d: d["running"] and d["rtt"]["sessions"] == 2 and d["rtt"]["median"] > 0
        )
        self.assertEqual(queue_of(running, "tictactoe"), 0)
        [match] = running["running"]
        self.assertEqual(match["game"], "tictactoe")
        self.assertEqual(sorted(p["name"] for p in match["players"]), ["ada", "bo"])
        self.assertTrue(match["host"].startswith("127.0.0.1:"))
        self.assertAlmostEqual(match["running_for"], running["now"] - match["placed_at"])
        self.assertEqual(running["matches"]["running"], 1)
        self.assertEqual(running["free_ports"], 1)
        self.assertEqual(running["sessions"], 2)
        self.assertGreater(running["rtt"]["median"], 0)
        self.assertLessEqual(running["rtt"]["median"], running["rtt"]["max"])
        self.assertEqual(running["rtt"]["buckets"][-1], {"le": "+Inf", "count": 2})

        reports = [await ada, await bo]
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        ended = await status_until(server, lambda d: d["recent"] and not d["running"])
        [result] = ended["recent"]
        self.assertEqual(result["match_id"], match["match_id"])
        self.assertEqual(result["phase"], "finished")
        winners = {w["name"] for w in result["winners"]}
        self.assertEqual(winners, {r.name for r in reports if r.won})
        self.assertGreaterEqual(result["ended_at"], result["placed_at"])
        self.assertLessEqual(result["ended_at"], ended["now"])
        self.assertEqual(ended["handshakes_completed"], 2)
        self.assertGreater(ended["datagrams"]["in"], 10)
        self.assertEqual(ended["matches"]["formed"], 1)
        self.assertEqual(
            ended["matches"]["ended"], [{"phase": "finished", "reason": "", "count": 1}]
        )
        self.assertEqual(ended["free_ports"], 2)

        # /metrics says the same, read from the same snapshot source.
        code, _headers, metrics = await http_get(server, "/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b"vinom_matches_formed_total 1.0", metrics)
        self.assertIn(b"vinom_handshakes_completed_total 2.0", metrics)

        server.root.before_stop()  # what SIGTERM starts (vinom.server.drain)
        draining = await status(server)
        self.assertTrue(draining["draining"])

    async def test_open_rooms_and_lobby_connections(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=2)
        owner = await connect_lobby(reactor, server.lobby.host, server.lobby.port,
                                    trust=server.lobby.trust)
        self.addCleanup(owner.close)
        await owner.hello("cy")
        await owner.create_room("tictactoe")
        friend = await connect_lobby(reactor, server.lobby.host, server.lobby.port,
                                     trust=server.lobby.trust)
        self.addCleanup(friend.close)
        await friend.hello("di")
        await friend.create_room("maze", private=True)
        document = await status(server)
        self.assertEqual(document["lobby"]["connections"], 2)
        self.assertEqual(
            document["rooms"]["open"],
            [
                {"game": "maze", "public": 0, "private": 1, "seated": 1},
                {"game": "tictactoe", "public": 1, "private": 0, "seated": 1},
            ],
        )
        self.assertEqual(document["rooms"]["started"], 0)
        await owner.leave_room()
        document = await status(server)
        self.assertEqual([r["game"] for r in document["rooms"]["open"]], ["maze"])

    async def test_recent_matches_keep_the_newest_first(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=4)
        game = GameRegistry.from_plugins().get("tictactoe")
        for round_ in range(2):
            reports = [
                await d
                for d in [
                    Deferred.fromCoroutine(
                        play_bot(reactor, server.lobby, game, f"r{round_}b{n}",
                                 rng=random.Random(n))
                    )
                    for n in range(2)
                ]
            ]
            self.assertEqual({r.outcome for r in reports}, {"finished"})
        document = await status_until(server, lambda d: len(d["recent"]) == 2)
        names = [sorted(p["name"] for p in m["players"]) for m in document["recent"]]
        self.assertEqual(names, [["r1b0", "r1b1"], ["r0b0", "r0b1"]])
        newest, older = document["recent"]
        self.assertGreaterEqual(newest["ended_at"], older["ended_at"])


class DashboardFilesTests(TestCase):
    timeout = 30

    async def test_page_script_and_style_are_served_from_the_package(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=1)
        code, headers, _ = await http_get(server, "/dashboard")
        self.assertEqual(code, 302)
        self.assertEqual(headers["location"], "/dashboard/")
        code, headers, page = await http_get(server, "/dashboard/")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertIn("default-src 'self'", headers["content-security-policy"])
        # Every file the page names is served, with a type a browser accepts for it.
        names = re.findall(rb'(?:href|src)="([^"]+)"', page)
        # The icon is inline (data:), asked of no server.
        names = [name for name in names if not name.startswith(b"data:")]
        self.assertEqual(sorted(names), [b"dashboard.css", b"dashboard.js"])
        code, headers, script = await http_get(server, "/dashboard/dashboard.js")
        self.assertEqual((code, headers["content-type"]), (200, "text/javascript; charset=utf-8"))
        self.assertIn(b"../status", script)
        code, headers, _ = await http_get(server, "/dashboard/dashboard.css")
        self.assertEqual((code, headers["content-type"]), (200, "text/css; charset=utf-8"))
        code, _, _ = await http_get(server, "/dashboard/../../setup.py")
        self.assertEqual(code, 404)
        code, _, _ = await http_get(server, "/dashboard/nothing.js")
        self.assertEqual(code, 404)


class DashboardInChromiumTests(TestCase):
    """The page in a real headless Chromium (tests/support/browser.py), as an operator sees it."""

    timeout = 60

    async def test_the_page_shows_the_queue_and_the_running_match_as_they_change(self) -> None:
        server = await start_server(self, "--ops-port", "tcp:0:interface=127.0.0.1", ports=2)
        browser = await open_browser(self)
        port = await ops_port(server)
        await browser.get(f"http://127.0.0.1:{port}/dashboard")
        waiting = '#queues tr[data-game="tictactoe"] td.waiting'
        await browser.wait_for_text(waiting, "0")
        self.assertEqual(await browser.text_of("#running tbody"), "no match is running")
        self.assertEqual(await browser.text_of("#free-ports"), "2")
        self.assertEqual(await browser.text_of("#game-sockets-refused"), "no web server")
        self.assertEqual(await browser.text_of("#record-files"), "0")
        self.assertEqual(await browser.text_of("#record-bytes"), "0.0 KB on disk")
        self.assertFalse(await browser.run(lambda d: d.execute_script(
            "return document.getElementById('draining').checkVisibility();"
        )))

        ada = start_bot(server, "ada", 1)
        await browser.wait_for_text(waiting, "1")
        bo = start_bot(server, "bo", 2)
        match_id = await browser.wait_until(lambda d: d.execute_script(
            "const row = document.querySelector('#running tr[data-match-id]');"
            "return row && row.dataset.matchId;"
        ))
        running = await browser.text_of(f'#running tr[data-match-id="{match_id}"]')
        assert running is not None
        self.assertIn("ada", running)
        self.assertIn("bo", running)
        self.assertIn("tictactoe", running)
        self.assertEqual(await browser.text_of("#running-count"), "1")
        self.assertEqual(await browser.text_of(waiting), "0")
        self.assertEqual(await browser.text_of("#free-ports"), "1")

        self.assertEqual([(await ada).outcome, (await bo).outcome], ["finished", "finished"])
        ended = f'#recent tr[data-match-id="{match_id}"]'
        await browser.wait_until(lambda d: d.execute_script(
            "return document.querySelector(arguments[0]) !== null;", ended
        ))
        self.assertIn("finished", await browser.text_of(ended) or "")
        await browser.wait_for_text("#running-count", "0")
        # The match's record, in the record files on disk (--record-dir).
        on_disk = [p.stat().st_size for p in Path(server.data_dir, "records").iterdir()
                   if p.name.endswith(".vrec")]  # fmt: skip
        await browser.wait_for_text("#record-files", str(len(on_disk)))
        self.assertEqual(await browser.text_of("#record-bytes"),
                         f"{sum(on_disk) / 1024:.1f} KB on disk")  # fmt: skip

        server.root.before_stop()  # SIGTERM's drain: the banner says so
        await browser.wait_until(lambda d: d.execute_script(
            "return document.getElementById('draining').checkVisibility();"
        ))
        self.assertIn("Draining", await browser.text_of("#draining") or "")
        live = await browser.run(lambda d: d.execute_script(
            "return document.getElementById('connection').dataset.state;"
        ))
        self.assertEqual(live, "live")

    async def test_the_page_shows_the_game_sockets_opened_and_refused(self) -> None:
        server = await start_server(
            self, "--ops-port", "tcp:0:interface=127.0.0.1",
            "--websocket", "ssl:0:interface=127.0.0.1", ports=2,
        )  # fmt: skip
        browser = await open_browser(self)
        port = await ops_port(server)
        await browser.get(f"http://127.0.0.1:{port}/dashboard/")
        await browser.wait_for_text("#game-sockets-refused", "0 refused")
        self.assertEqual(await browser.text_of("#game-sockets-opened"), "0")
        sessions_card = await browser.run(lambda d: d.execute_script(
            "return document.getElementById('sessions').parentElement.textContent;"
        ))
        self.assertIn("UDP + WebSocket", sessions_card)
        # A socket whose first message is no token: refused and counted.
        assert server.websocket_port is not None and server.lobby.trust is not None
        socket = await connect_game_socket(self, server.websocket_port, server.lobby.trust,
                                           None, first=b"not a token")  # fmt: skip
        await socket.closed
        await browser.wait_for_text("#game-sockets-refused", "1 refused (request_size 1)")
        self.assertEqual(await browser.text_of("#game-sockets-opened"), "0")
        # No --webtransport: no card for it.
        self.assertIs(await browser.run(lambda d: d.execute_script(
            "return document.getElementById('webtransport-card').hidden;")), True)

    async def test_the_page_shows_the_webtransport_sessions_opened_and_refused(self) -> None:
        udp = free_udp_range(1)
        server = await start_server(
            self, "--ops-port", "tcp:0:interface=127.0.0.1",
            "--websocket", "ssl:0:interface=127.0.0.1", "--webtransport", str(udp), ports=2,
        )  # fmt: skip
        browser = await open_browser(self)
        port = await ops_port(server)
        await browser.get(f"http://127.0.0.1:{port}/dashboard/")
        await browser.wait_for_text("#webtransport-refused", "0 refused")
        self.assertEqual(await browser.text_of("#webtransport-opened"), "0")
        # A session whose first message is no token: refused and counted.
        player = await connect_webtransport(self, udp)
        await player.status
        player.send(b"not a token")
        await player.closed
        await browser.wait_for_text("#webtransport-refused", "1 refused (request_size 1)")
        self.assertEqual(await browser.text_of("#webtransport-opened"), "0")
