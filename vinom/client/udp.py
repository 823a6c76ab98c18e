"""The game client's UDP side: a thin Twisted adapter over the sans-I/O `ClientConnection`.

Typical use (a bot or a game UI)::

    client = await connect_game_client(reactor, match_found["token"],
                                       on_message=lambda channel, data: ...)
    client.send(RELIABLE, msgpack.packb({...}))
    ...
    await client.disconnect()

`connect_game_client` listens on a free local port, runs the handshake and
fires with the connected `GameClientProtocol`, or fails with
`ConnectFailedError` (reason `timeout`, `denied`, `token_expired`); cancelling
that Deferred gives up the handshake and releases the port. Messages go
to `on_message(channel, data)`, or queue in `client.messages` if no callback is
given. `client.closed` fires with the reason when the session ends (`timeout`,
`disconnect` by the host, `closed` by us); the local port is then released.

When `match_found` names a UDP relay (`relay`: host, port and a base64 route
token), the client sends every datagram to the relay, prefixed with the route
token, and hears the host through it (docs/gateway.md, "UDP relay").
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IReactorCore,
    IReactorTime,
    IReactorUDP,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from vinom.net.wakeup import WakeUp
from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import ClientConfig
from vinom.protocol.events import ConnectFailed, MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.layer import ReliabilityFactory, default_reliability
from vinom.protocol.reliability import Reliability
from vinom.protocol.route_token import ROUTE_TOKEN_SIZE
from vinom.protocol.tokens import PublicToken

_log = Logger()

MessageCallback = Callable[[int, bytes], object]


class ConnectFailedError(Exception):
    """The handshake did not complete; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GameClientProtocol(DatagramProtocol):
    """One client session over one local UDP port (see module docstring)."""

    def __init__(
        self,
        clock: IReactorTime,
        token: PublicToken,
        *,
        addresses: list[tuple[str, int]] | None = None,
        config: ClientConfig | None = None,
        on_message: MessageCallback | None = None,
        reliability_factory: ReliabilityFactory = default_reliability,
        wall_clock: Callable[[], float] = time.time,
        route_token: bytes = b"",
    ) -> None:
        """`route_token`: the relay's route token, prefixed to every datagram sent."""
        self._clock = clock
        self._route_token = route_token
        self._wall_clock = wall_clock
        self._token = token
        self._addresses = addresses
        self._config = config
        self._on_message = on_message
        self._reliability_factory = reliability_factory
        self.connection: ClientConnection | None = None
        self.session: SessionConnected | None = None
        # Cancelling the connect gives up the handshake and releases the port.
        self.connected: Deferred[GameClientProtocol] = Deferred(self._give_up)
        self.closed: Deferred[str] = Deferred()
        self.messages: deque[tuple[int, bytes]] = deque()
        self._wake_up = WakeUp(clock, self._on_timer)
        self._stopping: Deferred[None] | None = None
        self._stop_call: IDelayedCall | None = None
        self._dispatching = False
        self.errors = 0
        self.send_errors = 0

    # -- API --------------------------------------------------------------

    def send(self, channel: int, data: bytes) -> None:
        """Send one message on channel 0 (unreliable) or 1 (reliable, ordered)."""
        if self.connection is None:
            raise ValueError("not started")
        self.connection.send_message(channel, data)
        if not self._dispatching:
            self._flush()

    def set_ack_delays(self, own_s: float, peer_s: float) -> None:
        """`ClientConnection.set_ack_delays` for this session (once started):
        how long the client holds an owed ack / the host may hold its own."""
        if self.connection is None:
            raise ValueError("not started")
        self.connection.set_ack_delays(own_s, peer_s)
        if not self._dispatching:
            self._flush()  # the timer may have moved

    @property
    def round_trip_time(self) -> float | None:
        """The transport's smoothed round-trip time in seconds, once it measured one
        (None before, or with a reliability layer that does not measure it)."""
        connection = self.connection
        layer = None if connection is None else connection.reliability
        if isinstance(layer, Reliability) and layer.rtt_samples:
            return float(layer.rtt_s)
        return None

    def disconnect(self) -> Deferred[None]:
        """End the session (redundant `disconnect` packets) and release the port."""
        if self.connection is not None:
            self.connection.disconnect()
            self._dispatch()
            self._flush()
        return self._stop()

    # -- Twisted ----------------------------------------------------------

    def startProtocol(self) -> None:
        self.connection = ClientConnection(
            self._token, self._clock.seconds(), config=self._config, addresses=self._addresses,
            reliability_factory=self._reliability_factory, wall_clock=self._wall_clock,
        )
        self._flush()

    def stopProtocol(self) -> None:
        self._wake_up.cancel()
        if not self.connected.called:
            self.connected.errback(ConnectFailedError("cancelled"))
        if not self.closed.called:
            self.closed.callback("closed")

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        connection = self.connection
        if connection is None:
            return
        try:
            connection.receive_datagram(data, addr, self._clock.seconds())
        except Exception:
            self._error("connection failed on a datagram")
        self._dispatch()
        self._flush()

    # -- plumbing ---------------------------------------------------------

    def _dispatch(self) -> None:
        connection = self.connection
        if connection is None or self._dispatching:
            return
        self._dispatching = True
        try:
            while True:
                event = connection.next_event()
                if event is None:
                    break
                try:
                    self._handle(event)
                except Exception:
                    self._error("message handler failed")
        finally:
            self._dispatching = False

    def _handle(self, event: object) -> None:
        if type(event) is MessageReceived:
            if self._on_message is None:
                self.messages.append((event.channel, event.data))
            else:
                self._on_message(event.channel, event.data)
        elif isinstance(event, SessionConnected):
            self.session = event
            if not self.connected.called:
                self.connected.callback(self)
        elif isinstance(event, ConnectFailed):
            if not self.connected.called:
                self.connected.errback(ConnectFailedError(event.reason))
            if not self.closed.called:
                self.closed.callback(event.reason)
            self._stop_soon()
        elif isinstance(event, SessionClosed):
            if not self.closed.called:
                self.closed.callback(event.reason)
            self._stop_soon()

    def _flush(self) -> None:
        connection = self.connection
        if connection is None:
            return
        now = self._clock.seconds()
        try:
            out = connection.datagrams_to_send(now)
            when = connection.get_timer()
        except Exception:
            self._error("connection failed building datagrams")
            return
        transport = self.transport
        if out and transport is not None:
            prefix = self._route_token
            for datagram, addr in out:
                try:
                    transport.write(prefix + datagram if prefix else datagram, addr)
                except Exception:
                    self.send_errors += 1
        if when is None or self._stopping is not None:
            self._wake_up.cancel()
        else:
            self._wake_up.at(when, now)

    def _on_timer(self) -> None:
        connection = self.connection
        if connection is None:
            return
        try:
            connection.handle_timer(self._clock.seconds())
        except Exception:
            self._error("connection failed handling its timer")
        self._dispatch()
        self._flush()

    def _give_up(self, _: Deferred[GameClientProtocol]) -> None:
        self._stop()

    def _stop_soon(self) -> None:
        # Not from inside the handler chain: let the final packets be written first.
        if self._stopping is None and self._stop_call is None:
            self._stop_call = self._clock.callLater(0, self._stop)

    def _stop(self) -> Deferred[None]:
        if self._stop_call is not None:
            if self._stop_call.active():
                self._stop_call.cancel()
            self._stop_call = None
        if self._stopping is None:
            port = cast(IListeningPort | None, self.transport)
            if port is None:
                self._stopping = succeed(None)
            else:
                result = port.stopListening()
                self._stopping = result if isinstance(result, Deferred) else succeed(None)
        return self._stopping

    def _error(self, what: str) -> None:
        self.errors += 1
        if self.errors <= 10:
            _log.failure("game client: {what}", what=what)


def connect_game_client(
    reactor: IReactorUDP,
    token: PublicToken | Mapping[str, Any],
    *,
    on_message: MessageCallback | None = None,
    config: ClientConfig | None = None,
    reliability_factory: ReliabilityFactory = default_reliability,
    relay: Mapping[str, Any] | None = None,
) -> Deferred[GameClientProtocol]:
    """Connect to the game host named in `token` (a PublicToken or its JSON mapping),
    or through the UDP relay `relay` ({host, port, token}) of its `match_found`.

    `reactor` must also provide IReactorTime (and IReactorCore to resolve host
    names that are not IP literals). Fires with the connected client, or fails
    with ConnectFailedError; ValueError if the token is malformed.
    """
    try:
        public = token if isinstance(token, PublicToken) else PublicToken.from_json(token)
        route = b"" if relay is None else _route_of(relay)
    except ValueError as e:
        return fail(e)
    clock = cast(IReactorTime, reactor)
    # Through a relay, the relay's is the one address the client sends to.
    targets = public.hosts if relay is None else (HostAddress(relay["host"], relay["port"]),)

    def resolve(host: str) -> Deferred[str]:
        if isIPAddress(host) or isIPv6Address(host):
            return succeed(host)
        return cast(IReactorCore, reactor).resolve(host)

    def listen(resolved: list[str]) -> Deferred[GameClientProtocol]:
        addresses = [(ip, h.port) for ip, h in zip(resolved, targets, strict=True)]
        v6 = isIPv6Address(addresses[0][0])
        # One socket family: keep the addresses that it can reach.
        addresses = [a for a in addresses if isIPv6Address(a[0]) == v6]
        protocol = GameClientProtocol(clock, public, addresses=addresses, config=config,
                                      on_message=on_message,
                                      reliability_factory=reliability_factory,
                                      route_token=route)
        reactor.listenUDP(0, protocol, interface="::" if v6 else "0.0.0.0",
                          maxPacketSize=2048)
        return protocol.connected

    async def connect() -> GameClientProtocol:
        # A coroutine, not a callback chain on `gatherResults`: a DeferredList ignores
        # `cancel()` once it has fired, which would leave a cancelled handshake running.
        resolved = await gatherResults([resolve(h.host) for h in targets], consumeErrors=True)
        return await listen(resolved)

    return Deferred.fromCoroutine(connect())


def _route_of(relay: Mapping[str, Any]) -> bytes:
    """The route token of `match_found`'s `relay`; ValueError says what is wrong."""
    if not isinstance(relay, Mapping):
        raise ValueError("relay is a JSON object")
    host, port, token = relay.get("host"), relay.get("port"), relay.get("token")
    if not isinstance(host, str) or not host:
        raise ValueError("relay host must be a string")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError("relay port must be an integer in 1..65535")
    try:
        raw = base64.b64decode(str(token).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("relay token is not valid base64") from None
    if len(raw) != ROUTE_TOKEN_SIZE:
        raise ValueError(f"relay token must be {ROUTE_TOKEN_SIZE} bytes")
    return raw
