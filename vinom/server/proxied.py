"""The PROXY protocol's receiving side: which client a trusted gateway speaks for.

With `--trusted-proxy ADDR[,ADDR]` (addresses or CIDR networks: a Kubernetes
pod network, where the gateways' addresses change), a connection to the lobby (or
the web server) from one of those addresses must begin with a PROXY protocol header
(v2, as vinom's gateway sends, or v1); the header is read by Twisted's
`twisted.protocols.haproxy.proxyEndpoint` wrapper and the connection's peer
is the client it names, so per-address limits, logs and metrics count the
player, not the gateway. The server's own protocol (TLS first, for a TLS
listener) starts only once the header is read, so that it sees the client's
address from its first call. A connection from any other address that
begins with a PROXY header is refused (closed, one log line): only a trusted
gateway may say where a connection comes from.

`vinom-proxied:trusted=ADDR[,ADDR...]:DESCRIPTION` (vinom.server.endpoints) is
this over the endpoint of DESCRIPTION: `ProxiedEndpoint`. Twisted's wrapper is
used through its one public name, `proxyEndpoint`, which wraps an endpoint: the
endpoint it wraps (`_SortingEndpoint`) listens with the PROXY-reading factory it
is handed for the trusted peers' connections and the server's own factory for
the others. Around Twisted's wrapper, per trusted connection, `ProxiedProtocol`
does what the wrapper leaves out: it holds the server's protocol until the
header is read (the wrapper starts it at once, while the peer is still the
gateway's), hands the wrapper the header whole (the wrapper closes a
connection whose first read holds less than 16 bytes), and logs and counts
a header the wrapper refuses (it closes those silently). For that it finds
where the header ends (its length field for v2, the line end for v1); the
header's contents are Twisted's to read.

Over TLS (`vinom-ssl:`, vinom.server.tls) the header is read first, before the
handshake: the TLS endpoint is put over this one (`TLSServerEndpoint.over`),
every option of its description kept.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import Any, cast

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.haproxy import proxyEndpoint
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

_log = Logger()

# The PROXY protocol's signatures (haproxy's proxy-protocol.txt, sections 2.1 and 2.2).
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_SIGNATURE = b"PROXY "
V2_FIXED = 16  # signature, version and command, family, length
V1_LONGEST = 107  # the longest v1 line, its CRLF included


def _is_prefix_of_header(data: bytes) -> bool:
    """Whether `data` may still turn out to begin with a PROXY header (too short to tell)."""
    return V2_SIGNATURE.startswith(data) or V1_SIGNATURE.startswith(data)


def _header_end(start: bytes) -> int | None:
    """Where the PROXY header that `start` begins with ends (it may end past `start`);
    None while too little is there to say. Past V1_LONGEST without a line end, all of
    it: the parser then finds it invalid."""
    if start.startswith(V1_SIGNATURE):
        end = start.find(b"\r\n", 0, V1_LONGEST)
        if end >= 0:
            return end + 2
        return len(start) if len(start) >= V1_LONGEST else None
    (length,) = struct.unpack_from("!H", start, 14)
    return V2_FIXED + length


def _refuse(wrapper: ProtocolWrapper, why: str, close: bool = True) -> None:
    peer = wrapper.transport.getPeer()  # type: ignore[union-attr]
    wrapper.factory.refused += 1
    _log.info("vinom: connection from {peer} refused: {why}",
              peer=getattr(peer, "host", peer), why=why)  # fmt: skip
    if close:
        wrapper.transport.loseConnection()  # type: ignore[union-attr]


class HeldProtocol(ProtocolWrapper):
    """Between Twisted's PROXY wrapper and the server's protocol: the server's protocol
    starts at `start()` (the header read), not when the connection is made."""

    started = False

    def makeConnection(self, transport: Any) -> None:
        # As ProtocolWrapper's, without starting the wrapped protocol yet.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)

    def start(self) -> None:
        self.started = True
        self.wrappedProtocol.makeConnection(cast(Any, self))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.unregisterProtocol(self)
        if self.started:
            self.wrappedProtocol.connectionLost(reason)


class HeldFactory(WrappingFactory[HeldProtocol]):
    protocol = HeldProtocol
    noisy = False

    def buildProtocol(self, addr: IAddress | None) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        return None if inner is None else self.protocol(self, inner)


class ProxiedProtocol(ProtocolWrapper):
    """A connection from a trusted gateway: the PROXY header first (read by Twisted's
    wrapper, the `wrappedProtocol`), then the server's protocol, which starts only then
    (it sees the client's address from its first call)."""

    def __init__(self, factory: Any, wrapped: IProtocol, held: HeldProtocol) -> None:
        super().__init__(factory, wrapped)
        self.held = held
        self.buffer: bytes | None = b""  # None once the header is read

    def dataReceived(self, data: bytes) -> None:
        if self.buffer is None:
            self.wrappedProtocol.dataReceived(data)
            return
        start = self.buffer = self.buffer + data
        is_v1 = len(start) >= 8 and start.startswith(V1_SIGNATURE)
        if not (is_v1 or (len(start) >= V2_FIXED and start.startswith(V2_SIGNATURE))):
            if len(start) < V2_FIXED and (
                V2_SIGNATURE.startswith(start[:12]) or V1_SIGNATURE.startswith(start[:6])
            ):
                return  # the start of a header
            _refuse(self, "a trusted proxy's connection must begin with a PROXY header")
            return
        end = _header_end(start)
        if end is None or len(start) < end:
            return
        self.buffer = None
        try:
            # The header alone: only Twisted's parser runs here, not the server's code.
            self.wrappedProtocol.dataReceived(start[:end])
        except Exception:  # its v1 parser lets a ValueError out of some malformed lines
            _refuse(self, "its PROXY header is not valid")
            return
        if self.disconnecting:  # Twisted's wrapper closes on a header it cannot read
            _refuse(self, "its PROXY header is not valid", close=False)
            return
        self.held.start()
        rest = start[end:]
        if rest and not self.disconnecting:
            self.wrappedProtocol.dataReceived(rest)


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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(trusted: Iterable[str | Network]) -> tuple[Network, ...]:
    """Addresses (one-address networks) and networks, as networks."""
    return tuple(ipaddress.ip_network(t) for t in trusted)


def is_trusted(host: object, networks: tuple[Network, ...]) -> bool:
    """Whether a peer's `host` (an IP address string; anything else is not) lies in one
    of `networks`. An IPv4-mapped IPv6 peer (a dual-stack listener's) is its IPv4."""
    if not isinstance(host, str):
        return False
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class TrustedProxyFactory(WrappingFactory):
    """Wraps a server factory (module docstring); `refused` counts connections refused.
    `reading` is Twisted's PROXY-reading factory around `HeldFactory(wrapped)`.

    A trusted connection is ProxiedProtocol > Twisted's PROXY wrapper > HeldProtocol >
    the server's protocol; any other, DirectProtocol > the server's protocol."""

    noisy = False

    def __init__(
        self, wrapped: IProtocolFactory, trusted: Iterable[str | Network], reading: Any
    ) -> None:
        super().__init__(wrapped)
        self.trusted = trusted_networks(trusted)
        self.refused = 0
        self.reading = reading

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if is_trusted(getattr(addr, "host", None), self.trusted):
            reader = self.reading.buildProtocol(addr)
            held = reader.wrappedProtocol
            return None if held is None else ProxiedProtocol(self, reader, held)
        inner = self.wrappedFactory.buildProtocol(addr)
        return None if inner is None else DirectProtocol(self, inner)


@implementer(IStreamServerEndpoint)
@frozen
class ProxiedEndpoint:
    """Listens on `plain`, reading a PROXY header first on the connections from the
    `trusted` networks (module docstring)."""

    plain: IStreamServerEndpoint
    trusted: tuple[Network, ...]

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        sorting = _SortingEndpoint(self.plain, self.trusted, factory)
        listening: Deferred[IListeningPort] = proxyEndpoint(sorting).listen(HeldFactory(factory))
        return listening


@implementer(IStreamServerEndpoint)
@frozen
class _SortingEndpoint:
    """The endpoint Twisted's `proxyEndpoint` wraps: it listens on `plain` with the
    PROXY-reading factory it is handed for the trusted peers and `direct`, the
    server's own, for the others."""

    plain: IStreamServerEndpoint
    trusted: tuple[Network, ...]
    direct: IProtocolFactory

    def listen(self, reading: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.plain.listen(TrustedProxyFactory(self.direct, self.trusted, reading))
