"""Seams between the UDP session protocol and the rest of vinom."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from zope.interface import Interface

from vinom.protocol.address import HostAddress
from vinom.protocol.events import SessionClosed, SessionConnected


class Admission(enum.Enum):
    """What a game host answers a player presenting a valid connect token."""

    ACCEPT = "accept"
    # The token is valid but the room cannot take the player: a short `denied`.
    FULL = "full"
    # Not a player of a match hosted here: silence.
    REFUSE = "refuse"


class IAdmission(Interface):
    """Decides whether a token's player may connect; the session manager implements it."""

    def admit(player_id: str, match_id: str) -> Admission:
        """Synchronous: the handshake may not wait."""


class ITokenIssuer(Interface):
    """Issues the connect token a matched player receives in `match_found`."""

    def issue(
        player_id: str,
        match_id: str,
        address: HostAddress,
        now: float,
        *,
        name: str = "",
        team: int = 0,
        rating: float | None = None,
    ) -> Mapping[str, Any]:
        """The JSON-safe public part of a connect token for a player of a match.

        `name`, `team` (the seat, in games without teams) and `rating` reach
        the game host in the token's user data.
        """


class ISessionSink(Interface):
    """Receives what the game host's sessions do; the session manager implements it."""

    def session_connected(event: SessionConnected) -> None:
        """A player completed the handshake."""

    def message_received(session_id: int, channel: int, data: bytes) -> None:
        """One whole message arrived on a channel (0 unreliable, 1 reliable)."""

    def session_closed(event: SessionClosed) -> None:
        """A session ended (timeout, disconnect by the peer, or closed by us)."""


class ISessionSender(Interface):
    """Sends to sessions; the game host's DatagramProtocol adapter implements it."""

    def send_message(session_id: int, channel: int, data: bytes) -> None:
        """Queue one message for the session and transmit it promptly."""

    def close_session(session_id: int) -> None:
        """Disconnect the session (redundant `disconnect` packets), then forget it."""
