"""Test helper: a Redis that survives losing its master, as Redis Sentinel runs it.

`SentinelCluster` starts real processes of the redis-server the tests use
(tests/support/redis_server.py): a master, one replica of it and three
sentinels (`redis-server <conf> --sentinel`) watching it with a quorum of 2,
each on a free loopback port. `url` is what `--redis` takes. The sentinels'
timings are short, for tests only: the master is thought down after
`down_after` seconds without an answer (production: 5-30 s) and a failover
gives up after `failover_timeout` seconds. `kill_master()` kills the master
with SIGKILL; `wait_for_failover()` waits until the sentinels name the
promoted replica and it answers as a master, and gives the seconds from the
kill (`failover_seconds`); `fail_over()` asks the sentinels for a failover with the
master up (`SENTINEL FAILOVER`).
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from benchmarks.redis_process import (
    command,
    redis_server_binary,
    sentinel_config,
    sentinels_ready,
)
from tests.support.ports import free_tcp_port
from tests.support.redis_server import RedisServer, _Redis


class _Sentinel:
    def __init__(self, directory: str, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: _Redis | None = None
        self.transport: Any = None

    def start(self, config: str) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, "sentinel.conf")
        with open(path, "w") as f:  # the sentinel rewrites it: one file each
            f.write(config)
        binary = redis_server_binary()
        self.process = _Redis()
        self.transport = reactor.spawnProcess(self.process, binary, [binary, path, "--sentinel"],
                                              env={}, path=self.directory)  # fmt: skip

    async def stop(self) -> None:
        if self.process is not None and not self.process.ended.called:
            self.transport.signalProcess("KILL")
            await self.process.ended


class SentinelCluster:
    """A master, a replica and three sentinels; `master` is the server the sentinels
    name now (the replica after a failover)."""

    def __init__(
        self, directory: str, *, name: str = "mymaster", password: str | None = None,
        sentinel_password: str | None = None, down_after: float = 0.5,
        failover_timeout: float = 2.0,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.name = name
        self.password = password
        self.sentinel_password = sentinel_password
        self.down_after = down_after
        self.failover_timeout = failover_timeout
        self.master = RedisServer(os.path.join(directory, "master"), password=password)
        auth = () if password is None else ("--masterauth", password)
        self.replica = RedisServer(
            os.path.join(directory, "replica"), password=password,
            extra=("--replicaof", "127.0.0.1", str(self.master.port), *auth),
        )  # fmt: skip
        self.sentinels = [
            _Sentinel(os.path.join(directory, f"sentinel{i}"), free_tcp_port()) for i in range(3)
        ]
        self.killed_at: float | None = None
        self.failover_seconds: float | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def _config(self, port: int) -> str:
        return sentinel_config(
            port, self.directory, self.name, self.master.port, down_after=self.down_after,
            failover_timeout=self.failover_timeout, password=self.password,
            sentinel_password=self.sentinel_password,
        )  # fmt: skip

    def sentinel_command(self, index: int, *words: str) -> Any:
        return command(self.sentinels[index].port, *words, password=self.sentinel_password)

    async def start(self, timeout: float = 30.0) -> None:
        """Start every process; return once the replica is in sync and every sentinel
        knows the replica and the two other sentinels (a failover can happen)."""
        await self.master.start()
        await self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start(self._config(sentinel.port))
        deadline = time.monotonic() + timeout
        while not self._ready():
            for sentinel in self.sentinels:
                if sentinel.process is not None and sentinel.process.ended.called:
                    raise RuntimeError(
                        f"a sentinel did not start: {sentinel.process.output.decode()!r}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not come to know the master's replica")
            await deferLater(reactor, 0.1, lambda: None)

    def _ready(self) -> bool:
        return sentinels_ready(
            self.replica.port, [sentinel.port for sentinel in self.sentinels], self.name,
            password=self.password, sentinel_password=self.sentinel_password,
        )

    def named_master(self) -> tuple[str, int] | None:
        """The master's address as the first sentinel that answers gives it."""
        for index in range(len(self.sentinels)):
            try:
                reply = self.sentinel_command(index, "SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                              self.name)  # fmt: skip
            except OSError:
                continue
            if isinstance(reply, list):
                return reply[0], int(reply[1])
        return None

    async def cut_replica_off(self, timeout: float = 10.0) -> None:
        """The replica stops getting the master's writes (its link is cut, and cannot come
        back: a wrong `masterauth`), as one behind a slow link would lag; the sentinels
        still see it, and promote it if the master dies soon enough (within 10 times
        `down_after`). Returns once its link is down."""
        password = self.password
        command(self.replica.port, "CONFIG", "SET", "masterauth", "not-the-password",
                password=password)  # fmt: skip
        command(self.replica.port, "CLIENT", "KILL", "TYPE", "master", password=password)
        deadline = time.monotonic() + timeout
        while "master_link_status:down" not in str(
            command(self.replica.port, "INFO", "replication", password=password)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica's link to its master stayed up")
            await deferLater(reactor, 0.02, lambda: None)

    def kill_master(self) -> None:
        """SIGKILL the master (no chance to close anything), and note when."""
        server = self.master
        assert server.transport is not None
        self.killed_at = time.monotonic()
        server.transport.signalProcess("KILL")

    def fail_over(self) -> None:
        """`SENTINEL FAILOVER`, as an operator does before maintenance: the sentinels
        promote the replica and make the master, which stays up, its replica."""
        self.killed_at = time.monotonic()
        reply = self.sentinel_command(0, "SENTINEL", "FAILOVER", self.name)
        if reply != "OK":
            raise RuntimeError(f"SENTINEL FAILOVER answered {reply!r}")

    async def wait_for_failover(self, timeout: float = 30.0) -> float:
        """Seconds from `kill_master()` (or `fail_over()`) until the sentinels name the
        replica and it answers as a master (`failover_seconds`)."""
        assert self.killed_at is not None, "kill_master() or fail_over() first"
        while True:
            if self.named_master() == ("127.0.0.1", self.replica.port):
                role = command(self.replica.port, "ROLE", password=self.password)
                if isinstance(role, list) and role[0] == "master":
                    break
            if time.monotonic() - self.killed_at > timeout:
                raise RuntimeError(f"no failover within {timeout} s")
            await deferLater(reactor, 0.05, lambda: None)
        self.failover_seconds = time.monotonic() - self.killed_at
        self.master, self.replica = self.replica, self.master
        return self.failover_seconds

    async def stop(self) -> None:
        for sentinel in self.sentinels:
            await sentinel.stop()
        await self.master.stop()
        await self.replica.stop()


async def start_sentinel_cluster(case: TestCase, **options: Any) -> SentinelCluster:
    """A fresh SentinelCluster for one test, killed at its cleanup."""
    cluster = SentinelCluster(os.path.abspath(case.mktemp()), **options)
    case.addCleanup(lambda: Deferred.fromCoroutine(cluster.stop()))
    await cluster.start()
    return cluster
