"""The inline game host: a UDP port in the server process, serving rooms through a session manager.

One `InlineGameHost` is one listening UDP port: a `GameHostProtocol` over a
sans-I/O `ServerEndpoint`, whose sessions a `SessionManager` maps to rooms.
The hosting service adds matches to it and stops it (returning the port to
the allocator) once `when_idle` fires. A child-process host will implement the
same `IGameHost` interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from zope.interface import implementer

from vinom.games.interfaces import IGame
from vinom.hosting.interfaces import IGameHost, IGameHostFactory
from vinom.hosting.udp import GameHostProtocol
from vinom.matchmaking.interfaces import Match
from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig, ProtocolConfig
from vinom.protocol.server import ServerEndpoint
from vinom.rooms.room import RoomConfig
from vinom.rooms.session_manager import SessionManager

# A game host's sessions send at most 1200-byte datagrams; receive a bit more so
# an oversized datagram is read whole (and dropped) instead of being truncated.
MAX_DATAGRAM = 2048


@implementer(IGameHost)
@define(eq=False)
class InlineGameHost:
    """A UDP port in this process hosting the rooms of the matches added to it."""

    address: HostAddress
    sessions: SessionManager
    protocol: GameHostProtocol
    listening: IListeningPort = field(repr=False)
    _stopped: Deferred[None] | None = field(default=None, init=False, repr=False)

    def add_match(self, match: Match) -> Deferred[None]:
        self.sessions.add_match(match)
        return succeed(None)

    def when_idle(self) -> Deferred[None]:
        return self.sessions.when_idle()

    def stop(self) -> Deferred[None]:
        if self._stopped is None:
            # Rooms still running are aborted (their players are told, their sessions
            # closed with redundant disconnects) before the port closes.
            self.sessions.shutdown("shutdown")
            result = self.listening.stopListening()
            self._stopped = result if isinstance(result, Deferred) else succeed(None)
        return self._stopped


@implementer(IGameHostFactory)
@define
class InlineGameHostFactory:
    """Starts `InlineGameHost`s on the ports the allocator hands out.

    `reactor` provides IReactorUDP and IReactorTime; `games` looks up a game by
    name (a `GameRegistry.get`); `public_host` is the address clients are told
    to use (and the one connect tokens name); `interface` is the bind address.
    """

    reactor: Any
    games: Callable[[str], IGame]
    protocol_config: ProtocolConfig
    public_host: str
    interface: str = ""
    room_config: RoomConfig = field(factory=RoomConfig)

    def start_host(self, port: int) -> Deferred[IGameHost]:
        address = HostAddress(self.public_host, port)
        sessions = SessionManager(games=self.games, clock=self.reactor, config=self.room_config)
        endpoint = ServerEndpoint(
            HostConfig(protocol=self.protocol_config, addresses=(address,)),
            sessions,
        )
        protocol = GameHostProtocol(endpoint, sessions, self.reactor)
        sessions.sender = protocol
        try:
            listening = self.reactor.listenUDP(
                port, protocol, interface=self.interface, maxPacketSize=MAX_DATAGRAM
            )
        except CannotListenError as e:
            return fail(e)
        host: IGameHost = InlineGameHost(address, sessions, protocol, listening)
        return succeed(host)
