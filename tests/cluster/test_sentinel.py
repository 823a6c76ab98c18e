"""Redis Sentinel (`redis+sentinel://`): URLs, and a process's pool and channels following a
failover of real processes (a master, a replica, three sentinels: tests/support/sentinel.py)."""

from __future__ import annotations

import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.sentinel import start_sentinel_cluster
from vinom.cluster.client import RedisClient, RedisSubscription, Script, parse_redis_url
from vinom.cluster.settings import RedisSettings
from vinom.errors import BackendUnavailable


class ParseSentinelUrlTests(SynchronousTestCase):
    def test_sentinels_master_name_and_database(self) -> None:
        settings = parse_redis_url("redis+sentinel://s1.example:26380,[::1],s3.example/main/2")
        self.assertEqual(
            settings.sentinels, (("s1.example", 26380), ("::1", 26379), ("s3.example", 26379))
        )
        self.assertEqual((settings.master_name, settings.db), ("main", 2))
        self.assertEqual(
            settings.url, "redis+sentinel://s1.example:26380,[::1]:26379,s3.example:26379/main/2"
        )

    def test_the_database_defaults_to_0_and_the_password_is_the_masters(self) -> None:
        settings = parse_redis_url("redis+sentinel://:s%40cret@10.0.0.1/mymaster")
        self.assertEqual(
            (settings.db, settings.password, settings.sentinel_password), (0, "s@cret", None)
        )
        self.assertNotIn("s@cret", repr(settings) + settings.url)

    def test_bad_sentinel_urls_say_what_is_wrong(self) -> None:
        cases = {
            "redis+sentinel://s1:26379,s2:26379": "names no master",
            "redis+sentinel://s1/": "names no master",
            "redis+sentinel:///mymaster": "names no sentinel",
            "redis+sentinel://s1,,s2/mymaster": "'' is not a sentinel's host[:port]",
            "redis+sentinel://s1:port/mymaster": "'s1:port' is not a sentinel's host[:port]",
            "redis+sentinel://s1:0/mymaster": "a port from 1 to 65535",
            "redis+sentinel://s1/mymaster/db": "database must be a number",
            "redis+sentinel://s1/mymaster/0/1": "database must be a number",
            "redis+sentinel://user:pw@s1/mymaster": "names a user",
            "redis+sentinel://s1/mymaster?x=1": "no query",
            "rediss+sentinel://s1/mymaster": "(TLS through Sentinel) is not supported",
        }
        for url, reason in cases.items():
            with self.assertRaises(ValueError, msg=url) as raised:
                parse_redis_url(url)
            self.assertIn(reason, str(raised.exception), url)

    def test_sentinels_go_with_a_master_name_and_without_tls(self) -> None:
        with self.assertRaises(ValueError):
            RedisSettings(sentinels=(("s1", 26379),))
        with self.assertRaises(ValueError):
            RedisSettings(sentinels=(("s1", 26379),), master_name="m", tls=True)


async def _sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


class SentinelFailoverTests(TestCase):
    """A process's RedisClient (its pool) and its pub/sub channels on a `redis+sentinel://`
    URL, through SIGKILL of the master: the sentinels promote the replica (0.5 s
    down-after-milliseconds here) and the process reaches it by itself."""

    timeout = 60
    password = "master-pw"
    sentinel_password = "sentinel-pw"

    async def test_the_pool_and_a_channel_follow_a_failover(self) -> None:
        cluster = await start_sentinel_cluster(
            self, password=self.password, sentinel_password=self.sentinel_password
        )
        settings = parse_redis_url(cluster.url)
        settings = RedisSettings(
            db=settings.db, sentinels=settings.sentinels, master_name=settings.master_name,
            password=self.password, sentinel_password=self.sentinel_password, timeout=1.0,
        )  # fmt: skip
        redis = RedisClient.open(settings, reactor)
        self.addCleanup(redis.disconnect)
        heard: list[str] = []
        channel = RedisSubscription(redis.endpoint(reactor), "news", heard.append, reactor,
                                    self.password)  # fmt: skip
        channel.start()
        self.addCleanup(channel.stop)
        await channel.when_subscribed()
        script = Script("return redis.call('INCR', KEYS[1])")

        self.assertEqual(await redis.run(script, [redis.key("runs")]), 1)
        self.assertEqual(await redis.bounded(redis.handler.set(redis.key("k"), "before")), "OK")
        await redis.bounded(redis.handler.publish("news", "one"))
        await self._until(lambda: heard == ["one"])
        # Replicated before the kill: WAIT until the replica has it.
        self.assertEqual(await redis.bounded(redis.handler.execute_command("WAIT", 1, 1000)), 1)

        cluster.kill_master()
        started = time.monotonic()
        # Watched from outside meanwhile: when the sentinels name the promoted replica.
        promotion = Deferred.fromCoroutine(cluster.wait_for_failover())
        failures: list[object] = []
        while True:
            call = time.monotonic()
            try:
                written = await redis.bounded(redis.handler.set(redis.key("k"), "after"))
            except BackendUnavailable as error:
                failures.append(error)
                # Never a hang: each failed call gives up within the timeout (and a little).
                self.assertLess(time.monotonic() - call, settings.timeout + 0.5)
                await _sleep(0.05)
                continue
            self.assertEqual(written, "OK")
            break
        followed = time.monotonic() - started
        promoted = await promotion
        print(f"\nfailover: the sentinels named the promoted replica {promoted:.2f} s after "
              f"SIGKILL; the pool wrote to it {followed:.2f} s after SIGKILL "
              f"({len(failures)} calls refused meanwhile)")  # fmt: skip
        self.assertGreater(len(failures), 0)
        # Reached within the pool's longest reconnection delay (2 s) and one timeout.
        self.assertLess(followed, promoted + 2.0 + settings.timeout)
        # The promoted replica holds what was replicated, and does not have the script
        # yet: EVALSHA's NOSCRIPT is answered with EVAL.
        self.assertEqual(await redis.bounded(redis.handler.get(redis.key("k"))), "after")
        self.assertEqual(await redis.run(script, [redis.key("runs")]), 2)
        # The channel subscribed again, on the new master.
        deadline = time.monotonic() + 10
        while "two" not in heard:
            self.assertLess(time.monotonic(), deadline, "the channel never heard the new master")
            await redis.bounded(redis.handler.publish("news", "two"))
            await _sleep(0.1)
        self.assertEqual(heard[0], "one")

    async def _until(self, condition: object, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not condition():  # type: ignore[operator]
            self.assertLess(time.monotonic(), deadline, "never came true")
            await _sleep(0.02)
