"""The PROXY protocol's receiving side: trusted gateways name the client, nobody else may."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.servers import start_server
from vinom.gateway.proxy import proxy_v2_header

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


def proxied_factory(trusted: str, server: Server) -> Any:
    """The factory a `vinom-proxied:` listener listens with, serving `server`."""
    memory = MemoryReactor()
    endpoint = serverFromString(memory, f"vinom-proxied:trusted={trusted}:tcp:7350")
    endpoint.listen(Factory.forProtocol(lambda: server))
    [(_port, factory, _backlog, _interface)] = memory.tcpServers
    return factory


def connect(source: IPv4Address) -> tuple[Any, Server, StringTransport, Any]:
    server = Server()
    factory = proxied_factory("10.0.0.9", server)
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

    def test_a_trusted_network_names_its_gateways(self) -> None:
        # --trusted-proxy 10.0.0.0/24 (a pod network): any gateway address in it is trusted,
        # one outside is not, whatever the header says.
        server = Server()
        factory = proxied_factory("10.0.0.0/24", server)
        wrapper = factory.buildProtocol(IPv4Address("TCP", "10.0.0.200", 5000))
        wrapper.makeConnection(StringTransport())
        wrapper.dataReceived(HEADER + b"hello\n")
        self.assertEqual(server.peer.host, "203.0.113.7")
        outside = factory.buildProtocol(IPv4Address("TCP", "10.0.1.1", 5000))
        transport = StringTransport()
        outside.makeConnection(transport)
        outside.dataReceived(HEADER)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(factory.refused, 1)

    def test_a_trusted_address_without_a_header_is_closed(self) -> None:
        wrapper, server, transport, factory = connect(GATEWAY)
        wrapper.dataReceived(b'{"type":"hello"}\n' + b" " * 20)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(server.peer)
        self.assertEqual(factory.refused, 1)

    def test_a_header_twisted_cannot_read_is_refused_and_counted(self) -> None:
        for header in (
            HEADER[:12] + b"\x31" + HEADER[13:],  # protocol version 3
            HEADER[:12] + b"\x2f" + HEADER[13:],  # an unknown command
            b"PROXY TCP4 203.0.113.7 10.0.0.1 x 7300\r\n",  # a port that is no number
            b"PROXY TCP4 203.0.113.7\r\n",  # fields missing
            b"PROXY " + b"1" * 120,  # no line end within v1's longest line
        ):
            wrapper, server, transport, factory = connect(GATEWAY)
            wrapper.dataReceived(header + b"hello\n")
            self.assertTrue(transport.disconnecting, header)
            self.assertIsNone(server.peer)
            self.assertEqual(server.received, b"")
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


def observe_tls(port: int, cert: str | None, header: bytes) -> list[tuple[Any, ...]]:
    """Two TLS connections in a row to a lobby (the second offering the first's session),
    each after `header`, saying hello: what a client sees of each (protocol, cipher,
    session resumed, the welcome's type)."""
    context = ssl.create_default_context(cafile=cert)
    seen: list[tuple[Any, ...]] = []
    session = None
    for name in ("Ann", "Bob"):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(header)
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(json.dumps({"type": "hello", "name": name}).encode() + b"\n")
            answer = tls.makefile("rb").readline()  # a TLS 1.3 session ticket comes with it
            seen.append((tls.version(), tls.cipher(), tls.session_reused,
                         json.loads(answer)["type"]))  # fmt: skip
            session = tls.session
    return seen


class TrustedProxyTLSTests(TestCase):
    """A TLS lobby with --trusted-proxy negotiates as it does without: the same context."""

    async def test_the_lobby_tls_is_the_same_with_trusted_proxy(self) -> None:
        # The default description, and one whose TLS option (sslmethod) a context rebuilt
        # from the certificate alone would lose (TLS 1.3 instead of 1.2).
        for lobby in ("ssl:0:interface=127.0.0.1",
                      "ssl:0:interface=127.0.0.1:sslmethod=TLSv1_2_METHOD"):  # fmt: skip
            direct = await start_server(self, "--lobby", lobby)
            seen_direct = await deferToThread(
                observe_tls, direct.lobby.port, direct.lobby.trust, b""
            )
            # --trusted-proxy, and its full strports description (docs/operations.md).
            for argv in (("--lobby", lobby, "--trusted-proxy", "127.0.0.1"),
                         ("--lobby", f"vinom-proxied:trusted=127.0.0.1:{lobby}")):  # fmt: skip
                proxied = await start_server(self, *argv)
                port = proxied.lobby.port
                header = proxy_v2_header(CLIENT, IPv4Address("TCP", "127.0.0.1", port))
                seen_proxied = await deferToThread(observe_tls, port, proxied.lobby.trust, header)
                self.assertEqual(seen_proxied, seen_direct)
            self.assertEqual([s[3] for s in seen_direct], ["welcome", "welcome"])
            if "sslmethod" in lobby:
                self.assertEqual({s[0] for s in seen_proxied}, {"TLSv1.2"})
