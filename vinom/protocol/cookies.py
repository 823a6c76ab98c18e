"""Challenge cookies: how a game host stays stateless until a client proves its address.

A cookie carries everything the host needs to create the session later (the
token's keys, player, match, user data, expiry, nonce), sealed with AES-GCM
under a host-local key that nobody else ever sees, and bound to the address it
was sent to. The key is replaced every `rotation` seconds and the previous one
is kept, so a cookie is good for one to two periods. Only whoever receives
packets at that address (and holds the token's server-to-client key to read
the challenge) can echo it back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from vinom.protocol.crypto import Aead, InvalidTag, new_aead
from vinom.protocol.wire import (
    COOKIE_FIXED,
    COOKIE_HEADER,
    COOKIE_HEADER_SIZE,
    KEY_SIZE,
    MAX_ID_BYTES,
    MAX_USER_DATA,
    TAG_SIZE,
)

_U16 = struct.Struct("<H")
MIN_COOKIE = COOKIE_HEADER_SIZE + COOKIE_FIXED.size + 1 + 1 + 1 + 1 + 2 + TAG_SIZE
MAX_COOKIE = COOKIE_HEADER_SIZE + COOKIE_FIXED.size + 2 * (1 + MAX_ID_BYTES) + 2 \
    + MAX_USER_DATA + TAG_SIZE


class CookieContents(NamedTuple):
    token_expires_at: int
    token_nonce: bytes
    timeout_ms: int
    client_to_server_key: bytes
    server_to_client_key: bytes
    player_id: bytes  # ASCII
    match_id: bytes  # ASCII
    user_data: bytes


class CookieJar:
    """Seals and opens one host's cookies; keys rotate with `now`."""

    __slots__ = ("_keys", "_random_bytes", "_rotation")

    def __init__(self, rotation: float, random_bytes: Callable[[int], bytes]) -> None:
        self._rotation = rotation
        self._random_bytes = random_bytes
        self._keys: dict[int, Aead] = {}

    def _epoch(self, now: float) -> int:
        return int(now // self._rotation) & 0xFFFFFFFF

    def _key(self, epoch: int) -> Aead:
        aead = self._keys.get(epoch)
        if aead is None:
            # Keep only this epoch's and the previous one's key.
            previous = (epoch - 1) & 0xFFFFFFFF
            self._keys = {e: k for e, k in self._keys.items() if e == previous}
            aead = self._keys[epoch] = new_aead(self._random_bytes(KEY_SIZE))
        return aead

    def seal(self, contents: CookieContents, counter: int, address: bytes, now: float) -> bytes:
        """The cookie for `contents`, bound to `address`; `counter` must never repeat."""
        epoch = self._epoch(now)
        header = COOKIE_HEADER.pack(epoch, counter)
        body = (
            COOKIE_FIXED.pack(contents.token_expires_at, contents.token_nonce,
                              contents.timeout_ms, contents.client_to_server_key,
                              contents.server_to_client_key)
            + bytes((len(contents.player_id),)) + contents.player_id
            + bytes((len(contents.match_id),)) + contents.match_id
            + _U16.pack(len(contents.user_data)) + contents.user_data
        )
        # The nonce is the cookie header itself: unique per (key, counter).
        return header + self._key(epoch).encrypt(header, body, header + address)

    def open(self, cookie: bytes, address: bytes, now: float) -> CookieContents | None:
        """The contents of a cookie this host sealed for `address` recently, else None."""
        if not MIN_COOKIE <= len(cookie) <= MAX_COOKIE:
            return None
        header = cookie[:COOKIE_HEADER_SIZE]
        epoch = COOKIE_HEADER.unpack(header)[0]
        current = self._epoch(now)
        if epoch != current and epoch != (current - 1) & 0xFFFFFFFF:
            return None
        aead = self._keys.get(epoch)
        if aead is None:
            return None
        try:
            body = aead.decrypt(header, cookie[COOKIE_HEADER_SIZE:], header + address)
        except InvalidTag:
            return None
        return _parse(body)


def _parse(body: bytes) -> CookieContents | None:
    try:
        expires, nonce, timeout_ms, c2s, s2c = COOKIE_FIXED.unpack_from(body, 0)
        pos = COOKIE_FIXED.size
        n = body[pos]
        player = body[pos + 1:pos + 1 + n]
        pos += 1 + n
        n = body[pos]
        match = body[pos + 1:pos + 1 + n]
        pos += 1 + n
        (n,) = _U16.unpack_from(body, pos)
        user = body[pos + 2:pos + 2 + n]
        if pos + 2 + n != len(body) or not player or not match:
            return None
    except (IndexError, struct.error):
        return None
    return CookieContents(expires, nonce, timeout_ms, c2s, s2c, player, match, user)
