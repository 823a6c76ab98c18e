"""The gateway's rule set read from a real Redis: the keys, the realm hash, pub/sub and refresh."""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.redis_server import start_redis
from vinom.cluster.client import RedisClient, parse_redis_url
from vinom.cluster.gateway_rules import RedisGatewayRules

RULES = {"backends": {"a": {"address": "127.0.0.1:7350"}},
         "pools": {"p": {"backends": ["a"]}, "q": {"backends": ["a"]}},
         "routes": [{"kind": "any", "by_realm": True, "pool": "p"}],
         "realms": {"eu": "p"}}  # fmt: skip


class RedisGatewayRulesTests(TestCase):
    timeout = 30

    async def setUp(self) -> None:  # type: ignore[override]
        self.redis_server = await start_redis(self)
        self.redis = RedisClient.open(parse_redis_url(self.redis_server.url), reactor)
        self.addCleanup(self.redis.disconnect)
        self.offered: list[tuple[dict[str, object], str]] = []

    def reader(self, refresh: float = 60.0) -> RedisGatewayRules:
        reader = RedisGatewayRules(
            self.redis, lambda text, origin: self.offered.append((json.loads(text), origin)),
            reactor, refresh=refresh,
        )  # fmt: skip
        reader.startService()
        self.addCleanup(reader.stopService)
        return reader

    async def until(self, count: int) -> None:
        for _ in range(200):
            if len(self.offered) >= count:
                return
            await deferLater(reactor, 0.02, lambda: None)
        self.fail(f"{len(self.offered)} rule sets offered, not {count}")

    async def test_read_at_start_with_the_realm_hash_laid_over(self) -> None:
        handler = self.redis.handler
        await handler.set("vinom:gateway:rules", json.dumps(RULES))
        await handler.hset("vinom:gateway:realms", "us", "q")
        self.reader()
        await self.until(1)
        document, origin = self.offered[0]
        self.assertEqual(document["realms"], {"eu": "p", "us": "q"})
        self.assertEqual(origin, "Redis vinom:gateway:rules")

    async def test_a_published_change_is_read_at_once_and_the_same_is_not_offered_again(
        self,
    ) -> None:
        handler = self.redis.handler
        await handler.set("vinom:gateway:rules", json.dumps(RULES))
        reader = self.reader()
        await self.until(1)
        await reader.read()  # unchanged: not offered again
        self.assertEqual(len(self.offered), 1)
        await handler.hset("vinom:gateway:realms", "eu", "q")
        await handler.publish("vinom:gateway:reload", "x")
        await self.until(2)
        self.assertEqual(self.offered[1][0]["realms"], {"eu": "q"})

    async def test_the_refresh_finds_a_change_whose_message_was_missed(self) -> None:
        self.reader(refresh=0.2)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(self.offered, [])  # no rule set in Redis: nothing offered
        await self.redis.handler.set("vinom:gateway:rules", json.dumps(RULES))
        await self.until(1)

    async def test_a_bad_rule_set_is_offered_as_it_is(self) -> None:
        # The checks are the gateway's: the reader hands over whatever text is there, once.
        await self.redis.handler.set("vinom:gateway:rules", '{"backends": 1}')
        await self.redis.handler.hset("vinom:gateway:realms", "eu", "q")
        reader = RedisGatewayRules(self.redis, lambda t, o: self.offered.append((t, o)),  # type: ignore[arg-type]
                                   reactor)  # fmt: skip
        await reader.read()
        await reader.read()
        self.assertEqual(len(self.offered), 1)
