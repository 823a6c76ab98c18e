"""Byte layouts of vinom's UDP packets: sizes, struct formats, packet types, drop reasons.

Everything on the wire is little-endian (as in netcode.io: the native order of
every platform game clients run on). docs/protocol.md is the normative spec;
this module is its executable twin, so keep the two in step.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

#: The version of the session packets (§5 of docs/protocol.md), in every connect token.
PROTOCOL_VERSION: Final = 3
#: The game protocol a client speaks, told to the lobby (docs/lobby.md, "The game
#: protocol"): these packets and the room messages inside them (§14). 4: every
#: ``snap`` in one form, with nothing to ask for.
GAME_PROTOCOL: Final = 4

# Largest datagram either side ever sends: safe on every real path (QUIC's
# minimum), so nothing is ever fragmented by IP.
MAX_DATAGRAM: Final = 1200
KEY_SIZE: Final = 32  # AES-256-GCM keys
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16

# Packet types: the first byte of every packet.
REQUEST: Final = 0  # client -> host, plaintext header + sealed connect token
CHALLENGE: Final = 1  # host -> client, cookie encrypted with the server-to-client key
RESPONSE: Final = 2  # client -> host, cookie echoed, authenticated with client-to-server key
WELCOME: Final = 3  # host -> client, session id and server time
DENIED: Final = 4  # host -> client, valid token but the room is full
PAYLOAD: Final = 5  # both ways: one reliability-layer body
KEEPALIVE: Final = 6  # both ways: nothing to say, still here
DISCONNECT: Final = 7  # both ways: the session is over (sent redundantly)
SHORT_PAYLOAD: Final = 8  # both ways, once offered: a payload with a 16-bit sequence
SLIM_PAYLOAD: Final = 9  # both ways, once offered: a short payload with a slim body

PACKET_NAMES: Final = (
    "request",
    "challenge",
    "response",
    "welcome",
    "denied",
    "payload",
    "keepalive",
    "disconnect",
    "short_payload",
    "slim_payload",
)

# Nonce = u32 domain || u64 sequence. Domain 0: a session's own packets
# (response, welcome, payload, keepalive, disconnect), numbered by the sender's
# per-session counter. Domain 1: the host's stateless replies (challenge,
# denied), numbered by a host-wide counter, because at that point the host keeps
# no per-client state and so has no per-session counter to use.
NONCE_DOMAIN_SESSION: Final = 0
NONCE_DOMAIN_STATELESS: Final = 1
NONCE: Final = struct.Struct("<IQ")

# Header of every packet except `request`: u8 type, u64 sequence. It is the
# associated data of the packet's AEAD.
HEADER: Final = struct.Struct("<BQ")
HEADER_SIZE: Final = HEADER.size  # 9
SEQUENCE: Final = struct.Struct("<Q")

# A short payload's header: u8 type, the sequence's low 16 bits. The receiver
# takes the full sequence nearest to the newest it accepted (`full_sequence`);
# the AEAD's associated data is the 9-byte HEADER of the type and full sequence,
# so the tag and nonce are those of a long header.
SHORT_HEADER: Final = struct.Struct("<BH")
SHORT_HEADER_SIZE: Final = SHORT_HEADER.size  # 3
MIN_SHORT_PAYLOAD: Final = SHORT_HEADER_SIZE + TAG_SIZE  # 19
# A keepalive's plaintext byte 0, bit 0: the sender (a client) reads short
# payloads. A host that has seen it sends that session's payloads short; the
# client sends its own short once it has received one. Bit 1, the same for slim
# payloads (short ones whose plaintext is a slim body, docs/protocol.md §5.10),
# which a host sends in place of short ones.
READS_SHORT: Final = 0x01
READS_SLIM: Final = 0x02


MAX_SEQUENCE: Final = (1 << 64) - 1


def full_sequence(low: int, latest: int) -> int:
    """The sequence whose low 16 bits are `low` nearest to `latest`, the newest
    accepted (ties go back); -1 when that is outside 0..MAX_SEQUENCE (the packet is
    dropped as replayed)."""
    sequence = latest + ((low - latest + 0x8000) & 0xFFFF) - 0x8000
    return sequence if 0 <= sequence <= MAX_SEQUENCE else -1


# The reliability layer's body must fit one payload packet.
MAX_BODY: Final = MAX_DATAGRAM - HEADER_SIZE - TAG_SIZE  # 1175
MIN_SEALED_PACKET: Final = HEADER_SIZE + TAG_SIZE  # 25: keepalive, disconnect, denied

# Request: u8 type, u32 version, u64 application id, u64 expiry, 12-byte token
# nonce, sealed private token, zero padding to exactly MAX_DATAGRAM bytes.
# Bytes 1..21 (version, application id, expiry) are the token's associated data.
REQUEST_PREFIX: Final = struct.Struct("<BIQQ12s")
REQUEST_PREFIX_SIZE: Final = REQUEST_PREFIX.size  # 33
TOKEN_AD: Final = struct.Struct("<IQQ")
PRIVATE_TOKEN_SIZE: Final = 1008
SEALED_TOKEN_SIZE: Final = PRIVATE_TOKEN_SIZE + TAG_SIZE  # 1024
REQUEST_SIZE: Final = MAX_DATAGRAM
REQUEST_PADDING: Final = REQUEST_SIZE - REQUEST_PREFIX_SIZE - SEALED_TOKEN_SIZE  # 143
PADDING_START: Final = REQUEST_PREFIX_SIZE + SEALED_TOKEN_SIZE

# Private token body: u64 created, u32 timeout ms, 2 keys, then variable fields.
PRIVATE_TOKEN_FIXED: Final = struct.Struct("<QI32s32s")

# Cookie: u32 key epoch, u64 counter, then AEAD under the host's cookie key.
COOKIE_HEADER: Final = struct.Struct("<IQ")
COOKIE_HEADER_SIZE: Final = COOKIE_HEADER.size  # 12
# Cookie body: u64 token expiry, 12-byte token nonce, u32 timeout ms, 2 keys, then
# player id, match id, user data.
COOKIE_FIXED: Final = struct.Struct("<Q12sI32s32s")

# Welcome body: u64 session id, f64 server time (seconds on the host's clock).
WELCOME_BODY: Final = struct.Struct("<Qd")

MAX_ID_BYTES: Final = 64  # player and match ids: ASCII, 1..64 bytes
MAX_USER_DATA: Final = 256
MAX_HOSTS: Final = 8
MAX_HOST_BYTES: Final = 255

# Drop reasons, counted by the endpoints. A dropped packet gets no reply.
DROP_TOO_SHORT: Final = "too_short"
DROP_UNKNOWN_TYPE: Final = "unknown_type"
DROP_WRONG_DIRECTION: Final = "wrong_direction"
DROP_REQUEST_SIZE: Final = "request_size"
DROP_REQUEST_PADDING: Final = "request_padding"
DROP_WRONG_VERSION: Final = "wrong_version"
DROP_WRONG_APPLICATION: Final = "wrong_application"
DROP_TOKEN_EXPIRED: Final = "token_expired"
DROP_TOKEN_INVALID: Final = "token_invalid"
DROP_TOKEN_MALFORMED: Final = "token_malformed"
DROP_WRONG_HOST: Final = "wrong_host"
DROP_TOKEN_REUSED: Final = "token_reused"
DROP_ALREADY_CONNECTED: Final = "already_connected"
DROP_NOT_ADMITTED: Final = "not_admitted"
DROP_HOST_FULL: Final = "host_full"
DROP_COOKIE_INVALID: Final = "cookie_invalid"
DROP_RESPONSE_INVALID: Final = "response_invalid"
DROP_NO_SESSION: Final = "no_session"
DROP_REPLAYED: Final = "replayed"
DROP_DECRYPT_FAILED: Final = "decrypt_failed"
DROP_MALFORMED_BODY: Final = "malformed_body"
# A malformed body past a session's allowance: it ends the session (one per session).
DROP_FLOOD: Final = "flood"
DROP_WRONG_SOURCE: Final = "wrong_source"
DROP_UNEXPECTED: Final = "unexpected"


def session_nonce(sequence: int) -> bytes:
    """The AEAD nonce of a session packet (domain 0)."""
    return NONCE.pack(NONCE_DOMAIN_SESSION, sequence)


def stateless_nonce(sequence: int) -> bytes:
    """The AEAD nonce of a host's challenge or denied packet (domain 1)."""
    return NONCE.pack(NONCE_DOMAIN_STATELESS, sequence)


def address_bytes(addr: tuple[Any, ...]) -> bytes:
    """A peer address as bytes, to bind a cookie to the address it was sent to.

    Only the host reads this (the cookie is opaque to clients); it is the
    16-byte IPv6 form (IPv4 mapped) followed by the u16 port, so both socket
    families bind the same way.
    """
    host, port = str(addr[0]), int(addr[1]) & 0xFFFF
    try:
        packed = _V4_MAPPED + socket.inet_pton(socket.AF_INET, host)
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        except OSError:
            packed = host.encode("utf-8", "surrogateescape")
    return packed + _PORT.pack(port)


_V4_MAPPED: Final = b"\0" * 10 + b"\xff\xff"
_PORT: Final = struct.Struct("<H")


def check_id(value: str, what: str) -> bytes:
    """Encode a player or match id, or raise ValueError: ASCII, 1..64 bytes."""
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be ASCII: {value!r}") from None
    if not 1 <= len(raw) <= MAX_ID_BYTES:
        raise ValueError(f"{what} must be 1..{MAX_ID_BYTES} bytes: {value!r}")
    return raw
