"""The UDP relay as a real process (`twistd -n vinom relay`) in front of a real
`twistd vinom` whose game host listens on 127.0.0.1 at a port only the relay is sent
to: players on vinom's client library finish a match through it, and what should go
nowhere (random datagrams, forged tokens, a token replayed from another address)
reaches neither the host nor its sender, as real sockets and the relay's counters see."""

# slow: starts child processes

from __future__ import annotations

import base64
import os
import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.gateway.relay_support import RELAY, RelayProcess, dropped, forwarded
from tests.server.test_ops import http_get
from tests.server.test_startup import only_line
from tests.server.test_twistd import RUN_TWISTD
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.waiting import until
from vinom.client.bots import BotDriver
from vinom.client.game import connect_game
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry
from vinom.protocol.route_token import ROUTE_TOKEN_SIZE, RouteTokenIssuer


class Socket(DatagramProtocol):
    """A real UDP socket on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host = self.transport.getHost()
        return (host.host, host.port)

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.write(data, to)


class RelayProcessTests(RelayProcess, TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.key = os.urandom(32)
        self.key_file = os.path.abspath(self.mktemp())
        with open(self.key_file, "wb") as f:
            f.write(self.key)
        os.chmod(self.key_file, 0o600)

    async def socket(self) -> Socket:
        protocol = Socket()
        port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return protocol

    async def settle(self) -> None:
        # Loopback delivers within microseconds; a generous pause for a loaded machine
        # before concluding that nothing arrived where no count can say it was dropped
        # (a closed socket). A busy machine can only make it pass wrongly, never fail.
        await deferLater(reactor, 0.5, lambda: None)

    async def test_players_finish_a_match_through_the_relay(self) -> None:
        await self.start_relay()
        listening_lines = self.relay.output.count(b"starting on")  # its own ports
        self.assertGreater(listening_lines, 0, self.relay.output)
        udp = free_udp_range(2)
        lobby_port = free_tcp_port()
        server = self.spawn([
            "-c", RUN_TWISTD, "-n", "--pidfile=", "vinom",
            "--lobby", f"ssl:{lobby_port}:interface=127.0.0.1",
            "--udp-ports", f"{udp}-{udp + 1}", "--udp-interface", "127.0.0.1",
            "--public-host", "127.0.0.1", "--websocket", "none", "--ops-port", "none",
            "--matches", "here", "--data-dir", ".",
            "--relay", f"127.0.0.1:{self.relay_port}", "--relay-key-file", self.key_file,
        ])  # fmt: skip
        await self.spawned_says(server, "terminal clients")
        cert = os.path.join(server.data_dir, "dev-cert.pem")  # type: ignore[attr-defined]
        game = GameRegistry.from_plugins().get("tictactoe")
        clients = [await connect_lobby(reactor, "127.0.0.1", lobby_port, trust=cert)
                   for _ in "ab"]  # fmt: skip
        welcomes = [await c.hello(f"player{n}") for n, c in enumerate(clients)]
        found = await gatherResults([c.queue("tictactoe") for c in clients])
        for match in found:
            # The players are sent to the relay, with a route token; the game host's
            # port is only in the sealed part of the connect token.
            self.assertEqual((match.host, match.port), ("127.0.0.1", self.relay_port))
            assert match.relay is not None
            self.assertEqual(len(base64.b64decode(match.relay["token"])), ROUTE_TOKEN_SIZE)
            self.assertEqual(match.token["hosts"], [{"host": "127.0.0.1",
                                                     "port": self.relay_port}])  # fmt: skip
        sessions = []
        for welcome, match in zip(welcomes, found, strict=True):
            session = await connect_game(reactor, match)
            BotDriver(session, game.make_bot(welcome.player_id, random.Random(1)),
                      think_time=0.0, clock=reactor).attach()  # fmt: skip
            sessions.append(session)
        # A copy of a player's token, sent from another address while the player
        # plays: neither an answer nor a stolen route.
        thief = await self.socket()
        stolen = base64.b64decode(found[0].relay["token"])  # type: ignore[index]
        for _ in range(5):
            thief.send(stolen + os.urandom(100), ("127.0.0.1", self.relay_port))
        results = await gatherResults([s.finished for s in sessions])
        self.assertEqual({r["p"] for r in results}, {"finished"})
        for session in sessions:
            await session.disconnect()
        # The relay dropped the thief's five (counted once handled: nothing sent after).
        await self.wait_for_metric(dropped("address_mismatch"), 5)
        self.assertEqual(thief.received, [])
        self.assertEqual(await self.metric("vinom_relay_routes_opened_total"), 2)
        self.assertGreater(await self.metric(forwarded("to_host")), 4)
        self.assertGreater(await self.metric(forwarded("to_player")), 4)
        for client in clients:
            await client.close()
        # No line per relayed player: no socket but the public port said it listens
        # (a Twisted UDP port per route would say so, and say "Closed" when forgotten).
        self.assertEqual(self.relay.output.count(b"starting on"), listening_lines,
                         self.relay.output)  # fmt: skip
        self.assertNotIn(b"Closed", self.relay.output)
        self.relay.transport.signalProcess("TERM")  # type: ignore[attr-defined]
        # twistd stops on SIGTERM, then ends by that signal, as it reports a stop by one.
        self.assertEqual(await self.relay.ended, (None, 15))
        self.assertIn(b"Server Shut Down.", self.relay.output)

    async def test_what_cannot_be_routed_goes_nowhere_and_idle_routes_are_forgotten(
        self,
    ) -> None:
        await self.start_relay()
        # The operations endpoint is vinom.server.ops's, as every role's: probes answer.
        base = self.metrics_url.removesuffix("/metrics")
        self.assertEqual(await http_get(base + "/health"), (200, b"ok\n"))
        self.assertEqual(await http_get(base + "/ready"), (200, b"ready\n"))
        self.assertIn(b"process_cpu_seconds_total", await self.metrics())
        relay = ("127.0.0.1", self.relay_port)
        host, player, attacker = await self.socket(), await self.socket(), await self.socket()
        token = RouteTokenIssuer(self.key).issue(*host.address, reactor.seconds())
        # Random datagrams, a forged token, a token sealed under another key.
        rng = random.Random(7)
        junk = [rng.randbytes(rng.randrange(0, 200)) for _ in range(20)]
        damaged = bytearray(token)
        damaged[30] ^= 0x40
        forged = [bytes(damaged) + b"x", RouteTokenIssuer(os.urandom(32)).issue(
            *host.address, reactor.seconds()) + b"x"]  # fmt: skip
        for data in [*junk, *forged]:
            attacker.send(data, relay)
        # Junk long enough for a token and starting with its version is taken for a
        # token and fails its check; the rest is malformed. Each counted once handled:
        # once all are, nothing went on.
        like_tokens = sum(1 for j in junk if len(j) > ROUTE_TOKEN_SIZE and j[0] == 1)
        await self.wait_for_metric(dropped("malformed"), len(junk) - like_tokens)
        await self.wait_for_metric(dropped("bad_token"), len(forged) + like_tokens)
        self.assertEqual((host.received, attacker.received), ([], []))

        # The player's token opens a route: the host hears the payload, from a relay
        # socket, and its answer reaches the player from the relay's public port.
        player.send(token + b"ping", relay)
        await until(lambda: bool(host.received), "the datagram at the host")
        [(data, route_socket)] = host.received
        self.assertEqual(data, b"ping")
        host.send(b"pong", route_socket)
        await until(lambda: bool(player.received), "the answer at the player")
        self.assertEqual(player.received, [(b"pong", relay)])
        # The same token from the attacker's address: dropped, nothing to the host.
        attacker.send(token + b"evil", relay)
        # Someone else than the host writing to the route's socket: not relayed.
        attacker.send(b"spoofed", route_socket)
        await self.wait_for_metric(dropped("address_mismatch"), 1)
        await self.wait_for_metric(dropped("host_mismatch"), 1)
        self.assertEqual(len(host.received), 1)
        self.assertEqual((attacker.received, len(player.received)), ([], 1))

        # Idle (no datagram from the player): the route is forgotten, its socket
        # closed; the host's late answer reaches nobody.
        await self.wait_for_metric("vinom_relay_routes", 0.0)
        self.assertEqual(await self.metric("vinom_relay_routes_forgotten_total"), 1)
        host.send(b"late", route_socket)
        await self.settle()
        self.assertEqual(len(player.received), 1)

    async def test_a_busy_port_or_a_bad_option_is_one_line(self) -> None:
        await self.start_relay()
        busy = self.spawn([
            *RELAY, "--relay-ports", str(self.relay_port),
            "--relay-interface", "127.0.0.1", "--relay-key-file", self.key_file,
            "--ops-port", "none",
        ])  # fmt: skip
        self.assertEqual(await busy.ended, (1, None))
        line = only_line(self, busy.output, "cannot listen")
        self.assertTrue(
            line.endswith(f"vinom: cannot listen on udp 127.0.0.1:{self.relay_port} for "
                          "--relay-ports: [Errno 98] Address already in use"), line
        )  # fmt: skip
        for argv, said in (
            (["--relay-ports", "1"], "--relay-ports needs --relay-key-file"),
            (["--relay-key-file", self.key_file, "--relay-ports", "9-1"], "--relay-ports"),
            (["--relay-key-file", self.key_file, "--relay-idle-timeout", "0"],
             "--relay-idle-timeout"),
        ):  # fmt: skip
            bad = self.spawn([*RELAY, *argv])
            self.assertEqual(await bad.ended, (1, None))
            lines = bad.output.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertIn(said, lines[0])

    async def wait_for_metric(self, name: str, value: float) -> None:
        async def reached() -> bool:
            return await self.metric(name) == value

        await until(reached, f"{name} to be {value}", every=0.1)
