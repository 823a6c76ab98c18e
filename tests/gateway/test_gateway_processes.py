"""The gateway as players and operators meet it: real `twistd vinom` processes on a real Redis.

`twistd vinom gateway` processes in front of `twistd vinom lobby` processes (and a game
host): native TLS players finish matches through two gateways, a WebSocket
player and a browser (Chromium) enter the lobby through one, a rule change in
Redis (round robin to realm) reaches new connections once published while
established ones stay, a bad rule set is refused (from Redis, and from a file
read again on SIGHUP), a killed lobby is put out by the health checks and
its players reconnect through the gateway to the other, a lobby healthy again
is back in, two client addresses are two for the lobby's per-address limits
(PROXY protocol v2), and SIGTERM drains and exits 0.
"""

# slow: starts child processes

from __future__ import annotations

import collections
import json
import os
import random
import sys
from collections.abc import Callable
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process, play_on
from tests.gateway.test_docs import rule_example_for
from tests.server.test_ops import http_get, metric_value
from tests.server.test_tls import alpn_visit
from tests.server.test_twistd import ROOT, Collect
from tests.server.test_web_client import enter
from tests.support.browser import open_browser
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from tests.support.websocket_client import WebSocketPlayer, _drop
from vinom.client import failover
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.game import connect_game
from vinom.client.lobby import (
    LobbyClient,
    LobbyClientProtocol,
    client_tls_options,
    connect_lobby,
)
from vinom.server.certs import ensure_dev_certificate


def counting(made: collections.Counter[int]) -> Callable[..., Deferred[LobbyClient]]:
    """`connect_lobby`, counting in `made` (by port) each connection it makes: one the
    gateway counts (its TLS ClientHello goes out as the TCP connection is made)."""

    def connect(reactor: Any, host: str, port: int, **options: Any) -> Deferred[LobbyClient]:
        def counted(client: LobbyClient) -> LobbyClient:
            made[port] += 1
            return client

        return connect_lobby(reactor, host, port, **options).addCallback(counted)

    return connect


class Lobby:
    def __init__(self, process: Process, port: int, ops: int, web: int | None) -> None:
        self.process, self.port, self.ops, self.web = process, port, ops, web


class GatewayTestCase(ClusterTestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        # One certificate for every lobby: a player trusts the deployment, not one process.
        paths = ensure_dev_certificate(os.path.abspath(self.mktemp()))
        self.cert, self.key = str(paths.certificate), str(paths.private_key)

    async def lobby(
        self, *extra: str, tls: bool = True, web: bool = False, like: Lobby | None = None
    ) -> Lobby:
        """A `twistd vinom lobby` process (on the ports of `like`, when it replaces that one)."""
        port, ops = (free_tcp_port(), free_tcp_port()) if like is None else (like.port, like.ops)
        web_port = free_tcp_port() if web else None
        args = [
            "--lobby", f"{'ssl' if tls else 'tcp'}:{port}:interface=127.0.0.1",
            "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
            "--trusted-proxy", "127.0.0.1",
            "--certificate", self.cert, "--private-key", self.key,
        ]  # fmt: skip
        if web_port is not None:
            args += ["--websocket", f"tcp:{web_port}:interface=127.0.0.1"]
        process = await self.start("lobby", *args, *extra)
        return Lobby(process, port, ops, web_port)

    async def gateway(
        self, *extra: str, rules: dict[str, Any] | None = None, port: int | None = None
    ) -> tuple[Process, int, int]:
        """A `twistd vinom gateway` process: its rules from a file (`rules`) or Redis."""
        port, ops = port or free_tcp_port(), free_tcp_port()
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        args = ["--gateway", f"tcp:{port}:interface=127.0.0.1",
                "--ops-port", f"tcp:{ops}:interface=127.0.0.1", "--data-dir", data_dir]  # fmt: skip
        if rules is not None:
            path = os.path.join(data_dir, "rules.json")
            with open(path, "w") as f:
                json.dump(rules, f)
            args += ["--gateway-rules", path]
        else:
            args += ["--redis", self.redis_url]
        output = Collect()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
        }
        transport = reactor.spawnProcess(
            output, sys.executable,
            [sys.executable, "-c", self.program, "-n", "--pidfile=", "vinom", "gateway",
             *args, *extra], env=env, path=data_dir,
        )  # fmt: skip
        process = Process(transport, output, data_dir)
        self.addCleanup(self._kill, process)
        await self.output_has(process, "the gateway (every client kind)")
        return process, port, ops

    async def status(self, ops: int) -> dict[str, Any]:
        code, body = await http_get(f"http://127.0.0.1:{ops}/status")
        self.assertEqual(code, 200, body)
        return json.loads(body)  # type: ignore[no-any-return]

    async def metric(self, ops: int, name: str) -> float:
        """One sample of the gateway's `/metrics` (its relay's counters too)."""
        code, body = await http_get(f"http://127.0.0.1:{ops}/metrics")
        self.assertEqual(code, 200, body)
        return metric_value(body, name)

    async def lobby_connections(self, lobby: Lobby) -> int:
        _code, body = await http_get(f"http://127.0.0.1:{lobby.ops}/status")
        return int(json.loads(body)["lobby"]["connections"])

    async def all_follow(self, port: int, ops: int, realm: str, backend: str, n: int = 3) -> bool:
        """Whether `n` new players of `realm` all go to `backend`."""
        before = (await self.status(ops))["backends"][backend]["routed"]
        for _ in range(n):
            client = await self.plain(port)
            await client.protocol.request({"type": "hello", "name": "New", "realm": realm})
            await client.close()
        return bool((await self.status(ops))["backends"][backend]["routed"] == before + n)

    async def plain(self, port: int, source: str = "127.0.0.1") -> LobbyClient:
        """A plain (no TLS) lobby connection from `source` to 127.0.0.1:`port`."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
        client = LobbyClient(await connectProtocol(endpoint, LobbyClientProtocol()))
        self.addCleanup(client.close)
        return client

    async def tls(self, port: int, source: str = "127.0.0.1") -> LobbyClient:
        endpoint = wrapClientTLS(client_tls_options(self.cert, "localhost"),
                                 TCP4ClientEndpoint(reactor, "127.0.0.1", port,
                                                    bindAddress=(source, 0)))  # fmt: skip
        client = LobbyClient(await connectProtocol(endpoint, LobbyClientProtocol()))
        self.addCleanup(client.close)
        return client


def rules(lobbies: dict[str, Lobby], *, strategy: str = "round_robin", realms: bool = False,
          interval: float = 1.0) -> dict[str, Any]:  # fmt: skip
    backends: dict[str, Any] = {
        name: {"address": f"127.0.0.1:{lobby.port}", "health": f"127.0.0.1:{lobby.ops}"}
        for name, lobby in lobbies.items()
    }
    backends.update({f"{name}-web": {"address": f"127.0.0.1:{lobby.web}"}
                     for name, lobby in lobbies.items() if lobby.web})  # fmt: skip
    pools: dict[str, Any] = {"lobbies": {"backends": list(lobbies), "strategy": strategy}}
    pools.update({name: {"backends": [name]} for name in lobbies})
    routes: list[dict[str, Any]] = []
    if any(lobby.web for lobby in lobbies.values()):
        pools["web"] = {"backends": [f"{n}-web" for n, lobby in lobbies.items() if lobby.web]}
        routes.append({"kind": "http", "path_prefix": "/", "pool": "web"})
    routes.append({"kind": "any", "pool": "lobbies", "by_realm": realms})
    document: dict[str, Any] = {"backends": backends, "pools": pools, "routes": routes,
                                "health": {"interval": interval, "timeout": 0.5}}  # fmt: skip
    if realms:
        document["realms"] = {"eu": "a", "us": "b"}
    return document


class GatewayTests(GatewayTestCase):
    async def test_native_tls_players_finish_matches_through_two_gateways(self) -> None:
        await self.start("host", ports=4)
        lobbies = {"a": await self.lobby(), "b": await self.lobby()}
        gateways = [await self.gateway(rules=rules(lobbies)) for _ in "12"]
        rng = random.Random(7)
        reports = await self.gather(
            play_bot(reactor, LobbyAddress("127.0.0.1", gateways[i % 2][1], self.cert), GAME,
                     f"g{i}", rng=random.Random(rng.random()))
            for i in range(8)
        )  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished"] * 8, reports)
        self.assertEqual(len({r.match_id for r in reports}), 4)
        # TLS passed through (the players verified the lobbies' certificate), each gateway
        # sending its players to both lobbies in turn.
        for _process, _port, ops in gateways:
            backends = (await self.status(ops))["backends"]
            self.assertGreaterEqual(backends["a"]["routed"], 2)
            self.assertGreaterEqual(backends["b"]["routed"], 2)

    async def gather(self, coroutines: Any) -> list[Any]:
        from twisted.internet.defer import Deferred, gatherResults

        return await gatherResults([Deferred.fromCoroutine(c) for c in coroutines])

    async def test_a_websocket_player_says_hello_through_the_gateway(self) -> None:
        lobbies = {"a": await self.lobby(web=True)}
        gateway, port, _ops = await self.gateway(rules=rules(lobbies))
        factory = WebSocketClientFactory(f"ws://localhost:{port}/lobby", reactor=reactor)
        factory.protocol = WebSocketPlayer
        player: WebSocketPlayer = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
            factory
        )
        self.addCleanup(_drop, player)
        try:
            await player.opened
        except Exception as e:
            raise AssertionError(f"{e}; the gateway said:\n{gateway.text}\nthe lobby said:\n"
                                 f"{lobbies['a'].process.text}") from e
        welcome = await player.request({"type": "hello", "name": "Web", "id": "1"})
        self.assertEqual(welcome["type"], "welcome")

    async def test_a_browser_enters_the_lobby_through_the_gateway(self) -> None:
        port = free_tcp_port()
        page = f"http://127.0.0.1:{port}/"
        lobby = await self.lobby("--websocket-origins", page.rstrip("/"), web=True)
        # docs/gateway.md's rule example, its lobbies a and b both this one: the doc's
        # routes send the page, its files and its WebSocket to the web server.
        addresses = {}
        for host in ("10.0.0.11", "10.0.0.12"):
            addresses.update({f"{host}:7350": f"127.0.0.1:{lobby.port}",
                              f"{host}:7380": f"127.0.0.1:{lobby.web}",
                              f"{host}:7390": f"127.0.0.1:{lobby.ops}"})  # fmt: skip
        await self.gateway(rules=rule_example_for(addresses), port=port)
        browser = await open_browser(self)
        # The page, its files and its WebSocket lobby, all through the gateway's one port.
        await enter(browser, page, "Ann")
        self.assertEqual(await browser.text_of("#me"), "Ann")

    async def test_a_browser_enters_the_lobby_through_a_route_that_terminates_tls(self) -> None:
        """Chromium offers ALPN (h2, http/1.1) on every TLS connection: the gateway's
        terminating route goes on with no protocol chosen (it refused the handshake,
        ERR_SSL_PROTOCOL_ERROR, when nothing overlapped), and the page, its files and
        its WebSocket lobby come through the one TLS port."""
        port = free_tcp_port()
        page = f"https://127.0.0.1:{port}/"
        lobby = await self.lobby("--websocket-origins", page.rstrip("/"), tls=False, web=True)
        document = rules({"a": lobby})
        document["routes"].insert(0, {"kind": "tls", "terminate": True})
        _gateway, _port, ops = await self.gateway(
            "--certificate", self.cert, "--private-key", self.key, rules=document, port=port
        )
        browser = await open_browser(self)
        await enter(browser, page, "Ann")
        self.assertEqual(await browser.text_of("#me"), "Ann")
        self.assertGreater((await self.status(ops))["terminated"], 0)

    async def test_tls_terminated_at_the_gateway_is_routed_on_the_hello_realm(self) -> None:
        lobbies = {"a": await self.lobby(tls=False), "b": await self.lobby(tls=False)}
        document = rules(lobbies, realms=True)
        document["routes"].insert(0, {"kind": "tls", "terminate": True})
        _gateway, port, ops = await self.gateway("--certificate", self.cert, "--private-key",
                                                 self.key, rules=document)  # fmt: skip
        for realm, lobby in (("us", "b"), ("eu", "a"), ("us", "b")):
            before = (await self.status(ops))["backends"][lobby]["routed"]
            client = await self.tls(port)  # verifies the gateway's certificate
            welcome = await client.protocol.request({"type": "hello", "name": "T", "realm": realm})
            self.assertEqual(welcome["type"], "welcome")
            self.assertEqual((await self.status(ops))["backends"][lobby]["routed"], before + 1)
            await client.close()
        # A client offering ALPN, as browsers and curl do: no protocol chosen, not refused.
        chosen, reply = await deferToThread(
            alpn_visit, port, self.cert, ["h2", "http/1.1"],
            b'{"type":"hello","name":"A","realm":"eu","id":1}\n',
        )  # fmt: skip
        self.assertIsNone(chosen)
        self.assertEqual(json.loads(reply.split(b"\n")[0])["type"], "welcome")
        status = await self.status(ops)
        self.assertEqual(status["terminated"], 4)
        async def all_closed() -> bool:  # each closed (its TLS layer and what is inside)
            return not (await self.status(ops))["connections"]

        await until(all_closed, "every connection closed")

    async def test_two_client_addresses_are_two_for_the_lobby(self) -> None:
        lobby = await self.lobby("--limit", "max-connections-per-ip=1")
        _gateway, port, _ops = await self.gateway(rules=rules({"a": lobby}))
        first = await self.tls(port, "127.0.0.2")
        second = await self.tls(port, "127.0.0.3")
        self.assertEqual((await first.hello("Two")).name, "Two")
        self.assertEqual((await second.hello("Three")).name, "Three")
        # A second connection from 127.0.0.2 is one too many for it alone.
        third = await self.tls(port, "127.0.0.2")
        with self.assertRaises(Exception):  # noqa: B017 (closed by the lobby, however said)
            await third.hello("Again")
        await self.output_has(lobby.process, "refused a lobby connection from 127.0.0.2")
        # Only the gateway may say where a connection comes from.
        forger = await self.plain(lobby.port, "127.0.0.4")
        forger.protocol.transport.write(b"PROXY TCP4 198.51.100.1 127.0.0.1 1 2\r\n")  # type: ignore[union-attr]
        await self.output_has(lobby.process, "connection from 127.0.0.4 refused: a PROXY header "
                                             "from an address not in --trusted-proxy")  # fmt: skip

    async def test_a_rule_change_is_in_force_for_new_connections_once_published(self) -> None:
        lobbies = {"a": await self.lobby(tls=False), "b": await self.lobby(tls=False)}
        await self.redis_call("SET", "vinom:gateway:rules", json.dumps(rules(lobbies)))
        gateway, port, ops = await self.gateway()
        await self.output_has(gateway, "in force")
        # Established players, one on each lobby (round robin).
        established = [await self.plain(port) for _ in range(2)]
        for i, client in enumerate(established):
            await client.protocol.request({"type": "hello", "name": f"Old{i}", "realm": "eu"})
        self.assertEqual([await self.lobby_connections(lobby) for lobby in lobbies.values()],
                         [1, 1])  # fmt: skip
        loaded = (await self.status(ops))["rules_loaded"]
        await self.redis_call("SET", "vinom:gateway:rules",
                              json.dumps(rules(lobbies, realms=True)))  # fmt: skip
        changed = reactor.seconds()
        await self.redis_call("PUBLISH", "vinom:gateway:reload", "rules")
        # In force (as the gateway's own count says), and from then on every new
        # player of realm eu reaches lobby a (round robin would send one in two to
        # b). How soon is a figure, printed, not asserted: a busy machine's.
        async def reloaded() -> bool:
            return bool((await self.status(ops))["rules_loaded"] != loaded)

        await until(reloaded, lambda: f"the rule change in force:\n{gateway.text}", every=0.01)
        took = reactor.seconds() - changed
        print(f"\nrule change in force after {took * 1000:.0f} ms", file=sys.stderr)
        self.assertTrue(await self.all_follow(port, ops, "eu", "a"))
        # Established connections were not dropped: they still answer.
        for client in established:
            self.assertEqual((await client.ping())["type"], "pong")
        # A bad rule set is refused in one line; the realm rule stays in force.
        await self.redis_call("SET", "vinom:gateway:rules", '{"backends": {}}')
        await self.redis_call("PUBLISH", "vinom:gateway:reload", "rules")
        await self.output_has(gateway, "refused, the previous one stays")
        self.assertEqual((await self.status(ops))["rules_refused"], 1)
        self.assertTrue(await self.all_follow(port, ops, "us", "b"))
        for client in established:
            self.assertEqual((await client.ping())["type"], "pong")

    async def test_a_killed_lobby_is_put_out_by_its_health_checks_and_back_when_healthy(
        self,
    ) -> None:
        lobbies = {"a": await self.lobby(), "b": await self.lobby()}
        interval = 1.0
        _gateway, port, ops = await self.gateway(rules=rules(lobbies, interval=interval))
        lobbies["b"].process.transport.signalProcess("KILL")
        killed = reactor.seconds()

        async def up() -> bool:
            return bool((await self.status(ops))["backends"]["b"]["up"])

        async def out() -> bool:
            return not await up()

        await until(out, "the killed lobby out", every=0.02)
        # About one interval plus the check's timeout (0.5 s): a figure, printed.
        out_after = reactor.seconds() - killed
        print(f"\nkilled lobby out after {out_after * 1000:.0f} ms", file=sys.stderr)
        # Every new player now reaches the live lobby.
        for i in range(4):
            client = await self.tls(port)
            self.assertEqual((await client.hello(f"After{i}")).name, f"After{i}")
        self.assertFalse((await self.status(ops))["backends"]["b"]["up"])
        # A lobby healthy again on b's address is back in.
        await self.lobby(like=lobbies["b"])
        await until(up, "the lobby back in", every=0.02)
        routed = (await self.status(ops))["backends"]["b"]["routed"]
        for i in range(2):
            client = await self.tls(port)
            self.assertEqual((await client.hello(f"Back{i}")).name, f"Back{i}")
        self.assertEqual((await self.status(ops))["backends"]["b"]["routed"], routed + 1)

    async def test_players_of_a_killed_lobby_reconnect_through_the_gateway(self) -> None:
        await self.start("host", "--limit", "session-timeout=2", ports=2)
        lobbies = {"a": await self.lobby(), "b": await self.lobby()}
        _gateway, port, ops = await self.gateway(rules=rules(lobbies, interval=0.5))
        address = LobbyAddress("127.0.0.1", port, self.cert)
        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=self.cert)
        welcome = await lobby.hello("flaky")
        # Round robin: the next player is on the other lobby.
        doomed = next(
            n for n, b in (await self.status(ops))["backends"].items() if b["connections"]
        )
        steady = Deferred.fromCoroutine(
            play_bot(reactor, address, GAME, "steady", rng=random.Random(1))
        )
        found = await lobby.queue("tictactoe")
        session = await connect_game(reactor, found)
        lobbies[doomed].process.transport.signalProcess("KILL")
        # The gateway closes the player's lobby connection with its lobby's; the player
        # comes back through the gateway, which sends them to the lobby still up.
        async def put_out() -> bool:
            return not (await self.status(ops))["backends"][doomed]["up"]

        await until(put_out, "the killed lobby put out")
        again = await connect_lobby(reactor, "127.0.0.1", port, trust=self.cert)
        refound = await again.reconnect(welcome.player_id, welcome.secret)
        self.assertEqual(refound.game_id, found.game_id)
        # With the fresh token the player resumes on the game host, and plays to the end.
        assert session.protocol is not None and session.protocol.transport is not None
        await session.protocol.transport.stopListening()
        final = await play_on(session, refound, welcome.player_id, random.Random(2))
        self.assertEqual(final["p"], "finished")
        self.assertEqual((await steady).outcome, "finished")
        await session.disconnect()
        await again.close()

    async def test_a_draining_lobby_gets_no_new_player_through_the_gateway(self) -> None:
        # The rules name no health_path: the default check (docs/gateway.md, "Health").
        await self.start("host", ports=4)
        lobbies = {"a": await self.lobby("--limit", "drain-timeout=60"), "b": await self.lobby()}
        _gateway, port, ops = await self.gateway(rules=rules(lobbies, interval=0.5))
        draining = lobbies["a"]
        # Two players of lobby a in a match that runs on (they do not act): it keeps
        # the lobby up, draining, for the whole test.
        sessions = []
        for i in range(2):
            # (Not from 127.0.0.1: the lobby trusts that address for PROXY headers.)
            client = await self.tls(draining.port, source=f"127.0.0.{2 + i}")
            await client.hello(f"held{i}")
            sessions.append(Deferred.fromCoroutine(self._queue_and_join(client)))
        for session in await gatherResults(sessions):
            await until(lambda session=session: session.state is not None, "the match's state")  # type: ignore[misc]
        draining.process.transport.signalProcess("TERM")
        # The lobby is alive (its /health answers 200) and takes no new player (/ready).
        async def unready() -> bool:
            return (await http_get(f"http://127.0.0.1:{draining.ops}/ready"))[0] == 503

        await until(unready, "/ready to answer 503")
        self.assertEqual((await http_get(f"http://127.0.0.1:{draining.ops}/health"))[0], 200)
        # The gateway puts it out at its next check: a readiness check, not a liveness one.
        async def put_out() -> bool:
            return not (await self.status(ops))["backends"]["a"]["up"]

        await until(put_out, "the gateway to put the draining lobby out", timeout=20)
        before = (await self.status(ops))["backends"]
        # The lobby connections the new players make, by port: one each, and one
        # more per `reconnect` (a first connect to the game host that failed, as it
        # may on a busy machine, goes back through the lobby).
        made: collections.Counter[int] = collections.Counter()
        self.patch(failover, "connect_lobby", counting(made))
        # New players through the gateway all reach lobby b at once: none is told
        # `server_draining` and sent on to try again.
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(
                reactor, LobbyAddress("127.0.0.1", port, self.cert), GAME, f"new{i}",
                rng=random.Random(i)))
            for i in range(4)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4, reports)
        self.assertEqual([r.lobby_changes for r in reports], [0] * 4, reports)
        after = (await self.status(ops))["backends"]
        self.assertEqual(after["a"]["routed"], before["a"]["routed"])
        # (A `reconnect` whose fresh token the host turns away is followed by another:
        # BotReport.reconnects counts the one that took.)
        again = sum(r.reconnects for r in reports)
        self.assertGreaterEqual(made[port], 4 + again, reports)
        if not again:
            self.assertEqual(made[port], 4, reports)
        self.assertEqual(after["b"]["routed"], before["b"]["routed"] + made[port])
        # (Lobby a drained all along: its players' match still runs.)
        self.assertFalse(draining.process.output.ended.called, draining.process.text)

    async def _queue_and_join(self, client: LobbyClient) -> Any:
        found = await client.queue(GAME.name)
        session = await connect_game(reactor, found)
        self.addCleanup(session.disconnect)
        return session

    async def test_sigterm_drains_established_connections_then_exits_0(self) -> None:
        lobby = await self.lobby(tls=False)
        gateway, port, _ = await self.gateway("--limit", "drain-timeout=30",
                                              rules=rules({"a": lobby}))  # fmt: skip
        client = await self.plain(port)
        await client.hello("Stays")
        gateway.transport.signalProcess("TERM")
        await self.output_has(gateway, "draining")
        # No new connections...
        while True:
            try:
                refused = await self.plain(port)
            except ConnectionRefusedError:
                break
            await refused.close()
            await deferLater(reactor, 0.05, lambda: None)
        # ... while the established one keeps working.
        self.assertEqual((await client.ping())["type"], "pong")
        self.assertFalse(gateway.output.ended.called)
        await client.close()
        code, _signal = await gateway.output.ended
        self.assertEqual(code, 0, gateway.text)


class FileRulesTests(GatewayTestCase):
    async def test_sighup_reads_the_rules_file_again_and_keeps_the_old_on_a_mistake(self) -> None:
        lobbies = {"a": await self.lobby(tls=False), "b": await self.lobby(tls=False)}
        gateway, port, ops = await self.gateway(rules=rules({"a": lobbies["a"]}))
        path = os.path.join(gateway.data_dir, "rules.json")
        with open(path, "w") as f:
            f.write('{"backends": {"a": {"address": "nowhere"}}}')
        gateway.transport.signalProcess("HUP")
        await self.output_has(gateway, "backends.a.address: 'nowhere' is not an address")
        self.assertTrue(await self.all_follow(port, ops, "any", "a"))
        with open(path, "w") as f:
            json.dump(rules({"b": lobbies["b"]}), f)
        gateway.transport.signalProcess("HUP")
        await self.output_has(gateway, f"rule set from {path} in force")
        self.assertTrue(await self.all_follow(port, ops, "any", "b"))
        self.assertEqual((await self.status(ops))["rules_refused"], 1)

    async def test_sighup_with_the_file_unchanged_says_so_in_one_line(self) -> None:
        lobby = await self.lobby(tls=False)
        gateway, _port, ops = await self.gateway(rules=rules({"a": lobby}))
        path = os.path.join(gateway.data_dir, "rules.json")
        gateway.transport.signalProcess("HUP")
        await self.output_has(gateway, f"rule set from {path} read again: unchanged, the one "
                                       "in force stays (1 backend(s), 1 route(s))")  # fmt: skip
        self.assertEqual(gateway.text.count("read again: unchanged"), 1, gateway.text)
        status = await self.status(ops)
        self.assertEqual((status["rules_loaded"], status["rules_refused"]), (1, 0))


class RedisRulesTests(GatewayTestCase):
    async def test_a_missing_rule_set_is_said_once_and_sighup_reads_redis_again(self) -> None:
        lobby = await self.lobby(tls=False)
        gateway, port, ops = await self.gateway()
        # No rule set in Redis yet: one line, not one per refresh (every 5 s).
        await self.output_has(gateway, "gateway: no rule set in Redis at vinom:gateway:rules: "
                                       "every connection is refused (no_route) until one is "
                                       "SET there")  # fmt: skip
        gateway.transport.signalProcess("HUP")
        # SIGHUP reads Redis at once (without a PUBLISH), and does not end the gateway.
        await self.redis_call("SET", "vinom:gateway:rules", json.dumps(rules({"a": lobby})))
        gateway.transport.signalProcess("HUP")
        await self.output_has(gateway, "rule set from Redis vinom:gateway:rules in force")
        self.assertTrue(await self.all_follow(port, ops, "any", "a"))
        self.assertEqual(gateway.text.count("no rule set in Redis"), 1, gateway.text)
        # The key deleted: said once; the rule set in force stays.
        await self.redis_call("DEL", "vinom:gateway:rules")
        gateway.transport.signalProcess("HUP")
        await self.output_has(gateway, "no rule set in Redis at vinom:gateway:rules any more; "
                                       "the one in force stays")  # fmt: skip
        self.assertTrue(await self.all_follow(port, ops, "any", "a"))
        self.assertFalse(gateway.output.ended.called, gateway.text)
