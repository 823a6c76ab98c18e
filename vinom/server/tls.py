"""vinom's TLS listener, `vinom-ssl:` (vinom.server.endpoints): the fields of Twisted's
`ssl:` description, served by vinom's TLS layer (vinom.net.tls: the standard
library's TLS, session tickets for returning clients, an ALPN answer that never
aborts a handshake).

`TLSServerEndpoint` runs TLS over another endpoint's connections, as Twisted's
`listenSSL` does over TCP; `over` puts it over another endpoint, so that a PROXY
header is read before the handshake (vinom.server.proxied). Its context answers
ALPN with the served factory's `IProtocolNegotiationFactory` protocols
(`http/1.1` on the WebSocket listener, which twisted.web serves).
"""

from __future__ import annotations

import ssl
from typing import Any

from attrs import evolve, frozen
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IProtocolNegotiationFactory,
    IStreamServerEndpoint,
)
from zope.interface import implementer

from vinom.net.tls import METHODS, TLSFiles, TLSLayerFactory

# The named fields of a `vinom-ssl:` description: those of Twisted's `ssl:`.
TLS_FIELDS = ("port", "interface", "backlog", "privateKey", "certKey", "extraCertChain",
              "dhParameters", "sslmethod")  # fmt: skip


@implementer(IStreamServerEndpoint)
@frozen
class TLSServerEndpoint:
    """TLS over the connections of `plain` (see the module docstring) with the
    certificate of `files`; None when the description named no certificate: a server
    fills it in before it listens (vinom.server.endpoints), and listening without one
    fails saying so."""

    plain: IStreamServerEndpoint
    files: TLSFiles | None

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        if self.files is None:
            return fail(ValueError("vinom-ssl: no privateKey= (the certificate's key) given"))
        negotiating = IProtocolNegotiationFactory(factory, None)
        protocols = [] if negotiating is None else list(negotiating.acceptableProtocols())
        return self.plain.listen(TLSLayerFactory(self.files.context(protocols), factory))

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
    if method is not None and method not in METHODS:
        raise ValueError(f"vinom-ssl's sslmethod {method!r} is not one it serves "
                         f"({', '.join(METHODS)})")  # fmt: skip
    interface = named.get("interface", "")
    private_key = named.get("privateKey")
    files = None
    if private_key is not None:
        files = TLSFiles(
            private_key, named.get("certKey", private_key),
            extra_chain=named.get("extraCertChain"),
            dh_parameters=named.get("dhParameters"), method=method,
        )  # fmt: skip
        try:
            files.context()
        except ssl.SSLError as e:
            raise ValueError(f"OpenSSL refuses the certificate or key ({e})") from None
        except OSError as e:
            raise ValueError(f"{e.filename!r}: {(e.strerror or str(e)).lower()}") from None
    tcp = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
    return TLSServerEndpoint(tcp(reactor, int(port), int(backlog), interface), files)
