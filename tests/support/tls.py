"""A TLS client in memory (the standard library's `ssl.SSLObject`) against a server
TLS layer (vinom.server.tls) on a `StringTransport`: the handshake as a client sees
it, without sockets."""

from __future__ import annotations

import ssl

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.testing import StringTransport

PEER = IPv4Address("TCP", "192.0.2.7", 40000)


class MemoryClient:
    """One client connection to a server factory's TLS layer (`server`), over
    `transport`; `tls` is the client's side (its certificate check is off)."""

    def __init__(self, factory: IProtocolFactory, alpn: list[str] | None = None) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if alpn:
            context.set_alpn_protocols(alpn)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.transport = StringTransport(peerAddress=PEER)
        self.server = factory.buildProtocol(PEER)
        assert self.server is not None
        self.server.makeConnection(self.transport)

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.send_raw(self.outgoing.read())
        self.send_raw(self.outgoing.read())  # the client's Finished

    def send_raw(self, data: bytes) -> None:
        """Bytes to the server as the network would give them; what it answers is taken
        into the client's side."""
        if data:
            self.server.dataReceived(data)
        self.take()

    def take(self) -> None:
        self.incoming.write(self.transport.value())
        self.transport.clear()

    def send(self, plain: bytes) -> None:
        self.tls.write(plain)
        self.send_raw(self.outgoing.read())

    def receive(self) -> bytes:
        """The plaintext the server has sent since last asked (b"" for none)."""
        self.take()
        out = b""
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return out
            if not chunk:
                return out
            out += chunk
