"""Route tokens: what a player behind the UDP relay prefixes to every datagram.

The lobby mints one per player per `match_found` when the game host sits
behind a relay (vinom.gateway.relay). It is sealed with AES-256-GCM under the
relay key, which the lobby and the relay share and nothing else holds (not the
connect-token key: the relay never sees session keys). Sealed inside: the game
host's address and the token's expiry. The 12-byte nonce is random, so each
token is unique, and the relay uses the whole token as the name of one
player's route (the first address it comes from owns the route while it is in
use). Layout, byte for byte, with test vectors: docs/protocol.md, "Route tokens".
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Callable

from attrs import define, frozen

from vinom.protocol.config import TOKEN_LIFETIME
from vinom.protocol.crypto import Aead, InvalidTag, new_aead
from vinom.protocol.wire import NONCE_SIZE

ROUTE_TOKEN_VERSION = 1
# version (1) + nonce (12) + sealed plaintext (22) + GCM tag (16)
_PLAIN = struct.Struct("<IH16s")  # expires_at (unix seconds), host port, host IPv6 address
TAG_SIZE = 16
ROUTE_TOKEN_SIZE = 1 + NONCE_SIZE + _PLAIN.size + TAG_SIZE
MAX_ROUTE_EXPIRY = 2**32 - 1

__all__ = [
    "MAX_ROUTE_EXPIRY",
    "ROUTE_TOKEN_SIZE",
    "ROUTE_TOKEN_VERSION",
    "Route",
    "RouteTokenIssuer",
    "open_route_token",
    "seal_route_token",
]


@frozen
class Route:
    """What a route token carries: where to forward, and until when it may open a route."""

    host: str  # an IP literal: IPv4 dotted or IPv6
    port: int
    expires_at: int  # unix seconds


def relayable(host: str) -> bool:
    """Whether a route token can name a game host announced as `host`: an IP literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _address_bytes(host: str) -> bytes:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"a relayed host is an IP address, not {host!r}") from None
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed).packed
    return address.packed


def _address_text(raw: bytes) -> str:
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


def seal_route_token(route: Route, nonce: bytes, aead: Aead) -> bytes:
    """The 51-byte token for `route`; ValueError if the route cannot be carried."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError("route token nonces are 12 bytes")
    if not 1 <= route.port <= 65535:
        raise ValueError(f"bad port {route.port}")
    if not 0 <= route.expires_at <= MAX_ROUTE_EXPIRY:
        raise ValueError("route token expiry out of range")
    header = bytes((ROUTE_TOKEN_VERSION,))
    plain = _PLAIN.pack(route.expires_at, route.port, _address_bytes(route.host))
    return header + nonce + aead.encrypt(nonce, plain, header)


def open_route_token(token: bytes, aead: Aead) -> Route | None:
    """The route a token names, or None if it is not a token sealed under this key
    (wrong size, version, or authentication). Expiry is the caller's to check."""
    if len(token) != ROUTE_TOKEN_SIZE or token[0] != ROUTE_TOKEN_VERSION:
        return None
    try:
        plain = aead.decrypt(token[1:13], token[13:], token[:1])
    except InvalidTag:
        return None
    expires_at, port, raw = _PLAIN.unpack(plain)
    if port == 0:
        return None
    return Route(_address_text(raw), port, expires_at)


@define
class RouteTokenIssuer:
    """Mints route tokens for the lobby: one per player and `match_found`.

    `lifetime` is how long a token may open a route (a route in use stays open
    past it); `random_bytes` makes nonces (inject a fixed one only for test vectors).
    """

    key: bytes
    lifetime: float = TOKEN_LIFETIME
    random_bytes: Callable[[int], bytes] = os.urandom
    _aead: Aead | None = None

    def issue(self, host: str, port: int, now: float) -> bytes:
        """A token routing to the game host at `host` (an IP literal) and `port`."""
        if self._aead is None:
            self._aead = new_aead(self.key)
        route = Route(host, port, min(MAX_ROUTE_EXPIRY, int(now + self.lifetime)))
        return seal_route_token(route, self.random_bytes(NONCE_SIZE), self._aead)
