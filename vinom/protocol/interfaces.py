"""Seams between the UDP session protocol and the rest of vinom."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from zope.interface import Interface

from vinom.hosting.interfaces import HostAddress
from vinom.matchmaking.interfaces import Match, Ticket


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

    def issue(match: Match, player: Ticket, address: HostAddress, now: float) -> Mapping[str, Any]:
        """The JSON-safe public part of a connect token for `player` in `match`."""
