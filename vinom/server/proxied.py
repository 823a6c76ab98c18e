"""The PROXY protocol's receiving side: which client a trusted gateway speaks for.

With `--trusted-proxy ADDR[,ADDR]`, a connection to the lobby (or the web
server) from one of those addresses must begin with a PROXY protocol header
(v2, as vinom's gateway sends, or v1); the header is read with Twisted's
parsers (twisted.protocols.haproxy) and the connection's peer is the client
it names, so per-address limits, logs and metrics count the player, not the
gateway. The server's own protocol (TLS first, for a TLS listener) starts
only once the header is read, so that it sees the client's address from its
first call. A connection from any other address that begins with a PROXY
header is refused (closed, one log line): only a trusted gateway may say
where a connection comes from.

The listener is plain TCP underneath: `proxied_endpoint` puts the header
reading before TLS, where a `ssl:` description would put TLS first.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._info import ProxyInfo
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

_log = Logger()

V2_SIGNATURE = V2Parser.PREFIX
V1_SIGNATURE = b"PROXY "


def _is_prefix_of_header(data: bytes) -> bool:
    """Whether `data` may still turn out to begin with a PROXY header (too short to tell)."""
    return V2_SIGNATURE.startswith(data) or V1_SIGNATURE.startswith(data)


def _refuse(wrapper: ProtocolWrapper, why: str) -> None:
    peer = wrapper.transport.getPeer()  # type: ignore[union-attr]
    wrapper.factory.refused += 1
    _log.info("vinom: connection from {peer} refused: {why}",
              peer=getattr(peer, "host", peer), why=why)  # fmt: skip
    wrapper.transport.loseConnection()  # type: ignore[union-attr]


class ProxiedProtocol(ProtocolWrapper):
    """A connection from a trusted gateway: the PROXY header first, then the server's
    protocol, which starts only then (it sees the client's address from its first call)."""

    def __init__(self, factory: Any, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)
        self._buffer = b""
        self._info: ProxyInfo | None = None
        self._parser: V1Parser | V2Parser | None = None
        self._started = False

    def makeConnection(self, transport: Any) -> None:
        # As ProtocolWrapper's, without starting the wrapped protocol yet.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)

    def dataReceived(self, data: bytes) -> None:
        if self._started:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._parser is None:
            self._buffer += data
            start = self._buffer
            if len(start) >= 8 and start.startswith(V1_SIGNATURE):
                self._parser = V1Parser()
            elif len(start) >= 16 and start.startswith(V2_SIGNATURE):
                self._parser = V2Parser()
            elif len(start) < 16 and (
                V2_SIGNATURE.startswith(start[:12]) or V1_SIGNATURE.startswith(start[:6])
            ):
                return  # the start of a header
            else:
                _refuse(self, "a trusted proxy's connection must begin with a PROXY header")
                return
            data, self._buffer = self._buffer, b""
        try:
            info, rest = self._parser.feed(data)
        except InvalidProxyHeader:
            _refuse(self, "its PROXY header is not valid")
            return
        if info is None:
            return
        self._info = info
        self._started = True
        self.wrappedProtocol.makeConnection(cast(Any, self))
        if rest and not self.disconnecting:
            self.wrappedProtocol.dataReceived(rest)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.unregisterProtocol(self)
        if self._started:
            self.wrappedProtocol.connectionLost(reason)

    def getPeer(self) -> IAddress:
        if self._info is not None and self._info.source is not None:
            return self._info.source
        return self.transport.getPeer()  # type: ignore[union-attr]

    def getHost(self) -> IAddress:
        if self._info is not None and self._info.destination is not None:
            return self._info.destination
        return self.transport.getHost()  # type: ignore[union-attr]


class DirectProtocol(ProtocolWrapper):
    """A connection from anywhere else: refused if it begins with a PROXY header."""

    def __init__(self, factory: Any, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)
        self._buffer = b""
        self._checked = False

    def dataReceived(self, data: bytes) -> None:
        if self._checked:
            self.wrappedProtocol.dataReceived(data)
            return
        self._buffer += data
        if self._buffer.startswith(V2_SIGNATURE) or self._buffer.startswith(V1_SIGNATURE):
            _refuse(self, "a PROXY header from an address not in --trusted-proxy")
            return
        if _is_prefix_of_header(self._buffer):
            return  # too short to tell yet
        self._checked = True
        data, self._buffer = self._buffer, b""
        self.wrappedProtocol.dataReceived(data)


class TrustedProxyFactory(WrappingFactory):
    """Wraps a server factory (module docstring); `refused` counts connections refused."""

    noisy = False

    def __init__(self, wrapped: IProtocolFactory, trusted: frozenset[str]) -> None:
        super().__init__(wrapped)
        self.trusted = trusted
        self.refused = 0

    def buildProtocol(self, addr: IAddress | None) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        if getattr(addr, "host", None) in self.trusted:
            return ProxiedProtocol(self, inner)
        return DirectProtocol(self, inner)


class ProxiedEndpoint:
    """Listens on plain TCP and serves `TrustedProxyFactory(TLS(factory))` (or without TLS)."""

    def __init__(self, reactor: Any, description: str, trusted: frozenset[str]) -> None:
        self.trusted = trusted
        endpoint = serverFromString(reactor, description)
        # An ssl: description's endpoint: its port and its TLS context, whose wrapping goes
        # inside the PROXY header's (Twisted's own would put TLS outermost).
        tls = getattr(endpoint, "_sslContextFactory", None)
        if tls is not None:
            self._tls = tls
            port, backlog, interface = endpoint._port, endpoint._backlog, endpoint._interface
            kind = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
            self._tcp: Any = kind(reactor, port, backlog, interface)
        else:
            self._tls = None
            self._tcp = endpoint

    def listen(self, factory: IProtocolFactory) -> Any:
        inner = factory if self._tls is None else TLSMemoryBIOFactory(self._tls, False, factory)
        return self._tcp.listen(TrustedProxyFactory(inner, self.trusted))


def proxied_endpoint(reactor: Any, description: str, trusted: frozenset[str]) -> Any:
    """The endpoint a listener with `--trusted-proxy` listens on."""
    return ProxiedEndpoint(reactor, description, trusted)
