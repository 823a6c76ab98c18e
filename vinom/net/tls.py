"""TLS on the standard library's `ssl` (`ssl.SSLObject` on memory BIOs) for a server
connection: `TLSLayer`, a Twisted protocol wrapper, and `TLSFiles`, the certificate
and key files of a server context.

Why not Twisted's TLS layer (`twisted.protocols.tls`, pyOpenSSL): it costs about
three times the CPU per game frame (`python -m benchmarks.tls_layers`), the largest
part of what `wss://` added to a move. `TLSLayer` does the same work in a few lines
of Python over `ssl`'s C calls: bytes from the network go into OpenSSL, plaintext
out to the protocol above; the protocol's writes are encrypted and written at once
(no holding of small writes until the reactor's next turn: a game frame is one
record, sent in the turn that made it). Its users: the `vinom-ssl:` listener
(vinom.server.tls) and the gateway's terminating routes (vinom.gateway.proxy).

Sessions: OpenSSL issues TLS 1.3 session tickets (two a connection), so a player
who plays again or reconnects skips the certificate and its signature
(docs/operations.md, "TLS sessions: returning players resume"). OpenSSL accepts a
ticket only with a fresh (EC)DHE exchange (`psk_dhe_ke`), so a resumed connection
has forward secrecy like a full one, and no early data (0-RTT) is accepted.
Tickets are encrypted under keys OpenSSL draws at random for each context and never
writes anywhere; a ticket is accepted for `TICKET_LIFETIME` seconds by the listener
that issued it (another process, or a restart, gives a full handshake).

ALPN: a context made with protocols answers a client that offers some with the
first of its own the client offered, and with none when nothing overlaps: the
handshake goes on without a protocol chosen, as RFC 7301 lets a server do
(Twisted's own ALPN callback aborted the handshake, alert 80).
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from typing import Any

from attrs import frozen
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IPushProducer, ISSLTransport
from twisted.internet.protocol import connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from zope.interface.interface import InterfaceClass

# How long a session ticket is accepted (the lifetime a client is told): OpenSSL's
# default, which the standard library's context does not change; long enough for a
# player's evening of matches, short enough that a leaked ticket is soon worthless.
TICKET_LIFETIME = 7200

# `sslmethod=`: OpenSSL's method names Twisted's `ssl:` takes, as the TLS versions a
# context allows (None: the standard library's, TLS 1.2 and 1.3).
METHODS: dict[str, ssl.TLSVersion | None] = {
    "TLS_METHOD": None,
    "SSLv23_METHOD": None,
    "TLSv1_2_METHOD": ssl.TLSVersion.TLSv1_2,
}

# Plaintext taken from OpenSSL at a time (a TLS record holds at most 16 KiB).
READ_SIZE = 65536


class TLSLayer(ProtocolWrapper):
    """TLS over one connection (module docstring): the wrapped protocol's transport."""

    factory: TLSLayerFactory

    def __init__(self, factory: TLSLayerFactory, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._incoming, self._outgoing = incoming, outgoing
        self._tls = factory.context.wrap_bio(incoming, outgoing, server_side=True)
        self._handshaken = False
        self._ended = False  # TLS is over: nothing more is read or written
        self._early: list[bytes] = []  # the protocol's writes before the handshake ended
        self._producer: IPushProducer | None = None
        self._reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._ended:
            return
        self._incoming.write(data)
        if not self._handshaken:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send()
                return
            except ssl.SSLError:
                self._fail(Failure())
                return
            self._handshaken = True
            early, self._early = self._early, []
            for chunk in early:
                self._tls.write(chunk)
            if self.disconnecting and self._producer is None:  # closed while it waited
                self._close_tls()
                return
        tls, incoming = self._tls, self._incoming
        while not self._ended:
            try:
                plain = tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:
                self._fail(Failure())
                return
            if not plain:  # the peer's close_notify
                self._close_tls()
                break
            self.wrappedProtocol.dataReceived(plain)
            # OpenSSL takes a record at a time from the BIO: with nothing left there or
            # decrypted, a further read could only fail (an exception a packet, saved).
            if not incoming.pending and not tls.pending():
                break
        if self._outgoing.pending:
            self._send()

    def write(self, data: bytes) -> None:
        if self._ended or (self.disconnecting and self._producer is None):
            return
        if not self._handshaken:
            self._early.append(data)
            return
        self._tls.write(data)
        self._send()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def _send(self) -> None:
        out = self._outgoing.read()
        if out:
            self.transport.write(out)  # type: ignore[union-attr]

    def _close_tls(self) -> None:
        """Send close_notify (answering the peer's, or first) and close the connection."""
        self._ended = True
        # SSLWantReadError: waiting for the peer's close_notify, which is not awaited.
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        self._send()
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _fail(self, reason: Failure) -> None:
        """TLS failed (a bad record, a refused handshake): the alert OpenSSL wrote is
        sent, the connection closed, and the wrapped protocol told `reason`."""
        self._ended = True
        self._reason = reason
        self._send()
        self.transport.loseConnection()  # type: ignore[union-attr]

    def loseConnection(self) -> None:
        if self.disconnecting or not self.connected:
            return
        self.disconnecting = True
        if not self._handshaken:
            if not self._early:  # nothing to send: no handshake to wait for
                self._ended = True
                self.transport.abortConnection()  # type: ignore[union-attr]
        elif self._producer is None and not self._ended:
            self._close_tls()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self._ended = True
        self.transport.abortConnection()  # type: ignore[union-attr]

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        if self._ended:
            producer.stopProducing()
            return
        self.transport.registerProducer(producer, streaming)  # type: ignore[union-attr]
        self._producer = producer

    def unregisterProducer(self) -> None:
        if self._producer is None:
            return
        self._producer = None
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        if self.disconnecting and not self._ended:
            self._close_tls()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._ended = True
        self.connected = False
        if self._reason is not None:
            reason, self._reason = self._reason, None
        super().connectionLost(reason)

    def __conform__(self, interface: InterfaceClass) -> object:
        # twisted.web's `isSecure` (and so https:// in `prePathURL`) asks
        # `ISSLTransport(transport)`: yes. Not declared with @implementer: code that
        # trusts the declaration takes it for Twisted's own TLS class, whose pyOpenSSL
        # connection (its channel binding) a layer on `ssl` memory BIOs has not.
        return self if interface is ISSLTransport else None

    @property
    def negotiatedProtocol(self) -> bytes | None:
        chosen = self._tls.selected_alpn_protocol()
        return None if chosen is None else chosen.encode("ascii")


class TLSLayerFactory(WrappingFactory[TLSLayer]):
    """TLS (`TLSLayer`) around the connections of `wrappedFactory`, with `context`."""

    protocol = TLSLayer
    noisy = False

    def __init__(self, context: ssl.SSLContext, wrapped: IProtocolFactory) -> None:
        super().__init__(wrapped)
        self.context = context

    def logPrefix(self) -> str:
        return f"{super().logPrefix()} (TLS)"


@frozen
class TLSFiles:
    """What a `vinom-ssl:` description says of its TLS: the PEM files of the key, of
    the certificate (with any chain after it) and of an extra chain, DH parameters,
    and the TLS versions `sslmethod=` allows (METHODS)."""

    private_key: str
    certificate: str
    extra_chain: str | None = None
    dh_parameters: str | None = None
    method: str | None = None

    def context(self, protocols: list[bytes] = []) -> ssl.SSLContext:  # noqa: B006 (read only)
        """A server context of these files that answers ALPN with `protocols`; OSError
        for a file it cannot read, ssl.SSLError for one OpenSSL refuses."""
        for path in (self.private_key, self.certificate, self.extra_chain, self.dh_parameters):
            if path is not None:  # OSError naming the file (the ssl module names none)
                open(path, "rb").close()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.extra_chain is None:
            context.load_cert_chain(self.certificate, self.private_key)
        else:
            # The standard library reads a chain only after the certificate, in one file.
            chain = FilePath(self.certificate).getContent() + b"\n"
            chain += FilePath(self.extra_chain).getContent()
            with tempfile.NamedTemporaryFile(suffix=".pem") as combined:
                combined.write(chain)
                combined.flush()
                context.load_cert_chain(combined.name, self.private_key)
        if self.dh_parameters is not None:
            context.load_dh_params(self.dh_parameters)
        version = METHODS.get(self.method or "TLS_METHOD")
        if version is not None:
            context.minimum_version = context.maximum_version = version
        if protocols:
            context.set_alpn_protocols([p.decode("ascii") for p in protocols])
        return context
