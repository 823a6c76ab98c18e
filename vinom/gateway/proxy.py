"""The gateway's connections: sniff, pick a backend, replay, then splice both ways.

A client connection (`GatewayConnection`) buffers what it receives until
`sniff` decides (vinom.gateway.sniff), within a byte limit and a timeout;
then the `Router` picks a backend, the gateway connects to it, sends a PROXY
protocol v2 header (unless the backend's rule says not to) and the bytes it
read, unchanged, and from then on copies bytes both ways. As in
twisted.protocols.portforward, each side's transport is the other's
producer: a side that does not read pauses the reading of the other, so a
slow peer does not grow the gateway's memory.

Every connection closed before it reached a backend is counted by reason in
`GatewayFactory.refused` (docs/gateway.md).
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import Factory, Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from vinom.gateway.router import BackendState, Router
from vinom.gateway.sniff import DEFAULT_LIMIT, DEFAULT_TIMEOUT, PROXY_V2_SIGNATURE, Refused, sniff

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
        src = ipaddress.ip_address(source.host.split("%")[0])
        dst = ipaddress.ip_address(destination.host.split("%")[0])
        if src.version == 6 and dst.version == 4:
            dst = ipaddress.IPv6Address(f"::ffff:{dst}")
        elif src.version == 4 and dst.version == 6:
            src = ipaddress.IPv6Address(f"::ffff:{src}")
        family = 0x11 if src.version == 4 else 0x21  # TCP over IPv4 / IPv6
        body = src.packed + dst.packed + struct.pack("!HH", source.port, destination.port)
        return PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body
    return PROXY_V2_SIGNATURE + bytes([0x20, 0x00]) + b"\x00\x00"


class BackendConnection(Protocol):
    """The gateway's side of a connection to a backend: what it says goes to the client."""

    def __init__(self, client: GatewayConnection) -> None:
        self.client = client

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
        self._closed = False
        self._connecting = False
        self._refused = False
        # With TLS terminated here: the TLS layer this connection's bytes go through, and
        # whether this is the plaintext connection inside it.
        self._tls: TLSMemoryBIOProtocol | None = None
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
            return
        decision = sniff(self._buffer, self.factory.sniff_limit)
        if decision is None:
            return
        if isinstance(decision, Refused):
            self._refuse(decision.reason)
            return
        if decision.kind == "tls":
            route = self.factory.router.rules.route_for(decision)
            if route is not None and route.terminate:
                self._terminate()
                return
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        chosen = self.factory.router.pick(decision, getattr(peer, "host", ""))
        if isinstance(chosen, str):
            self._refuse(chosen)
            return
        self._cancel_timer()
        self._state = chosen
        chosen.connections += 1
        self.factory.routed[decision.kind] += 1
        self._connecting = True
        # Nothing more is read from the client until the backend answers.
        self.transport.pauseProducing()  # type: ignore[union-attr]
        backend = chosen.backend
        endpoint = self.factory.connect_to(backend.host, backend.port)
        d = endpoint.connect(_OneConnection(BackendConnection(self)))
        d.addCallbacks(self._connected, self._not_connected)

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
        self._tls = TLSMemoryBIOProtocol(tls_factory, inner)
        # The inner connection stands for this one from now on (drain, counts).
        self._tls.makeConnection(self.transport)
        self.factory.connections.discard(self)
        first, self._buffer = self._buffer, b""
        self._tls.dataReceived(first)

    def _connected(self, backend: BackendConnection) -> None:
        self._connecting = False
        if self._closed:
            backend.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._backend = backend
        assert self._state is not None and self.transport is not None
        first = self._buffer
        self._buffer = b""
        if self._state.backend.proxy_protocol:
            first = proxy_v2_header(self.transport.getPeer(), self.transport.getHost()) + first
        backend.transport.write(first)  # type: ignore[union-attr]
        # Each side's transport pauses the other's reading while its own output is full.
        client: Any = self.transport
        client.registerProducer(backend.transport, True)
        backend.transport.registerProducer(client, True)  # type: ignore[union-attr]
        client.resumeProducing()

    def _not_connected(self, failure: Failure) -> None:
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


class _OneConnection(Factory):
    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return self._protocol


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
        connect_to: Callable[[str, int], Any] | None = None,
        tls_options: Any = None,
        source: str | None = None,
    ) -> None:
        self.router = router
        self.clock = clock
        self.sniff_limit = sniff_limit
        self.sniff_timeout = sniff_timeout
        self.connections: set[GatewayConnection] = set()
        # With a certificate: TLS is terminated for the routes that say so.
        self.tls_factory: TLSMemoryBIOFactory | None = (
            None if tls_options is None else TLSMemoryBIOFactory(tls_options, False, self)
        )
        self.terminated = 0
        self.refused: Counter[str] = Counter()
        self.routed: Counter[str] = Counter()
        self._when_empty: list[Deferred[None]] = []
        self.connect_to = connect_to or (
            lambda host, port: client_endpoint(clock, host, port, CONNECT_TIMEOUT, source)
        )

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
