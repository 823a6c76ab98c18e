"""The UDP relay's Twisted side: public sockets, one socket per route, a timer, metrics.

`relay_service(reactor, ...)` is the relay as a Twisted service: it listens on
each port of a public range, feeds every datagram to the sans-I/O `RelayCore`
(vinom.gateway.relay_core, where the rules are) and carries out what it
returns: a route's socket is a UDP socket of its own on `host_interface`
(toward the game hosts), opened when the route opens and closed when it is
forgotten, so each player is a distinct peer for the host. The relay makes
those sockets itself and reads them through the reactor's `IReactorFDSet`
(`addReader`), not `listenUDP`: a Twisted UDP port logs a line when it opens
and another when it closes, which with a socket per route would be lines per
player. `RelayCollector` gives the core's counters to Prometheus.
docs/gateway.md, "UDP relay".
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.application import service
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorFDSet,
    IReactorTime,
    IReactorUDP,
    IReadDescriptor,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.gateway.relay_core import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_ROUTES,
    DROP_REASONS,
    Action,
    CloseRoute,
    OpenRoute,
    RelayCore,
    ToHost,
    ToPlayer,
)
from vinom.net.wakeup import WakeUp
from vinom.protocol.route_token import ROUTE_TOKEN_SIZE

__all__ = ["Relay", "RelayCollector", "RelayService", "relay_service"]

_log = Logger()
# The largest datagram a player may send: a session packet (at most 1200 bytes) and its token.
MAX_DATAGRAM = 1200 + ROUTE_TOKEN_SIZE + 64


# The most datagrams a route's socket reads per wake-up: enough to empty it under a
# burst, few enough that one busy route does not hold the reactor from the others.
READS_PER_WAKEUP = 64


class _PublicProtocol(DatagramProtocol):
    noisy = False

    def __init__(self, relay: Relay, listener: int) -> None:
        self._relay = relay
        self._listener = listener

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        relay = self._relay
        relay.run(relay.core.player_datagram(data, addr, self._listener, relay.clock.seconds()))


@implementer(IReadDescriptor)
class _RouteSocket:
    """A route's socket toward its game host, read when the reactor says it is readable."""

    def __init__(self, relay: Relay, route_id: int, sock: socket.socket) -> None:
        self._relay = relay
        self._route_id = route_id
        self.socket = sock

    def fileno(self) -> int:
        # -1 once closed, so the reactor never takes a reused number for this socket.
        return self.socket.fileno()

    def doRead(self) -> None:
        relay = self._relay
        recvfrom = self.socket.recvfrom
        for _ in range(READS_PER_WAKEUP):
            try:
                data, address = recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                # An earlier datagram to the host met a closed port (ICMP); UDP lost it.
                continue
            except OSError:
                return  # closed meanwhile, or an error reading it cleared: read on next time
            relay.run(relay.core.host_datagram(self._route_id, data, address))

    def connectionLost(self, reason: Failure) -> None:
        self.socket.close()

    def logPrefix(self) -> str:
        return "relay-route"


class Relay:
    """Carries out a `RelayCore`'s actions on real sockets (module docstring)."""

    def __init__(
        self, reactor: Any, core: RelayCore, *, host_interface: str = ""
    ) -> None:
        self.reactor = reactor
        self.clock = cast(IReactorTime, reactor)
        self.core = core
        self.host_interface = host_interface
        self.public: list[IListeningPort] = []
        self._routes: dict[int, _RouteSocket] = {}
        self._wake_up = WakeUp(self.clock, self._on_timer)
        self.send_errors = 0
        self.socket_failures = 0

    def listen(self, ports: range, interface: str = "") -> None:
        """Listen on every port of `ports` (0 alone: a free port, for tests)."""
        udp = cast(IReactorUDP, self.reactor)
        for index, port in enumerate(ports):
            self.public.append(udp.listenUDP(port, _PublicProtocol(self, index),
                                             interface=interface, maxPacketSize=MAX_DATAGRAM))

    def run(self, actions: list[Action]) -> None:
        timers = False
        for action in actions:
            if type(action) is ToHost:
                route = self._routes.get(action.route_id)
                if route is not None:
                    try:
                        route.socket.sendto(action.data, action.host)
                    except OSError:
                        # EWOULDBLOCK, ECONNREFUSED (the host's port closed), ENOBUFS,
                        # unreachable: UDP may lose a datagram anyway; counted.
                        self.send_errors += 1
            elif type(action) is ToPlayer:
                self._write(self.public[action.listener], action.data, action.address)
            elif type(action) is OpenRoute:
                self._open(action.route_id, action.host)
                timers = True
            elif type(action) is CloseRoute:
                route = self._routes.pop(action.route_id, None)
                if route is not None:
                    cast(IReactorFDSet, self.reactor).removeReader(route)
                    route.socket.close()
                timers = True
        if timers:
            # Only opening and forgetting routes move the core's timer; forwarding
            # does not, so a forwarded datagram costs no timer work.
            self._follow_timer()

    def _follow_timer(self) -> None:
        when = self.core.get_timer()
        if when is None:
            self._wake_up.cancel()
        else:
            self._wake_up.at(when, self.clock.seconds())

    def stop(self) -> None:
        """Forget every route and close every socket."""
        self.run(self.core.close())
        self._wake_up.cancel()
        for port in self.public:
            port.stopListening()
        self.public.clear()

    def _open(self, route_id: int, host: tuple[Any, ...]) -> None:
        interface = self.host_interface or ("::" if ":" in str(host[0]) else "0.0.0.0")
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in interface else socket.AF_INET,
                                 socket.SOCK_DGRAM)  # fmt: skip
        except OSError as e:
            self._no_socket(route_id, e)
            return
        try:
            sock.setblocking(False)
            sock.bind((interface, 0))
        except OSError as e:
            sock.close()
            self._no_socket(route_id, e)
            return
        route = self._routes[route_id] = _RouteSocket(self, route_id, sock)
        cast(IReactorFDSet, self.reactor).addReader(route)

    def _no_socket(self, route_id: int, error: OSError) -> None:
        # No socket (file descriptors exhausted, most likely): the route is
        # forgotten at once, and its player's next datagram tries again. Said
        # the first time and every 1,000th after, never per datagram.
        self.socket_failures += 1
        if self.socket_failures % 1000 == 1:
            _log.warn("relay: no socket for a route ({error}); {count} so far: raise the "
                      "file-descriptor limit or lower --relay-max-routes",
                      error=str(error), count=self.socket_failures)  # fmt: skip
        self.run(self.core.forget(route_id))

    def _write(self, port: IListeningPort, data: bytes, address: Any) -> None:
        try:
            cast(Any, port).write(data, address)
        except Exception:
            self.send_errors += 1

    def _on_timer(self) -> None:
        self.run(self.core.handle_timer(self.clock.seconds()))
        self._follow_timer()


class RelayService(service.Service):
    """The relay as a Twisted service: listens when started, closes everything when stopped."""

    def __init__(self, relay: Relay, ports: range, interface: str = "") -> None:
        self.relay = relay
        self.ports = ports
        self.interface = interface

    def startService(self) -> None:
        super().startService()
        self.relay.listen(self.ports, self.interface)

    def stopService(self) -> Any:
        self.relay.stop()
        return super().stopService()


def relay_service(
    reactor: Any,
    *,
    key: bytes,
    ports: range,
    interface: str = "",
    host_interface: str = "",
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_routes: int = DEFAULT_MAX_ROUTES,
    wall_clock: Callable[[], float] | None = None,
) -> RelayService:
    """The relay service: public `ports` on `interface`, routes' sockets on
    `host_interface`, tokens checked with the relay `key` (docs/gateway.md)."""
    core = RelayCore(key, wall_clock=wall_clock or reactor.seconds,
                     idle_timeout=idle_timeout, max_routes=max_routes)  # fmt: skip
    return RelayService(Relay(reactor, core, host_interface=host_interface), ports, interface)


class RelayCollector(Collector):
    """The relay's counters in the Prometheus format, read from the core when scraped."""

    def __init__(self, core: RelayCore) -> None:
        self.core = core

    def collect(self) -> Iterator[Metric]:
        core = self.core
        yield GaugeMetricFamily("vinom_relay_routes", "Routes open now (one per relayed player).",
                                value=core.route_count)  # fmt: skip
        yield CounterMetricFamily("vinom_relay_routes_opened", "Routes opened by a valid token.",
                                  value=core.routes_opened)  # fmt: skip
        yield CounterMetricFamily("vinom_relay_routes_forgotten",
                                  "Routes forgotten (idle, or the relay stopping).",
                                  value=core.routes_forgotten)  # fmt: skip
        yield CounterMetricFamily("vinom_relay_datagrams_received",
                                  "Datagrams received on the public ports.", value=core.received)
        yield CounterMetricFamily("vinom_relay_bytes_received",
                                  "Bytes received on the public ports.", value=core.received_bytes)
        forwarded = CounterMetricFamily("vinom_relay_datagrams_forwarded",
                                        "Datagrams forwarded, by direction.",
                                        labels=["direction"])  # fmt: skip
        forwarded.add_metric(["to_host"], core.to_host)
        forwarded.add_metric(["to_player"], core.to_player)
        yield forwarded
        forwarded_bytes = CounterMetricFamily("vinom_relay_forwarded_bytes",
                                              "Payload bytes forwarded, by direction.",
                                              labels=["direction"])  # fmt: skip
        forwarded_bytes.add_metric(["to_host"], core.to_host_bytes)
        forwarded_bytes.add_metric(["to_player"], core.to_player_bytes)
        yield forwarded_bytes
        dropped = CounterMetricFamily("vinom_relay_datagrams_dropped",
                                      "Datagrams the relay could not route, by reason.",
                                      labels=["reason"])  # fmt: skip
        for reason in DROP_REASONS:
            dropped.add_metric([reason], core.drops[reason])
        yield dropped
