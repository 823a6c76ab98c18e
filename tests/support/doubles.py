"""Test doubles for the lobby and hosting tests: stand-ins with real behaviour, no game.

- `PlaceholderTokenIssuer`: an `ITokenIssuer` whose tokens are plain JSON
  (match, player, seat, expiry and a fresh nonce), NOT sealed or secure. It
  lets lobby tests read what a token was issued for; the server itself uses
  `vinom.protocol.tokens.TokenIssuer`.
- `PlaceholderGameHostFactory` / `PlaceholderGameHost`: an `IGameHost` that
  really listens on its UDP port (so ports are truly taken and freed), counts
  and drops what arrives, and becomes idle only when a test calls
  `end_match`; it refuses every stream session (`not_admitted`: it seats
  nobody); the server itself uses `vinom.hosting.inline`.
- `FakeUDPReactor`: records `listenUDP` calls; a port in `taken` (or already
  listened on) raises `CannotListenError`.
- `EchoCore`: an `IDatagramCore` around a real `ServerEndpoint` that echoes
  its sessions' messages and records what happened, for the UDP adapter's
  tests (the game host's own core is `vinom.hosting.core.GameHostCore`).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from zope.interface import implementer

from vinom.hosting.interfaces import (
    IDatagramCore,
    IGameHost,
    IGameHostFactory,
    IStreamPeer,
    StreamOpened,
    StreamRefused,
)
from vinom.match import Match, MatchEnded
from vinom.protocol.address import HostAddress
from vinom.protocol.events import MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.interfaces import ITokenIssuer
from vinom.protocol.server import ServerEndpoint

DEFAULT_LIFETIME = 30.0


@implementer(ITokenIssuer)
class PlaceholderTokenIssuer:
    """Issues unsealed placeholder tokens valid for `lifetime` seconds (see the module doc)."""

    def __init__(self, lifetime: float = DEFAULT_LIFETIME) -> None:
        if lifetime <= 0:
            raise ValueError("a token lifetime must be positive")
        self.lifetime = lifetime

    def issue(
        self,
        player_id: str,
        match_id: str,
        address: HostAddress,
        now: float,
        *,
        name: str = "",
        team: int = 0,
        rating: float | None = None,
    ) -> Mapping[str, Any]:
        return {
            "kind": "placeholder",
            "match_id": match_id,
            "player_id": player_id,
            "seat": team,
            "host": address.host,
            "port": address.port,
            # Fresh per issue, so a reconnecting player's token differs from the first one.
            "nonce": secrets.token_hex(16),
            "expires_at": now + self.lifetime,
        }


# Read whole datagrams of any size a client might send, so each counts as one drop.
MAX_DATAGRAM = 65535


class DroppingProtocol(DatagramProtocol):
    """Counts datagrams and drops them: no reply, ever."""

    def __init__(self) -> None:
        self.dropped = 0

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        self.dropped += 1


@implementer(IGameHost)
class PlaceholderGameHost:
    """One listening UDP port; idle once every added match has been ended."""

    def __init__(self, address: HostAddress, protocol: DroppingProtocol) -> None:
        self.address = address
        self.protocol = protocol
        self.listening_port: IListeningPort | None = None
        self.matches: dict[str, Match] = {}
        self.stopped = False
        self._idle_waiters: list[Deferred[None]] = []
        self._outcomes: dict[str, MatchEnded] = {}
        self.dropped_stream_messages = 0
        # (match id, player id) of each player taken out of a match (a ban).
        self.removed: list[tuple[str, str]] = []
        self.on_match_ended: Callable[[MatchEnded], object] | None = None

    def add_match(self, match: Match) -> Deferred[None]:
        if self.stopped:
            raise RuntimeError("the game host has stopped")
        self.matches[match.match_id] = match
        return succeed(None)

    def end_match(self, match_id: str, outcome: MatchEnded | None = None) -> bool:
        """End a match as if its game finished (or as `outcome` says); True if it ran here."""
        match = self.matches.pop(match_id, None)
        if match is None:
            return False
        self._outcomes[match_id] = outcome or MatchEnded(
            match_id, "finished", {"winners": [], "reason": "completed"}, None, match.player_ids
        )
        if self.on_match_ended is not None:
            self.on_match_ended(self._outcomes[match_id])
        if not self.matches:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        return True

    def remove_player(self, match_id: str, player_id: str) -> Deferred[bool]:
        """Note the player taken out (`removed`); True if they are in a match here."""
        match = self.matches.get(match_id)
        if match is None or player_id not in match.player_ids:
            return succeed(False)
        self.removed.append((match_id, player_id))
        return succeed(True)

    def when_idle(self) -> Deferred[None]:
        if not self.matches:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def outcome(self, match_id: str) -> MatchEnded | None:
        return self._outcomes.get(match_id)

    def open_stream(
        self, token: bytes, peer: IStreamPeer
    ) -> Deferred[StreamOpened | StreamRefused]:
        return succeed(StreamRefused("not_admitted"))

    def stream_messages(self, messages: list[tuple[int, bytes]]) -> None:
        self.dropped_stream_messages += len(messages)

    def close_stream(self, session_id: int) -> None:
        pass

    def stop(self) -> Deferred[None]:
        if self.stopped:
            return succeed(None)
        self.stopped = True
        self.matches.clear()
        port, self.listening_port = self.listening_port, None
        d: Deferred[None] = succeed(None)
        if port is not None:
            result = port.stopListening()
            if isinstance(result, Deferred):
                d = result.addCallback(lambda _: None)
        return d


@implementer(IGameHostFactory)
class PlaceholderGameHostFactory:
    """Starts `PlaceholderGameHost`s on `interface`; clients reach them at `public_host`."""

    def __init__(self, reactor: IReactorUDP, interface: str, public_host: str) -> None:
        self._reactor = reactor
        self._interface = interface
        self._public_host = public_host
        self.hosts: dict[int, PlaceholderGameHost] = {}

    def start_host(self, port: int) -> Deferred[IGameHost]:
        protocol = DroppingProtocol()
        host = PlaceholderGameHost(HostAddress(self._public_host, port), protocol)
        try:
            host.listening_port = self._reactor.listenUDP(
                port, protocol, interface=self._interface, maxPacketSize=MAX_DATAGRAM
            )
        except Exception:
            # CannotListenError (someone else holds the port) becomes a failed Deferred.
            return fail()
        self.hosts[port] = host
        return succeed(host)

    def end_match(self, match_id: str, outcome: MatchEnded | None = None) -> bool:
        """End `match_id` on whichever host runs it; True if one did."""
        return any(host.end_match(match_id, outcome) for host in list(self.hosts.values()))

    def host_running(self, match_id: str) -> PlaceholderGameHost | None:
        """The live host that runs `match_id`, if any."""
        for host in self.hosts.values():
            if match_id in host.matches and not host.stopped:
                return host
        return None


@implementer(IListeningPort)
class FakeUDPPort:
    def __init__(self, reactor: FakeUDPReactor, port: int) -> None:
        self.reactor = reactor
        self.port = port

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self.reactor.listening.pop(self.port, None)
        return succeed(None)

    def getHost(self) -> Any:
        return None


@implementer(IReactorUDP)
class FakeUDPReactor:
    """Records UDP listens; a port someone else holds raises CannotListenError."""

    def __init__(self) -> None:
        self.listening: dict[int, tuple[DatagramProtocol, str]] = {}
        self.taken: set[int] = set()

    def listenUDP(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,  # noqa: N803 (IReactorUDP names it so)
    ) -> IListeningPort:
        if port in self.taken or port in self.listening:
            raise CannotListenError(interface, port, OSError("address in use"))
        self.listening[port] = (protocol, interface)
        return FakeUDPPort(self, port)


@implementer(IDatagramCore)
class EchoCore:
    """A datagram core: a real endpoint whose messages come back to their session.

    Each message is echoed on its channel with `prefix` (unless `echo` is
    off) and recorded as (session id, channel, data, the time it was handled).
    `explode_on` is a message that makes the core raise (a bug in a core);
    `close_on` one that makes it close the sender's session. Connected
    sessions are also the core's events for the layer above.
    """

    def __init__(self, endpoint: ServerEndpoint, prefix: bytes = b"") -> None:
        self.endpoint = endpoint
        self.prefix = prefix
        self.echo = True
        self.explode_on: bytes | None = None
        self.close_on: bytes | None = None
        self.connected: list[SessionConnected] = []
        self.closed: list[SessionClosed] = []
        self.messages: list[tuple[int, int, bytes, float]] = []
        self.events: deque[object] = deque()

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        self.endpoint.receive_datagram(data, addr, now)
        self._take_events(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        return self.endpoint.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self.endpoint.get_timer()

    def handle_timer(self, now: float) -> None:
        self.endpoint.handle_timer(now)
        self._take_events(now)

    def next_event(self) -> object | None:
        return self.events.popleft() if self.events else None

    def close_session(self, session_id: int, now: float) -> None:
        self.endpoint.close_session(session_id)
        self._take_events(now)

    def _take_events(self, now: float) -> None:
        while (event := self.endpoint.next_event()) is not None:
            if isinstance(event, MessageReceived):
                session_id, channel, data = event
                if data == self.explode_on:
                    raise RuntimeError("a bug in the core")
                self.messages.append((session_id, channel, data, now))
                if data == self.close_on:
                    self.endpoint.close_session(session_id)
                elif self.echo:
                    self.endpoint.send_message(session_id, channel, self.prefix + data)
            elif isinstance(event, SessionConnected):
                self.connected.append(event)
                self.events.append(event)
            elif isinstance(event, SessionClosed):
                self.closed.append(event)
