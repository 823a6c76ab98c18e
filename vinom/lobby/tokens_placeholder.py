"""A placeholder connect-token issuer, until the UDP session protocol lands.

PLACEHOLDER: the tokens issued here are NOT secure. They are plain JSON that
names the match, the player's seat and an expiry, with a random nonce, so the
lobby can complete `match_found` end to end. The UDP session protocol issue
replaces this class with an issuer of sealed (AEAD-encrypted) connect tokens
carrying the session keys; both implement `vinom.protocol.interfaces.ITokenIssuer`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from zope.interface import implementer

from vinom.hosting.interfaces import HostAddress
from vinom.matchmaking.interfaces import Match, Ticket
from vinom.protocol.interfaces import ITokenIssuer

DEFAULT_LIFETIME = 30.0


@implementer(ITokenIssuer)
class PlaceholderTokenIssuer:
    """Issues unsealed placeholder tokens valid for `lifetime` seconds (see the module doc)."""

    def __init__(self, lifetime: float = DEFAULT_LIFETIME) -> None:
        if lifetime <= 0:
            raise ValueError("a token lifetime must be positive")
        self.lifetime = lifetime

    def issue(
        self, match: Match, player: Ticket, address: HostAddress, now: float
    ) -> Mapping[str, Any]:
        seat = match.player_ids.index(player.player_id)
        return {
            "kind": "placeholder",
            "match_id": match.match_id,
            "player_id": player.player_id,
            "seat": seat,
            "host": address.host,
            "port": address.port,
            # Fresh per issue, so a reconnecting player's token differs from the first one.
            "nonce": secrets.token_hex(16),
            "expires_at": now + self.lifetime,
        }
