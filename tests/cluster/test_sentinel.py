"""Redis Sentinel (`--redis redis+sentinel://...`), on real processes: a master, a replica
and three sentinels (tests/support/sentinel.py, with short sentinel timings).

The URL and the options; a process's pool and pub/sub channel following a failover
(the master killed with SIGKILL, and SENTINEL FAILOVER with the master up); a
call Redis refuses for now (READONLY, NOREPLICAS) as `BackendUnavailable`; the
start-up check through the sentinels; and real `twistd vinom` lobbies and a host
through a failover with matches running and players queued, including a ticket
the promoted replica never had. The failover times measured are printed.
"""

# slow: starts Redis sentinels and twistd vinom processes

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from attrs import evolve
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.server.test_ops import http_get, metric_value
from tests.support.ports import free_tcp_port
from tests.support.redis_server import RedisServer
from tests.support.sentinel import command, start_sentinel_cluster
from tests.support.waiting import until
from vinom.client.bots import BotDriver, BotReport, LobbyAddress
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby
from vinom.cluster.client import (
    WATCH_EVERY,
    RedisClient,
    RedisSubscription,
    Script,
    parse_redis_url,
)
from vinom.cluster.settings import DEFAULT_PLACEMENT, RedisSettings
from vinom.errors import BackendUnavailable
from vinom.fleet.redis import check_redis
from vinom.lobby.players import log_failure
from vinom.server.startup import StartupError
from vinom.server.tap import Options

# What a busy machine may add to a failover's documented bound (docs/scaling.md,
# "Redis Sentinel") before a test says the process did not follow the master: the
# bound is the promise, so it stays, loose enough that only a process still on the
# dead master after its reconnection back-off (or never leaving it) breaks it.
FOLLOW_MARGIN = 10.0

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


async def play(
    lobby: LobbyAddress, name: str, rng: random.Random, think: float, *,
    on_session: Callable[[GameSession], object], queued: Deferred[None] | None = None,
) -> BotReport:  # fmt: skip
    """One player as `vinom.client.bots.play_bot` plays, who also fires `queued` once the
    lobby says `queued` (or answers otherwise)."""
    player_id = match_id = None
    client = None

    def said_queued(*_: object) -> None:
        if queued is not None and not queued.called:
            queued.callback(None)

    try:
        client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        player_id = (await client.hello(name)).player_id
        found = await client.queue(GAME.name, on_queued=said_queued)
        match_id = found.game_id
        session = await connect_game(reactor, found)
    except Exception as e:
        said_queued()
        return BotReport(name, player_id, match_id, "error", error=f"{type(e).__name__}: {e}")
    finally:
        if client is not None and not client.protocol.closed.called:
            client.close()
    said_queued()
    driver = BotDriver(session, GAME.make_bot(player_id, rng), think, reactor)
    driver.attach()
    on_session(session)
    ended: Deferred[dict[str, Any]] = Deferred()

    def end(final: dict[str, Any]) -> dict[str, Any]:
        if not ended.called:
            ended.callback(final)
        return final

    session.finished.addCallback(end)
    session.on_closed = lambda closed: end({"p": "error", "reason": f"closed: {closed['reason']}"})
    try:
        final = await ended
    finally:  # also when the test cancels a late player mid-match
        driver.cancel()
        await session.disconnect()
    return BotReport(name, player_id, match_id, str(final["p"]), error=final.get("reason"))


class BackgroundFailureLogTests(SynchronousTestCase):
    """A background call about a player that Redis's absence fails (a failover, a restart)
    is one warning line; anything else keeps its traceback."""

    def test_redis_away_is_a_warning_and_a_bug_a_failure(self) -> None:
        events: list[dict[str, Any]] = []
        log = Logger(observer=events.append)
        log_failure(Failure(BackendUnavailable("Redis at redis://r:6379/0 did not answer")),
                    log, "removing player {player_id}", "p-1")  # fmt: skip
        log_failure(Failure(ValueError("a bug")), log, "removing player {player_id}", "p-2")
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn, LogLevel.critical])
        self.assertEqual(formatEvent(events[0]), "removing player p-1 failed: Redis at "
                                                 "redis://r:6379/0 did not answer")  # fmt: skip
        self.assertNotIn("log_failure", events[0])
        self.assertIn("log_failure", events[1])


class SentinelOptionsTests(TestCase):
    """`twistd vinom --redis redis+sentinel://...`: the URL and the two passwords."""

    def parse(self, *argv: str) -> Options:
        key = self.mktemp()
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        options = Options()
        options.parseOptions(["--token-key-file", key, *argv])
        return options

    def secret(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
        return path

    def test_the_masters_and_the_sentinels_passwords(self) -> None:
        url = "redis+sentinel://:in-url@s1:26379,s2/mymaster/1"
        self.patch(os, "environ", {})
        settings = self.parse("--redis", url)["redis-settings"]
        self.assertEqual((settings.password, settings.sentinel_password), ("in-url", None))
        self.assertEqual(settings.url, "redis+sentinel://s1:26379,s2:26379/mymaster/1")
        self.patch(os, "environ", {"VINOM_REDIS_PASSWORD": "master-env",
                                   "VINOM_REDIS_SENTINEL_PASSWORD": "sentinel-env"})  # fmt: skip
        settings = self.parse("--redis", url)["redis-settings"]
        self.assertEqual((settings.password, settings.sentinel_password),
                         ("master-env", "sentinel-env"))  # fmt: skip
        settings = self.parse(
            "--redis", url, "--redis-password-file", self.secret("master-file"),
            "--redis-sentinel-password-file", self.secret("sentinel-file"),
        )["redis-settings"]  # fmt: skip
        self.assertEqual((settings.password, settings.sentinel_password),
                         ("master-file", "sentinel-file"))  # fmt: skip

    def test_mistakes_are_one_clear_line(self) -> None:
        secret = self.secret("pw")
        for argv, words in (
            (("--redis", "redis+sentinel://s1,s2"), "--redis: the Redis Sentinel URL "
             "'redis+sentinel://s1,s2' names no master"),
            (("--redis", "rediss+sentinel://s1/m"), "(TLS through Sentinel) is not supported"),
            (("--redis", "redis://cache/0", "--redis-sentinel-password-file", secret),
             "--redis-sentinel-password-file is for a redis+sentinel:// --redis"),
            (("--redis-sentinel-password-file", secret),
             "--redis-sentinel-password-file is for --redis"),
            (("--redis", "redis+sentinel://s1/m", "--redis-sentinel-password-file", "/no/file"),
             "--redis-sentinel-password-file '/no/file': No such file"),
        ):  # fmt: skip
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, self.parse, *argv)
                self.assertIn(words, str(e))
                self.assertNotIn("\n", str(e))


async def publish_until_heard(redis: RedisClient, heard: list[str]) -> bool:
    """Whether the channel heard "two", published once more when it has not."""
    if "two" not in heard:
        await redis.bounded(redis.handler.publish("news", "two"))
    return "two" in heard


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
        await until(lambda: heard == ["one"])
        # Replicated before the kill: WAIT until the replica has it.
        self.assertEqual(await redis.bounded(redis.handler.execute_command("WAIT", 1, 1000)), 1)

        # As if the master's clock stood 100 s ahead of this one (the heartbeat's estimate).
        redis.redis_clock.heard(int(time.time()) + 100, 0)
        self.assertGreater(redis.redis_clock.offset, 99)

        cluster.kill_master()
        started = time.monotonic()
        # Watched from outside meanwhile: when the sentinels name the promoted replica.
        promotion = Deferred.fromCoroutine(cluster.wait_for_failover())
        failures: list[object] = []
        while True:
            try:
                written = await redis.bounded(redis.handler.set(redis.key("k"), "after"))
            except BackendUnavailable as error:
                failures.append(error)
                # Never a hang: each failed call is refused (no master) or gives up at
                # its own deadline, and says which.
                self.assertRegex(str(error), r"^Redis at \S+ (did not answer within 1 s$"
                                             r"|is unreachable: )")  # fmt: skip
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
        # Reached within the pool's longest reconnection delay (2 s) and one timeout of
        # the promotion: the documented promise (docs/scaling.md), so kept as a bound,
        # with FOLLOW_MARGIN for a busy machine. Both figures are read by this process
        # on one clock, so a machine that runs it late stretches both alike; a pool that
        # did not follow the sentinels would stay on the dead master for good.
        self.assertLess(followed, promoted + 2.0 + settings.timeout + FOLLOW_MARGIN)
        # The promoted replica holds what was replicated, and does not have the script
        # yet: EVALSHA's NOSCRIPT is answered with EVAL.
        self.assertEqual(await redis.bounded(redis.handler.get(redis.key("k"))), "after")
        self.assertEqual(await redis.run(script, [redis.key("runs")]), 2)
        # The promoted replica's clock is not taken to be the former master's.
        self.assertEqual(redis.redis_clock.offset, 0.0)
        # The channel subscribed again, on the new master.
        await until(lambda: publish_until_heard(redis, heard), "the channel to hear the new master",
                    every=0.1)  # fmt: skip
        self.assertEqual(heard[0], "one")

    async def test_a_failover_with_the_master_up(self) -> None:
        # SENTINEL FAILOVER (maintenance): the former master stays up and becomes a
        # replica; the process must not stay on it, and a write it refuses meanwhile
        # (READONLY) is `BackendUnavailable`, never another error.
        cluster = await start_sentinel_cluster(self, password=self.password)
        settings = evolve(parse_redis_url(cluster.url), password=self.password, timeout=1.0)
        redis = RedisClient.open(settings, reactor)
        self.addCleanup(redis.disconnect)
        heard: list[str] = []
        channel = RedisSubscription(redis.endpoint(reactor), "news", heard.append, reactor,
                                    self.password)  # fmt: skip
        channel.start()
        self.addCleanup(channel.stop)
        await channel.when_subscribed()
        self.assertEqual(await redis.bounded(redis.handler.incr(redis.key("n"))), 1)
        former = cluster.master.port

        cluster.fail_over()
        promoted = await cluster.wait_for_failover()
        refused = 0
        while True:
            try:
                n = await redis.bounded(redis.handler.incr(redis.key("n")))
            except BackendUnavailable:
                refused += 1
                await _sleep(0.05)
                continue
            # Written on the new master (a write the former one took before it was
            # demoted is dropped when it resynchronises from the new one).
            if command(cluster.master.port, "GET", redis.key("n"), password=self.password) == str(
                n
            ):
                break
            await _sleep(0.05)
        followed = time.monotonic() - cluster.killed_at  # type: ignore[operator]
        print(f"\nSENTINEL FAILOVER: the replica promoted {promoted:.2f} s after it; the "
              f"pool wrote to it {followed:.2f} s after it ({refused} calls refused)")  # fmt: skip
        # Moved within the watch's second (and a reconnection) of the promotion: the
        # documented promise, with FOLLOW_MARGIN for a busy machine (as above).
        self.assertLess(followed, promoted + 2 * WATCH_EVERY + settings.timeout + FOLLOW_MARGIN)
        self.assertNotEqual(cluster.master.port, former)
        await until(lambda: publish_until_heard(redis, heard), "the channel to hear the new master",
                    every=0.1)  # fmt: skip



class RefusedForNowTests(TestCase):
    """A Redis that takes no writes for now (a replica: a master just demoted; a master
    short of replicas, `min-replicas-to-write`) refuses a call, which did nothing: the
    call fails with BackendUnavailable (players are told `unavailable`), not with a
    Redis error (a traceback and `internal_error`)."""

    timeout = 30

    async def test_readonly_and_noreplicas_are_unavailable(self) -> None:
        master = RedisServer(os.path.abspath(self.mktemp()))
        await master.start()
        self.addCleanup(master.stop)
        replica = RedisServer(os.path.abspath(self.mktemp()),
                              extra=("--replicaof", "127.0.0.1", str(master.port)))  # fmt: skip
        await replica.start()
        self.addCleanup(replica.stop)
        self.assertEqual(command(master.port, "CONFIG", "SET", "min-replicas-to-write", "2"), "OK")
        writes = Script("return redis.call('SET', KEYS[1], 'x')")
        reads = Script("return redis.call('EXISTS', KEYS[1])")
        for server, code in ((replica, "READONLY"), (master, "NOREPLICAS")):
            redis = RedisClient.open(parse_redis_url(server.url), reactor)
            self.addCleanup(redis.disconnect)
            calls = [
                redis.bounded(redis.handler.set("k", "v")),
                redis.run(writes, ["k"]),
                # The matchmaker's calls: the script on the pool, bounded by their own deadline.
                writes.call(redis.handler, ["k"]),
            ]
            for call in calls:
                with self.assertRaises(BackendUnavailable) as raised:
                    await call
                self.assertIn(f"Redis refused the call for now: {code} ", str(raised.exception))
            self.assertEqual(await redis.run(reads, ["k"]), 0)


class SentinelClusterTests(ClusterTestCase):
    """Real `twistd vinom lobby` and `twistd vinom host` processes on a `redis+sentinel://`
    URL; the master is killed (SIGKILL) with matches running and players queued.

    Sentinel timings are short, for the test (0.5 s down-after-milliseconds, 2 s
    failover-timeout: tests/support/sentinel.py); what players see after the
    promotion is what production sees after its own (longer) detection."""

    sentinel = True
    timeout = 120

    async def test_a_failover_mid_run(self) -> None:
        host = await self.start("host", ports=24)
        lobbies = [await self.start("lobby") for _ in "ab"]
        # The start-up check asked the sentinels and says which master it found.
        for process in (host, *lobbies):
            self.assertIn(f"Redis Sentinel: master mymaster is at 127.0.0.1:"
                          f"{self.sentinels.master.port}", process.text)  # fmt: skip
        addresses = [self.lobby_address(lobby) for lobby in lobbies]
        sessions: list[float] = []
        reports: dict[str, BotReport] = {}
        found_at: dict[str, float] = {}
        ended_at: dict[str, float] = {}
        rng = random.Random(25)

        turn = iter(range(1000))

        def bot(
            name: str, think: float, queued: Deferred[None] | None = None
        ) -> Deferred[BotReport]:
            def connected(session: object) -> None:
                found_at[name] = time.monotonic()
                sessions.append(found_at[name])

            d = Deferred.fromCoroutine(play(
                addresses[next(turn) % 2], name, random.Random(rng.random()), think,
                on_session=connected, queued=queued,
            ))  # fmt: skip

            def ended(report: BotReport) -> BotReport:
                ended_at[name] = time.monotonic()
                return reports.setdefault(name, report)

            return d.addCallback(ended)

        # Four matches running (moves 1.5 s apart: they outlast the failover)...
        running = [bot(f"r{i}", 1.5) for i in range(8)]
        await until(lambda: len(sessions) == 8, timeout=30)
        # ...five players queued just before the kill (told `queued`: their tickets are
        # in Redis; two pairs are matched at once, one waits for a partner)...
        told_queued: list[Deferred[None]] = [Deferred() for _ in range(5)]
        queued = {f"q{i}": bot(f"q{i}", 0.0, told_queued[i]) for i in range(5)}
        await gatherResults(told_queued)
        master = self.sentinels.master.port
        self.sentinels.kill_master()
        killed = time.monotonic()
        promotion = Deferred.fromCoroutine(self.sentinels.wait_for_failover())
        # ...and players arriving through the failover, one every 0.25 s for 5 s.
        arriving: dict[str, Deferred[BotReport]] = {}
        for i in range(20):
            arriving[f"a{i}"] = bot(f"a{i}", 0.0)
            await _sleep(0.25)
        promoted = await promotion
        await gatherResults(running)
        # A player left waiting alone (its partner was told `unavailable`) gets one:
        # late players join until every earlier one has an answer (a few at most).
        waiting = {**queued, **arriving}
        closers: dict[str, Deferred[BotReport]] = {}
        while not all(d.called for d in waiting.values()) and len(closers) < 6:
            closers[f"c{len(closers)}"] = bot(f"c{len(closers)}", 0.0)
            with contextlib.suppress(AssertionError):  # not yet: one more late player joins
                await until(lambda: all(d.called for d in waiting.values()), timeout=8)
        silent = sorted(name for name, d in waiting.items() if not d.called)
        # A late player who was matched plays its match out (its partner's report names
        # the match: cancelled, it would leave that match with one player); one still
        # queued is cancelled.
        await until(lambda: all(d.called for name, d in closers.items() if name in found_at),
                    "the matched late players to finish", timeout=30)  # fmt: skip
        for d in closers.values():
            d.cancel()
        await DeferredList(list(closers.values()), consumeErrors=True)

        # Running matches finished, through the failover (they were running at the kill).
        self.assertEqual([reports[f"r{i}"].outcome for i in range(8)], ["finished"] * 8)
        self.assertGreater(min(ended_at[f"r{i}"] for i in range(8)), killed)
        outlasted = sum(1 for i in range(8) if ended_at[f"r{i}"] > killed + promoted) // 2
        # Every process followed the master by itself.
        for process in (host, *lobbies):
            self.assertIn(f"Redis Sentinel: master mymaster is now at 127.0.0.1:"
                          f"{self.sentinels.master.port} (was 127.0.0.1:{master})",
                          process.text)  # fmt: skip
        # Queued and arriving players: matched and played, or told (an error frame).
        self.assertEqual(silent, [])
        told = {n: r.error for n, r in reports.items() if n in waiting and r.outcome != "finished"}
        codes: dict[str, collections.Counter[str]] = {"q": collections.Counter(),
                                                      "a": collections.Counter()}  # fmt: skip
        for name, error in told.items():
            if (reports[name].outcome, error) == ("aborted", "players_missing"):
                # A match formed as the master died, whose log entry the promoted
                # replica never had: the lobby that had not heard of it put its player
                # back, and the match was aborted at its connect deadline (docs/scaling.md,
                # "Writes a failover loses"). Its players keep a place in the queue.
                codes[name[0]]["players_missing"] += 1
                continue
            # An `error` frame with a code (`unavailable`, or `match_failed` for a match
            # whose placement the outage cut short), never an internal error.
            self.assertTrue(str(error).startswith("LobbyError: "),
                            (name, reports[name].outcome, error))  # fmt: skip
            self.assertNotIn("internal_error", str(error), name)
            codes[name[0]][str(error).split(": ")[1]] += 1
        # No double match: every player in one match, every match hosted once.
        hosted = self.hosted_matches(host)
        self.assertEqual(len(hosted), len(set(hosted)), hosted)
        played = [r for r in reports.values() if r.outcome == "finished"]
        self.assertEqual(len({r.player_id for r in played}), len(played))
        by_match = collections.Counter(r.match_id for r in played)
        self.assertEqual(set(by_match.values()), {2}, by_match)
        self.assertLessEqual(set(by_match), set(hosted))
        # Nothing crashed: no traceback in any process.
        for process in (host, *lobbies):
            self.assertNotIn("Traceback", process.text)
        # The failover as players saw it: the first match found by a player who came
        # after the kill.
        after = sorted(t for name, t in found_at.items() if name[0] == "a")
        self.assertTrue(after, "no player was matched after the failover")
        matched_again = after[0] - killed
        q_told, a_told = sum(codes["q"].values()), sum(codes["a"].values())
        print(f"\nfailover: the sentinels named the promoted replica {promoted:.2f} s after "
              f"SIGKILL; the first match found by a player arriving after the kill came "
              f"{matched_again:.2f} s after it; running matches: 4 finished, {outlasted} of "
              f"them after the promotion; queued before the kill: {len(queued) - q_told} "
              f"matched and played, told {dict(codes['q'])}; arriving: "
              f"{len(arriving) - a_told} matched and played, told {dict(codes['a'])}; "
              f"{len(closers)} late player(s) joined")  # fmt: skip

    async def test_a_ticket_the_promoted_replica_never_had_is_put_back(self) -> None:
        # Replication is asynchronous: a write the master acknowledged may be lost with
        # it. Here the replica is cut off before a player queues, so its ticket is
        # certainly not on the replica the sentinels promote.
        await self.start("host")
        lobby = self.lobby_address(await self.start("lobby"))
        first = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        self.addCleanup(first.close)
        welcome = await first.hello("early")
        await self.sentinels.cut_replica_off()
        queued: Deferred[object] = Deferred()
        # (`queued` may come again: waiting_for_server, while no host is registered.)
        matched = first.queue(
            GAME.name, on_queued=lambda *_: queued.called or queued.callback(None)
        )
        await queued
        ticket = f"vinom:mm:t:{welcome.player_id}"
        replica = self.sentinels.replica.port
        self.assertEqual(command(self.sentinels.master.port, "EXISTS", ticket), 1)
        self.assertEqual(command(replica, "EXISTS", ticket), 0)

        self.sentinels.kill_master()
        await self.sentinels.wait_for_failover()
        # The lobby still holds the ticket: it puts it back on the new master, and the
        # next player is matched with the one who queued before the failover.
        second = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        self.addCleanup(second.close)
        await until(lambda: command(replica, "EXISTS", ticket) == 1, timeout=15)
        await second.hello("late")
        found = await second.queue(GAME.name)
        self.assertEqual((await matched).game_id, found.game_id)



class StartupCheckTests(TestCase):
    """The start-up check (`check_redis`, run by `twistd vinom` before the reactor) through
    real sentinels that ask for a password of their own, as are a master and a replica."""

    timeout = 60

    async def test_the_master_is_found_and_a_mistake_is_one_line(self) -> None:
        cluster = await start_sentinel_cluster(self, password="master-pw",
                                               sentinel_password="sentinel-pw")  # fmt: skip
        good = evolve(parse_redis_url(cluster.url), password="master-pw",
                      sentinel_password="sentinel-pw")  # fmt: skip
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        check_redis(good, wait=1.0)
        said = [formatEvent(e) for e in events if "Redis Sentinel" in str(e.get("log_format"))]
        first = cluster.sentinels[0].port
        self.assertEqual(said, [f"vinom: Redis Sentinel: master mymaster is at 127.0.0.1:"
                                f"{cluster.master.port} (named by the sentinel at "
                                f"127.0.0.1:{first})"])  # fmt: skip

        mistakes = {
            "knows no master named 'other' (asked sentinels 127.0.0.1:": evolve(
                good, master_name="other"
            ),
            "refused the connection: NOAUTH": evolve(good, sentinel_password=None),
            "refused the connection: WRONGPASS": evolve(good, sentinel_password="wrong"),
            f"names master 127.0.0.1:{cluster.master.port}, which refused the connection: "
            "WRONGPASS": evolve(good, password="wrong"),
        }
        for reason, settings in mistakes.items():
            slept: list[float] = []
            with self.assertRaises(StartupError, msg=reason) as raised:
                check_redis(settings, wait=5.0, sleep=slept.append)
            message = str(raised.exception)
            self.assertIn(reason, message)
            self.assertTrue(message.startswith(f"vinom: Redis at {settings.url} "), message)
            self.assertNotIn("\n", message)
            self.assertNotIn("-pw", message.replace("master-pw", ""))
            # Refused at the first try: no waiting.
            self.assertEqual(slept, [], reason)
        self.assertIn("--redis-sentinel-password-file",
                      self._refusal(evolve(good, sentinel_password=None)))  # fmt: skip

        # No sentinel answers: asked again until the wait is over, then one line.
        nowhere = evolve(good, sentinels=((("127.0.0.1", free_tcp_port()),)))
        with self.assertRaises(StartupError) as raised:
            check_redis(nowhere, wait=0.5)
        self.assertIn("did not answer for 0.5 s (sentinel 127.0.0.1:", str(raised.exception))

        # Started during a failover: it waits for the sentinels to name the promoted replica
        # (and says why, if the wait is over first).
        former = cluster.master.port
        cluster.kill_master()
        with self.assertRaises(StartupError) as raised:
            check_redis(good, wait=0.2)
        self.assertIn(f"names master 127.0.0.1:{former}, which does not answer as a master "
                      "(Connection refused)", str(raised.exception))  # fmt: skip
        await deferToThread(check_redis, good, 20.0)
        self.assertEqual(said_last(events), f"127.0.0.1:{cluster.replica.port}")

    def _refusal(self, settings: RedisSettings) -> str:
        with self.assertRaises(StartupError) as raised:
            check_redis(settings, wait=1.0)
        return str(raised.exception)


class EndsThroughFailoverTests(ClusterTestCase):
    """Matches that end while Redis fails over: their lobby stops counting them (issue
    #34, item 3). The lobby follows the failover last (paused from just before the
    SIGKILL until every end was announced on the promoted replica, as a busy lobby or
    one slow to reconnect may be): each `ended` was published there before the lobby
    subscribed to it again, so the lobby heard none of them."""

    sentinel = True
    timeout = 150

    async def test_matches_ended_during_a_failover_stop_counting_as_running(self) -> None:
        host = await self.start("host", ports=8)
        ops = free_tcp_port()
        lobby_process = await self.start("lobby", "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
                                         "--limit", "drain-timeout=120")  # fmt: skip
        lobby = self.lobby_address(lobby_process)

        async def running() -> float:
            code, text = await http_get(f"http://127.0.0.1:{ops}/metrics")
            self.assertEqual(code, 200)
            return metric_value(text, "vinom_running_matches")

        sessions: list[GameSession] = []
        rng = random.Random(34)
        # Three matches, moves 0.7 s apart: each ends a few seconds after the kill.
        bots = [Deferred.fromCoroutine(play(lobby, f"p{i}", random.Random(rng.random()), 0.7,
                                            on_session=sessions.append))
                for i in range(6)]  # fmt: skip
        await until(lambda: len(sessions) == 6, timeout=30)
        self.assertEqual(await running(), 3)

        lobby_process.transport.signalProcess(signal.SIGSTOP)
        self.sentinels.kill_master()
        try:
            await self.sentinels.wait_for_failover()
            reports = await gatherResults(bots)
            self.assertEqual([r.outcome for r in reports], ["finished"] * 6)
            # The host announced each end on the promoted replica (it retries while
            # Redis does not answer): its matches set there is empty.
            matches = f"vinom:host-matches:{self.host_id(host)}"
            async def announced() -> bool:
                return not await self.redis_call("SCARD", matches)

            await until(announced, "the host to announce the ends", timeout=30, every=0.1)
        finally:
            lobby_process.transport.signalProcess(signal.SIGCONT)
        woke = time.monotonic()

        # The lobby counts none of them as running once it is back on the new master...
        left: list[float] = []

        async def settled_down() -> bool:
            left.append(await running())
            return left[-1] == 0

        await until(settled_down, lambda: f"{left[-1]:g} matches still running", timeout=20,
                    every=0.1)  # fmt: skip
        settled = time.monotonic() - woke
        # ...so a SIGTERM'd lobby has nothing to wait for: it exits at once, not after
        # its drain timeout (120 s).
        lobby_process.transport.signalProcess(signal.SIGTERM)
        terminated = time.monotonic()
        await until(lambda: lobby_process.output.ended.called, timeout=15)
        self.assertNotIn("drain: waiting up to", lobby_process.text)
        for process in (host, lobby_process):
            self.assertNotIn("Traceback", process.text)
        exited = time.monotonic() - terminated
        print(f"\nthe lobby counted 0 running matches {settled:.2f} s after it came back; "
              f"SIGTERM to exit: {exited:.2f} s", file=sys.stderr)  # fmt: skip



def said_last(events: list[dict[str, Any]]) -> str:
    """The master the last start-up check found."""
    found = [e["found"] for e in events if "Redis Sentinel" in str(e.get("log_format"))]
    return str(found[-1]).split(" ", 1)[0]


class LongFailoverTests(ClusterTestCase):
    """A failover that takes longer than a host's TTL and a lobby's lease, as production's
    do (the sentinels' down-after-milliseconds alone is usually 5 s): on the promoted
    replica every host key and lease has expired. The survivors judge nobody dead for
    it (the watch guard, vinom.cluster.watch): the running match plays on."""

    sentinel = True
    timeout = 150

    async def setUp(self) -> None:  # type: ignore[override]
        # (ClusterTestCase's, with other sentinel timings: the master is thought down
        # only after 4 s without an answer, longer than host_ttl, 3 s.)
        self.sentinels = await start_sentinel_cluster(self, down_after=4.0, failover_timeout=6.0)
        self.redis_url = self.sentinels.url
        self.key_file = os.path.abspath(self.mktemp())
        with open(self.key_file, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(self.key_file, 0o600)

    async def test_a_running_match_outlives_a_failover_longer_than_every_lease(self) -> None:
        self.assertGreater(self.sentinels.down_after, DEFAULT_PLACEMENT.host_ttl)
        host = await self.start("host", ports=4)
        lobby_process = await self.start("lobby")
        lobby = self.lobby_address(lobby_process)
        steady = Deferred.fromCoroutine(play(lobby, "steady", random.Random(1), 2.0,
                                             on_session=lambda _: None))  # fmt: skip
        client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        welcome = await client.hello("flaky")
        found = await client.queue(GAME.name)
        client.close()
        session = await connect_game(reactor, found)
        driver = BotDriver(session, GAME.make_bot(welcome.player_id, random.Random(2)),
                           think_time=2.0, clock=reactor)  # fmt: skip
        driver.attach()
        self.sentinels.kill_master()
        promoted = await self.sentinels.wait_for_failover()
        # The host is slow to follow (stalled for a second at the promotion): the lobby
        # reaches the new master first, and finds the host's key gone.
        host.transport.signalProcess(signal.SIGSTOP)
        await _sleep(1.0)
        host.transport.signalProcess(signal.SIGCONT)
        # Past the guard's window: the host registered again, nobody judged it dead.
        await _sleep(DEFAULT_PLACEMENT.host_ttl + DEFAULT_PLACEMENT.heartbeat_every)
        self.assertNotIn("left the registry", lobby_process.text)
        # `reconnect` still answers for the match, on the same host (the player's own
        # session plays on meanwhile).
        again = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        self.addCleanup(again.close)
        refound = await again.reconnect(welcome.player_id, welcome.secret)
        self.assertEqual((refound.game_id, refound.host, refound.port),
                         (found.game_id, found.host, found.port))  # fmt: skip
        final = await session.finished
        driver.cancel()
        await session.disconnect()
        theirs = await steady
        self.assertEqual((final["p"], theirs.outcome, theirs.match_id),
                         ("finished", "finished", found.game_id))  # fmt: skip
        for process in (host, lobby_process):
            self.assertNotIn("host_crashed", process.text)
            self.assertNotIn("Traceback", process.text)
        print(f"\nfailover with down-after 4 s: the sentinels named the promoted replica "
              f"{promoted:.2f} s after SIGKILL; the running match finished", file=sys.stderr)
