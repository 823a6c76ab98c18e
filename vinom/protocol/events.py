"""Events a server endpoint or client connection hands to the layer above.

Connection events are rare and are attrs values. `MessageReceived` happens per
message on the hot path, so it is a NamedTuple (a plain tuple, cheap to make).
"""

from __future__ import annotations

from typing import NamedTuple

from attrs import frozen

# Channel numbers inside payloads.
UNRELIABLE = 0  # state snapshots: latest version wins
RELIABLE = 1  # actions and events: exactly once, in order


@frozen
class SessionConnected:
    """A client completed the handshake (server side: a new session)."""

    session_id: int
    player_id: str
    match_id: str
    address: tuple[str, int]
    user_data: bytes = b""


@frozen
class SessionClosed:
    """A session ended: reason is `timeout`, `disconnect` (by the peer) or `closed` (by us)."""

    session_id: int
    reason: str


@frozen
class ConnectFailed:
    """Client side: the handshake did not complete (`timeout`, `denied`, `token_expired`)."""

    reason: str


class MessageReceived(NamedTuple):
    """One whole message (reassembled if it was fragmented) on a channel."""

    session_id: int
    channel: int
    data: bytes
