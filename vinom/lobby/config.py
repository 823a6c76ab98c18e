"""Limits of the TLS lobby, as one immutable value.

The defaults are the ones issue 2 names and docs/lobby.md documents;
`twistd vinom` exposes each as an option (`close_timeout` excepted). Limits
"per address" count an IPv4 address, or an IPv6 /64 (what one subscriber
usually gets), as one client.
"""

from __future__ import annotations

from attrs import field, frozen
from attrs.validators import ge, gt, instance_of

#: Bytes of frames a lobby connection (TLS or WebSocket) may hold back for a peer that
#: does not read: a constant; past it the connection is dropped.
MAX_OUTPUT_BYTES = 256 * 1024


@frozen
class LobbyConfig:
    """Abuse limits of the lobby; every value must be positive."""

    # Longest frame in bytes, not counting its terminating newline.
    max_frame_bytes: int = field(default=4096, validator=[instance_of(int), ge(64)])
    # Concurrent lobby connections from one client IP address.
    max_connections_per_ip: int = field(default=32, validator=[instance_of(int), ge(1)])
    # Token bucket per connection: sustained frames per second and burst size.
    frame_rate: float = field(default=20.0, converter=float, validator=gt(0.0))
    frame_burst: int = field(default=40, validator=[instance_of(int), ge(1)])
    # Protocol errors a connection may make before it is closed with a final error.
    max_protocol_errors: int = field(default=10, validator=[instance_of(int), ge(1)])
    # Concurrent lobby connections in all.
    max_connections: int = field(default=10000, validator=[instance_of(int), ge(1)])
    # Players from one address that are queued or in a match that has not ended.
    max_pending_per_ip: int = field(default=32, validator=[instance_of(int), ge(1)])
    # Matches not ended with players from one address, counting its queued players
    # as the matches they may make: the game ports one address can hold.
    max_matches_per_ip: int = field(default=16, validator=[instance_of(int), ge(1)])
    # Token bucket per address for `queue` requests: sustained per second and burst size.
    queue_rate: float = field(default=1.0, converter=float, validator=gt(0.0))
    queue_burst: int = field(default=32, validator=[instance_of(int), ge(1)])
    # Seconds a new connection has for the TLS handshake and its first frame.
    hello_timeout: float = field(default=10.0, converter=float, validator=gt(0.0))
    # Seconds a connection that is not queued (nor matched) may stay silent.
    idle_timeout: float = field(default=60.0, converter=float, validator=gt(0.0))
    # Seconds a closing connection has to finish closing (TLS close_notify) before it is aborted.
    close_timeout: float = field(default=10.0, converter=float, validator=gt(0.0))
    # A queued or matched connection silent for `ping_interval` seconds is sent a
    # `ping`; if no byte comes back within `ping_timeout` seconds it is dead: closed,
    # its ticket withdrawn, so no honest player is matched with it.
    ping_interval: float = field(default=5.0, converter=float, validator=gt(0.0))
    ping_timeout: float = field(default=5.0, converter=float, validator=gt(0.0))
    # Seconds a player whose match was aborted for players_missing (while they were
    # connected to it) keeps a place at the head of their queue, to claim with
    # `reconnect` (vinom.lobby.requeue).
    requeue_window: float = field(default=30.0, converter=float, validator=gt(0.0))
    # Bytes of frames a connection may hold back while its peer does not read (its
    # transport's buffer full); past it the connection is dropped (vinom.lobby.output).
    max_output_bytes: int = field(default=MAX_OUTPUT_BYTES,
                                  validator=[instance_of(int), ge(4096)])  # fmt: skip
    # Seconds a sign-in (`hello` or `reconnect` with `auth`) may take: the authenticator
    # (a JWKS fetch) and the account store; past it `auth_failed`, reason `unavailable`.
    auth_timeout: float = field(default=5.0, converter=float, validator=gt(0.0))
    # Refused sign-ins per address: a token bucket, taken from only by a failure, and
    # an empty one refuses every sign-in from the address (`rate_limited`) unverified.
    auth_failure_rate: float = field(default=0.2, converter=float, validator=gt(0.0))
    auth_failure_burst: int = field(default=10, validator=[instance_of(int), ge(1)])
    # New accounts one address may make an hour (a token bucket of as many): past it,
    # only identities with an account sign in from it (vinom.lobby.auth).
    new_accounts_per_hour: int = field(default=20, validator=[instance_of(int), ge(1)])

