"""Limits of the TLS lobby, as one immutable value.

The defaults are the ones issue 2 names and docs/lobby.md documents;
`twistd vinom` exposes each as an option.
"""

from __future__ import annotations

from attrs import field, frozen
from attrs.validators import ge, gt, instance_of


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
