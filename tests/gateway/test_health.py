"""Health checks on real sockets: a TCP connect plus `/health` or `/ready`, out and back in."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from tests.support.http import capture_log, health_site
from tests.support.waiting import until
from vinom.gateway.health import HealthChecker
from vinom.gateway.router import Router
from vinom.gateway.rules import parse_rules


class Answer(Resource):
    isLeaf = True

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(self.code)
        return b"draining\n" if self.code != 200 else b"ok\n"


def one_backend(test: TestCase, health: int, timeout: float) -> Router:
    """A router with one backend, `b`: a local port that takes connections, its
    operations endpoint on `health`; checks every minute, with `timeout`."""
    factory = Factory.forProtocol(Protocol)
    factory.noisy = False
    backend = reactor.listenTCP(0, factory, interface="127.0.0.1")
    test.addCleanup(backend.stopListening)
    return Router(parse_rules({
        "backends": {"b": {"address": f"127.0.0.1:{backend.getHost().port}",
                           "health": f"127.0.0.1:{health}"}},
        "pools": {"p": {"backends": ["b"]}},
        "routes": [{"kind": "any", "pool": "p"}],
        "health": {"interval": 60, "timeout": timeout},
    }))  # fmt: skip


def silent_backend(test: TestCase, protocol: type[Protocol], timeout: float) -> Router:
    """`one_backend` whose operations endpoint takes each connection (with `protocol`)
    and says nothing."""
    silent = Factory.forProtocol(protocol)
    silent.noisy = False
    health = reactor.listenTCP(0, silent, interface="127.0.0.1")
    test.addCleanup(health.stopListening)
    return one_backend(test, health.getHost().port, timeout)


class HealthCheckTests(TestCase):
    timeout = 20

    async def test_out_on_a_failed_check_and_back_in_on_a_passing_one(self) -> None:
        root = Resource()
        root.putChild(b"health", Data(b"ok\n", "text/plain"))
        ready = Answer(503)
        root.putChild(b"ready", ready)
        site = Site(root)
        site.noisy = False
        ops = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(ops.stopListening)
        factory = Factory.forProtocol(Protocol)
        factory.noisy = False
        backend = reactor.listenTCP(0, factory, interface="127.0.0.1")
        address, health = backend.getHost().port, ops.getHost().port
        router = Router(parse_rules({
            "backends": {
                "alive": {"address": f"127.0.0.1:{address}", "health": f"127.0.0.1:{health}",
                          "health_path": "/health"},
                # The default path: /ready (docs/gateway.md, "Health").
                "ready": {"address": f"127.0.0.1:{address}", "health": f"127.0.0.1:{health}"},
            },
            "pools": {"p": {"backends": ["alive", "ready"]}},
            "routes": [{"kind": "any", "pool": "p"}],
            "health": {"interval": 0.1, "timeout": 1.0},
        }))  # fmt: skip
        checker = HealthChecker(router, reactor)
        checker.start()
        self.addCleanup(checker.stop)

        async def turns(name: str, healthy: bool) -> None:
            await until(lambda: router.state(name).healthy == healthy,  # type: ignore[union-attr]
                        f"{name} {'in' if healthy else 'out'}")  # fmt: skip

        # /ready answers 503 (a draining lobby's answer): the backend checked on it, as
        # by default, is out; the one checked on /health (alive) stays in.
        await turns("ready", False)
        self.assertTrue(router.state("alive").healthy)  # type: ignore[union-attr]
        ready.code = 200
        await turns("ready", True)
        # The backend's port closes: both out (the connect fails), whatever /health says.
        await backend.stopListening()
        await turns("alive", False)
        await turns("ready", False)
        backend = reactor.listenTCP(address, factory, interface="127.0.0.1")
        self.addCleanup(backend.stopListening)
        await turns("alive", True)
        await turns("ready", True)


class QuietChecksTests(TestCase):
    timeout = 20

    async def test_checks_write_no_log_line_while_nothing_changes(self) -> None:
        router = one_backend(self, health_site(self), timeout=1.0)
        checker = HealthChecker(router, reactor)
        lines = capture_log(self)
        for _ in range(5):
            await checker.check_all()
        self.assertEqual((checker.checks, router.state("b").healthy), (5, True))  # type: ignore[union-attr]
        self.assertEqual(lines, [])


class TimeoutTests(TestCase):
    """A check's steps are bounded by `health.timeout`, and a stall of the gateway's own
    is not blamed on its backends."""

    timeout = 20

    async def test_a_gateway_that_stalls_past_the_timeout_puts_no_backend_out(self) -> None:
        router = one_backend(self, health_site(self), timeout=0.2)
        checker = HealthChecker(router, reactor)
        lines = capture_log(self)
        for _ in range(3):
            round_ = checker.check_all()
            # The gateway does not run for three timeouts (as at its start, or in a
            # collection on a loaded machine); the backend answered meanwhile.
            time.sleep(0.6)
            await round_
        self.assertEqual((checker.checks, router.state("b").healthy), (3, True))  # type: ignore[union-attr]
        self.assertEqual(lines, [])

    async def test_a_backend_that_never_answers_is_out_after_the_timeout(self) -> None:
        router = silent_backend(self, Protocol, timeout=0.2)
        checker = HealthChecker(router, reactor)
        lines = capture_log(self)
        started = reactor.seconds()
        await checker.check_all()
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)
        self.assertFalse(router.state("b").healthy)  # type: ignore[union-attr]
        self.assertEqual(lines, ["gateway: backend b is out: no answer within 0.2 s"])


class StopTests(TestCase):
    timeout = 20

    async def test_a_stop_while_a_check_waits_closes_it_and_leaves_the_backend_as_it_was(
        self
    ) -> None:
        # The backend's operations endpoint takes the check's connection and says
        # nothing; the gateway stops long before the check's 10 s timeout.
        opened: list[Protocol] = []
        closed: list[Protocol] = []

        class Silent(Protocol):
            def connectionMade(self) -> None:
                opened.append(self)

            def connectionLost(self, reason: object = None) -> None:
                closed.append(self)

        router = silent_backend(self, Silent, timeout=10.0)
        checker = HealthChecker(router, reactor)
        lines = capture_log(self)
        checker.start()
        await until(lambda: opened, "the check's connection")
        self.assertEqual(len(opened), 1)
        await checker.stop()
        await until(lambda: closed, "the check's connection closed")
        # The check's connection is closed by the stop, not at its timeout (which
        # would have put the backend out, and logged it); no round is left to run.
        self.assertEqual(len(closed), 1)
        self.assertTrue(router.state("b").healthy)  # type: ignore[union-attr]
        self.assertEqual((lines, checker.checks), ([], 0))
