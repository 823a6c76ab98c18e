"""A gateway connection on memory transports: sniff, refuse with a count, replay behind a
PROXY v2 header that Twisted's own parser reads back, splice both ways, drain."""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_sniff import client_hello
from vinom.gateway.proxy import GatewayFactory, proxy_v2_header
from vinom.gateway.router import Router
from vinom.gateway.rules import parse_rules
from vinom.gateway.sniff import Sniffed

RULES = {
    "backends": {"a": {"address": "10.0.0.1:7350", "max_connections": 1},
                 "plain": {"address": "10.0.0.2:7350", "proxy_protocol": False}},
    "pools": {"lobbies": {"backends": ["a"]}, "plain": {"backends": ["plain"]}},
    "routes": [{"kind": "lobby", "pool": "lobbies"}, {"kind": "http", "pool": "plain"}],
}  # fmt: skip
HELLO = b'{"type":"hello","name":"Ann"}\n'


class Harness:
    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.router = Router(parse_rules(RULES))
        self.factory = GatewayFactory(self.router, self.reactor, sniff_limit=256,
                                      sniff_timeout=5.0)  # fmt: skip

    def client(self, host: str = "203.0.113.7") -> tuple[Any, StringTransport]:
        protocol = self.factory.buildProtocol(IPv4Address("TCP", host, 40000))
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", host, 40000),
            hostAddress=IPv4Address("TCP", "198.51.100.1", 7300),
        )
        protocol.makeConnection(transport)
        return protocol, transport

    def backend(self, index: int = -1) -> tuple[Any, StringTransport, tuple[str, int]]:
        host, port, factory, _timeout, _bind = self.reactor.tcpClients[index]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport, (host, port)


class GatewayConnectionTests(SynchronousTestCase):
    def test_the_first_bytes_are_replayed_behind_a_proxy_header(self) -> None:
        h = Harness()
        client, client_transport = h.client()
        client.dataReceived(HELLO[:10])
        self.assertEqual(h.reactor.tcpClients, [])  # not enough to decide
        client.dataReceived(HELLO[10:])
        backend, backend_transport, where = h.backend()
        self.assertEqual(where, ("10.0.0.1", 7350))
        sent = backend_transport.value()
        info, rest = V2Parser().feed(sent)
        self.assertEqual((info.source.host, info.source.port), ("203.0.113.7", 40000))
        self.assertEqual((info.destination.host, info.destination.port), ("198.51.100.1", 7300))
        self.assertEqual(rest, HELLO)
        # From now on, bytes go both ways unchanged.
        client.dataReceived(b'{"type":"ping"}\n')
        backend.dataReceived(b'{"type":"welcome"}\n')
        self.assertTrue(backend_transport.value().endswith(b'{"type":"ping"}\n'))
        self.assertEqual(client_transport.value(), b'{"type":"welcome"}\n')
        # Each side's transport is the other's producer (backpressure).
        self.assertIs(client_transport.producer, backend_transport)
        self.assertIs(backend_transport.producer, client_transport)
        self.assertEqual(h.factory.routed, {"lobby": 1})

    def test_a_client_sending_while_its_backend_is_reached_waits_and_keeps_its_order(
        self,
    ) -> None:
        h = Harness()
        client, client_transport = h.client()
        client.dataReceived(HELLO)
        # A client that waits for the answer keeps reading (nothing to hold back) ...
        self.assertEqual(client_transport.producerState, "producing")
        # ... one that sends more before the backend answers is read no further until then.
        client.dataReceived(b'{"type":"ping"}\n')
        self.assertEqual(client_transport.producerState, "paused")
        _backend, backend_transport, _where = h.backend()
        self.assertEqual(client_transport.producerState, "producing")
        _info, rest = V2Parser().feed(backend_transport.value())
        self.assertEqual(rest, HELLO + b'{"type":"ping"}\n')

    def test_a_backend_whose_rule_says_so_gets_no_header(self) -> None:
        h = Harness()
        client, _ = h.client()
        request = b"GET /lobby HTTP/1.1\r\nHost: x\r\n\r\n"
        client.dataReceived(request)
        _, backend_transport, _ = h.backend()
        self.assertEqual(backend_transport.value(), request)

    def test_a_silent_client_is_closed_at_the_timeout_and_counted(self) -> None:
        h = Harness()
        _, transport = h.client()
        h.reactor.advance(4.9)
        self.assertFalse(transport.disconnecting)
        h.reactor.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.factory.refused, {"timeout": 1})

    def test_refusals_are_counted_by_reason(self) -> None:
        h = Harness()
        for data, reason in ((b"\x00", "unknown_protocol"), (b"{" + b" " * 300, "too_large"),
                             (b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n", "proxy_header"),
                             (client_hello("localhost"), "no_route")):  # fmt: skip
            protocol, transport = h.client()
            protocol.dataReceived(data)
            protocol.dataReceived(data)  # what follows is not counted again
            self.assertTrue(transport.disconnecting, reason)
            self.assertEqual(h.factory.refused[reason], 1, data)
            protocol.connectionLost()

    def test_a_full_backend_refuses_the_next_client(self) -> None:
        h = Harness()
        first, _ = h.client()
        first.dataReceived(HELLO)
        second, transport = h.client()
        second.dataReceived(HELLO)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.factory.refused, {"no_backend": 1})
        first.connectionLost()
        third, transport = h.client()
        third.dataReceived(HELLO)
        self.assertFalse(transport.disconnecting)

    def test_an_unreachable_backend_closes_the_client_and_is_out(self) -> None:
        h = Harness()
        client, transport = h.client()
        client.dataReceived(HELLO)
        _host, _port, factory, _timeout, _bind = h.reactor.tcpClients[-1]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.factory.refused, {"backend_unreachable": 1})
        self.assertFalse(h.router.state("a").healthy)  # type: ignore[union-attr]
        self.assertEqual(h.router.pick(Sniffed("lobby"), "x"), "no_backend")

    def test_the_drain_waits_for_open_connections(self) -> None:
        h = Harness()
        client, _ = h.client()
        waited = h.factory.when_all_closed()
        self.assertFalse(waited.called)
        client.connectionLost()
        self.assertTrue(waited.called)


class HeaderTests(SynchronousTestCase):
    def test_ipv6_and_mixed_families(self) -> None:
        header = proxy_v2_header(IPv4Address("TCP", "192.0.2.1", 1), IPv4Address("TCP", "::1", 2))
        info, _ = V2Parser().feed(header)
        self.assertEqual(ipaddress.ip_address(info.source.host),
                         ipaddress.ip_address("::ffff:192.0.2.1"))  # fmt: skip
