"""The gateway role's options: an operator's mistake is one line before anything listens."""

from __future__ import annotations

import json

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from vinom.server.startup import StartupError
from vinom.server.tap import Options, makeService

RULES = {"backends": {"a": {"address": "127.0.0.1:7350"}}, "pools": {"p": {"backends": ["a"]}},
         "routes": [{"kind": "any", "pool": "p"}]}  # fmt: skip


class GatewayOptionsTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--role", "gateway", *args])
        return options

    def rules_file(self, content: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(content)
        return path

    def test_the_gateway_needs_its_rules(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse()
        self.assertIn("--role gateway needs its rules: --gateway-rules FILE, or --redis",
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

    def test_trusted_proxies_are_ip_addresses(self) -> None:
        options = Options()
        options.parseOptions(["--trusted-proxy", "10.0.0.5, ::1", "--websocket", "none"])
        self.assertEqual(options["trusted-proxy"], frozenset({"10.0.0.5", "::1"}))
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--trusted-proxy", "gateway.local"])
        self.assertIn("'gateway.local' is not an IP address", str(caught.exception))
