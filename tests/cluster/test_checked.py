"""Checked writes (vinom/cluster/checked.py + checked.lua) on a real Redis: a change
whose reads have moved is refused whole, as is one with a command it does not make."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.store.test_store import raw_connection, redis_client
from tests.support.redis_server import start_redis
from vinom.cluster.checked import CHANGED, EXPIRED, Snapshot, checked_script

SCRIPT = checked_script(10.0)
WHERE = {"counter": "t:seq", "channel": "t:changes"}


class CheckedWriteTests(TestCase):
    timeout = 30

    async def setUp(self) -> None:  # type: ignore[override]
        redis = await start_redis(self)
        self.client = await redis_client(self, redis)
        self.raw = await raw_connection(self, redis)

    async def test_writes_and_numbered_messages_when_nothing_read_moved(self) -> None:
        await self.raw.set("t:a", "1")
        snapshot = Snapshot(self.client)
        self.assertEqual(await snapshot.get("t:a"), "1")
        self.assertIsNone(await snapshot.get("t:none"))
        self.assertEqual(await snapshot.fields("t:h", ["x"], "v"), {"v": None, "x": None})
        writes = [("SET", "t:a", "two"), ("HSET", "t:h", "x", "y", "v", "1")]
        answer = await snapshot.commit(SCRIPT, "t:watch", writes, ['{"n":1}', '{"n":2}'], **WHERE)
        self.assertEqual(answer, ['{"seq":1,"n":1}', '{"seq":2,"n":2}'])
        self.assertEqual(await self.raw.get("t:a"), "two")
        self.assertEqual(await self.raw.hget("t:h", "x"), "y")

    async def test_a_change_whose_reads_moved_writes_nothing(self) -> None:
        await self.raw.set("t:a", "1")
        for moved in (("SET", "t:a", "other"), ("SET", "t:none", "now"),
                      ("HSET", "t:h", "v", "2"), ("DEL", "t:a")):  # fmt: skip
            await self.raw.set("t:a", "1")
            await self.raw.delete("t:none", "t:h", "t:b")
            await self.raw.hset("t:h", "v", "1")
            snapshot = Snapshot(self.client)
            await snapshot.get("t:a")
            await snapshot.get("t:none")
            await snapshot.fields("t:h", ["x"], "v")
            await self.raw.execute_command(*moved)
            answer = await snapshot.commit(SCRIPT, "t:watch", [("SET", "t:b", "1")], ["{}"],
                                           **WHERE)  # fmt: skip
            self.assertEqual(answer, CHANGED, moved)
            self.assertIsNone(await self.raw.get("t:b"))
            self.assertIsNone(await self.raw.get("t:seq"))

    async def test_a_command_it_does_not_make_refuses_every_write(self) -> None:
        snapshot = Snapshot(self.client)
        writes = [("SET", "t:b", "1"), ("FLUSHALL",)]
        with self.assertRaisesRegex(Exception, "not a checked write: FLUSHALL"):
            await snapshot.commit(SCRIPT, "t:watch", writes, **WHERE)
        self.assertIsNone(await self.raw.get("t:b"))

    async def test_a_call_run_after_its_deadline_writes_nothing(self) -> None:
        snapshot = Snapshot(self.client)
        answer = await snapshot.commit(SCRIPT, "t:watch", [("SET", "t:b", "1")], deadline="1",
                                       **WHERE)  # fmt: skip
        self.assertEqual(answer, EXPIRED)
        self.assertIsNone(await self.raw.get("t:b"))
