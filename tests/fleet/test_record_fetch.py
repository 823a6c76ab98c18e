"""`fetch_record` (vinom replay --redis) against a real Redis: what it answers is the
key's, and hanging up afterwards never stands in for that answer or its error."""
# slow: starts Redis (a child process)

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import TestCase

from tests.support.redis_server import start_redis
from tests.test_replay import redis_set
from vinom.cluster.client import RedisClient, parse_redis_url
from vinom.fleet.record_fetch import RecordNotFound, fetch_record


class FetchRecordTests(TestCase):
    async def test_a_failing_hang_up_hides_neither_the_record_nor_its_absence(self) -> None:
        redis = await start_redis(self)
        redis_set(redis.port, "vinom:record:m-1", b"\x1f\x8b record bytes")
        settings = parse_redis_url(redis.url)
        closing: list[RedisClient] = []
        really_disconnect = RedisClient.disconnect

        def disconnect_then_fail(client: RedisClient) -> Deferred[Any]:
            closing.append(client)
            d = really_disconnect(client)
            return d.addCallback(lambda _: fail(ConnectionResetError("reset while hanging up")))

        self.patch(RedisClient, "disconnect", disconnect_then_fail)
        data = await Deferred.fromCoroutine(fetch_record(reactor, settings, "m-1"))
        self.assertEqual(data, b"\x1f\x8b record bytes")
        with self.assertRaises(RecordNotFound) as caught:
            await Deferred.fromCoroutine(fetch_record(reactor, settings, "m-none"))
        self.assertIn("no record of match 'm-none'", str(caught.exception))
        self.assertEqual(len(closing), 2)  # each fetch hung up, and failed to
