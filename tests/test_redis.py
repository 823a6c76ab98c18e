"""Redis settings from URLs, and the bounded calls of a RedisClient against a real Redis."""

from __future__ import annotations

import txredisapi
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.redis_server import start_redis
from vinom.redis import RedisClient, RedisSettings, RedisUnavailable, parse_redis_url


class ParseRedisUrlTests(SynchronousTestCase):
    def test_a_full_url(self) -> None:
        settings = parse_redis_url("redis://:s%40cret@redis.example:6380/3")
        self.assertEqual(
            (settings.host, settings.port, settings.db, settings.password),
            ("redis.example", 6380, 3, "s@cret"),
        )
        self.assertEqual(settings.url, "redis://redis.example:6380/3")
        self.assertNotIn("s@cret", repr(settings))

    def test_port_and_database_default_to_6379_and_0(self) -> None:
        for url in ("redis://cache", "redis://cache/", "redis://cache:6379/0"):
            settings = parse_redis_url(url)
            self.assertEqual((settings.host, settings.port, settings.db), ("cache", 6379, 0))
            self.assertIsNone(settings.password)
            self.assertEqual(settings.key_prefix, "vinom:")

    def test_an_ipv6_host(self) -> None:
        settings = parse_redis_url("redis://[::1]:7000/1")
        self.assertEqual((settings.host, settings.port, settings.db), ("::1", 7000, 1))
        self.assertEqual(settings.url, "redis://[::1]:7000/1")

    def test_bad_urls_say_what_is_wrong(self) -> None:
        cases = {
            "http://cache:6379/0": "redis://",
            "rediss://cache": "redis://",
            "cache:6379": "redis://",
            "redis://": "no host",
            "redis://:6379/0": "no host",
            "redis://cache:port/0": "port",
            "redis://cache:0/0": "port",
            "redis://cache:70000/0": "port",
            "redis://cache:6379/one": "database",
            "redis://cache:6379/-1": "database",
            "redis://cache:6379/0/1": "database",
            "redis://user:pw@cache": "user",
            "redis://cache?db=1": "query",
        }
        for url, reason in cases.items():
            with self.assertRaises(ValueError, msg=url) as raised:
                parse_redis_url(url)
            self.assertIn(reason, str(raised.exception), url)

    def test_settings_are_validated(self) -> None:
        for bad in ({"port": 0}, {"db": -1}, {"pool_size": 0}, {"timeout": 0}):
            with self.assertRaises(ValueError, msg=str(bad)):
                RedisSettings(**bad)  # type: ignore[arg-type]


class RedisClientTests(TestCase):
    timeout = 30

    async def test_keys_carry_the_prefix(self) -> None:
        redis = await start_redis(self)
        client = RedisClient.open(
            RedisSettings("127.0.0.1", redis.port, key_prefix="game-a:"), reactor
        )
        self.addCleanup(client.disconnect)
        self.assertEqual(client.key("player", "p:1"), "game-a:player:p:1")
        await client.bounded(client.handler.set(client.key("x"), "1"))
        self.assertEqual(await client.bounded(client.handler.keys("*")), ["game-a:x"])

    async def test_an_unreachable_redis_fails_within_the_timeout(self) -> None:
        # Nothing listens here: the pool keeps trying, each call gives up at its deadline.
        redis = await start_redis(self)
        await redis.stop()
        client = RedisClient.open(RedisSettings("127.0.0.1", redis.port, timeout=0.3), reactor)
        self.addCleanup(client.disconnect)
        started = reactor.seconds()
        error = await self.assertFailure(client.bounded(client.handler.get("k")), RedisUnavailable)
        self.assertLess(reactor.seconds() - started, 1.5)
        self.assertIn("0.3 s", str(error))

    async def test_a_redis_error_reply_is_not_mistaken_for_an_outage(self) -> None:
        redis = await start_redis(self)
        client = RedisClient.open(RedisSettings("127.0.0.1", redis.port), reactor)
        self.addCleanup(client.disconnect)
        await client.bounded(client.handler.set("k", "text"))
        error = await self.assertFailure(
            client.bounded(client.handler.lpush("k", "x")), txredisapi.ResponseError
        )
        self.assertIn("WRONGTYPE", str(error))
