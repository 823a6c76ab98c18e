"""A real web server that writes no log line, and the log lines a test's code writes."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data


class SilentSite(Site):
    """A web server that writes no access-log line: the log holds the client's lines only."""

    noisy = False

    def log(self, request: Any) -> None:
        pass


def listen_site(test: TestCase, root: Resource) -> int:
    """A `SilentSite` on a free local port, for the test's length."""
    port = reactor.listenTCP(0, SilentSite(root), interface="127.0.0.1")
    test.addCleanup(port.stopListening)
    return int(port.getHost().port)


def health_site(test: TestCase) -> int:
    """A `SilentSite` answering `GET /health` with 200 `ok` and `GET /ready` with 200
    `ready`, as vinom's operations endpoint does for a server taking players; its port."""
    root = Resource()
    root.putChild(b"health", Data(b"ok\n", "text/plain"))
    root.putChild(b"ready", Data(b"ready\n", "text/plain"))
    return listen_site(test, root)


def capture_log(test: TestCase) -> list[str]:
    """The text of every log event published while the test runs."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    test.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines
