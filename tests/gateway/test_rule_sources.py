"""The gateway's rule sources: one suite run against the memory, file and Redis sources.

`RuleSourceContract` is what every `IRuleSource` must do, seen from the gateway
it feeds (a real `Gateway`, the consumer, picking backends for new
connections): the rule set the source holds is in force once it starts; an
operator's valid change is put in force by its message (Redis: SET and
PUBLISH, with no refresh due in the test; a file: written, then the SIGHUP
read); an invalid one is
refused in one log line and counted, and the previous one stays; after
stopping, nothing more is put in force. The Redis source (a real
redis-server, tests/support/redis_server.py) adds what only it has: the
realm hash, the periodic refresh, a bad rule set refused once.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from tests.support.redis_server import start_redis
from tests.support.waiting import until
from vinom.cluster.client import RedisClient, parse_redis_url
from vinom.cluster.gateway_rules import RedisGatewayRules
from vinom.gateway.rules import RuleSet
from vinom.gateway.service import Gateway
from vinom.gateway.sniff import Sniffed
from vinom.gateway.sources import (
    FileRuleSource,
    IRuleConsumer,
    IRuleSource,
    MemoryRuleSource,
)


def rules(pool: str, **extra: Any) -> str:
    """A rule set whose one route sends every connection to `pool` ("a" or "b")."""
    return json.dumps({
        "backends": {"a": {"address": "127.0.0.1:7350"}, "b": {"address": "127.0.0.1:7351"}},
        "pools": {"a": {"backends": ["a"]}, "b": {"backends": ["b"]}},
        "routes": [{"kind": "any", "by_realm": True, "pool": pool}],
        **extra,
    })  # fmt: skip


INVALID = (
    "{not json",
    json.dumps({"backends": {"a": {"address": "nowhere"}}, "pools": {}, "routes": []}),
    rules("c"),  # a route to a pool not defined
)


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class RuleSourceContract:
    """The tests every rule source passes. `make_source(consumer, text)` gives a source,
    not started, holding `text`; `change(text)` changes it as an operator does."""

    source: IRuleSource
    gateway: Gateway

    async def make_source(self, consumer: IRuleConsumer, text: str) -> IRuleSource:
        raise NotImplementedError

    async def change(self, text: str) -> None:
        raise NotImplementedError

    def setUp(self: Any) -> Deferred[None]:
        # A gateway as one on Redis starts: routing nothing until a rule set arrives.
        self.gateway = Gateway(RuleSet(backends={}, pools={}, routes=(), realms={}), reactor,
                               sniff_limit=1024, sniff_timeout=5.0,
                               drain_timeout=1.0)  # fmt: skip
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

        async def made() -> None:
            self.source = await self.make_source(self.gateway, rules("a"))

        return Deferred.fromCoroutine(made())

    def picked(self) -> str:
        """Where the gateway sends a new connection now: a backend's name or why not."""
        chosen = self.gateway.router.pick(Sniffed("lobby"), "127.0.0.1")
        return chosen if isinstance(chosen, str) else chosen.backend.name

    def refusals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if "refused" in (e.get("log_format") or "")]

    async def start(self: Any) -> None:
        self.source.startService()
        self.addCleanup(lambda: self.source.running and self.source.stopService())
        await self.picks("a")

    async def picks(self: Any, backend: str) -> None:
        """Wait until new connections go to `backend`."""
        await until(lambda: self.picked() == backend,
                    lambda: f"connections to go to {backend!r}, not {self.picked()!r}")

    async def refused(self: Any, count: int) -> None:
        """Wait until `count` rule sets were refused, and check that no more were."""
        await until(lambda: self.gateway.rules_refused >= count, f"{count} rule sets refused")
        self.assertEqual(self.gateway.rules_refused, count)

    def test_provides_the_interface(self: Any) -> None:
        self.assertTrue(verifyObject(IRuleSource, self.source))
        self.assertTrue(verifyObject(IRuleConsumer, self.gateway))
        self.assertIs(self.source.consumer, self.gateway)

    async def test_the_rule_set_it_holds_is_in_force_once_started(self: Any) -> None:
        self.assertEqual(self.picked(), "no_route")
        await self.start()
        self.assertEqual((self.gateway.rules_loaded, self.gateway.rules_refused), (2, 0))

    async def test_a_valid_change_is_in_force(self: Any) -> None:
        await self.start()
        await self.change(rules("b"))
        await self.picks("b")
        self.assertEqual(self.refusals(), [])

    async def test_an_invalid_change_is_refused_in_one_line_and_counted_the_previous_stays(
        self: Any,
    ) -> None:
        await self.start()
        for count, text in enumerate(INVALID, 1):
            await self.change(text)
            await self.refused(count)
            self.assertEqual(len(self.refusals()), count)
            self.assertEqual(self.picked(), "a")
        line = self.refusals()[-1]
        self.assertEqual(line["log_level"].name, "error")
        self.assertEqual(line["origin"], self.source.origin)
        self.assertIn("'c' is not a defined pool", line["error"])

    async def test_a_valid_change_after_a_refused_one_is_in_force(self: Any) -> None:
        await self.start()
        await self.change(INVALID[0])
        await self.refused(1)
        await self.change(rules("b"))
        await self.picks("b")
        self.assertEqual(self.gateway.rules_refused, 1)

    async def test_nothing_is_put_in_force_once_stopped(self: Any) -> None:
        await self.start()
        await maybeDeferred(self.source.stopService)
        await self.change(rules("b"))
        await sleep(0.3)
        self.assertEqual(self.picked(), "a")


class MemoryRuleSourceTests(RuleSourceContract, TestCase):
    async def make_source(self, consumer: IRuleConsumer, text: str) -> IRuleSource:
        self.memory = MemoryRuleSource(consumer, text)
        return self.memory

    async def change(self, text: str) -> None:
        self.memory.put(text)


class FileRuleSourceTests(RuleSourceContract, TestCase):
    async def make_source(self, consumer: IRuleConsumer, text: str) -> IRuleSource:
        self.path = Path(self.mktemp())
        self.path.write_text(text)
        return FileRuleSource(str(self.path), consumer)

    async def change(self, text: str) -> None:
        self.path.write_text(text)
        await self.source.read()  # what the server wiring does on SIGHUP

    async def test_a_file_that_cannot_be_read_is_refused_the_previous_stays(self) -> None:
        await self.start()
        self.path.unlink()
        await self.source.read()
        self.assertEqual(self.picked(), "a")
        self.assertEqual(self.gateway.rules_refused, 1)
        [line] = self.refusals()
        self.assertIn("cannot read it: No such file", line["error"])


class RedisRuleSourceTests(RuleSourceContract, TestCase):
    timeout = 60

    async def make_source(self, consumer: IRuleConsumer, text: str) -> IRuleSource:
        self.redis_server = await start_redis(self)
        self.redis = RedisClient.open(parse_redis_url(self.redis_server.url), reactor)
        self.addCleanup(self.redis.disconnect)
        await self.redis.handler.set("vinom:gateway:rules", text)
        # No refresh within a test: a change must come by pub/sub.
        return RedisGatewayRules(self.redis, consumer, reactor, refresh=60.0)

    async def change(self, text: str) -> None:
        await self.redis.handler.set("vinom:gateway:rules", text)
        await self.redis.handler.publish("vinom:gateway:reload", "rules")

    async def test_the_realm_hash_is_laid_over_the_rule_sets_realms(self) -> None:
        await self.redis.handler.set("vinom:gateway:rules", rules("a", realms={"eu": "a"}))
        await self.start()
        await self.redis.handler.hset("vinom:gateway:realms", "eu", "b")
        await self.redis.handler.hset("vinom:gateway:realms", "us", "b")
        await self.redis.handler.publish("vinom:gateway:reload", "realms")
        await until(lambda: self.gateway.router.rules.realms == {"eu": "b", "us": "b"},
                    lambda: f"the realms, not {self.gateway.router.rules.realms}")  # fmt: skip
        chosen = self.gateway.router.pick(Sniffed("lobby", realm="us"), "127.0.0.1")
        self.assertEqual(chosen.backend.name, "b")  # type: ignore[union-attr]
        self.assertEqual(self.picked(), "a")  # no realm: the route's own pool

    async def test_the_refresh_finds_a_change_whose_message_was_missed(self) -> None:
        self.source = RedisGatewayRules(self.redis, self.gateway, reactor, refresh=0.2)
        await self.start()
        await self.redis.handler.set("vinom:gateway:rules", rules("b"))  # no PUBLISH
        await self.picks("b")

    async def test_a_bad_rule_set_left_in_redis_is_refused_once(self) -> None:
        await self.start()
        await self.change(INVALID[1])
        await self.refused(1)
        for _ in range(3):  # the refresh reads it again, and again
            await self.source.read()
        self.assertEqual(self.gateway.rules_refused, 1)
        self.assertEqual(len(self.refusals()), 1)
        self.assertEqual(self.picked(), "a")
