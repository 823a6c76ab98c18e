"""A TCP proxy on 127.0.0.1 that a test cuts and restores: one process cut off from a
server (a game host from Redis) while every other process, and its own other traffic
(its players' UDP), go on.

`cut()` stops listening and aborts every connection through it (as a network that
drops the route: the far ends see their connections die, new ones are refused);
`restore()` listens again on the same port.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.portforward import ProxyFactory, ProxyServer


class _Server(ProxyServer):
    def connectionMade(self) -> None:
        self.factory.proxy.connections.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.proxy.connections.discard(self)
        super().connectionLost(reason)


class CutProxy:
    """Forwards 127.0.0.1:`port` (chosen at `start`) to 127.0.0.1:`target`."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.connections: set[_Server] = set()
        self._listening: IListeningPort | None = None

    @property
    def url(self) -> str:
        """A Redis URL through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        factory = ProxyFactory("127.0.0.1", self.target)
        factory.protocol = _Server
        factory.proxy = self  # type: ignore[attr-defined]
        self._listening = reactor.listenTCP(self.port, factory, interface="127.0.0.1")
        self.port = self._listening.getHost().port

    async def cut(self) -> None:
        if self._listening is not None:
            await self._listening.stopListening()
            self._listening = None
        for server in list(self.connections):
            if server.peer is not None and server.peer.transport is not None:
                server.peer.transport.abortConnection()
            if server.transport is not None:
                server.transport.abortConnection()

    def restore(self) -> None:
        self.start()

    async def stop(self) -> None:
        await self.cut()
