"""The gateway's connections: sniff, pick a backend, replay, then splice both ways.

A client connection (`GatewayConnection`) buffers what it receives until
`sniff` decides (vinom.gateway.sniff), within a byte limit and a timeout;
then the `Router` picks a backend, the gateway connects to it (the reactor's
`connectTCP` for an address: no endpoint nor Deferred per connection), sends a PROXY
protocol v2 header (unless the backend's rule says not to) and the bytes it
read, unchanged, and from then on copies bytes both ways. As in
twisted.protocols.portforward, each side's transport is the other's
producer: a side that does not read pauses the reading of the other, so a
slow peer does not grow the gateway's memory.

Every connection closed before it reached a backend is counted by reason in
`GatewayFactory.refused` (docs/gateway.md).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import struct
from collections import Counter
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.gateway.router import BackendState, Router
from vinom.gateway.sniff import DEFAULT_LIMIT, DEFAULT_TIMEOUT, PROXY_V2_SIGNATURE, Refused, sniff
from vinom.net.tls import TLSLayer, TLSLayerFactory

CONNECT_TIMEOUT = 5.0


def client_endpoint(reactor: Any, host: str, port: int, timeout: float,
                    source: str | None = None) -> Any:  # fmt: skip
    """A TCP client endpoint to host:port: an address is connected to as it is (Twisted's
    HostnameEndpoint would report a refused connection only at its next attempt tick,
    0.3 s later), a name through HostnameEndpoint. `source`: the local address to connect
    from (--backend-interface), else the system's choice."""
    bind = None if not source else (source, 0)
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return HostnameEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)
    kind = TCP4ClientEndpoint if version == 4 else TCP6ClientEndpoint
    return kind(reactor, host, port, timeout=timeout, bindAddress=bind)


def proxy_v2_header(source: IAddress, destination: IAddress) -> bytes:
    """The PROXY protocol v2 header (PROXY command, TCP) telling a backend that
    `source` connected to `destination`; a LOCAL header for other address kinds."""
    if isinstance(source, (IPv4Address, IPv6Address)) and isinstance(
        destination, (IPv4Address, IPv6Address)
    ):
        src, dst = _packed(source.host), _packed(destination.host)
        if len(src) != len(dst):  # one of each family: both as IPv6 (IPv4-mapped)
            src, dst = _as_ipv6(src), _as_ipv6(dst)
        if len(src) == 4:
            return _PROXY_TCP4 + src + dst + _PORTS.pack(source.port, destination.port)
        return _PROXY_TCP6 + src + dst + _PORTS.pack(source.port, destination.port)
    return PROXY_V2_SIGNATURE + bytes([0x20, 0x00]) + b"\x00\x00"


# The header's fixed part: version 2 PROXY, TCP over IPv4 / IPv6, and the address block's
# length (two addresses and two ports).
_PROXY_TCP4 = PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 4 + 4 + 4)
_PROXY_TCP6 = PROXY_V2_SIGNATURE + bytes([0x21, 0x21]) + struct.pack("!H", 16 + 16 + 4)
_PORTS = struct.Struct("!HH")
_IPV4_MAPPED = bytes(10) + b"\xff\xff"


def _packed(host: str) -> bytes:
    """An address's bytes (4 or 16); an IPv6 address's zone (`%eth0`) is left out."""
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.split("%")[0])
    return socket.inet_pton(socket.AF_INET, host)


def _as_ipv6(packed: bytes) -> bytes:
    return _IPV4_MAPPED + packed if len(packed) == 4 else packed


class BackendConnection(Protocol):
    """The gateway's side of a connection to a backend: what it says goes to the client."""

    def __init__(self, client: GatewayConnection) -> None:
        self.client = client

    def connectionMade(self) -> None:
        self.client.backend_connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.client.transport.write(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.client.backend_lost()


class GatewayConnection(Protocol):
    """One client's connection through the gateway (module docstring)."""

    log = Logger()
    factory: GatewayFactory

    def __init__(self) -> None:
        self._buffer = b""
        self._timer: IDelayedCall | None = None
        self._backend: BackendConnection | None = None
        self._state: BackendState | None = None
        self._peer: IAddress | None = None
        self._closed = False
        self._connecting = False
        self._refused = False
        # With TLS terminated here: the TLS layer this connection's bytes go through, and
        # whether this is the plaintext connection inside it.
        self._tls: TLSLayer | None = None
        self.terminated = False

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self._timer = self.factory.clock.callLater(self.factory.sniff_timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.dataReceived(data)
            return
        if self._backend is not None:
            self._backend.transport.write(data)  # type: ignore[union-attr]
            return
        if self._refused:  # closing: what else it sends is not looked at, nor counted again
            return
        self._buffer += data
        if self._connecting:
            # More while the backend is being reached: nothing more is read until it
            # answers (paused only now: a client usually waits for the answer, and
            # pausing and resuming its reading costs two system calls).
            self.transport.pauseProducing()  # type: ignore[union-attr]
            return
        decision = sniff(self._buffer, self.factory.sniff_limit)
        if decision is None:
            return
        if isinstance(decision, Refused):
            self._refuse(decision.reason)
            return
        router = self.factory.router
        route = router.rules.route_for(decision)
        if decision.kind == "tls" and route is not None and route.terminate:
            self._terminate()
            return
        self._peer = peer = self.transport.getPeer()  # type: ignore[union-attr]
        chosen = router.pick_on(route, decision, getattr(peer, "host", ""))
        if isinstance(chosen, str):
            self._refuse(chosen)
            return
        self._cancel_timer()
        self._state = chosen
        chosen.connections += 1
        self.factory.routed[decision.kind] += 1
        self._connecting = True
        self.factory.connect(chosen.backend.host, chosen.backend.port, self)

    def _terminate(self) -> None:
        """Decrypt here: a plaintext connection inside TLS routes the first message."""
        tls_factory = self.factory.tls_factory
        if tls_factory is None or self.terminated:
            self._refuse("no_route")  # no certificate, or TLS inside TLS
            return
        self._cancel_timer()
        self.factory.terminated += 1
        inner = self.factory.buildProtocol(None)
        inner.terminated = True
        self._tls = TLSLayer(tls_factory, inner)
        # The inner connection stands for this one from now on (drain, counts).
        self._tls.makeConnection(self.transport)
        self.factory.connections.discard(self)
        first, self._buffer = self._buffer, b""
        self._tls.dataReceived(first)

    def backend_connected(self, backend: BackendConnection) -> None:
        """The backend answered: the PROXY header and the bytes read go first."""
        self._connecting = False
        if self._closed:
            backend.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._backend = backend
        assert self._state is not None and self.transport is not None
        first = self._buffer
        self._buffer = b""
        if self._state.backend.proxy_protocol:
            peer = self._peer or self.transport.getPeer()
            first = proxy_v2_header(peer, self.transport.getHost()) + first
        backend.transport.write(first)  # type: ignore[union-attr]
        # Each side's transport pauses the other's reading while its own output is full.
        client: Any = self.transport
        client.registerProducer(backend.transport, True)
        backend.transport.registerProducer(client, True)  # type: ignore[union-attr]
        client.resumeProducing()

    def backend_failed(self, failure: Failure) -> None:
        """The backend could not be reached: the client is closed, the backend is out."""
        self._connecting = False
        self.factory.refused["backend_unreachable"] += 1
        state = self._state
        assert state is not None
        if state.healthy:
            # Out at once, as a failed health check would put it (the next passing check
            # puts it back): the next players are not sent where this one could not go.
            state.healthy = False
            self.log.warn("gateway: backend {name} is out: {host}:{port} unreachable: {why}",
                          name=state.backend.name, host=state.backend.host,
                          port=state.backend.port, why=failure.getErrorMessage())  # fmt: skip
        if self.transport is not None:
            self.transport.loseConnection()

    def backend_lost(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def _refuse(self, reason: str) -> None:
        self._refused = True
        self.factory.refused[reason] += 1
        self._cancel_timer()
        self._buffer = b""
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _timed_out(self) -> None:
        self._timer = None
        self._refuse("timeout")

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        self._cancel_timer()
        if self._tls is not None:
            self._tls.connectionLost(reason)
        if self._state is not None:
            self._state.connections -= 1
            self._state = None
        if self._backend is not None and self._backend.transport is not None:
            self._backend.transport.loseConnection()
        self.factory.connection_closed(self)

    def close(self) -> None:
        """Close at once (the drain's end): a peer that does not read holds nothing up."""
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=256)
def _is_address(host: str) -> bool:
    """Whether `host` is an IP address (else a name to look up): backends are few."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _BackendFactory(ClientFactory):
    """Connects one client's connection to its backend."""

    noisy = False

    def __init__(self, client: GatewayConnection) -> None:
        self.client = client

    def buildProtocol(self, addr: IAddress | None) -> BackendConnection:
        return BackendConnection(self.client)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.client.backend_failed(reason)


class GatewayFactory(ServerFactory):
    """The gateway's listening side: its connections, the router and the counts."""

    noisy = False

    def __init__(
        self,
        router: Router,
        clock: Any,
        *,
        sniff_limit: int = DEFAULT_LIMIT,
        sniff_timeout: float = DEFAULT_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
        source: str | None = None,
    ) -> None:
        self.router = router
        self.clock = clock
        self.sniff_limit = sniff_limit
        self.sniff_timeout = sniff_timeout
        self.connections: set[GatewayConnection] = set()
        # With a certificate: TLS is terminated for the routes that say so.
        self.tls_factory: TLSLayerFactory | None = (
            None if tls_context is None else TLSLayerFactory(tls_context, self)
        )
        self.terminated = 0
        self.refused: Counter[str] = Counter()
        self.routed: Counter[str] = Counter()
        self._when_empty: list[Deferred[None]] = []
        self._source = source
        self._bind = None if not source else (source, 0)

    def connect(self, host: str, port: int, client: GatewayConnection) -> None:
        """Connect `client` to the backend at host:port: its `backend_connected` or
        `backend_failed` is called. An address is connected to by the reactor's connectTCP
        (no endpoint, no Deferred: one connection per client), a name through
        HostnameEndpoint (`client_endpoint`)."""
        factory = _BackendFactory(client)
        if _is_address(host):
            self.clock.connectTCP(host, port, factory, CONNECT_TIMEOUT, self._bind)
            return
        endpoint = client_endpoint(self.clock, host, port, CONNECT_TIMEOUT, self._source)
        endpoint.connect(factory).addErrback(client.backend_failed)

    def buildProtocol(self, addr: IAddress | None) -> GatewayConnection:  # type: ignore[override]
        connection = GatewayConnection()
        connection.factory = self
        return connection

    def connection_closed(self, connection: GatewayConnection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            waiting, self._when_empty = self._when_empty, []
            for d in waiting:
                if not d.called:  # the drain's timeout may have fired it
                    d.callback(None)

    def when_all_closed(self) -> Deferred[None]:
        """Fires once no connection is open (at once if none is)."""
        d: Deferred[None] = Deferred()
        if not self.connections:
            d.callback(None)
        else:
            self._when_empty.append(d)
        return d

    def close_all(self) -> None:
        for connection in list(self.connections):
            connection.close()
