"""The lobby's side of the UDP relay: `--relay` and its key, checked in one line;
`match_found` sends players to the relay with a route token to the game host; the
client library refuses a malformed `relay`."""

from __future__ import annotations

import base64
import json
import os

from twisted.internet.testing import Clock, MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vinom.client.udp import connect_game_client
from vinom.lobby.delivery import RelayRouting, TokenDelivery, UnroutableHost
from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.protocol.config import IssuerConfig, ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.route_token import Route, RouteTokenIssuer, open_route_token
from vinom.protocol.tokens import TokenIssuer, open_private_token, token_associated_data
from vinom.server.options import role_options
from vinom.server.roles import relay_refuses
from vinom.server.tap import Options

RELAY_KEY = bytes(range(32, 64))
WALL = 1_700_000_000.0


def parse(*argv: str) -> usage.Options:
    """The options of the role `argv` runs (its subcommand's, else the whole server's)."""
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


class OptionTests(SynchronousTestCase):
    def key_file(self, content: bytes = RELAY_KEY) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o600)
        return path

    def test_relay_with_its_key(self) -> None:
        options = parse("--relay", "relay.example.com:7800-7809",
                        "--relay-key-file", self.key_file(RELAY_KEY.hex().encode()))  # fmt: skip
        self.assertEqual(options["relay"], ("relay.example.com", range(7800, 7810)))
        self.assertEqual(options["relay-key"], RELAY_KEY)
        self.assertEqual(parse("--relay", "[2001:db8::1]:7800", "--relay-key-file",
                               self.key_file())["relay"], ("2001:db8::1", range(7800, 7801)))

    def test_mistakes_are_one_line(self) -> None:
        cases = {
            ("--relay", "relay.example.com:7800"): "--relay and --relay-key-file go together",
            ("--relay-key-file", self.key_file()): "--relay and --relay-key-file go together",
            ("--relay", "relay.example.com"): "--relay must look like",
            ("--relay", "relay:7809-7800"): "--relay must look like",
            ("--relay", "relay:70000"): "--relay must look like",
            ("--relay", "relay:7800", "--relay-key-file", self.key_file(b"short")):
                "--relay-key-file",
            ("--relay", "relay:7800", "--relay-key-file", self.key_file(),
             "--public-host", "game.example.com"): "announce an IP address",
        }  # fmt: skip
        for argv, message in cases.items():
            e = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(message, str(e))
            self.assertNotIn("\n", str(e))

    def test_a_relaying_lobby_refuses_hosts_announcing_a_name(self) -> None:
        class Host:
            def __init__(self, public_host: str) -> None:
                self.public_host = public_host

        refuses = relay_refuses(parse("lobby", "--redis", "redis://127.0.0.1",
                                      "--token-key-file", self.key_file(),
                                      "--relay", "relay:7800", "--relay-key-file",
                                      self.key_file()))  # fmt: skip
        assert refuses is not None
        self.assertIsNone(refuses(Host("10.0.0.7")))
        self.assertIsNone(refuses(Host("fd00::7")))
        reason = refuses(Host("host-7.internal"))
        assert reason is not None
        self.assertIn("'host-7.internal' (its --public-host), not an IP address", reason)
        self.assertNotIn("\n", reason)
        self.assertIsNone(relay_refuses(parse()))


class MatchFoundTests(SynchronousTestCase):
    def delivery(self, relay: RelayRouting | None) -> TokenDelivery:
        clock = Clock()
        clock.advance(WALL)
        issuer = TokenIssuer(IssuerConfig(ProtocolConfig(token_key=bytes(32))))
        return TokenDelivery(issuer, clock, relay=relay)

    def frame(self, relay: RelayRouting | None) -> dict[str, object]:
        ticket = Ticket("p-0123456789abcdef", "ada", "tictactoe", None, 0.0)
        other = Ticket("p-fedcba9876543210", "bo", "tictactoe", None, 0.0)
        match = Match("m-0123456789abcdef", "tictactoe", (ticket, other), 0.0)
        return self.delivery(relay).match_found_frame(match, ticket, HostAddress("10.0.0.7", 7400))

    def test_a_host_announcing_a_name_cannot_be_relayed(self) -> None:
        relay = RelayRouting("relay.example.com", range(7800, 7810),
                             RouteTokenIssuer(RELAY_KEY, lifetime=60.0))  # fmt: skip
        ticket = Ticket("p-0123456789abcdef", "ada", "tictactoe", None, 0.0)
        match = Match("m-0123456789abcdef", "tictactoe", (ticket,), 0.0)
        e = self.assertRaises(UnroutableHost, self.delivery(relay).match_found_frame, match,
                              ticket, HostAddress("host-7.internal", 7400))  # fmt: skip
        self.assertIn("'host-7.internal' announces a name", str(e))

    def test_without_a_relay_players_go_to_the_host(self) -> None:
        frame = self.frame(None)
        self.assertEqual((frame["host"], frame["port"]), ("10.0.0.7", 7400))
        self.assertNotIn("relay", frame)

    def test_behind_a_relay_players_go_to_it_with_a_token_to_the_host(self) -> None:
        relay = RelayRouting("relay.example.com", range(7800, 7810),
                             RouteTokenIssuer(RELAY_KEY, lifetime=60.0))  # fmt: skip
        frame = self.frame(relay)
        routed = frame["relay"]
        assert isinstance(routed, dict)
        self.assertEqual((frame["host"], frame["port"]), (routed["host"], routed["port"]))
        self.assertEqual(routed["host"], "relay.example.com")
        self.assertIn(routed["port"], range(7800, 7810))
        route = open_route_token(base64.b64decode(routed["token"]), new_aead(RELAY_KEY))
        self.assertEqual(route, Route("10.0.0.7", 7400, int(WALL) + 60))
        # The players are told the relay's address only; the connect token's sealed
        # part (which only the host opens) still names the host, which checks it.
        token = frame["token"]
        assert isinstance(token, dict)
        self.assertEqual(token["hosts"], [{"host": routed["host"], "port": routed["port"]}])
        self.assertNotIn("10.0.0.7", json.dumps(frame))
        sealed = open_private_token(
            new_aead(bytes(32)), base64.b64decode(token["nonce"]),
            base64.b64decode(token["token"]),
            token_associated_data(token["version"], token["application_id"],
                                  token["expires_at"]),
        )  # fmt: skip
        assert sealed is not None
        self.assertEqual(sealed.hosts, (HostAddress("10.0.0.7", 7400),))
        # Every player, every match_found: a token of its own.
        self.assertNotEqual(self.frame(relay)["relay"], routed)


class ClientTests(TestCase):
    def test_a_malformed_relay_is_refused_before_anything_is_sent(self) -> None:
        token = TokenIssuer(IssuerConfig(ProtocolConfig(token_key=bytes(32)))).issue(
            "p-0123456789abcdef", "m-0123456789abcdef", HostAddress("10.0.0.7", 7400), WALL)
        good = base64.b64encode(bytes(51)).decode()
        for relay in ({"host": "r", "port": 0, "token": good},
                      {"host": "", "port": 7800, "token": good},
                      {"host": "r", "port": 7800, "token": "not base64!"},
                      {"host": "r", "port": 7800, "token": base64.b64encode(b"x").decode()}):
            # MemoryReactorClock has no listenUDP: a ValueError (not an AttributeError)
            # says the relay was refused before any socket was asked for.
            failure = self.failureResultOf(
                connect_game_client(MemoryReactorClock(), token, relay=relay)
            )
            self.assertIsInstance(failure.value, ValueError)
