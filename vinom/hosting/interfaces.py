"""The game host seam.

A game host is one UDP port, served by a `DatagramProtocol`, hosting the rooms
of one or more matches. It runs inline in the server process or in a child
process; both sit behind these interfaces.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from vinom.matchmaking.interfaces import Match
from vinom.protocol.address import HostAddress


class IGameHost(Interface):
    """One UDP port hosting the rooms of one or more matches."""

    address: HostAddress = Attribute("The address clients connect to.")

    def add_match(match: Match) -> Deferred[None]:
        """Admit the match's players and create its room."""

    def when_idle() -> Deferred[None]:
        """Fires once every match added so far has ended and its room is gone."""

    def stop() -> Deferred[None]:
        """Stop serving the port (ending any rooms left)."""


class IGameHostFactory(Interface):
    """Starts game hosts on ports the allocator hands out."""

    def start_host(port: int) -> Deferred[IGameHost]:
        """Start a host listening on `port`."""
