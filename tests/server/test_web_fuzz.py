"""Odd requests to both web servers: a 4xx (or a 2xx/3xx), never a 5xx or a traceback.

A whole server (makeService) runs with its public web server (TLS) and its
operations endpoint (plain HTTP) on loopback. Clients in threads send a few
thousand hand-made requests over real sockets (keep-alive, reconnecting when
the server closes): encoded and raw NUL bytes, `..` and encoded slashes,
overlong names, invalid UTF-8, odd methods, absolute URIs. Every answer's
status is recorded, and everything logged meanwhile is captured: no 5xx, no
failure or error logged, and both servers still answer a plain request after.
"""

from __future__ import annotations

import socket
import ssl
from collections import Counter
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from tests.support.servers import start_server

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"PATCH", b"FOO"]
BASES = [b"/", b"/app.js", b"/boards/", b"/index.html", b"/lobby", b"/game", b"/dashboard/",
         b"/status", b"/metrics", b"/health", b"/nope/"]  # fmt: skip
ODD = [
    b"%00", b"%00.txt", b"\x00", b"..", b"%2e%2e", b"%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"..%2f..%2f", b"%2f", b"%5c", b"%c0%af", b"%c0%ae%c0%ae", b"%ff", b"%80%80", b"\xff\xfe",
    b"%ed%a0%80", b"a" * 300, b"a" * 5000, b"%", b"%zz", b"%%00", b"?x=%00", b"#frag", b";x",
    b"~", b"//", b"app.js%00.txt", b"app.js/", b"app.js/..", b"%u0000", b"\t", b"%20",
    b"index.html%00", b"boards%00/x.js", b"\xc3\x28",
]  # fmt: skip


def odd_requests() -> list[bytes]:
    """The request lines (and the headers each needs) of the fuzz, deterministic."""
    targets = [base + odd for base in BASES for odd in ODD]
    targets += [odd + b"/" + odd for odd in ODD[:12]]
    targets += [b"http://evil.example/app.js", b"https://127.0.0.1/app.js%00", b"*",
                b"http://127.0.0.1/" + b"a" * 400, b"app.js", b"", b"/" * 300]  # fmt: skip
    requests = []
    for i, target in enumerate(targets):
        for method in METHODS[:: (i % 3) + 1]:  # every target, a spread of methods
            requests.append(method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return requests


def _read_response(sock: Any, head: bool) -> tuple[int, bool] | None:
    """The status of the next response on `sock` (its body read) and whether the server
    closes the connection after it; None if it closed without an answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        if name.strip().lower() == b"connection" and b"close" in value.lower():
            close = True
    if head or status in (204, 304) or status < 200:
        return status, close
    if chunked:
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, close
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, close


def send_all(port: int, use_tls: bool, requests: list[bytes]) -> Counter[int | str]:
    """Send `requests` one after another on keep-alive connections; statuses counted
    (`closed` where the server closed the connection without an answer)."""
    statuses: Counter[int | str] = Counter()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock: Any = None
    for request in requests:
        if sock is None:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock = context.wrap_socket(raw) if use_tls else raw
        head = request.startswith(b"HEAD ")
        try:
            sock.sendall(request)
            answer = _read_response(sock, head)
        except (ConnectionError, ssl.SSLError):
            answer = None
        if answer is None:
            statuses["closed"] += 1
            sock.close()
            sock = None
            continue
        status, close = answer
        statuses[status] += 1
        if close:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return statuses


class WebFuzzTests(TestCase):
    timeout = 120

    async def test_odd_paths_get_4xx_never_5xx_nor_a_traceback(self) -> None:
        server = await start_server(
            self, "--websocket", "ssl:0:interface=127.0.0.1",
            "--ops-port", "tcp:0:interface=127.0.0.1", ports=1,
        )  # fmt: skip
        assert server.websocket_port is not None
        ops = await server.service("ops").port()
        ops_port = ops.getHost().port
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        pool = ThreadPool(minthreads=4, maxthreads=4, name="web-fuzz")
        pool.start()
        self.addCleanup(pool.stop)
        requests = odd_requests()
        self.assertGreater(len(requests), 1000)
        half = len(requests) // 2
        jobs = [
            deferToThreadPool(reactor, pool, send_all, port, tls, part)
            for port, tls in ((server.websocket_port, True), (ops_port, False))
            for part in (requests[:half], requests[half:])
        ]
        results: Counter[int | str] = Counter()
        for job in jobs:
            results += await job
        self.assertEqual(sum(results.values()), 2 * len(requests))
        server_errors = {s: n for s, n in results.items() if isinstance(s, int) and s >= 500}
        self.assertEqual(server_errors, {}, results)
        # Every request was answered (a connection closed unanswered is the rare odd one).
        self.assertGreater(sum(n for s, n in results.items() if s != "closed"), len(requests))
        loud = [
            e for e in logged
            if "log_failure" in e or e.get("log_level") in (LogLevel.warn, LogLevel.error,
                                                           LogLevel.critical)
        ]  # fmt: skip
        self.assertEqual(loud, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        # Both still answer.
        after = await deferToThreadPool(
            reactor, pool, send_all, server.websocket_port, True,
            [b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"],
        )  # fmt: skip
        self.assertEqual(after, Counter({200: 1}))
        after = await deferToThreadPool(
            reactor, pool, send_all, ops_port, False, [b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"]
        )
        self.assertEqual(after, Counter({200: 1}))
