"""The UDP relay inside `twistd vinom gateway --relay-ports ...`: one process, one
public TCP port and one public UDP port range in front of the lobbies and the game hosts.

Real processes on a real Redis: a game host, a lobby that sends its players to the
relay (`--relay`), and a gateway running both its TCP routing and the relay. Bots on
vinom's client library finish a match through the gateway alone (TLS passed through
to the lobby, game datagrams relayed to the host); the gateway's /metrics carries the
relay's counters, and its log has no line per route socket. SIGTERM drains: the relay
forwards on for an established route until the drain ends, then the process exits 0.
"""

# slow: starts child processes

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME, Process
from tests.gateway.relay_support import forwarded, gateway_relay_options
from tests.gateway.test_gateway_processes import GatewayTestCase, rules
from tests.gateway.test_relay_processes import Socket
from tests.server.test_twistd import ROOT, Collect
from tests.support.ports import free_udp_range
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress, play_bot
from vinom.protocol.route_token import RouteTokenIssuer


class GatewayRelayTests(GatewayTestCase):
    async def relayed_cluster(self, *gateway_args: str) -> tuple[int, int, int, Process]:
        """A host, a lobby relaying to the gateway's UDP port, and the gateway."""
        relay_port = free_udp_range(1)
        await self.start("host", "--udp-interface", "127.0.0.1", "--public-host", "127.0.0.1")
        lobby = await self.lobby("--relay", f"127.0.0.1:{relay_port}",
                                 "--relay-key-file", self.key_file)  # fmt: skip
        gateway, port, ops = await self.gateway(
            *gateway_relay_options(relay_port, self.key_file), *gateway_args,
            rules=rules({"a": lobby}),
        )  # fmt: skip
        return relay_port, port, ops, gateway

    async def gather(self, coroutines: Any) -> list[Any]:
        return await gatherResults([Deferred.fromCoroutine(c) for c in coroutines])

    async def play_two_bots(self, port: int, prefix: str) -> None:
        """Two bots play one match through the gateway's port and its relay, to its end."""
        reports = await self.gather(
            play_bot(reactor, LobbyAddress("127.0.0.1", port, self.cert), GAME, f"{prefix}{i}",
                     rng=random.Random(i))
            for i in range(2)
        )  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"], reports)

    async def test_bots_finish_a_match_through_one_gateway_process(self) -> None:
        _relay, port, ops, gateway = await self.relayed_cluster()
        listening_lines = gateway.text.count("starting on")
        await self.play_two_bots(port, "r")
        self.assertEqual(await self.metric(ops, "vinom_relay_routes_opened_total"), 2)
        self.assertGreater(await self.metric(ops, forwarded("to_host")), 4)
        self.assertGreater(await self.metric(ops, forwarded("to_player")), 4)
        self.assertEqual((await self.status(ops))["backends"]["a"]["routed"], 2)
        # The routes' sockets, opened and closed, wrote no line (a Twisted UDP port
        # writes two: "... starting on N" and "(UDP Port N Closed)").
        self.assert_no_route_socket_lines(gateway, listening_lines)

    async def test_json_logs_have_no_line_per_route_socket_either(self) -> None:
        _relay, port, ops, gateway = await self.relayed_cluster("--log-format", "json")
        listening_lines = gateway.text.count("starting on")
        await self.play_two_bots(port, "j")
        self.assertEqual(await self.metric(ops, "vinom_relay_routes_opened_total"), 2)
        self.assertIn('"message": ', gateway.text)
        self.assert_no_route_socket_lines(gateway, listening_lines)

    def assert_no_route_socket_lines(self, gateway: Process, listening_lines: int) -> None:
        """No line more saying a socket listens than before the players came (the
        gateway's own ports), none saying one closed, and none from a route's socket."""
        self.assertGreater(listening_lines, 0, gateway.text)
        self.assertEqual(gateway.text.count("starting on"), listening_lines, gateway.text)
        self.assertNotIn("Closed", gateway.text)
        self.assertNotIn("relay-route", gateway.text)

    async def test_sigterm_keeps_established_routes_forwarding_until_the_drain_ends(
        self,
    ) -> None:
        relay_port = free_udp_range(1)
        lobby = await self.lobby(tls=False)
        gateway, _port, _ops = await self.gateway(
            *gateway_relay_options(relay_port, self.key_file), "--limit", "drain-timeout=60",
            rules=rules({"a": lobby}),
        )  # fmt: skip
        relay = ("127.0.0.1", relay_port)
        host, player = await self.udp_socket(), await self.udp_socket()
        with open(self.key_file, "rb") as f:
            token = RouteTokenIssuer(f.read()).issue(*host.address, reactor.seconds())
        player.send(token + b"ping", relay)
        await until(lambda: bool(host.received))
        route_socket = host.received[0][1]
        gateway.transport.signalProcess("TERM")
        await self.output_has(gateway, "relay: draining: 1 route")
        # Draining: the established route still carries both ways.
        for n in range(3):
            player.send(token + b"again", relay)
            await until(lambda n=n: len(host.received) == 2 + n)
            host.send(b"pong", route_socket)
            await until(lambda n=n: len(player.received) == 1 + n)
            self.assertFalse(gateway.output.ended.called)
        self.assertEqual(player.received[-1], (b"pong", relay))
        # The player stops sending: its route is forgotten after --relay-idle-timeout,
        # and the drain ends then, well before --drain-timeout.
        code, _signal = await gateway.output.ended
        self.assertEqual(code, 0, gateway.text)
        # Because the route ended, not at the drain timeout: the log says which.
        self.assertIn("relay: draining: 1 route(s) may stay up to 60 s", gateway.text)
        self.assertNotIn("relay: drain over", gateway.text)

    async def udp_socket(self) -> Socket:
        protocol = Socket()
        port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return protocol

    async def test_a_busy_relay_port_or_a_relay_option_mistake_is_one_line(self) -> None:
        rules_file = os.path.abspath(self.mktemp())
        with open(rules_file, "w") as f:
            json.dump({"backends": {"a": {"address": "127.0.0.1:7350"}},
                       "pools": {"p": {"backends": ["a"]}},
                       "routes": [{"kind": "any", "pool": "p"}]}, f)  # fmt: skip
        busy = await self.udp_socket()
        port = busy.address[1]
        common = ["--gateway-rules", rules_file, "--gateway", "tcp:0:interface=127.0.0.1",
                  "--ops-port", "none", "--relay-interface", "127.0.0.1"]  # fmt: skip
        cases = [
            (["--relay-ports", str(port), "--relay-key-file", self.key_file], 1,
             f"vinom: cannot listen on udp 127.0.0.1:{port} for --relay-ports: "
             "[Errno 98] Address already in use"),
            (["--relay-ports", str(port)], 1, "vinom: --relay-ports needs --relay-key-file"),
            (["--relay-ports", "9-1", "--relay-key-file", self.key_file], 1,
             "vinom: --relay-ports: the range '9-1' is inverted"),
            (["--relay-ports", str(port), "--relay-key-file", self.key_file,
              "--relay-max-routes", "0"], 1, "--relay-max-routes"),
        ]  # fmt: skip
        for argv, status, said in cases:
            output = await self.twistd_gateway([*common, *argv])
            code, _signal = await output.ended
            text = output.output.decode(errors="replace")
            self.assertEqual(code, status, text)
            self.assertIn(said, text)
            self.assertNotIn("Traceback", text)
            self.assertEqual(len([line for line in text.splitlines() if said in line]), 1, text)

    async def twistd_gateway(self, args: list[str]) -> Collect:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        output = Collect()
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        transport = reactor.spawnProcess(
            output, sys.executable,
            [sys.executable, "-c", self.program, "-n", "--pidfile=", "vinom",
             "gateway", "--data-dir", data_dir, *args], env=env, path=data_dir,
        )  # fmt: skip

        async def kill() -> None:
            if not output.ended.called:
                transport.signalProcess("KILL")
                await output.ended

        self.addCleanup(kill)
        return output
