"""Each workaround of vinom.cluster.txredisapi_adapter, on real Redis processes, so that an
upgrade of txredisapi that breaks one fails here; and the version they were written for.

Some are shown through vinom's own code over the adapter, in tests/cluster/test_redis.py:
the first-connection Deferred handled (`test_a_wrong_password_is_logged_and_leaves_no_
unhandled_error`, `test_a_wrong_sentinel_password_leaves_no_unhandled_error`) and a
script sent whole only when Redis lacks it (`test_a_script_is_sent_whole_only_when_
redis_lacks_it`); and every Sentinel failover test (tests/cluster/test_sentinel.py) runs
the master's pool.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import functools
import importlib.metadata
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

import vinom
from tests.support.redis_server import RedisServer, start_redis
from tests.support.sentinel import start_sentinel_cluster
from tests.support.waiting import until
from vinom.cluster import txredisapi_adapter
from vinom.cluster.txredisapi_adapter import TXREDISAPI_VERSION, WORKAROUNDS

# The tests below that pin each workaround (the module docstring names the others).
PINNED_BY = {
    "imported_late": "ImportedLateTests",
    "pools_on_our_endpoint": "PoolTests; test_redis.RedisClientTests (wrong passwords)",
    "master_pool_checks_role": "MasterPoolTests; test_sentinel",
    "script_sent_whole_once": "test_redis.ScriptTests",
    "subscriber_on_our_service": "SubscriberTests; test_redis.RedisSubscriptionTests",
    "blocking_read_off_the_turn": "BlockingReadTests",
    "handshake_lost_keeps_trying": "HandshakeLostTests; test_redis.RedisClientTests (wrong "
    "passwords)",
}


class VersionTests(SynchronousTestCase):
    def test_the_installed_txredisapi_is_the_one_the_workarounds_are_for(self) -> None:
        recheck = "\n".join(f"  {name}: {what} ({PINNED_BY[name]})"
                            for name, what in WORKAROUNDS.items())  # fmt: skip
        for installed in (importlib.metadata.version("txredisapi"),
                          txredisapi_adapter.installed_version()):  # fmt: skip
            self.assertEqual(
                installed, TXREDISAPI_VERSION,
                f"txredisapi {installed} is installed, and vinom's workarounds were written "
                f"for {TXREDISAPI_VERSION}: re-check each in vinom/cluster/txredisapi_adapter.py"
                f" (and run its tests), then set TXREDISAPI_VERSION:\n{recheck}",
            )  # fmt: skip

    def test_every_workaround_is_pinned_by_a_test(self) -> None:
        self.assertEqual(set(PINNED_BY), set(WORKAROUNDS))

    def test_docs_name_the_version_and_every_workaround(self) -> None:
        doc = (Path(__file__).resolve().parents[2] / "docs" / "scaling.md").read_text()
        self.assertIn(f"txredisapi {TXREDISAPI_VERSION}", doc)
        for name in WORKAROUNDS:
            self.assertIn(f"`{name}`", doc)
        self.assertIn(f"at most {txredisapi_adapter.MASTER_MAX_DELAY:g} s apart, not 10 s", doc)


def _in_a_fresh_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


_REACTOR_AFTER = """
import importlib, sys
for name in {names!r}:
    importlib.import_module(name)
    if "twisted.internet.reactor" in sys.modules:
        print(name)
        break
"""


class ImportedLateTests(SynchronousTestCase):
    """Workaround 1: txredisapi installs the global reactor when imported, so vinom
    imports it only inside the adapter's functions."""

    def test_importing_any_module_of_vinom_installs_no_reactor(self) -> None:
        names = [m.name for m in pkgutil.walk_packages(vinom.__path__, "vinom.")]
        self.assertIn("vinom.cluster.txredisapi_adapter", names)
        self.assertIn("vinom.cluster.matchmaker", names)
        self.assertEqual(_in_a_fresh_python(_REACTOR_AFTER.format(names=names)), "")

    def test_txredisapi_still_installs_the_reactor_when_imported(self) -> None:
        # When this fails, txredisapi no longer needs importing late (vinom would still
        # import it in the adapter only).
        self.assertEqual(_in_a_fresh_python(_REACTOR_AFTER.format(names=["txredisapi"])),
                         "txredisapi")  # fmt: skip


@implementer(IStreamClientEndpoint)
class _CountingEndpoint:
    """Connects to the ports of `ports` in turn (the last one over and over), and
    says how many connections were made."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)
        self.made: list[int] = []
        self._waiting: list[tuple[int, Deferred[None]]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        port = self.ports[min(len(self.made), len(self.ports) - 1)]
        d: Deferred[Any] = HostnameEndpoint(reactor, "127.0.0.1", port).connect(factory)
        return d.addCallback(self._made, port)

    def _made(self, protocol: Any, port: int) -> Any:
        self.made.append(port)
        for count, waiter in list(self._waiting):
            if len(self.made) >= count:
                self._waiting.remove((count, waiter))
                waiter.callback(None)
        return protocol

    def until_made(self, count: int) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if len(self.made) >= count:
            waiter.callback(None)
        else:
            self._waiting.append((count, waiter))
        return waiter


class PoolTests(TestCase):
    """Workaround 2: a pool is txredisapi's RedisFactory started on vinom's endpoint."""

    timeout = 60

    async def test_a_pool_connects_and_reconnects_through_the_endpoint_it_is_given(
        self,
    ) -> None:
        redis = await start_redis(self, password="pw")
        endpoint = _CountingEndpoint(redis.port)
        pool = txredisapi_adapter.pool(endpoint, name="test", db=2, size=2, password="pw",
                                       timeout=5.0)  # fmt: skip
        self.addCleanup(pool.disconnect)
        # Usable at once: the call waits for a connection, AUTH and SELECT 2.
        await pool.set("id", "42")
        # Strings stay strings.
        self.assertEqual(await pool.get("id"), "42")
        await endpoint.until_made(2)
        self.assertEqual(endpoint.made, [redis.port, redis.port])
        self.assertEqual(redis.command("DBSIZE"), b":0")  # (database 0)
        # Redis restarts: both connections are made again through the same endpoint.
        await redis.restart()
        await endpoint.until_made(4)
        await pool.set("id", "43")
        self.assertEqual(await pool.get("id"), "43")


    async def test_calls_cancelled_while_redis_is_down_leave_the_pool_usable(self) -> None:
        # RedisClient.bounded cancels a call at its deadline: calls that wait for a
        # connection, simple and blocking ones, given up on while Redis is down.
        redis = await start_redis(self)
        await redis.stop()
        pool = txredisapi_adapter.pool(HostnameEndpoint(reactor, "127.0.0.1", redis.port),
                                       name="test", db=0, size=2, password=None,
                                       timeout=5.0)  # fmt: skip
        self.addCleanup(pool.disconnect)
        calls = [pool.get("k"), pool.get("k"), pool.set("k", "x"), pool.brpop("q", timeout=1)]
        for call in calls:
            call.cancel()
        for call in calls:
            await self.assertFailure(call, CancelledError)
        await redis.start()
        for value in ("1", "2", "3"):
            await pool.set("k", value)
            self.assertEqual(await pool.get("k"), value)
        self.assertIsNone(await pool.brpop("q", timeout=1))
        self.assertEqual(redis.command("GET", "k"), b"$1")


class _HangsUpOnAuth(Protocol):
    """A server that closes each connection when it hears its first command: a Redis
    that dies (restarted, failed over) while the connection sends AUTH."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()


class HandshakeLostTests(TestCase):
    """Workaround 7: a connection lost during its AUTH (or SELECT) is made again; the pool
    stops only when Redis refuses them (tests/cluster/test_redis.py: wrong passwords)."""

    timeout = 30

    async def _lost_then_made(self, make_pool: Any) -> None:
        redis = await start_redis(self, password="pw")
        listener = reactor.listenTCP(0, Factory.forProtocol(_HangsUpOnAuth),
                                     interface="127.0.0.1")  # fmt: skip
        self.addCleanup(listener.stopListening)
        endpoint = _CountingEndpoint(listener.getHost().port, redis.port)
        pool = make_pool(endpoint, db=2, size=1, password="pw", timeout=5.0)
        self.addCleanup(pool.disconnect)
        # The first connection is lost at its AUTH; the second, to Redis, answers.
        await pool.set("k", "v")
        self.assertEqual(endpoint.made, [listener.getHost().port, redis.port])
        self.assertEqual(await pool.get("k"), "v")

    async def test_a_pools_connection_lost_during_its_auth_is_made_again(self) -> None:
        await self._lost_then_made(functools.partial(txredisapi_adapter.pool, name="test"))

    async def test_a_master_pools_connection_lost_during_its_auth_is_made_again(
        self,
    ) -> None:
        await self._lost_then_made(
            functools.partial(txredisapi_adapter.master_pool, name="mymaster"))


class BlockingReadTests(TestCase):
    """Workaround 6: a read that waits in Redis holds one connection of the pool, and the
    calls made meanwhile go to the others; through `execute_command` they would wait
    behind it."""

    timeout = 30

    async def test_calls_made_while_a_read_waits_are_answered_first(self) -> None:
        redis = await start_redis(self)
        endpoint = _CountingEndpoint(redis.port)
        pool = txredisapi_adapter.pool(endpoint, name="test", db=0, size=2, password=None,
                                       timeout=5.0)  # fmt: skip
        self.addCleanup(pool.disconnect)
        await pool.set("k", "v")
        await endpoint.until_made(2)
        for _ in range(2):
            await pool.set("k", "v")  # (both connections ready)
        waiting = txredisapi_adapter.blocking_command(
            pool, "XREAD", "BLOCK", 3000, "STREAMS", "s", "$")
        answered: list[object] = []
        waiting.addBoth(lambda result: answered.append(result) or result)
        for _ in range(6):
            self.assertEqual(await pool.get("k"), "v")
        # Every call was answered while the read still waited.
        self.assertEqual(answered, [])
        await pool.execute_command("XADD", "s", "*", "f", "x")
        [(stream, [(_, fields)])] = await waiting
        self.assertEqual((stream, fields), ("s", ["f", "x"]))
        # The connection is the pool's again: calls go on both.
        for _ in range(4):
            self.assertEqual(await pool.get("k"), "v")



class MasterPoolTests(TestCase):
    """Workaround 3: the Sentinel master's pool checks with ROLE that it reached a master
    (txredisapi's SentinelConnectionFactory, without its Sentinel), backs off to 2 s, and a
    sentinel's answer is judged by txredisapi's own rule."""

    timeout = 60

    async def test_a_connection_that_reaches_a_replica_is_closed_and_made_again(
        self,
    ) -> None:
        master = await start_redis(self)
        replica = RedisServer(os.path.abspath(self.mktemp()),
                              extra=("--replicaof", "127.0.0.1", str(master.port)))  # fmt: skip
        await replica.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(replica.stop()))
        # The sentinels' news a moment old: the first connection reaches the replica.
        endpoint = _CountingEndpoint(replica.port, master.port)
        pool = txredisapi_adapter.master_pool(endpoint, name="mymaster", db=0, size=1,
                                              password=None, timeout=5.0)  # fmt: skip
        self.addCleanup(pool.disconnect)
        # A write sent to the replica would fail (READONLY): it is sent to the master.
        await pool.set("k", "v")
        self.assertEqual(endpoint.made, [replica.port, master.port])
        self.assertEqual(master.command("EXISTS", "k"), b":1")

    def test_a_lost_master_connection_is_tried_again_at_most_about_2_s_apart(self) -> None:
        factory = txredisapi_adapter.master_factory(name="mymaster", db=0, size=1,
                                                    password=None, timeout=1.0)  # fmt: skip
        # At once after a loss (the sentinels are asked again each time)...
        self.assertEqual(factory.retryDelay(1), 0)
        # ...and never far from MASTER_MAX_DELAY (2 s, with txredisapi's jitter of 12%),
        # not txredisapi's 10 s.
        late = [factory.retryDelay(attempt) for attempt in range(2, 40) for _ in range(5)]
        self.assertLess(max(late), 5.0)
        self.assertGreater(sorted(late)[len(late) // 2], 1.0)

    async def test_a_sentinels_answer_says_which_master_is_up(self) -> None:
        cluster = await start_sentinel_cluster(self)
        port = cluster.sentinels[0].port
        # A master this sentinel alone watches, where nothing listens: it thinks it down
        # (subjectively: alone, it never reaches the quorum of 2 to fail it over).
        nowhere = await start_redis(self)
        await nowhere.stop()
        for words in (("MONITOR", "gone", "127.0.0.1", str(nowhere.port), "2"),
                      ("SET", "gone", "down-after-milliseconds", "100")):  # fmt: skip
            self.assertEqual(cluster.sentinel_command(0, "SENTINEL", *words), "OK")
        await until(lambda: "s_down" in str(cluster.sentinel_command(0, "SENTINEL", "MASTER",
                                                                     "gone")),
                    "the sentinel to see the master down")  # fmt: skip
        sentinel = txredisapi_adapter.pool(HostnameEndpoint(reactor, "127.0.0.1", port),
                                           name="sentinel", db=0, size=1, password=None,
                                           timeout=5.0)  # fmt: skip
        self.addCleanup(sentinel.disconnect)
        masters = await sentinel.sentinel_masters()
        self.assertEqual((masters["mymaster"]["ip"], int(masters["mymaster"]["port"])),
                         ("127.0.0.1", cluster.master.port))  # fmt: skip
        self.assertTrue(txredisapi_adapter.master_is_up(masters["mymaster"]))
        self.assertFalse(txredisapi_adapter.master_is_up(masters["gone"]))
        self.assertFalse(txredisapi_adapter.master_is_up(None))


class _Heard:
    """A Subscriber that keeps what it is told."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.messages: list[object] = []
        self.connection: Deferred[Any] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def connected(self, connection: Any) -> None:
        self.told.append("connected")
        self.connection.callback(connection)

    def disconnected(self) -> None:
        self.told.append("disconnected")
        self.lost.callback(None)

    def heard(self, message: object) -> None:
        self.messages.append(message)

    def refused(self, why: str) -> None:
        self.told.append(f"refused: {why}")


class SubscriberTests(TestCase):
    """Workaround 5: a SubscriberProtocol of txredisapi's under vinom's own factory."""

    timeout = 30

    async def test_a_subscriber_is_told_once_its_auth_is_accepted_and_hears(self) -> None:
        redis = await start_redis(self, password="pw")
        heard = _Heard()
        factory = txredisapi_adapter.subscriber_factory(heard, "pw")
        endpoint = HostnameEndpoint(reactor, "127.0.0.1", redis.port)
        protocol = await endpoint.connect(factory)
        self.addCleanup(protocol.transport.loseConnection)
        connection = await heard.connection
        # Told after AUTH: the connection may subscribe at once.
        await connection.subscribe("news")
        publisher = txredisapi_adapter.pool(HostnameEndpoint(reactor, "127.0.0.1", redis.port),
                                            name="test", db=0, size=1, password="pw",
                                            timeout=5.0)  # fmt: skip
        self.addCleanup(publisher.disconnect)
        self.assertEqual(await publisher.publish("news", "hello"), 1)
        await until(lambda: heard.messages, "the message")
        self.assertEqual((heard.told, heard.messages), (["connected"], ["hello"]))

    async def test_a_refused_password_is_told_and_the_connection_closed(self) -> None:
        redis = await start_redis(self, password="right")
        heard = _Heard()
        factory = txredisapi_adapter.subscriber_factory(heard, "wrong")
        endpoint = HostnameEndpoint(reactor, "127.0.0.1", redis.port)
        await endpoint.connect(factory)
        await heard.lost
        self.assertEqual(len(heard.told), 2, heard.told)
        self.assertTrue(heard.told[0].startswith("refused: Redis error: could not auth: "),
                        heard.told)  # fmt: skip
        self.assertIn("WRONGPASS", heard.told[0])
        self.assertEqual(heard.told[1], "disconnected")
        self.assertFalse(heard.connection.called)
