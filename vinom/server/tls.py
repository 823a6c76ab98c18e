"""The lobby's TLS listener: an `ssl:` strports description whose server context
lets a returning client resume its TLS session.

Twisted's `ssl:` endpoint turns session tickets and the session cache off.
`server_endpoint` builds the same endpoint (port, interface, backlog,
certificate, key, chain, method, DH parameters: every field Twisted's `ssl:`
parser takes) with TLS 1.3 session tickets on: a player who plays again or
reconnects after a dropped connection offers the ticket of its last
connection and skips the certificate and its signature (docs/security.md).

Safety: OpenSSL accepts a ticket only with a fresh (EC)DHE exchange (the
`psk_dhe_ke` mode; plain `psk_ke` needs an option not set here), so a
resumed connection has forward secrecy like a full one, and no early data
(0-RTT) is accepted. Tickets are encrypted under keys OpenSSL draws at
random when the process starts and never writes anywhere; a ticket is
accepted for `TICKET_LIFETIME` seconds, by the process that issued it (a
ticket offered to another lobby process, or after a restart, gets a full
handshake). Other descriptions (tcp:, unix:, ...) are Twisted's own.

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

from OpenSSL import SSL
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.internet.interfaces import IProtocolNegotiationFactory, IStreamServerEndpoint
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    DiffieHellmanParameters,
    PrivateCertificate,
)
from twisted.python.filepath import FilePath

from vinom.server.startup import strports_fields

# How long a session ticket is accepted (the ticket lifetime a client is told):
# long enough for a player's evening of matches, short enough that a leaked
# ticket is soon worthless.
TICKET_LIFETIME = 3600

# The named fields of Twisted's `ssl:` description (twisted.internet.endpoints._parseSSL).
_SSL_FIELDS = frozenset(
    {"port", "privateKey", "certKey", "sslmethod", "interface", "backlog",
     "extraCertChain", "dhParameters"}
)  # fmt: skip


def server_endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """The endpoint of a strports `description`; for `ssl:`, one that issues TLS 1.3
    session tickets (see the module docstring)."""
    positional, named = strports_fields(description)
    if positional[0].lower() != "ssl" or not named.keys() <= _SSL_FIELDS or len(positional) > 2:
        return serverFromString(reactor, description)
    port = named.get("port", positional[1] if len(positional) > 1 else "")
    private_key = named.get("privateKey", "server.pem")
    options = resumable_options(
        private_key,
        named.get("certKey", private_key),
        extra_chain=named.get("extraCertChain"),
        dh_parameters=named.get("dhParameters"),
        method=named.get("sslmethod"),
    )
    return SSL4ServerEndpoint(
        reactor, int(port), options, backlog=int(named.get("backlog", 50)),
        interface=named.get("interface", ""),
    )  # fmt: skip


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
