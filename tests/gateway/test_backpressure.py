"""Backpressure through the gateway, on real sockets: a client that does not read holds its
backend back, and the gateway does not buffer what the backend would send."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support.waiting import until
from vinom.gateway.proxy import GatewayFactory
from vinom.gateway.router import Router
from vinom.gateway.rules import parse_rules

CHUNK = b"x" * 65536
# Far more than the kernel's socket buffers on both hops hold (a few MB on loopback).
BOUND = 32 * 1024 * 1024


@implementer(IPushProducer)
class Flood(Protocol):
    """A backend that sends as fast as its transport lets it."""

    def __init__(self) -> None:
        self.written = 0
        self.paused = 0
        self.lost = False
        self._running = False

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self._running = True
        self._write()

    def _write(self) -> None:
        if not self._running or self.written >= 4 * BOUND:
            return
        self.transport.write(CHUNK)  # type: ignore[union-attr]
        self.written += len(CHUNK)
        reactor.callLater(0, self._write)

    def pauseProducing(self) -> None:
        self._running = False
        self.paused += 1

    def stopProducing(self) -> None:
        self._running = False

    def connectionLost(self, reason: Any = None) -> None:
        self._running = False
        self.lost = True


class Sleeper(Protocol):
    """A client that says its first line, then reads no more."""

    def connectionMade(self) -> None:
        self.transport.write(b'{"type":"hello","name":"Slow"}\n')  # type: ignore[union-attr]
        self.transport.pauseProducing()  # type: ignore[union-attr]


class BackpressureTests(TestCase):
    timeout = 30

    async def test_a_client_that_does_not_read_pauses_its_backend(self) -> None:
        flood = Flood()
        backend = reactor.listenTCP(0, Factory.forProtocol(lambda: flood), interface="127.0.0.1")
        self.addCleanup(backend.stopListening)
        rules = parse_rules({
            "backends": {"a": {"address": f"127.0.0.1:{backend.getHost().port}",
                               "proxy_protocol": False}},
            "pools": {"p": {"backends": ["a"]}}, "routes": [{"kind": "any", "pool": "p"}],
        })  # fmt: skip
        factory = GatewayFactory(Router(rules), reactor)
        gateway = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(gateway.stopListening)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", gateway.getHost().port)
        client: Any = await connectProtocol(endpoint, Sleeper())
        # The backend is made to wait: paused, and sending no more (the same count on
        # two reads 0.1 s apart) ...
        seen = [-1]

        def held() -> bool:
            still, seen[0] = flood.written == seen[0], flood.written
            return flood.paused > 0 and still

        await until(held, lambda: f"the backend paused and held ({flood.paused} pauses, "
                                  f"{flood.written} bytes sent)", every=0.1)
        # ... having sent no more than the sockets between hold.
        self.assertLess(flood.written, BOUND)
        client.transport.abortConnection()
        for connection in list(factory.connections):
            connection.close()
        # Ends with the backend's connection closed by the gateway, not left to the reactor.
        await until(lambda: flood.lost, "the backend's connection closed")
