"""Seams between the UDP session protocol and the rest of vinom."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

from zope.interface import Interface

from vinom.protocol.address import HostAddress


class Admission(enum.Enum):
    """What a game host answers a player presenting a valid connect token."""

    ACCEPT = "accept"
    # The token is valid but the room cannot take the player: a short `denied`.
    FULL = "full"
    # Not a player of a match hosted here: silence.
    REFUSE = "refuse"


# Decides whether a token's player may connect: (player id, match id, now).
# Synchronous, since the handshake may not wait; the game host core supplies it
# to its endpoint.
Admit = Callable[[str, str, float], Admission]


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
