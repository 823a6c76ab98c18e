"""The gateway role's options: an operator's mistake is one line before anything listens."""

from __future__ import annotations

import json
from ipaddress import ip_network

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from vinom.server.options import role_options
from vinom.server.startup import StartupError
from vinom.server.tap import Options, makeService

RULES = {"backends": {"a": {"address": "127.0.0.1:7350"}}, "pools": {"p": {"backends": ["a"]}},
         "routes": [{"kind": "any", "pool": "p"}]}  # fmt: skip


class GatewayOptionsTests(SynchronousTestCase):
    def parse(self, *args: str) -> usage.Options:
        options = Options()
        options.parseOptions(["gateway", *args])
        return role_options(options)

    def rules_file(self, content: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(content)
        return path

    def test_the_gateway_needs_its_rules(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse()
        self.assertIn("twistd vinom gateway needs its rules: --gateway-rules FILE, or --redis",
                      str(caught.exception))  # fmt: skip

    def test_a_bad_rules_file_ends_the_start_in_one_line(self) -> None:
        options = self.parse("--gateway-rules", self.rules_file('{"backends": []}'))
        with self.assertRaises(StartupError) as caught:
            makeService(options, MemoryReactorClock())
        self.assertEqual(
            str(caught.exception.code),
            f"vinom: --gateway-rules {options['gateway-rules']!r}: backends: a JSON object is "
            "needed, not list",
        )

    def test_the_gateway_listens_where_it_is_told(self) -> None:
        reactor = MemoryReactorClock()
        rules = self.rules_file(json.dumps(RULES))
        options = self.parse("--gateway-rules", rules, "--gateway", "tcp:7301:interface=127.0.0.1",
                             "--ops-port", "none")  # fmt: skip
        root = makeService(options, reactor)
        root.startService()
        self.addCleanup(root.stopService)
        self.assertEqual([(port, interface) for port, _f, _b, interface in reactor.tcpServers],
                         [(7301, "127.0.0.1")])  # fmt: skip

    def test_backend_connections_come_from_the_backend_interface(self) -> None:
        # On Kubernetes the pod's address, which the lobbies' --trusted-proxy covers.
        reactor = MemoryReactorClock()
        options = self.parse("--gateway-rules", self.rules_file(json.dumps(RULES)),
                             "--gateway", "tcp:7301:interface=127.0.0.1", "--ops-port", "none",
                             "--backend-interface", "127.0.0.5")  # fmt: skip
        root = makeService(options, reactor)
        root.startService()
        self.addCleanup(root.stopService)
        factory = reactor.tcpServers[0][1]
        client = IPv4Address("TCP", "198.51.100.7", 5000)
        connection = factory.buildProtocol(client)
        connection.makeConnection(StringTransport(peerAddress=client))
        before = len(reactor.tcpClients)  # (the health check's connection among them)
        connection.dataReceived(b'{"type":"hello","name":"Ann"}\n')
        routed = reactor.tcpClients[before:]
        self.assertEqual([(c[0], c[1], c[4]) for c in routed],
                         [("127.0.0.1", 7350, ("127.0.0.5", 0))])  # fmt: skip
        with self.assertRaises(usage.UsageError):
            self.parse("--gateway-rules", self.rules_file(json.dumps(RULES)),
                       "--backend-interface", "gateway.local")  # fmt: skip

    def test_the_gateways_redis_takes_the_same_files_as_a_lobbys(self) -> None:
        # A gateway reads its rules from the cluster's Redis: behind Sentinel, with
        # a password for the sentinels too, as the lobbies and hosts reach it.
        password = self.rules_file("redis-secret\n")
        sentinels = self.rules_file("sentinel-secret\n")
        options = self.parse("--redis", "redis+sentinel://127.0.0.1:26379/mymaster/0",
                             "--redis-password-file", password,
                             "--redis-sentinel-password-file", sentinels)  # fmt: skip
        self.assertEqual(options["redis-settings"].password, "redis-secret")
        self.assertEqual(options["redis-settings"].sentinel_password, "sentinel-secret")
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--redis", "redis://127.0.0.1:6379/0", "--redis-ca-file", password)
        self.assertEqual(str(caught.exception), "--redis-ca-file is for a rediss:// (TLS) --redis")

    def test_trusted_proxies_are_ip_addresses_or_networks(self) -> None:
        options = Options()
        options.parseOptions(["--trusted-proxy", "10.0.0.5, ::1, 10.244.0.0/16",
                              "--websocket", "none"])  # fmt: skip
        self.assertEqual(options["trusted-proxy"],
                         frozenset(map(ip_network, ["10.0.0.5/32", "::1/128", "10.244.0.0/16"])))
        for wrong in ("gateway.local", "10.244.0.1/16", "10.0.0.0/33"):
            with self.subTest(wrong=wrong), self.assertRaises(usage.UsageError) as caught:
                Options().parseOptions(["--trusted-proxy", wrong])
            self.assertIn(f"{wrong!r} is not an IP address or network", str(caught.exception))


class GatewayRelayOptionsTests(SynchronousTestCase):
    """The relay's options on `twistd vinom gateway`: each mistake one line."""

    def parse(self, *args: str) -> usage.Options:
        rules = self.mktemp()
        with open(rules, "w") as f:
            json.dump(RULES, f)
        options = Options()
        options.parseOptions(["gateway", "--gateway-rules", rules, *args])
        return role_options(options)

    def key(self) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"k" * 32)
        return path

    def refused(self, *args: str) -> str:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse(*args)
        return str(caught.exception)

    def test_relay_ports_need_the_key(self) -> None:
        self.assertIn("--relay-ports needs --relay-key-file", self.refused("--relay-ports", "7400"))

    def test_a_bad_port_range_names_relay_ports(self) -> None:
        said = self.refused("--relay-ports", "x", "--relay-key-file", self.key())
        self.assertIn("--relay-ports must look like 7400-7499", said)

    def test_the_key_alone_is_refused(self) -> None:
        self.assertIn("give --relay-ports too", self.refused("--relay-key-file", self.key()))

    def test_a_lobby_relay_option_on_a_gateway_is_refused(self) -> None:
        # The gateway has no --relay of its own (getopt reads it as a prefix of its
        # --relay-... options).
        self.assertIn("option --relay not", self.refused(
            "--relay", "127.0.0.1:7400", "--relay-key-file", self.key()))  # fmt: skip

    def test_relay_ports_are_the_gateways_only(self) -> None:
        options = Options()
        with self.assertRaises(usage.UsageError) as caught:
            options.parseOptions(["host", "--relay-ports", "7400"])
        self.assertIn("option --relay-ports not recognized", str(caught.exception))

    def test_the_relay_runs_in_the_gateway_process(self) -> None:
        options = self.parse("--relay-ports", "7400-7407", "--relay-key-file", self.key(),
                             "--relay-interface", "127.0.0.1")  # fmt: skip
        self.assertEqual(options["relay-port-range"], range(7400, 7408))
        root = makeService(options, MemoryReactorClock())
        self.assertIn("relay", [child.name for child in root])
