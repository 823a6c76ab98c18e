"""The PROXY protocol's receiving side: trusted gateways name the client, nobody else may."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.proxy import proxy_v2_header
from vinom.server.proxied import TrustedProxyFactory

CLIENT = IPv4Address("TCP", "203.0.113.7", 40000)
GATEWAY = IPv4Address("TCP", "10.0.0.9", 51000)
HEADER = proxy_v2_header(CLIENT, IPv4Address("TCP", "10.0.0.1", 7300))


class Server(Protocol):
    def __init__(self) -> None:
        self.peer: Any = None
        self.received = b""
        self.lost = False

    def connectionMade(self) -> None:
        self.peer = self.transport.getPeer()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


def connect(source: IPv4Address) -> tuple[Any, Server, StringTransport, TrustedProxyFactory]:
    server = Server()
    factory = TrustedProxyFactory(Factory.forProtocol(lambda: server), frozenset({"10.0.0.9"}))
    wrapper = factory.buildProtocol(source)
    transport = StringTransport(peerAddress=source)
    wrapper.makeConnection(transport)
    return wrapper, server, transport, factory


class TrustedProxyTests(SynchronousTestCase):
    def test_a_trusted_gateway_names_the_client_before_the_server_starts(self) -> None:
        wrapper, server, transport, _ = connect(GATEWAY)
        self.assertIsNone(server.peer)  # not started before the header is read
        for byte in HEADER + b"hello\n":  # one byte at a time: any split
            wrapper.dataReceived(bytes([byte]))
        self.assertEqual((server.peer.host, server.peer.port), ("203.0.113.7", 40000))
        self.assertEqual(server.received, b"hello\n")
        self.assertFalse(transport.disconnecting)

    def test_a_trusted_address_without_a_header_is_closed(self) -> None:
        wrapper, server, transport, factory = connect(GATEWAY)
        wrapper.dataReceived(b'{"type":"hello"}\n' + b" " * 20)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(server.peer)
        self.assertEqual(factory.refused, 1)

    def test_a_header_from_an_untrusted_address_is_refused(self) -> None:
        for header in (HEADER, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"):
            wrapper, server, transport, factory = connect(CLIENT)
            wrapper.dataReceived(header[:3])
            self.assertFalse(transport.disconnecting)  # too short to tell
            wrapper.dataReceived(header[3:] + b"hello\n")
            self.assertTrue(transport.disconnecting)
            self.assertEqual(server.received, b"")
            self.assertEqual(factory.refused, 1)

    def test_other_connections_pass_unchanged(self) -> None:
        wrapper, server, transport, _ = connect(CLIENT)
        self.assertEqual(server.peer, CLIENT)  # started at once: it may speak first
        wrapper.dataReceived(b"P")
        wrapper.dataReceived(b"OST / HTTP/1.1\r\n")
        self.assertEqual(server.received, b"POST / HTTP/1.1\r\n")
        self.assertFalse(transport.disconnecting)
