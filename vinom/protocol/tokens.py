"""Connect tokens: what the lobby hands a matched player so a game host will let them in.

A token has a private part, sealed with AES-256-GCM under the token key the
lobby shares with its game hosts, and a public part the client receives over
TLS (JSON in `match_found`): the sealed private part, its nonce, the expiry,
the session timeout, the host address(es) and both session keys. The client
cannot read or change the private part; the host trusts only the private part.
Layouts are in docs/protocol.md.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
from attrs import define, frozen
from zope.interface import implementer

from vinom.protocol.address import HostAddress
from vinom.protocol.config import MAX_APPLICATION_ID, IssuerConfig, ProtocolConfig
from vinom.protocol.crypto import Aead, InvalidTag, new_aead
from vinom.protocol.interfaces import ITokenIssuer
from vinom.protocol.wire import (
    KEY_SIZE,
    MAX_HOST_BYTES,
    MAX_HOSTS,
    MAX_ID_BYTES,
    MAX_USER_DATA,
    NONCE_SIZE,
    PRIVATE_TOKEN_FIXED,
    PRIVATE_TOKEN_SIZE,
    PROTOCOL_VERSION,
    REQUEST,
    REQUEST_PADDING,
    REQUEST_PREFIX,
    REQUEST_SIZE,
    SEALED_TOKEN_SIZE,
    TOKEN_AD,
    check_id,
)

_U16 = struct.Struct("<H")
MAX_TIMEOUT_MS = 2**32 - 1
MAX_EXPIRY = 2**64 - 1


@frozen
class PrivateToken:
    """The sealed part: only the lobby and the game hosts can read it."""

    player_id: str
    match_id: str
    hosts: tuple[HostAddress, ...]
    created_at: int  # unix seconds
    timeout_ms: int
    client_to_server_key: bytes
    server_to_client_key: bytes
    user_data: bytes = b""

    def pack(self) -> bytes:
        """The 1008-byte plaintext (zero padded); ValueError if it cannot fit."""
        out = bytearray(
            PRIVATE_TOKEN_FIXED.pack(
                self.created_at, self.timeout_ms,
                self.client_to_server_key, self.server_to_client_key,
            )
        )
        if len(self.client_to_server_key) != KEY_SIZE or len(self.server_to_client_key) != KEY_SIZE:
            raise ValueError("session keys are 32 bytes")
        for raw in (check_id(self.player_id, "player id"), check_id(self.match_id, "match id")):
            out.append(len(raw))
            out += raw
        if not 1 <= len(self.hosts) <= MAX_HOSTS:
            raise ValueError(f"a token names 1..{MAX_HOSTS} hosts")
        out.append(len(self.hosts))
        for h in self.hosts:
            raw = token_host_bytes(h)
            out.append(len(raw))
            out += raw
            out += _U16.pack(h.port)
        if len(self.user_data) > MAX_USER_DATA:
            raise ValueError(f"user data is at most {MAX_USER_DATA} bytes")
        out += _U16.pack(len(self.user_data))
        out += self.user_data
        if len(out) > PRIVATE_TOKEN_SIZE:
            raise ValueError("the token's fields do not fit in its 1008 bytes")
        out += bytes(PRIVATE_TOKEN_SIZE - len(out))
        return bytes(out)

    @classmethod
    def unpack(cls, data: bytes) -> PrivateToken | None:
        """Parse a 1008-byte plaintext; None if it is malformed."""
        if len(data) != PRIVATE_TOKEN_SIZE:
            return None
        try:
            created, timeout_ms, c2s, s2c = PRIVATE_TOKEN_FIXED.unpack_from(data, 0)
            pos = PRIVATE_TOKEN_FIXED.size
            ids = []
            for _ in range(2):
                n = data[pos]
                pos += 1
                if not 1 <= n <= MAX_ID_BYTES:
                    return None
                ids.append(data[pos:pos + n].decode("ascii"))
                pos += n
            count = data[pos]
            pos += 1
            if not 1 <= count <= MAX_HOSTS:
                return None
            hosts = []
            for _ in range(count):
                n = data[pos]
                pos += 1
                if n == 0:
                    return None
                host = data[pos:pos + n].decode("ascii")
                pos += n
                (port,) = _U16.unpack_from(data, pos)
                pos += 2
                if len(host) != n or port == 0:
                    return None
                hosts.append(HostAddress(host, port))
            (n,) = _U16.unpack_from(data, pos)
            pos += 2
            if n > MAX_USER_DATA or pos + n > PRIVATE_TOKEN_SIZE:
                return None
            user_data = data[pos:pos + n]
            if timeout_ms == 0:
                return None
        except (IndexError, UnicodeDecodeError, struct.error):
            return None
        return cls(ids[0], ids[1], tuple(hosts), created, timeout_ms, c2s, s2c, bytes(user_data))


def token_host_bytes(h: HostAddress) -> bytes:
    """A host address as a token carries it (ASCII, 1 to 255 bytes); ValueError if it cannot."""
    try:
        raw = h.host.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"host names must be ASCII (IDNA): {h.host!r}") from None
    if not 1 <= len(raw) <= MAX_HOST_BYTES:
        raise ValueError(f"host names are 1..{MAX_HOST_BYTES} bytes")
    if not 1 <= h.port <= 65535:
        raise ValueError(f"bad port {h.port}")
    return raw


def token_associated_data(version: int, application_id: int, expires_at: int) -> bytes:
    """What the token's AEAD binds: exactly bytes 1..21 of the request packet."""
    return TOKEN_AD.pack(version, application_id, expires_at)


def seal_private_token(
    token: PrivateToken, protocol: ProtocolConfig, expires_at: int, nonce: bytes,
    aead: Aead | None = None,
) -> bytes:
    """The 1024-byte sealed private token."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError("token nonces are 12 bytes")
    if not 0 <= expires_at <= MAX_EXPIRY:
        raise ValueError("expiry out of range")
    aead = aead or new_aead(protocol.token_key)
    ad = token_associated_data(protocol.protocol_version, protocol.application_id, expires_at)
    sealed = aead.encrypt(nonce, token.pack(), ad)
    assert len(sealed) == SEALED_TOKEN_SIZE
    return sealed


def open_private_token(aead: Aead, nonce: bytes, sealed: bytes, ad: bytes) -> PrivateToken | None:
    """Open a sealed token; None if it was not sealed under this key for this `ad`."""
    try:
        plain = aead.decrypt(nonce, sealed, ad)
    except InvalidTag:
        return None
    return PrivateToken.unpack(plain)


def peek_request_token(
    data: bytes, protocol: ProtocolConfig, wall_now: float, aead: Aead | None = None
) -> PrivateToken | str:
    """The token a `request` packet presents, or why it presents none (a drop reason:
    `request_size`, `wrong_version`, `wrong_application`, `token_expired`,
    `token_invalid`, `token_malformed`).

    For a process that shares the token key but is not the host, to learn which
    match a token is for (the web server, finding the host of a WebSocket
    player's match); the host checks the token again, and fully, itself.
    """
    if len(data) != REQUEST_SIZE or data[0] != REQUEST:
        return "request_size"
    _, version, application_id, expires_at, nonce = REQUEST_PREFIX.unpack_from(data)
    if version != protocol.protocol_version:
        return "wrong_version"
    if application_id != protocol.application_id:
        return "wrong_application"
    if expires_at <= wall_now:
        return "token_expired"
    sealed = data[REQUEST_PREFIX.size:REQUEST_PREFIX.size + SEALED_TOKEN_SIZE]
    try:
        plain = (aead or new_aead(protocol.token_key)).decrypt(nonce, sealed, data[1:21])
    except InvalidTag:
        return "token_invalid"
    token = PrivateToken.unpack(plain)
    return "token_malformed" if token is None else token


@frozen
class PublicToken:
    """What the client holds: enough to build a request and to encrypt its session."""

    protocol_version: int
    application_id: int
    player_id: str
    match_id: str
    created_at: int
    expires_at: int
    timeout_ms: int
    hosts: tuple[HostAddress, ...]
    nonce: bytes
    sealed: bytes
    client_to_server_key: bytes
    server_to_client_key: bytes

    def to_json(self) -> dict[str, Any]:
        """The JSON-safe mapping sent in `match_found` (see docs/protocol.md)."""
        return {
            "version": self.protocol_version,
            "application_id": self.application_id,
            "player_id": self.player_id,
            "match_id": self.match_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "timeout_ms": self.timeout_ms,
            "hosts": [{"host": h.host, "port": h.port} for h in self.hosts],
            "nonce": _b64(self.nonce),
            "token": _b64(self.sealed),
            "client_to_server_key": _b64(self.client_to_server_key),
            "server_to_client_key": _b64(self.server_to_client_key),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PublicToken:
        """Parse the JSON mapping; ValueError says what is wrong with it."""
        if not isinstance(obj, Mapping):
            raise ValueError("a connect token is a JSON object")
        try:
            version = _int(obj["version"], "version", 0, 2**32 - 1)
            app = _int(obj["application_id"], "application_id", 0, MAX_APPLICATION_ID)
            created = _int(obj["created_at"], "created_at", 0, MAX_EXPIRY)
            expires = _int(obj["expires_at"], "expires_at", 0, MAX_EXPIRY)
            timeout = _int(obj["timeout_ms"], "timeout_ms", 1, MAX_TIMEOUT_MS)
            player_id = _str(obj["player_id"], "player_id")
            match_id = _str(obj["match_id"], "match_id")
            raw_hosts = obj["hosts"]
            if not isinstance(raw_hosts, list) or not 1 <= len(raw_hosts) <= MAX_HOSTS:
                raise ValueError(f"hosts must be a list of 1..{MAX_HOSTS} addresses")
            hosts = []
            for h in raw_hosts:
                if not isinstance(h, Mapping):
                    raise ValueError("each host is an object with host and port")
                addr = HostAddress(_str(h["host"], "host"), _int(h["port"], "port", 1, 65535))
                token_host_bytes(addr)
                hosts.append(addr)
            nonce = _unb64(obj["nonce"], "nonce", NONCE_SIZE)
            sealed = _unb64(obj["token"], "token", SEALED_TOKEN_SIZE)
            c2s = _unb64(obj["client_to_server_key"], "client_to_server_key", KEY_SIZE)
            s2c = _unb64(obj["server_to_client_key"], "server_to_client_key", KEY_SIZE)
        except KeyError as e:
            raise ValueError(f"connect token lacks {e.args[0]!r}") from None
        check_id(player_id, "player_id")
        check_id(match_id, "match_id")
        return cls(version, app, player_id, match_id, created, expires, timeout, tuple(hosts),
                   nonce, sealed, c2s, s2c)

    def request_packet(self) -> bytes:
        """The 1200-byte `request` packet that presents this token."""
        return (
            REQUEST_PREFIX.pack(REQUEST, self.protocol_version, self.application_id,
                                self.expires_at, self.nonce)
            + self.sealed
            + bytes(REQUEST_PADDING)
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{what} is not valid base64") from None
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return raw


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in {low}..{high}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def encode_user_data(name: str, team: int, rating: float | None) -> bytes:
    """The token's user data: a msgpack map {name, team, rating}, at most 256 bytes.

    Names are cut (on a character boundary) to 64 UTF-8 bytes so they always fit.
    """
    raw = name.encode("utf-8")[:MAX_ID_BYTES]
    cut = raw.decode("utf-8", "ignore")
    return bytes(msgpack.packb({"name": cut, "team": team, "rating": rating}))


def decode_user_data(data: bytes) -> dict[str, Any]:
    """The {name, team, rating} map from `encode_user_data` ({} if absent or not a map)."""
    if not data:
        return {}
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types on bad input
        return {}
    return value if isinstance(value, dict) else {}


@implementer(ITokenIssuer)
@define
class TokenIssuer:
    """Issues connect tokens for the lobby (`ITokenIssuer`).

    `random_bytes` makes keys and nonces; inject a deterministic one only for
    test vectors.
    """

    config: IssuerConfig
    random_bytes: Callable[[int], bytes] = os.urandom
    _aead: Aead | None = None

    def issue(self, player_id: str, match_id: str, address: HostAddress, now: float, *,
              name: str = "", team: int = 0, rating: float | None = None) -> Mapping[str, Any]:
        """The public token (JSON-safe) for a player of a match on the host at `address`.

        `now` is wall-clock unix seconds (reactor.seconds() in production);
        `name`, `team` and `rating` go to the host in the token's user data.
        """
        user_data = encode_user_data(name, team, rating)
        return self.issue_token(player_id=player_id, match_id=match_id,
                                hosts=(address,), now=now, user_data=user_data).to_json()

    def issue_token(self, *, player_id: str, match_id: str, hosts: tuple[HostAddress, ...],
                    now: float, user_data: bytes = b"") -> PublicToken:
        protocol = self.config.protocol
        created = int(now)
        expires = int(now + self.config.token_lifetime)
        timeout_ms = max(1, round(self.config.session_timeout * 1000))
        c2s = self.random_bytes(KEY_SIZE)
        s2c = self.random_bytes(KEY_SIZE)
        nonce = self.random_bytes(NONCE_SIZE)
        private = PrivateToken(player_id, match_id, tuple(hosts), created, timeout_ms,
                               c2s, s2c, user_data)
        if self._aead is None:
            self._aead = new_aead(protocol.token_key)
        sealed = seal_private_token(private, protocol, expires, nonce, self._aead)
        return PublicToken(protocol.protocol_version, protocol.application_id, player_id,
                           match_id, created, expires, timeout_ms, tuple(hosts), nonce, sealed,
                           c2s, s2c)


__all__ = [
    "PROTOCOL_VERSION",
    "PrivateToken",
    "PublicToken",
    "TokenIssuer",
    "decode_user_data",
    "encode_user_data",
    "open_private_token",
    "peek_request_token",
    "seal_private_token",
    "token_associated_data",
]
