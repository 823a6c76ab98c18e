"""The Redis of the chaos scenario's `redis-failover` fault: a master, a replica, three sentinels.

`SentinelRedis` starts them as harness workers from the bench's redis-server
(`benchmarks.redis_process.redis_server_binary`, run with `--sentinel` for
the sentinels), each on a free loopback port: the replica follows the
master, the sentinels watch it with a quorum of 2 and think it down after
`down_after` seconds without an answer. `start` returns the
`redis+sentinel://` URL the cluster's processes take; `fail_master` kills
the master with SIGKILL and waits until the sentinels name the promoted
replica and it answers as a master, and reports the seconds that took
(`failover_s`).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from benchmarks.harness import BenchError, Harness, Worker
from benchmarks.ports import free_tcp_port
from benchmarks.redis_process import (
    command,
    redis_server_binary,
    sentinel_config,
    sentinels_ready,
)

NAME = "mymaster"


class SentinelRedis:
    """A master, its replica and three sentinels (see the module docstring)."""

    def __init__(self, down_after: float = 5.0, failover_timeout: float = 10.0) -> None:
        self.down_after = down_after
        self.failover_timeout = failover_timeout
        self.master: tuple[Worker, int] | None = None
        self.replica: tuple[Worker, int] | None = None
        self.sentinel_ports: list[int] = []

    def start(self, harness: Harness, directory: str, limit: float = 30.0) -> str:
        binary = redis_server_binary()

        def server(name: str, *extra: str) -> tuple[Worker, int]:
            port = free_tcp_port()
            path = os.path.join(directory, name)
            os.makedirs(path)
            worker = harness.spawn_command(
                name,
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", path, "--loglevel", "warning", *extra],
                None,
                ignores_stdin=True,
            )  # fmt: skip
            return worker, port

        self.master = server("redis-master")
        self.replica = server("redis-replica", "--replicaof", "127.0.0.1", str(self.master[1]))
        for i in range(3):
            port = free_tcp_port()
            path = os.path.join(directory, f"sentinel{i}")
            os.makedirs(path)
            config = os.path.join(path, "sentinel.conf")
            with open(config, "w") as f:  # each sentinel rewrites its own
                f.write(sentinel_config(port, path, NAME, self.master[1],
                                        down_after=self.down_after,
                                        failover_timeout=self.failover_timeout))  # fmt: skip
            harness.spawn_command(f"sentinel{i}", [binary, config, "--sentinel"], None,
                                  ignores_stdin=True)  # fmt: skip
            self.sentinel_ports.append(port)
        deadline = time.monotonic() + limit
        while not self._ready():
            if time.monotonic() > deadline:
                raise BenchError("the sentinels did not come to know the master's replica")
            time.sleep(0.1)
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{NAME}/0"

    def _ready(self) -> bool:
        assert self.replica is not None
        return sentinels_ready(self.replica[1], self.sentinel_ports, NAME)

    def named_master(self) -> int | None:
        for port in self.sentinel_ports:
            try:
                reply = command(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)
            except OSError:
                continue
            if isinstance(reply, list):
                return int(reply[1])
        return None

    def fail_master(self, limit: float = 60.0) -> dict[str, Any]:
        """SIGKILL the master; once the replica is the master the sentinels name,
        `failover_s` from the kill."""
        assert self.master is not None and self.replica is not None
        killed = time.monotonic()
        os.kill(self.master[0].pid, signal.SIGKILL)
        while True:
            if self.named_master() == self.replica[1]:
                role = command(self.replica[1], "ROLE")
                if isinstance(role, list) and role[0] == "master":
                    break
            if time.monotonic() - killed > limit:
                raise BenchError(f"no Sentinel failover within {limit:g} s")
            time.sleep(0.05)
        return {"failover_s": round(time.monotonic() - killed, 2)}
