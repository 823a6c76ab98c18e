"""The ranked results stream (vinom.cluster.ranked): a game host's end of a ranked match
reaches a lobby that rates matches whoever followed it, is acknowledged and deleted once
rated, stays pending while its rating fails, and one a dead lobby read is claimed by a
living one; the entries' encoding, refusals included, on its own."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from attrs import evolve
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.cluster.test_remote_placement import open_redis
from tests.support.cut_proxy import CutProxy
from tests.support.http import capture_log
from tests.support.redis_server import RedisServer, start_redis
from tests.support.waiting import until
from vinom.cluster.channel import RESULTS_KEPT, PlacementKeys, announce_end
from vinom.cluster.client import RedisClient, parse_redis_url
from vinom.cluster.ranked import (
    CLAIM_AFTER,
    CLAIM_EVERY,
    GROUP,
    RESULTS_TTL,
    RankedResultsReader,
    decode_result,
    encode_result,
)
from vinom.errors import BackendUnavailable
from vinom.match import Match, MatchEnded, Ticket


def ranked(match_id: str, queue: str = "ranked", bot: bool = False) -> Match:
    seats = tuple(Ticket(p, p, "tictactoe", None, 0.0, queue, bot=bot and p == "b")
                  for p in ("a", "b"))  # fmt: skip
    return Match(match_id, "tictactoe", seats, 0.0)


def won(match_id: str) -> MatchEnded:
    return MatchEnded(match_id, "finished", {"winners": ["a"], "reason": "line"}, None,
                      ("a", "b"))  # fmt: skip


class EncodingTests(SynchronousTestCase):
    def test_a_ranked_end_round_trips(self) -> None:
        text = encode_result(ranked("m-1"), won("m-1"))
        self.assertEqual(decode_result([b"m", b"m-1", b"r", text.encode()]),
                         (ranked("m-1"), won("m-1")))  # fmt: skip

    def test_only_a_ranked_match_that_finished_with_a_result_is_added(self) -> None:
        self.assertEqual(encode_result(ranked("m-1", queue="normal"), won("m-1")), "")
        self.assertEqual(encode_result(ranked("m-1", bot=True), won("m-1")), "")
        self.assertEqual(encode_result(ranked("m-1"), None), "")
        aborted = MatchEnded("m-1", "aborted", None, "players_missing")
        self.assertEqual(encode_result(ranked("m-1"), aborted), "")

    def test_an_entry_holding_no_end_is_none(self) -> None:
        good = json.loads(encode_result(ranked("m-1"), won("m-1")))
        other = dict(good, outcome=dict(good["outcome"], match_id="m-2"))
        for fields in ([], [b"m"], [b"m", b"m-1"], [b"r", b"{"], [b"r", b"[]"],
                       [b"r", json.dumps({"match": {}}).encode()],
                       [b"r", json.dumps(other).encode()]):  # fmt: skip
            self.assertIsNone(decode_result(fields), fields)


class DocumentedTests(SynchronousTestCase):
    def test_the_figures_the_docs_give(self) -> None:
        self.assertEqual((CLAIM_AFTER, CLAIM_EVERY, RESULTS_KEPT, RESULTS_TTL),
                         (15.0, 5.0, 100_000, 24 * 3600.0))  # fmt: skip
        docs = REDIS_SH.parents[3] / "docs"
        scaling = " ".join((docs / "scaling.md").read_text().split())
        for said in ("every 5 s each lobby claims the ends pending for 15 s",
                     "capped at about 100,000 entries", "lapses a day after the last lobby "
                     "read it"):  # fmt: skip
            self.assertIn(said, scaling)
        accounts = " ".join((docs / "accounts.md").read_text().split())
        self.assertIn("claimed and rated by a living lobby 15 s later", accounts)
        operations = " ".join((docs / "operations.md").read_text().split())
        self.assertIn("claimed by another after 15 s); as of the last claim round (every 5 s)",
                      operations)  # fmt: skip


class ReaderTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await open_redis(self)
        # The game host's client (the same, but where each role is its own Redis user).
        self.host = self.redis
        self.keys = PlacementKeys(self.redis.settings.key_prefix)

    def reader(self, record: Any, consumer: str = "l-a",
               claim_after: float = 15.0) -> RankedResultsReader:  # fmt: skip
        reader = RankedResultsReader(redis=self.redis, clock=reactor, consumer=consumer,
                                     claim_after=claim_after, claim_every=0.05)  # fmt: skip
        reader.subscribe(record)
        reader.startService()
        self.addCleanup(reader.stopService)
        return reader

    async def end(self, match: Match, outcome: MatchEnded) -> None:
        """The game host's end of a match (no lobby follows it)."""
        message = {"event": "ended", "match_id": match.match_id, "outcome": None}
        await announce_end(self.host, self.keys, "h-1", message, encode_result(match, outcome))

    async def emptied(self) -> bool:
        """Whether the stream holds no entry (each rated and deleted) and none is pending."""
        pending = await self.call("XPENDING", self.keys.results, GROUP)
        return await self.call("XLEN", self.keys.results) == 0 and pending[0] == 0

    async def call(self, *command: object) -> Any:
        return await self.redis.bounded(self.redis.handler.execute_command(*command))

    async def test_a_ranked_end_nobody_follows_is_rated_and_deleted(self) -> None:
        # Before any lobby rates matches, hosts add nothing.
        await self.end(ranked("m-0"), won("m-0"))
        self.assertEqual(await self.call("EXISTS", self.keys.results), 0)
        rated: list[tuple[Match, MatchEnded]] = []
        reader = self.reader(lambda m, o: succeed(rated.append((m, o))))
        await until(lambda: reader.backlog is not None, "the group made", 10, every=0.02)
        await self.end(ranked("m-1"), won("m-1"))
        await self.end(ranked("m-2", queue="normal"), won("m-2"))
        await until(lambda: rated, "the end rated", 10, every=0.02)
        self.assertEqual(rated, [(ranked("m-1"), won("m-1"))])
        await until(self.emptied, "the entry deleted", 10, every=0.02)
        self.assertEqual(reader.recorded, 1)
        # The next claim round's figures (the operations endpoint's).
        await until(lambda: reader.backlog == 0 and reader.pending == 0, "the figures", 10,
                    every=0.02)  # fmt: skip

    async def test_an_end_whose_rating_fails_is_tried_again(self) -> None:
        answers = [fail(BackendUnavailable("the account database did not answer")),
                   succeed(None)]  # fmt: skip
        reader = self.reader(lambda m, o: answers.pop(0), claim_after=0.1)
        await until(lambda: reader.backlog is not None, "the group made", 10, every=0.02)
        await self.end(ranked("m-1"), won("m-1"))
        await until(lambda: not answers, "rated the second time", 10, every=0.02)
        await until(self.emptied, "the entry deleted", 10, every=0.02)
        self.assertEqual(reader.recorded, 1)

    async def test_a_dead_lobbys_pending_end_is_claimed_by_a_living_one(self) -> None:
        # A lobby makes the group and reads an end, and dies before rating it.
        dying = self.reader(lambda m, o: Deferred(), consumer="l-dead")
        await until(lambda: dying.backlog is not None, "the group made", 10, every=0.02)
        await self.end(ranked("m-1"), won("m-1"))
        pending = await until_pending(self.redis, self.keys.results, "l-dead")
        await dying.stopService()
        # A living lobby claims it once it has been pending `claim_after`.
        rated: list[str] = []
        living = self.reader(lambda m, o: succeed(rated.append(m.match_id)), consumer="l-b",
                             claim_after=0.3)  # fmt: skip
        await until(lambda: rated == ["m-1"], "the dead lobby's end rated", 10, every=0.02)
        self.assertEqual(living.lost, 0)
        await until(self.emptied, "the entry deleted", 10, every=0.02)
        self.assertEqual(len(pending), 1)
        # The dead lobby's consumer, holding nothing, has left the group.
        consumers = await self.call("XINFO", "CONSUMERS", self.keys.results, GROUP)
        names = {dict(zip(c[::2], c[1::2], strict=True))["name"] for c in consumers}
        self.assertEqual(names, {"l-b"})


class OutageTests(TestCase):
    """A lobby cut off from Redis: its reader's every read fails (twice a second) until
    the route is back. Its operator reads one line as the reads begin to fail and one
    once they work again, as from the lobby's other loops (vinom.cluster.outage)."""

    async def test_an_outage_is_one_line_and_its_end_one_more(self) -> None:
        server = await start_redis(self)
        proxy = CutProxy(server.port)
        proxy.start()
        self.addCleanup(proxy.stop)
        redis = RedisClient.open(parse_redis_url(proxy.url), reactor)
        self.addCleanup(redis.disconnect)
        rated: list[str] = []
        reader = RankedResultsReader(redis=redis, clock=reactor, consumer="l-a",
                                     claim_every=0.05)  # fmt: skip
        reader.subscribe(lambda m, o: succeed(rated.append(m.match_id)))
        reader.startService()
        self.addCleanup(reader.stopService)
        await until(lambda: reader.backlog is not None, "the group made", 10)
        lines = capture_log(self)
        await proxy.cut()
        await deferLater(reactor, 3.0, lambda: None)  # six reads or more fail
        proxy.restore()
        await until(lambda: any("works again" in line for line in lines), "the recovery line",
                    10)  # fmt: skip
        # It does work again: an end added now is rated.
        direct = RedisClient.open(parse_redis_url(server.url), reactor)
        self.addCleanup(direct.disconnect)
        message = {"event": "ended", "match_id": "m-1", "outcome": None}
        await announce_end(direct, PlacementKeys(direct.settings.key_prefix), "h-1", message,
                           encode_result(ranked("m-1"), won("m-1")))  # fmt: skip
        await until(lambda: rated == ["m-1"], "the end rated", 10)
        said = [line for line in lines if "ranked results" in line]
        self.assertEqual(len(said), 2, said)
        self.assertTrue(said[0].startswith("reading the ranked results stream failed: "), said)
        self.assertRegex(said[1], r"^reading the ranked results stream works again, after "
                                  r"[0-9.]+ s of failures$")  # fmt: skip


async def until_pending(redis: RedisClient, key: str, consumer: str) -> list[Any]:
    """The entries pending on `consumer`, once there are some."""
    found: list[Any] = []

    async def look() -> bool:
        found[:] = await redis.bounded(redis.handler.execute_command(
            "XPENDING", key, GROUP, "-", "+", 10, consumer))  # fmt: skip
        return bool(found)

    await until(look, "an end pending", 10, every=0.02)
    return found


# The Redis users deploy/ declares for each role (docs/scaling.md, "Redis users").
REDIS_SH = Path(__file__).resolve().parents[2] / "deploy/components/redis-sentinel/redis.sh"


class RedisUsersTests(ReaderTests):
    """The same, each role as the Redis user deploy/ gives it, on vinom's default key
    prefix: nothing it sends is refused (Redis's ACL LOG stays empty)."""

    async def setUp(self) -> None:  # type: ignore[override]
        users: list[str] = []
        for user, rules in re.findall(r"^user (vinom-\w+) on >\$\w+ (.*)$",
                                      REDIS_SH.read_text(), re.M):  # fmt: skip
            users += ["--user", user, "on", f">{user}-pa55", *rules.split()]
        self.server = RedisServer(os.path.abspath(self.mktemp()), password="admin-pa55",
                                  extra=tuple(users))  # fmt: skip
        await self.server.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(self.server.stop()))
        settings = parse_redis_url(self.server.url)
        self.redis, self.host = (
            RedisClient.open(evolve(settings, username=role, password=f"{role}-pa55"), reactor)
            for role in ("vinom-lobby", "vinom-host")
        )  # fmt: skip
        self.addCleanup(self.redis.disconnect)
        self.addCleanup(self.host.disconnect)
        self.keys = PlacementKeys(self.redis.settings.key_prefix)

        # (Cleanups run last first: this one before the clients stop and Redis goes.)
        self.addCleanup(lambda: self.assertEqual(self.server.command("ACL", "LOG"), b"*0"))
