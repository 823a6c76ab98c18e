"""Backends discovered in DNS (vinom.gateway.discovery): one backend per address of a name,
on a memory reactor with Twisted's real hosts-file resolver (a file the test rewrites, as
a headless Service's records change when pods come and go)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.defer import fail
from twisted.internet.testing import MemoryReactorClock
from twisted.names import hosts
from twisted.names.error import DNSQueryTimeoutError
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.discovery import BackendDiscovery
from vinom.gateway.rules import RuleError, expand, parse_rules
from vinom.gateway.service import Gateway
from vinom.gateway.sniff import Sniffed

NAME = "lobby-pods.vinom.svc.cluster.local"
RULES = {
    "backends": {
        "lobbies": {"discover": f"{NAME}:7350", "health_port": 7390, "refresh": 5},
        "fixed": {"address": "10.0.9.9:7350"},
    },
    "pools": {"lobbies": {"backends": ["lobbies", "fixed"], "strategy": "least_connections"}},
    "routes": [{"kind": "any", "pool": "lobbies"}],
}


class ParseTests(SynchronousTestCase):
    def test_a_discovered_backend_expands_to_one_backend_per_address(self) -> None:
        rules = parse_rules(RULES)
        self.assertEqual(expand(rules, {}).pools["lobbies"].backends, ("fixed",))
        expanded = expand(rules, {"lobbies": ("10.0.0.1", "10.0.0.2")})
        self.assertEqual(expanded.pools["lobbies"].backends,
                         ("lobbies@10.0.0.1", "lobbies@10.0.0.2", "fixed"))  # fmt: skip
        pod = expanded.backends["lobbies@10.0.0.2"]
        self.assertEqual((pod.host, pod.port, pod.health), ("10.0.0.2", 7350, ("10.0.0.2", 7390)))

    def test_mistakes_are_one_line(self) -> None:
        cases = {
            "either an address or a name to discover is needed":
                {"address": "10.0.0.1:1", "discover": f"{NAME}:1"},
            "health_port: a port number is needed": {"discover": f"{NAME}:1", "health_port": 0},
            "health_port and refresh are for a discovered backend":
                {"address": "10.0.0.1:1", "refresh": 5},
            "a discovered backend takes health_port":
                {"discover": f"{NAME}:1", "health": "10.0.0.1:2"},
        }  # fmt: skip
        for message, spec in cases.items():
            document = {**RULES, "backends": {"lobbies": spec, "fixed": {"address": "1.2.3.4:5"}}}
            with self.subTest(message), self.assertRaises(RuleError) as caught:
                parse_rules(document)
            self.assertIn(message, str(caught.exception))
        with self.assertRaises(RuleError):
            parse_rules({**RULES, "backends": {"a@b": {"address": "1.2.3.4:5"}}})


class Timeouts:
    """A resolver whose every lookup times out (a DNS server that does not answer)."""

    def lookupAddress(self, name: str, timeout: Any = None) -> Any:
        return fail(DNSQueryTimeoutError(name))


class DiscoveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hosts = Path(self.mktemp())
        self.reactor = MemoryReactorClock()
        self.gateway = Gateway(parse_rules(RULES), self.reactor, sniff_limit=1024,
                               sniff_timeout=5.0, drain_timeout=30.0)  # fmt: skip
        self.resolver: Any = None

    def records(self, *addresses: str) -> None:
        self.hosts.write_text("".join(f"{a} {NAME}\n" for a in addresses) + "10.1.1.1 other\n")

    def start(self) -> BackendDiscovery:
        discovery = BackendDiscovery(self.gateway, self.reactor, lambda: self)
        self.gateway.rules_in_force = discovery.check_interval
        discovery.startService()
        self.addCleanup(discovery.stopService)
        return discovery

    def lookupAddress(self, name: str, timeout: Any = None) -> Any:
        """The resolver the discovery is given: the hosts file, or `self.resolver` once set."""
        resolver = self.resolver or hosts.Resolver(str(self.hosts).encode())
        return resolver.lookupAddress(name, timeout)

    def pool(self) -> dict[str, bool]:
        """The lobbies pool in force: backend name -> healthy."""
        names = self.gateway.router.rules.pools["lobbies"].backends
        return {n: self.gateway.router.state(n).healthy for n in names}  # type: ignore[union-attr]

    def test_pods_come_and_go_with_the_records_each_out_until_checked(self) -> None:
        self.records("10.0.0.1", "10.0.0.2")
        self.start()
        self.assertEqual(self.pool(), {"lobbies@10.0.0.1": False, "lobbies@10.0.0.2": False,
                                       "fixed": True})  # fmt: skip
        # A pod that passes its check is in, on its own: per pod, not per Service.
        self.gateway.router.state("lobbies@10.0.0.1").healthy = True  # type: ignore[union-attr]
        picked = self.gateway.router.pick(Sniffed("lobby"), "x")
        self.assertEqual(picked.backend.host, "10.0.0.1")  # type: ignore[union-attr]
        # A pod goes, another comes: seen at the next refresh (5 s), the first keeps its state.
        self.records("10.0.0.1", "10.0.0.3")
        self.reactor.advance(4.9)
        self.assertIn("lobbies@10.0.0.2", self.pool())
        self.reactor.advance(0.1)
        self.assertEqual(self.pool(), {"lobbies@10.0.0.1": True, "lobbies@10.0.0.3": False,
                                       "fixed": True})  # fmt: skip
        # No record at all (NXDOMAIN: no pod is ready): no discovered backend.
        self.records()
        self.reactor.advance(5)
        self.assertEqual(self.pool(), {"fixed": True})

    def test_a_failing_lookup_keeps_what_was_found_last(self) -> None:
        self.records("10.0.0.1")
        discovery = self.start()
        self.resolver = Timeouts()
        self.reactor.advance(5)
        self.assertIn("lobbies@10.0.0.1", self.pool())
        self.assertEqual(discovery.lookups, 2)

    def test_a_rule_set_that_discovers_starts_looking_at_once(self) -> None:
        self.records("10.0.0.7")
        self.gateway = Gateway(parse_rules({**RULES, "backends": {"fixed": RULES["backends"]
                                                                  ["fixed"]},  # type: ignore
                                            "pools": {"lobbies": {"backends": ["fixed"]}}}),
                               self.reactor, sniff_limit=1024, sniff_timeout=5.0,
                               drain_timeout=30.0)  # fmt: skip
        discovery = self.start()
        self.assertEqual(discovery.lookups, 0)
        self.assertTrue(self.gateway.offer(json.dumps(RULES), "test"))
        self.assertIn("lobbies@10.0.0.7", self.pool())
