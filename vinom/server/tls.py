"""vinom's TLS listener, `vinom-ssl:` (vinom.server.endpoints): the fields of Twisted's
`ssl:` description, with a server context that lets a returning client resume its
TLS session and answers ALPN as a server should.

Twisted's `ssl:` endpoint turns session tickets and the session cache off.
`vinom-ssl:` takes the same fields (port, interface, backlog, privateKey,
certKey, extraCertChain, dhParameters, sslmethod) and issues TLS 1.3 session
tickets: a player who plays again or reconnects after a dropped connection
offers the ticket of its last connection and skips the certificate and its
signature (docs/operations.md, "TLS sessions: returning players resume").

`TLSServerEndpoint` runs TLS over another endpoint's connections, as Twisted's
`listenSSL` does over TCP (a `TLSMemoryBIOFactory` around the served factory);
`over` puts it over another endpoint, so that a PROXY header is read before the
handshake (vinom.server.proxied).

Safety: OpenSSL accepts a ticket only with a fresh (EC)DHE exchange (the
`psk_dhe_ke` mode; plain `psk_ke` needs an option not set here), so a
resumed connection has forward secrecy like a full one, and no early data
(0-RTT) is accepted. Tickets are encrypted under keys OpenSSL draws at
random when the process starts and never writes anywhere; a ticket is
accepted for `TICKET_LIFETIME` seconds, by the process that issued it (a
ticket offered to another lobby process, or after a restart, gets a full
handshake).

ALPN: a client that offers protocols (every browser, curl, anything built on
HTTP libraries) is answered with the first of the served factory's
`IProtocolNegotiationFactory` protocols it offered (`http/1.1` on the
WebSocket listener, which twisted.web serves), and with none when nothing
overlaps: the handshake goes on without a protocol chosen, as RFC 7301 lets a
server do. Twisted's own ALPN callback answers "no overlap" with an empty
choice, which OpenSSL takes as "abort the handshake" (alert 80), so every
client offering ALPN to the line-JSON lobby port or to a terminating gateway
route was refused.
"""

from __future__ import annotations

from typing import Any

from attrs import evolve, frozen
from OpenSSL import SSL, crypto
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IProtocolNegotiationFactory,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    DiffieHellmanParameters,
    PrivateCertificate,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.filepath import FilePath
from zope.interface import implementer

# How long a session ticket is accepted (the ticket lifetime a client is told):
# long enough for a player's evening of matches, short enough that a leaked
# ticket is soon worthless.
TICKET_LIFETIME = 3600

# The named fields of a `vinom-ssl:` description: those of Twisted's `ssl:`.
TLS_FIELDS = ("port", "interface", "backlog", "privateKey", "certKey", "extraCertChain",
              "dhParameters", "sslmethod")  # fmt: skip


@implementer(IStreamServerEndpoint)
@frozen
class TLSServerEndpoint:
    """TLS over the connections of `plain` (see the module docstring), with `options`;
    None when the description named no certificate: a server fills it in before it
    listens (vinom.server.endpoints), and listening without one fails saying so."""

    plain: IStreamServerEndpoint
    options: CertificateOptions | None

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        if self.options is None:
            return fail(ValueError("vinom-ssl: no privateKey= (the certificate's key) given"))
        return self.plain.listen(TLSMemoryBIOFactory(self.options, False, factory))

    def over(self, plain: IStreamServerEndpoint) -> TLSServerEndpoint:
        """The same TLS over the connections of another endpoint."""
        return evolve(self, plain=plain)


def tls_server_endpoint(
    reactor: Any, positional: tuple[str, ...], named: dict[str, str]
) -> TLSServerEndpoint:
    """The endpoint of a `vinom-ssl:` description's fields (the port positional or
    named); ValueError, in one line, for a field it lacks, does not know or cannot use."""
    unknown = sorted(named.keys() - set(TLS_FIELDS))
    if unknown:
        raise ValueError(f"vinom-ssl has no field {unknown[0]!r} (its fields: "
                         f"{', '.join(TLS_FIELDS)})")  # fmt: skip
    if len(positional) > 1 or (positional and "port" in named):
        raise ValueError("vinom-ssl takes one field without a name, the port")
    port = named.get("port", positional[0] if positional else "")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"vinom-ssl needs a port from 0 to 65535 (vinom-ssl:PORT), not {port!r}")
    backlog = named.get("backlog", "50")
    if not backlog.isdigit() or int(backlog) < 1:
        raise ValueError(f"vinom-ssl's backlog must be a number of at least 1, not {backlog!r}")
    method = named.get("sslmethod")
    if method is not None and not (method.endswith("_METHOD") and hasattr(SSL, method)):
        raise ValueError(f"vinom-ssl's sslmethod {method!r} is not one of OpenSSL's "
                         "(TLS_METHOD, TLSv1_2_METHOD, ...)")  # fmt: skip
    interface = named.get("interface", "")
    private_key = named.get("privateKey")
    options = None
    if private_key is not None:
        try:
            options = resumable_options(
                private_key, named.get("certKey", private_key),
                extra_chain=named.get("extraCertChain"),
                dh_parameters=named.get("dhParameters"), method=method,
            )  # fmt: skip
        except OSError as e:
            raise ValueError(f"{e.filename!r}: {(e.strerror or str(e)).lower()}") from None
        except (SSL.Error, crypto.Error) as e:
            raise ValueError(f"OpenSSL refuses the certificate or key ({e})") from None
    tcp = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
    return TLSServerEndpoint(tcp(reactor, int(port), int(backlog), interface), options)


def resumable_options(
    private_key: str,
    certificate: str,
    *,
    extra_chain: str | None = None,
    dh_parameters: str | None = None,
    method: str | None = None,
) -> CertificateOptions:
    """Server TLS options for a certificate and key (PEM files), as Twisted's `ssl:`
    endpoint makes them, with session tickets on for `TICKET_LIFETIME` seconds."""
    key_pem = FilePath(private_key).getContent()
    cert_pem = FilePath(certificate).getContent()
    own = PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    chain = [] if extra_chain is None else _chain(extra_chain)
    extra: dict[str, Any] = {}
    if method is not None:
        extra["method"] = getattr(SSL, method)
    options = CertificateOptions(
        privateKey=own.privateKey.original,
        certificate=own.original,
        extraCertChain=chain,
        dhParameters=(None if dh_parameters is None
                      else DiffieHellmanParameters.fromFile(FilePath(dh_parameters))),
        enableSessionTickets=True,
        **extra,
    )  # fmt: skip
    context = options.getContext()
    context.set_timeout(TICKET_LIFETIME)
    # After CertificateOptions set its own (the module docstring says why).
    context.set_alpn_select_callback(select_alpn)
    return options


def select_alpn(connection: SSL.Connection, offered: list[bytes]) -> Any:
    """The ALPN protocol to answer a client's `offered` list with: the first the served
    factory speaks that the client offered, else none (the handshake goes on)."""
    tls = connection.get_app_data()
    factory = getattr(getattr(tls, "factory", None), "wrappedFactory", None)
    negotiating = IProtocolNegotiationFactory(factory, None)
    for protocol in negotiating.acceptableProtocols() if negotiating is not None else ():
        if protocol in offered:
            return protocol
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _chain(path: str) -> list[Any]:
    text = FilePath(path).getContent()
    marker = b"-----END CERTIFICATE-----"
    blocks = [block + marker for block in text.split(marker) if b"-----BEGIN" in block]
    if not blocks:
        raise ValueError(f"extraCertChain {path!r} holds no PEM certificate")
    return [Certificate.loadPEM(block).original for block in blocks]
