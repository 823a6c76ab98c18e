"""Configuration values of the UDP session protocol (attrs frozen; change with `evolve`).

`ProtocolConfig` is shared by the lobby (which issues tokens) and every game
host (which opens them): same version, application id and token key.
`HostConfig` is one game host's; `ClientConfig` a client's.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable

from attrs import field, frozen, validators

from vinom.protocol.address import HostAddress
from vinom.protocol.wire import KEY_SIZE, MAX_HOSTS, PROTOCOL_VERSION

# Application ids must survive a JSON round trip in every client language, so
# they stay within the integers a double holds exactly.
MAX_APPLICATION_ID = 2**53 - 1
DEFAULT_APPLICATION_ID = 0x76696E6F6D  # "vinom"
# Copies of `disconnect` a side sends when it closes a session (docs/protocol.md,
# "Disconnect redundancy"). netcode.io sends 10; the copies leave in the same
# instant, so they guard against independent losses only (a burst that drops one
# drops them all), and against those 5 are plenty (all lost at 5% loss: 3 in 10
# million) while each copy is a seal and a send: with 10, a duel's two sessions
# were 20 of the host's 28 datagrams from handshake to end.
DEFAULT_DISCONNECT_REDUNDANCY = 5
# The largest message a game host accepts from a client: the rooms' limit
# (vinom.rooms.client_messages.MAX_CLIENT_MESSAGE; a test keeps the two equal).
DEFAULT_MAX_RECEIVE_MESSAGE = 2048
# Out-of-order client bytes a game host session holds before it refuses bodies
# (the client resends them): 16 of the largest client messages.
DEFAULT_MAX_RECEIVE_BUFFER = 16 * DEFAULT_MAX_RECEIVE_MESSAGE


def generate_token_key() -> bytes:
    """A fresh random token key (the all-in-one server makes one at start)."""
    return os.urandom(KEY_SIZE)


def parse_token_key(text: str) -> bytes:
    """A token key from its configuration form: 64 hex digits."""
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise ValueError("the token key must be 64 hex digits") from None
    if len(key) != KEY_SIZE:
        raise ValueError("the token key must be 64 hex digits")
    return key


def format_token_key(key: bytes) -> str:
    """The configuration form of a token key (64 hex digits)."""
    return binascii.hexlify(key).decode("ascii")


def _check_key(instance: object, attribute: object, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != KEY_SIZE:
        raise ValueError(f"token_key must be {KEY_SIZE} bytes")


def _positive(instance: object, attribute: object, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{getattr(attribute, 'name', 'value')} must be positive")


@frozen
class ProtocolConfig:
    """What the lobby and its game hosts must agree on."""

    token_key: bytes = field(validator=_check_key, repr=False)
    application_id: int = field(
        default=DEFAULT_APPLICATION_ID,
        validator=[validators.instance_of(int), validators.ge(0),
                   validators.le(MAX_APPLICATION_ID)],
    )
    # Only the version this code speaks: version 1 bodies had an 8-byte header.
    protocol_version: int = field(
        default=PROTOCOL_VERSION, validator=validators.in_([PROTOCOL_VERSION])
    )


def _to_addresses(value: Iterable[HostAddress]) -> tuple[HostAddress, ...]:
    return tuple(value)


@frozen
class HostConfig:
    """One game host's endpoint."""

    protocol: ProtocolConfig
    # The address(es) clients are told to use for this host; a token must name
    # one of them.
    addresses: tuple[HostAddress, ...] = field(
        converter=_to_addresses, validator=validators.min_len(1)
    )
    # Send a keepalive when nothing else was sent to a session for this long, or
    # for a third of the session timeout if that is shorter (5/3 s by default).
    keepalive_interval: float = field(default=2.0, validator=_positive)
    # The cookie key is replaced this often; a cookie lives one to two periods.
    cookie_rotation: float = field(default=10.0, validator=_positive)
    # Copies of `disconnect` sent when a session is closed.
    disconnect_redundancy: int = field(
        default=DEFAULT_DISCONNECT_REDUNDANCY, validator=validators.ge(1)
    )
    # Upper bound on live sessions (each needs a valid token, so this guards
    # against a leaked token key, not against strangers).
    max_sessions: int = field(default=65536, validator=validators.ge(1))
    # How many sessions keep their cipher objects (~5 KB a session); the least
    # recently busy of the others make theirs again per packet (~2 us).
    cipher_sessions: int = field(default=2048, validator=validators.ge(1))
    # The largest message (either channel) a client may send: a larger one is
    # consumed and dropped by the reliability layer, never held whole. The host
    # itself may still send large reliable messages (256 KiB).
    max_receive_message: int = field(default=DEFAULT_MAX_RECEIVE_MESSAGE,
                                     validator=validators.ge(1))
    # Out-of-order client bytes one session holds; bodies that would add more
    # are not acked, so the client resends them once the gap is filled.
    max_receive_buffer: int = field(default=DEFAULT_MAX_RECEIVE_BUFFER,
                                    validator=validators.ge(1))

    @addresses.validator
    def _check_addresses(self, attribute: object, value: tuple[HostAddress, ...]) -> None:
        if len(value) > MAX_HOSTS:
            raise ValueError(f"at most {MAX_HOSTS} host addresses")
        for a in value:
            if not isinstance(a, HostAddress):
                raise TypeError("addresses must be HostAddress values")


DEFAULT_ATTEMPT_TIMEOUT = 5.0
ATTEMPT_MARGIN = 1.0


@frozen
class ClientConfig:
    """A client connection's timers."""

    # Handshake packets are resent at this interval (10 Hz) until answered.
    handshake_interval: float = field(default=0.1, validator=_positive)
    # Give up on one host address after this long without a welcome. None (the
    # default): the token's session timeout plus ATTEMPT_MARGIN, at least
    # DEFAULT_ATTEMPT_TIMEOUT, so that a client reconnecting after losing its
    # socket outlasts its old session on the host (which refuses the player,
    # silently, until that session times out).
    attempt_timeout: float | None = field(
        default=None, validator=validators.optional(_positive)
    )
    keepalive_interval: float = field(default=2.0, validator=_positive)
    disconnect_redundancy: int = field(
        default=DEFAULT_DISCONNECT_REDUNDANCY, validator=validators.ge(1)
    )
    # Offer short payloads (docs/protocol.md §5.9): False keeps every payload long.
    short_payloads: bool = True
    # Offer slim payloads (§5.10: short ones with a slim body) too: False keeps
    # the full body layout (a driver that takes the session over by hand, say).
    slim_payloads: bool = True

    def attempt_timeout_for(self, session_timeout: float) -> float:
        """How long one host address is tried, for a token with this session timeout."""
        if self.attempt_timeout is not None:
            return self.attempt_timeout
        return max(DEFAULT_ATTEMPT_TIMEOUT, session_timeout + ATTEMPT_MARGIN)


#: Seconds from issue until a connect token (or a relay's route token) no longer opens
#: a session: a constant, long enough for a player on a slow link to reach the host,
#: short enough that a token copied from a log is soon worth nothing.
TOKEN_LIFETIME = 60.0


@frozen
class IssuerConfig:
    """How the lobby issues connect tokens."""

    protocol: ProtocolConfig
    # Seconds from issue until the token no longer opens a session.
    token_lifetime: float = field(default=TOKEN_LIFETIME, validator=_positive)
    # A session ends after this long without a valid packet.
    session_timeout: float = field(default=5.0, validator=_positive)
