"""`play --transport ws --tls-proxy haproxy`: Debian's haproxy terminating TLS in front of `/game`.

The production shape docs/web.md names for `wss://` without TLS in the
Python process: haproxy (`mode tcp`, one thread, a development certificate)
listens with TLS and passes each connection's plaintext to the bench server's
plain `ws://` port behind a PROXY v2 header (the server reads it as
`--trusted-proxy 127.0.0.1` does); the players connect to haproxy over TLS. Its process is
pinned to the server's core, so that the machine serving the game pays for
both, and its CPU is counted with the server's.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time

from benchmarks.harness import BenchError, Harness, Worker
from benchmarks.ports import free_tcp_port

PROXIES = ("haproxy",)

CONFIG = """\
global
    nbthread 1
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend players
    bind 127.0.0.1:{port} ssl crt {pem}
    default_backend game
backend game
    server vinom 127.0.0.1:{backend} send-proxy-v2
"""


def start_proxy(
    harness: Harness, name: str, backend_port: int, cpu: int | None
) -> tuple[Worker, int]:
    """Start `name` (haproxy) terminating TLS in front of `backend_port`: (worker, its port)."""
    if name not in PROXIES:
        raise BenchError(f"unknown TLS proxy {name!r}")
    binary = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if binary is None:
        raise BenchError("--tls-proxy haproxy needs haproxy (Debian: apt-get install haproxy)")
    from vinom.server.certs import make_self_signed

    cert, key = make_self_signed("localhost")
    directory = tempfile.mkdtemp(prefix="vinom-bench-haproxy-")
    pem = os.path.join(directory, "server.pem")
    with open(pem, "wb") as f:
        f.write(cert + key)
    port = free_tcp_port("127.0.0.1")
    config = os.path.join(directory, "haproxy.cfg")
    with open(config, "w") as f:
        f.write(CONFIG.format(port=port, pem=pem, backend=backend_port))
    # -db: in the foreground, as the harness's child (it ignores its standard input).
    worker = harness.spawn_command(name, [binary, "-db", "-f", config], cpu, ignores_stdin=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return worker, port
        except OSError:
            if not worker.running() or time.monotonic() > deadline:
                raise BenchError(f"{name} did not listen:\n{worker.stderr_tail()}") from None
            time.sleep(0.05)
