"""Redis settings from URLs, the bounded calls of a RedisClient against a real Redis,
and a RedisSubscription through restarts and cut-offs."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import gc
from collections.abc import Callable

import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.http import capture_log
from tests.support.redis_server import start_redis
from tests.support.waiting import until
from vinom.cluster.client import (
    RedisClient,
    RedisSettings,
    RedisSubscription,
    Script,
    SentinelMaster,
    client_endpoint,
    parse_redis_url,
)
from vinom.cluster.settings import (
    PlacementSettings,
    RedisMatchmakerSettings,
    RedisPartySettings,
)
from vinom.errors import BackendUnavailable


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

    def test_rediss_is_redis_over_tls(self) -> None:
        settings = parse_redis_url("rediss://:pw@redis.example:6380/2")
        self.assertEqual((settings.host, settings.port, settings.db, settings.tls),
                         ("redis.example", 6380, 2, True))  # fmt: skip
        self.assertEqual(settings.url, "rediss://redis.example:6380/2")
        self.assertFalse(parse_redis_url("redis://redis.example").tls)

    def test_a_ca_file_that_is_not_usable_says_why(self) -> None:
        missing = self.mktemp()
        garbage = self.mktemp()
        with open(garbage, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        for path, reason in ((missing, "No such file"), (garbage, "holds no PEM certificate")):
            settings = RedisSettings(tls=True, ca_file=path)
            with self.assertRaises(ValueError, msg=path) as raised:
                settings.tls_options()
            self.assertIn(reason, str(raised.exception), path)

    def test_an_ipv6_host(self) -> None:
        settings = parse_redis_url("redis://[::1]:7000/1")
        self.assertEqual((settings.host, settings.port, settings.db), ("::1", 7000, 1))
        self.assertEqual(settings.url, "redis://[::1]:7000/1")

    def test_bad_urls_say_what_is_wrong(self) -> None:
        cases = {
            "http://cache:6379/0": "redis://",
            "unix://cache": "rediss://",
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


class SettingsTests(SynchronousTestCase):
    def test_every_time_and_count_must_be_positive_and_the_error_names_it(self) -> None:
        cases = {
            RedisSettings: ("pool_size", "timeout"),
            RedisMatchmakerSettings: (
                "lobby_lease", "tick_every", "call_timeout", "matches_per_pass",
                "ranked_scan_limit", "matched_memory", "match_log_length", "enqueue_batch",
            ),
            RedisPartySettings: ("party_ttl", "refresh_every", "check_every"),
            PlacementSettings: (
                "place_timeout", "claim_after", "refresh_every", "heartbeat_every",
                "host_ttl", "silent_after", "stall_grace", "key_ttl",
            ),
        }  # fmt: skip
        for settings, names in cases.items():
            for name in names:
                for bad in (0, -1.5):
                    with self.assertRaises(ValueError, msg=f"{settings.__name__}.{name}") as e:
                        settings(**{name: bad})  # type: ignore[arg-type]
                    self.assertEqual(str(e.exception), f"{name} must be positive, not {bad!r}")
                settings(**{name: 2})  # type: ignore[arg-type]

    def test_a_lobby_lease_must_outlast_the_tick_that_renews_it(self) -> None:
        with self.assertRaises(ValueError) as e:
            RedisMatchmakerSettings(lobby_lease=1.0, tick_every=1.0)
        self.assertEqual(
            str(e.exception),
            "lobby_lease (1 s) must be longer than tick_every (1 s), which renews it",
        )

    def test_the_parts_keys_sit_under_the_default_key_prefix(self) -> None:
        prefix = RedisSettings().key_prefix
        self.assertEqual(RedisMatchmakerSettings().prefix, prefix + "mm")
        self.assertEqual(RedisPartySettings().prefix, prefix + "party")


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
        call = client.bounded(client.handler.get("k"))
        error = await self.assertFailure(call, BackendUnavailable)
        # Its deadline gave up, not a hang (trial's timeout) nor another error.
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

    async def test_a_wrong_password_is_logged_and_leaves_no_unhandled_error(self) -> None:
        redis = await start_redis(self, password="right")
        lines = capture_log(self)
        settings = RedisSettings("127.0.0.1", redis.port, password="wrong", timeout=0.5)
        client = RedisClient.open(settings, reactor)
        await self.assertFailure(client.bounded(client.handler.get("k")), BackendUnavailable)
        await until(lambda: any("could not auth" in line for line in lines), "the AUTH refused")
        # txredisapi's line, once for each connection of the pool, and nothing else.
        self.assertTrue(lines)
        self.assertEqual({line.split(":")[0] for line in lines}, {"Redis error"}, lines)
        await client.disconnect()
        # The pool, collected (after a turn of the reactor, which lets go of its last
        # calls): a Deferred of its that failed unhandled would be logged now as an
        # error ("Unhandled error in Deferred").
        del client
        await deferLater(reactor, 0.1, lambda: None)
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_a_wrong_sentinel_password_leaves_no_unhandled_error(self) -> None:
        # A Redis asking for a password answers AUTH as a sentinel does.
        sentinel = await start_redis(self, password="right")
        lines = capture_log(self)
        settings = RedisSettings(
            "127.0.0.1", 6379, timeout=0.5, sentinels=(("127.0.0.1", sentinel.port),),
            master_name="mymaster", sentinel_password="wrong",
        )  # fmt: skip
        master = SentinelMaster(settings, reactor)
        await until(lambda: any("could not auth" in line for line in lines), "the AUTH refused")
        self.assertEqual({line.split(":")[0] for line in lines}, {"Redis error"}, lines)
        await master.disconnect()
        del master
        await deferLater(reactor, 0.1, lambda: None)
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])


def _calls(stats: dict[str, str], command: str) -> int:
    """How many times Redis ran `command`, from INFO commandstats."""
    fields = dict(item.split("=") for item in stats.get(f"cmdstat_{command}", "calls=0").split(","))
    return int(fields["calls"])


class ScriptTests(TestCase):
    """`Script` and `RedisClient.run` against a real Redis: EVALSHA, and EVAL only when
    Redis lacks the script."""

    timeout = 30

    async def test_a_script_is_sent_whole_only_when_redis_lacks_it(self) -> None:
        redis = await start_redis(self)
        client = RedisClient.open(RedisSettings("127.0.0.1", redis.port, pool_size=2), reactor)
        self.addCleanup(client.disconnect)
        script = Script("return ARGV[1] .. ':' .. redis.call('INCR', KEYS[1])")
        for n in range(1, 6):
            self.assertEqual(await client.run(script, ["n"], ["run"]), f"run:{n}")
        stats = await client.bounded(client.handler.info("commandstats"))
        self.assertEqual((_calls(stats, "eval"), _calls(stats, "evalsha")), (1, 5))
        # Another client makes Redis forget every script (as a restart or an operator
        # would): the next call loads it again, and the ones after run by its SHA1.
        self.assertEqual(redis.command("SCRIPT", "FLUSH"), b"+OK")
        self.assertEqual(redis.command("SCRIPT", "EXISTS", script.sha1), b"*1")
        for n in range(6, 9):
            self.assertEqual(await client.run(script, ["n"], ["again"]), f"again:{n}")
        stats = await client.bounded(client.handler.info("commandstats"))
        self.assertEqual((_calls(stats, "eval"), _calls(stats, "evalsha")), (2, 8))

    async def test_a_script_error_is_the_scripts_not_an_outage(self) -> None:
        redis = await start_redis(self)
        client = RedisClient.open(RedisSettings("127.0.0.1", redis.port), reactor)
        self.addCleanup(client.disconnect)
        error = await self.assertFailure(
            client.run(Script("return redis.call('NOSUCHCOMMAND')")), txredisapi.ResponseError
        )
        self.assertNotIsInstance(error, BackendUnavailable)

    async def test_a_script_call_to_a_redis_that_is_down_fails_within_the_timeout(self) -> None:
        redis = await start_redis(self)
        await redis.stop()
        client = RedisClient.open(RedisSettings("127.0.0.1", redis.port, timeout=0.3), reactor)
        self.addCleanup(client.disconnect)
        error = await self.assertFailure(client.run(Script("return 1")), BackendUnavailable)
        self.assertIn("0.3 s", str(error))


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class _ScriptedRedis(Protocol):
    """A stand-in Redis for the pub/sub edge cases a real one will not produce on cue:
    each connection is handled by the server's `on_subscribe` once SUBSCRIBE arrives."""

    server: _ScriptedRedisFactory

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"SUBSCRIBE" in self.received.upper():
            self.received = b""
            self.server.on_subscribe(self)

    def answer_subscribe(self, channel: str) -> None:
        self.transport.write(b"*3\r\n" + _bulk("subscribe") + _bulk(channel) + b":1\r\n")

    def publish(self, channel: str, message: str) -> None:
        self.transport.write(b"*3\r\n" + _bulk("message") + _bulk(channel) + _bulk(message))


class _ScriptedRedisFactory(Factory):
    protocol = _ScriptedRedis

    def __init__(self, on_subscribe: Callable[[_ScriptedRedis], object]) -> None:
        self.on_subscribe = on_subscribe
        self.connections: list[_ScriptedRedis] = []

    def buildProtocol(self, addr: object) -> _ScriptedRedis:
        protocol = _ScriptedRedis()
        protocol.server = self
        return protocol


class RedisSubscriptionTests(TestCase):
    timeout = 30

    def listen(
        self, on_subscribe: Callable[[_ScriptedRedis], object]
    ) -> tuple[_ScriptedRedisFactory, int]:
        server = _ScriptedRedisFactory(on_subscribe)
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return server, port.getHost().port

    def subscription(self, port: int, heard: list[str]) -> RedisSubscription:
        settings = RedisSettings("127.0.0.1", port)
        return RedisSubscription(client_endpoint(settings, reactor), "news", heard.append, reactor)

    async def test_messages_are_heard_and_again_after_redis_restarts(self) -> None:
        redis = await start_redis(self)
        heard: list[str] = []
        subscription = self.subscription(redis.port, heard)
        subscription.start()
        self.addCleanup(subscription.stop)
        await subscription.when_subscribed()
        client = RedisClient.open(RedisSettings("127.0.0.1", redis.port), reactor)
        self.addCleanup(client.disconnect)
        await client.bounded(client.handler.publish("news", "before"))
        await redis.restart()
        await subscription.when_subscribed()
        await client.bounded(client.handler.publish("news", "after"))
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(heard, ["before", "after"])

    async def test_stopped_while_its_subscribe_is_unanswered(self) -> None:
        # Stopped before its SUBSCRIBE is answered, then cut off by the server:
        # the stop completes, a caller still waiting is told, and nothing is logged.
        asked: Deferred[_ScriptedRedis] = Deferred()
        server, port = self.listen(asked.callback)
        subscription = self.subscription(port, [])
        subscription.start()
        waiting = subscription.when_subscribed()
        connection = await asked
        await subscription.stop()
        await self.assertFailure(waiting, CancelledError)
        connection.transport.loseConnection()
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(server.connections), 1)

    async def test_cut_off_while_subscribing_it_reconnects_and_subscribes(self) -> None:
        def on_subscribe(connection: _ScriptedRedis) -> None:
            if len(server.connections) == 1:
                connection.transport.loseConnection()
            else:
                connection.answer_subscribe("news")
                connection.publish("news", "hello")

        heard: list[str] = []
        server, port = self.listen(on_subscribe)
        subscription = self.subscription(port, heard)
        subscription.start()
        self.addCleanup(subscription.stop)
        await subscription.when_subscribed()
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((len(server.connections), heard), (2, ["hello"]))
