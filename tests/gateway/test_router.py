"""The rule set's checks and the routing strategies, on the sans-I/O router."""

from __future__ import annotations

import collections
import copy
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.router import Router
from vinom.gateway.rules import RuleError, parse_rules
from vinom.gateway.sniff import Sniffed

LOBBY = Sniffed("lobby")


def rules(strategy: str = "round_robin", **extra: Any) -> dict[str, Any]:
    return {
        "backends": {name: {"address": f"10.0.0.{i}:7350"} for i, name in enumerate("abc", 1)},
        "pools": {"all": {"backends": ["a", "b", "c"], "strategy": strategy},
                  "eu": {"backends": ["a"]}, "us": {"backends": ["b", "c"]}},
        "routes": [{"kind": "tls", "sni": "*.eu.example.com", "pool": "eu"},
                   {"kind": "http", "path_prefix": "/game", "pool": "us"},
                   {"kind": "any", "by_realm": True, "pool": "all"}],
        "realms": {"eu": "eu", "us": "us"},
        **extra,
    }  # fmt: skip


def names(router: Router, sniffed: Sniffed, n: int, client: str = "1.2.3.4") -> list[str]:
    picked = []
    for _ in range(n):
        state = router.pick(sniffed, client)
        assert not isinstance(state, str), state
        picked.append(state.backend.name)
    return picked


class StrategyTests(SynchronousTestCase):
    def test_round_robin_takes_turns_and_skips_backends_that_are_out(self) -> None:
        router = Router(parse_rules(rules()))
        self.assertEqual(names(router, LOBBY, 6), ["a", "b", "c", "a", "b", "c"])
        router.state("b").healthy = False  # type: ignore[union-attr]
        self.assertEqual(names(router, LOBBY, 4), ["a", "c", "a", "c"])

    def test_least_connections_picks_the_least_loaded(self) -> None:
        router = Router(parse_rules(rules("least_connections")))
        for name, count in (("a", 3), ("b", 1), ("c", 2)):
            router.state(name).connections = count  # type: ignore[union-attr]
        self.assertEqual(names(router, LOBBY, 1), ["b"])

    def test_consistent_hash_keeps_a_player_on_their_backend(self) -> None:
        router = Router(parse_rules(rules("consistent_hash")))
        players = [Sniffed("lobby", player_id=f"p-{i}") for i in range(300)]
        before = {p.player_id: names(router, p, 1)[0] for p in players}
        # The same player lands on the same backend every time.
        self.assertEqual(before, {p.player_id: names(router, p, 1)[0] for p in players})
        # Spread over all three.
        self.assertEqual(set(before.values()), {"a", "b", "c"})
        # A backend out moves only its own players.
        router.state("c").healthy = False  # type: ignore[union-attr]
        after = {p.player_id: names(router, p, 1)[0] for p in players}
        moved = {pid for pid in before if before[pid] != after[pid]}
        self.assertEqual(moved, {pid for pid in before if before[pid] == "c"})

    def test_consistent_hash_without_a_player_id_hashes_the_client_address(self) -> None:
        router = Router(parse_rules(rules("consistent_hash")))
        self.assertEqual(len(set(names(router, LOBBY, 10, client="10.9.8.7"))), 1)

    def test_realm_picks_its_pool_and_an_unknown_realm_the_route_s(self) -> None:
        router = Router(parse_rules(rules()))
        self.assertEqual(names(router, Sniffed("lobby", realm="eu"), 3), ["a", "a", "a"])
        self.assertEqual(names(router, Sniffed("lobby", realm="us"), 2), ["b", "c"])
        counts = collections.Counter(names(router, Sniffed("lobby", realm="mars"), 3))
        self.assertEqual(counts, {"a": 1, "b": 1, "c": 1})

    def test_routes_match_on_sni_and_path(self) -> None:
        router = Router(parse_rules(rules()))
        self.assertEqual(names(router, Sniffed("tls", sni="x.eu.example.com"), 2), ["a", "a"])
        self.assertEqual(names(router, Sniffed("http", path="/game"), 2), ["b", "c"])

    def test_caps_and_no_backend(self) -> None:
        document = rules()
        document["backends"]["a"]["max_connections"] = 1
        router = Router(parse_rules(document))
        state = router.pick(Sniffed("lobby", realm="eu"), "x")
        assert not isinstance(state, str)
        state.connections += 1
        self.assertEqual(router.pick(Sniffed("lobby", realm="eu"), "x"), "no_backend")

    def test_no_route(self) -> None:
        document = rules()
        document["routes"] = [{"kind": "tls", "pool": "all"}]
        self.assertEqual(Router(parse_rules(document)).pick(LOBBY, "x"), "no_route")

    def test_a_new_rule_set_keeps_the_state_of_backends_it_keeps(self) -> None:
        router = Router(parse_rules(rules()))
        router.state("a").connections = 5  # type: ignore[union-attr]
        router.state("b").healthy = False  # type: ignore[union-attr]
        document = rules("least_connections")
        document["backends"]["c"]["address"] = "10.0.0.9:7350"
        router.apply(parse_rules(document))
        self.assertEqual(router.state("a").connections, 5)  # type: ignore[union-attr]
        self.assertFalse(router.state("b").healthy)  # type: ignore[union-attr]
        self.assertEqual(router.state("c").connections, 0)  # type: ignore[union-attr]


class ValidationTests(SynchronousTestCase):
    def refused(self, change: Any) -> str:
        document = copy.deepcopy(rules())
        change(document)
        with self.assertRaises(RuleError) as caught:
            parse_rules(document)
        return str(caught.exception)

    def test_a_good_rule_set_passes(self) -> None:
        parsed = parse_rules(rules(health={"interval": 0.5, "timeout": 0.25}))
        self.assertEqual((parsed.health_interval, parsed.health_timeout), (0.5, 0.25))

    def test_each_mistake_is_one_line_naming_it(self) -> None:
        mistakes = {
            "pools.all.strategy: 'random' is not one of": lambda d: d["pools"]["all"].update(
                strategy="random"),
            "pools.eu.backends: 'z' is not a defined backend": lambda d: d["pools"]["eu"].update(
                backends=["z"]),
            "routes[0].pool: 'nope' is not a defined pool": lambda d: d["routes"][0].update(
                pool="nope"),
            "realms: realm 'eu' names pool 'mars'": lambda d: d["realms"].update(eu="mars"),
            "backends.a.address: '10.0.0.1' is not an address": lambda d: d["backends"][
                "a"].update(address="10.0.0.1"),
            "backends.a.max_connections: a positive integer": lambda d: d["backends"][
                "a"].update(max_connections=0),
            "routes[1].kind: 'udp' is not one of": lambda d: d["routes"][1].update(kind="udp"),
            "routes[1].terminate: only a tls route without a pool": lambda d: d["routes"][
                1].update(terminate=True),
            "backends.a.health_path: '/x' is not one of": lambda d: d["backends"]["a"].update(
                health_path="/x"),
            "routes: a non-empty list": lambda d: d.update(routes=[]),
            "the rule set: unknown key(s) extra": lambda d: d.update(extra=1),
            "health.interval: 0 is not within": lambda d: d.update(health={"interval": 0}),
        }  # fmt: skip
        for expected, change in mistakes.items():
            message = self.refused(change)
            self.assertIn(expected, message)
            self.assertNotIn("\n", message)

    def test_not_an_object(self) -> None:
        with self.assertRaises(RuleError):
            parse_rules([1, 2])


class ByQueryTests(SynchronousTestCase):
    """A game host's /game through the gateway: the query names the host's address."""

    def router(self) -> Router:
        document = rules()
        document["routes"][1] = {"kind": "http", "path_prefix": "/game", "pool": "all",
                                 "by_query": "host"}  # fmt: skip
        return Router(parse_rules(document))

    def test_the_query_picks_the_pools_backend_at_that_address(self) -> None:
        router = self.router()
        for address, name in (("10.0.0.2", "b"), ("10.0.0.3", "c"), ("10.0.0.2", "b")):
            picked = router.pick(Sniffed("http", path="/game", query={"host": address}), "x")
            self.assertEqual(picked.backend.name, name)  # type: ignore[union-attr]

    def test_an_address_not_in_the_pool_or_down_or_missing_has_no_backend(self) -> None:
        router = self.router()
        router.state("b").healthy = False  # type: ignore[union-attr]
        for query in ({"host": "10.0.0.9"}, {"host": "10.0.0.2"}, {}):
            with self.subTest(query=query):
                self.assertEqual(router.pick(Sniffed("http", path="/game", query=query), "x"),
                                 "no_backend")  # fmt: skip

    def test_only_on_an_http_route_with_a_pool(self) -> None:
        for route in ({"kind": "any", "pool": "all", "by_query": "host"},
                      {"kind": "http", "by_realm": True, "by_query": "host"},
                      {"kind": "http", "pool": "all", "by_query": ""}):  # fmt: skip
            with self.subTest(route=route), self.assertRaises(RuleError) as caught:
                parse_rules({**rules(), "routes": [route]})
            self.assertIn("by_query: a query parameter's name", str(caught.exception))
