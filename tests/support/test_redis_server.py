"""The tests' own Redis (tests/support/redis_server.py) answers txredisapi, survives a restart."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import txredisapi
from twisted.trial.unittest import TestCase

from tests.support.redis_server import start_redis


class RedisServerTests(TestCase):
    timeout = 30

    async def test_a_real_redis_answers_and_restarts_empty(self) -> None:
        redis = await start_redis(self)
        client = await txredisapi.Connection("127.0.0.1", redis.port, reconnect=False)
        self.addCleanup(client.disconnect)
        await client.set("k", "v")
        self.assertEqual(await client.get("k"), "v")
        await redis.restart()
        again = await txredisapi.Connection("127.0.0.1", redis.port, reconnect=False)
        self.addCleanup(again.disconnect)
        self.assertIsNone(await again.get("k"))
