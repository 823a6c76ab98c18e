"""The whole cluster behind the gateways: real `twistd vinom` processes on a real Redis.

Topology (docs/gateway.md, the deployment picture):

- 2 gateways (`twistd vinom gateway`), each one public TCP port for every client kind
  and one UDP relay port (`--relay-ports`), the same rule set (round robin over
  the lobbies; HTTP and WebSocket to the lobbies' web servers).
- 3 lobbies (`twistd vinom lobby`), TLS lobby and plain web server, trusting the
  gateways' PROXY headers (`--trusted-proxy`). Each lobby names one relay in its
  `match_found` (`--relay`): lobbies a and c gateway 1's, lobby b gateway 2's;
  a player's UDP goes through the relay its lobby names, whichever gateway its
  TCP came through.
- 2 game hosts (`twistd vinom host`) announcing their private address, reached for
  UDP through the relays; each serves `/game` for browsers on its own web
  server (TLS, trusting the gateways' PROXY headers), under a name of its own
  that `match_found`'s `game_url` names (`--public-web-url
  wss://h1.localhost:PORT`, PORT gateway 1's): the gateways route it by that
  name (a `tls` route by `sni`, TLS passed through), as they route by path
  to the lobbies' web servers. Game sockets are not relayed.
  On one machine the hosts' "private" address is loopback, which a player
  could reach too: what shows that UDP goes through the relays is that
  players are told only the relays' addresses (without the gateways' relays
  the players' game sessions time out) and that the relays' counters carry
  every player's route.

Players: native bots (TLS passed through a gateway to a lobby, game datagrams
through a relay) on both gateways, and a browser (Chromium) that loads the web
client, opens its lobby WebSocket and its game socket all through gateway 1's
one port, and plays tic-tac-toe to the end against a native bot on gateway 2. Every match
finishes, with no error and no console error; the gateways' counters show that
the traffic went through them, each relay carrying exactly the players of the
lobbies that name it; afterwards no connection is left open anywhere.
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import collections
import random
from collections.abc import Coroutine
from typing import Any

from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME
from tests.gateway.relay_support import forwarded, gateway_relay_options
from tests.gateway.test_gateway_processes import GatewayTestCase, Lobby, counting, rules
from tests.server.test_web_client import (
    WAIT,
    click,
    enter,
    play_tictactoe,
    player_names,
    wait_for_game,
)
from tests.support.browser import open_browser
from tests.support.ports import free_tcp_port, free_udp_ports
from tests.support.waiting import until
from vinom.client import failover
from vinom.client.bots import BotReport, LobbyAddress, play_bot

OPENED = "vinom_relay_routes_opened_total"


async def gather(coroutines: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    return await gatherResults([Deferred.fromCoroutine(c) for c in coroutines])


class GatewayClusterTests(GatewayTestCase):
    timeout = 90

    async def test_native_browser_and_relayed_players_finish_matches_through_the_gateways(
        self,
    ) -> None:
        page_port = free_tcp_port()
        page = f"http://127.0.0.1:{page_port}/"
        origin = page.rstrip("/")
        relays = free_udp_ports(2)
        # The game hosts' web servers (/game), each behind the gateways under its own
        # name (Chromium takes any *.localhost for loopback), TLS passed through.
        host_webs = {"h1": free_tcp_port(), "h2": free_tcp_port()}
        # Started side by side (each process takes seconds to start on a busy machine).
        hosts = [
            self.start("host", "--udp-interface", "127.0.0.1", "--public-host", "127.0.0.1",
                       "--websocket", f"ssl:{web}:interface=127.0.0.1",
                       "--public-web-url", f"wss://{name}.localhost:{page_port}",
                       "--trusted-proxy", "127.0.0.1", "--websocket-origins", origin, ports=4)
            for name, web in host_webs.items()
        ]  # fmt: skip
        names, relay_of = ["a", "b", "c"], [0, 1, 0]
        started = await gather([
            *hosts,
            *(self.lobby("--websocket-origins", origin, "--relay",
                         f"127.0.0.1:{relays[relay]}", "--relay-key-file", self.key_file,
                         web=True) for relay in relay_of),
        ])  # fmt: skip
        lobbies: dict[str, Lobby] = dict(zip(names, started[2:], strict=True))
        document = rules(lobbies)
        for name, web in host_webs.items():
            document["backends"][f"{name}-web"] = {"address": f"127.0.0.1:{web}"}
            document["pools"][f"{name}-web"] = {"backends": [f"{name}-web"]}
            document["routes"].insert(0, {"kind": "tls", "sni": f"{name}.localhost",
                                          "pool": f"{name}-web"})  # fmt: skip
        gateways = await gather([
            self.gateway(*gateway_relay_options(relay, self.key_file), rules=document,
                         port=port)
            for relay, port in zip(relays, (page_port, None), strict=True)
        ])  # fmt: skip
        ports = [port for _process, port, _ops in gateways]
        # Every lobby connection the native players make, by gateway port: one to find a
        # match, and one more for each `reconnect` (after a lost game session, or a first
        # connect to the game host that failed, as it may on a busy machine) and for each
        # lobby left for the next.
        made: collections.Counter[int] = collections.Counter()
        self.patch(failover, "connect_lobby", counting(made))

        # The browser, through gateway 1, queues; a native bot through gateway 2 joins it.
        browser = await open_browser(self)
        await enter(browser, page, "Ann")
        await click(browser, '[data-action="queue"][data-game="tictactoe"]')
        await browser.wait_until(lambda d: d.find_element(By.ID, "queue-panel").is_displayed(),
                                 WAIT)  # fmt: skip
        opponent: Deferred[BotReport] = Deferred.fromCoroutine(play_bot(
            reactor, LobbyAddress("127.0.0.1", ports[1], self.cert), GAME, "robo",
            rng=random.Random(3), think_time=0.2,
        ))  # fmt: skip
        await wait_for_game(browser, "tictactoe")
        self.assertEqual(await player_names(browser), ["Ann", "robo"])
        # Meanwhile, native players on both gateways.
        rng = random.Random(7)
        natives = gatherResults([
            Deferred.fromCoroutine(play_bot(
                reactor, LobbyAddress("127.0.0.1", ports[i % 2], self.cert), GAME, f"n{i}",
                rng=random.Random(rng.random())))
            for i in range(8)
        ])  # fmt: skip
        [outcome] = await play_tictactoe({browser: True})
        robo = await opponent
        self.assertEqual((robo.outcome, robo.error), ("finished", None), robo)
        if robo.won:
            self.assertEqual(outcome, "lose")
        else:
            self.assertIn(outcome, ("win", "draw"))
        reports: list[BotReport] = await natives
        self.assertEqual([(r.outcome, r.error) for r in reports], [("finished", None)] * 8,
                         reports)  # fmt: skip
        by_match = collections.Counter(r.match_id for r in reports)
        self.assertEqual(sorted(by_match.values()), [2] * 4, by_match)
        self.assertNotIn(robo.match_id, by_match)
        await browser.check()  # no console error, no failed load, all along

        # Through the gateways: every lobby connection (TLS, passed through), the
        # browser's page and lobby (HTTP), and on the game host's name (TLS, routed by
        # it) the page's ask for a WebTransport offer (none here) and its game socket ...
        tls = [await self.metric(ops, 'vinom_gateway_routed_total{kind="tls"}')
               for _process, _port, ops in gateways]  # fmt: skip
        # One lobby connection per native player (4 on gateway 1; 4 and robo on gateway
        # 2), and the players' reconnects and lobby changes: at least one connection
        # each (a `reconnect` whose game host turns the fresh token away is followed by
        # another; BotReport.reconnects counts the one that took), and none without one.
        on_gateway = [reports[0::2], [*reports[1::2], robo]]
        again = [sum(r.reconnects + r.lobby_changes for r in bots) for bots in on_gateway]
        lobby_tls = [made[port] for port in ports]
        for bots, extra, count in zip(on_gateway, again, lobby_tls, strict=True):
            self.assertGreaterEqual(count, len(bots) + extra, bots)
            if not extra:
                self.assertEqual(count, len(bots), bots)
        self.assertEqual(tls, [lobby_tls[0] + 2, lobby_tls[1]], (lobby_tls, again))
        game_sockets = (await self.status(gateways[0][2]))["backends"]
        self.assertEqual(sum(game_sockets[f"{name}-web"]["routed"] for name in host_webs), 2)
        self.assertGreaterEqual(
            await self.metric(gateways[0][2], 'vinom_gateway_routed_total{kind="http"}'), 2
        )
        # ... and every game datagram of the 9 native players, each through the relay
        # its lobby names: gateway 1's for lobbies a and c, gateway 2's for lobby b
        # (a route for each match_found: each lobby connection's fresh token).
        on: dict[str, float] = collections.Counter()
        for _process, _port, ops in gateways:
            for name, state in (await self.status(ops))["backends"].items():
                on[name] += state["routed"]
        opened = [await self.metric(ops, OPENED) for _process, _port, ops in gateways]
        self.assertEqual(opened, [on["a"] + on["c"], on["b"]])
        self.assertEqual(sum(opened), sum(lobby_tls))
        for _process, _port, ops in gateways:
            self.assertGreater(await self.metric(ops, forwarded("to_host")), 0)
            self.assertGreater(await self.metric(ops, forwarded("to_player")), 0)

        # No ghost: once the players have left, no lobby holds a player or a ticket, and
        # no gateway a lobby connection (the browser's idle HTTP connections to the web
        # servers may stay, until the web server's idle timeout: no player is on them).
        await browser.get("about:blank")
        left: list[object] = []

        async def nothing_left() -> bool:
            left[:] = [await self.left_over(lobbies, [ops for _p, _port, ops in gateways])]
            return not left[0]

        await until(nothing_left, lambda: f"nothing left after every player went: {left}",
                    every=0.1)  # fmt: skip
        for process in [*(lobby.process for lobby in lobbies.values()),
                        *(gateway for gateway, _port, _ops in gateways)]:  # fmt: skip
            self.assertNotIn("Traceback", process.text)

    async def left_over(self, lobbies: dict[str, Lobby], gateways: list[int]) -> list[str]:
        """What the lobbies and gateways still hold for players: lobby connections (TLS
        or WebSocket), queued tickets, connections from a gateway to a lobby."""
        left = []
        for name, lobby in lobbies.items():
            status = await self.status(lobby.ops)
            if status["lobby"]["connections"]:
                left.append(f"lobby {name}: {status['lobby']['connections']} connections")
            left += [f"lobby {name}: {queue['waiting']} waiting for {queue['game']}"
                     for queue in status["queues"] if queue["waiting"]]  # fmt: skip
        for i, ops in enumerate(gateways, 1):
            backends = (await self.status(ops))["backends"]
            left += [f"gateway {i}: {backends[name]['connections']} connections to {name}"
                     for name in lobbies if backends[name]["connections"]]  # fmt: skip
        return left
