"""The server's TLS layer (vinom.net.tls.TLSLayer) as a client sees it, in memory:
plaintext both ways, writes made before the handshake ends, ALPN, both ways of
closing, a producer's close, and what a peer that does not speak TLS gets."""

from __future__ import annotations

import os
import ssl

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IProtocolNegotiationFactory, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from tests.support.tls import MemoryClient
from vinom.net.tls import TICKET_LIFETIME, TLSFiles, TLSLayerFactory
from vinom.server.certs import make_self_signed
from vinom.server.tls import TLSServerEndpoint


class Recorder(Protocol):
    """Keeps what it is given and how its connection ended; greets on connecting."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.received = b""
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason


@implementer(IPushProducer)
class Producer:
    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IProtocolNegotiationFactory)
class Negotiating(Factory):
    """A factory that speaks http/1.1 (as twisted.web's Site without HTTP/2)."""

    protocol = Protocol

    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]


class TLSLayerTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        cert_pem, key_pem = make_self_signed("localhost")
        self.cert, self.key = os.path.join(directory, "c.pem"), os.path.join(directory, "k.pem")
        for path, pem in ((self.cert, cert_pem), (self.key, key_pem)):
            with open(path, "wb") as f:
                f.write(pem)
        self.files = TLSFiles(self.key, self.cert)

    def connect(
        self, alpn: list[str] | None = None, greeting: bytes = b"greeting"
    ) -> tuple[MemoryClient, Recorder]:
        recorder = Recorder(greeting)
        factory = TLSLayerFactory(self.files.context(), Factory.forProtocol(lambda: recorder))
        client = MemoryClient(factory, alpn)
        return client, recorder

    def test_plaintext_goes_both_ways_and_early_writes_wait_for_the_handshake(self) -> None:
        client, recorder = self.connect()
        client.handshake()
        self.assertEqual(client.tls.version(), "TLSv1.3")
        # The greeting was written on connecting, before the handshake: it comes after.
        self.assertEqual(client.receive(), b"greeting")
        client.send(b"hello")
        self.assertEqual(recorder.received, b"hello")
        # Two records in one read, and one record in two reads.
        client.tls.write(b" two")
        client.tls.write(b" records")
        client.send_raw(client.outgoing.read())
        self.assertEqual(recorder.received, b"hello two records")
        client.tls.write(b" split")
        record = client.outgoing.read()
        client.send_raw(record[:7])
        self.assertEqual(recorder.received, b"hello two records")
        client.send_raw(record[7:])
        self.assertEqual(recorder.received, b"hello two records split")
        recorder.transport.write(b"a" * 40000)  # type: ignore[union-attr]
        recorder.transport.writeSequence([b"b", b"c"])  # type: ignore[union-attr]
        self.assertEqual(client.receive(), b"a" * 40000 + b"bc")
        self.assertEqual(recorder.transport.getPeer(), client.transport.getPeer())  # type: ignore[union-attr]

    def test_the_session_ticket_is_good_for_the_lifetime_said(self) -> None:
        client, _recorder = self.connect()
        client.handshake()
        client.receive()
        session = client.tls.session
        assert session is not None
        self.assertEqual(session.ticket_lifetime_hint, TICKET_LIFETIME)

    def test_alpn_answers_the_served_factorys_protocol_or_none(self) -> None:
        memory = MemoryReactor()
        TLSServerEndpoint(TCP4ServerEndpoint(memory, 0), self.files).listen(Negotiating())
        factory = memory.tcpServers[0][1]
        for offered, chosen in ((["h2", "http/1.1"], b"http/1.1"), (["h2"], None), (None, None)):
            with self.subTest(offered=offered):
                client = MemoryClient(factory, offered)
                client.handshake()
                self.assertEqual(client.server.negotiatedProtocol, chosen)  # type: ignore[attr-defined]

    def test_the_server_closing_sends_close_notify(self) -> None:
        client, recorder = self.connect()
        client.handshake()
        recorder.transport.write(b"bye")  # type: ignore[union-attr]
        recorder.transport.loseConnection()  # type: ignore[union-attr]
        self.assertEqual(client.receive(), b"greetingbye")
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.tls.read(10), b"")  # close_notify (else SSLWantReadError)
        # Writes after closing go nowhere.
        recorder.transport.write(b"more")  # type: ignore[union-attr]
        self.assertEqual(client.transport.value(), b"")

    def test_a_registered_producer_holds_the_close_until_it_is_unregistered(self) -> None:
        client, recorder = self.connect()
        client.handshake()
        client.receive()
        transport = recorder.transport
        transport.registerProducer(Producer(), True)  # type: ignore[union-attr]
        transport.loseConnection()  # type: ignore[union-attr]
        transport.write(b"last")  # type: ignore[union-attr]
        self.assertFalse(client.transport.disconnecting)
        transport.unregisterProducer()  # type: ignore[union-attr]
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.receive(), b"last")

    def test_the_peers_close_notify_is_answered_and_the_connection_closed(self) -> None:
        client, recorder = self.connect()
        client.handshake()
        client.receive()
        with self.assertRaises(ssl.SSLWantReadError):
            client.tls.unwrap()
        client.send_raw(client.outgoing.read())
        self.assertTrue(client.transport.disconnecting)
        client.tls.unwrap()  # the server's close_notify came back
        client.server.connectionLost(Failure(ConnectionError("closed")))
        assert recorder.lost is not None

    def test_a_peer_that_does_not_speak_tls_gets_an_alert_and_the_door(self) -> None:
        client, recorder = self.connect()
        client.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        # At most an alert record (7 bytes) back, and the connection closed.
        self.assertLessEqual(len(client.transport.value()), 7)
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(recorder.received, b"")
        client.server.connectionLost(Failure(ConnectionError("closed")))
        assert recorder.lost is not None
        self.assertIsInstance(recorder.lost.value, ssl.SSLError)
        # Bytes after that are not read.
        client.server.dataReceived(b"\x16\x03\x01\x00\x05hello")
        self.assertEqual(recorder.received, b"")

    def test_closing_before_the_handshake(self) -> None:
        # With its greeting unsent, the close waits for the handshake, sends it, closes.
        client, recorder = self.connect()
        recorder.transport.loseConnection()  # type: ignore[union-attr]
        self.assertFalse(client.transport.disconnecting)
        client.handshake()
        self.assertEqual(client.receive(), b"greeting")
        self.assertTrue(client.transport.disconnecting)
        # With nothing to send, the connection is dropped at once.
        client, recorder = self.connect(greeting=b"")
        recorder.transport.loseConnection()  # type: ignore[union-attr]
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.transport.value(), b"")

    def test_a_web_request_over_it_is_secure(self) -> None:
        class Where(Resource):
            isLeaf = True

            def render_GET(self, request: Request) -> bytes:
                return f"{request.isSecure()} {request.prePathURL().decode()}".encode()

        client = MemoryClient(TLSLayerFactory(self.files.context(), Site(Where())))
        client.handshake()
        client.send(b"GET /here HTTP/1.1\r\nHost: game.example\r\nConnection: close\r\n\r\n")
        answer = client.receive()
        self.assertIn(b"\r\n\r\nTrue https://game.example:", answer)
