"""Events a server endpoint or client connection hands to the layer above, and
`SessionInfo`, what the endpoint tells about one session when asked.

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
    """A session ended: reason is `timeout`, `disconnect` (by the peer), `closed` (by
    us), `overflow` or `flood` (docs/protocol.md §7.3, §7.4)."""

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


@frozen
class SessionInfo:
    """One server session as the endpoint sees it (`ServerEndpoint.session_info`).

    `activity` is "active" (payloads since the endpoint's timer last looked),
    "quiet" (none since) or "idle" (none for two looks: it gave back its
    cipher objects and grown tables). `warm`: it has carried enough payloads
    since it was last idle to keep cipher objects; `receive_cipher` and
    `send_cipher` say whether it holds them now (a bounded number of sessions
    do: `HostConfig.cipher_sessions`). `last_received` is when its last
    authentic packet arrived, `next_look` when the endpoint's timer next looks
    at it, `latest_sequence` the newest packet sequence it accepted.
    """

    session_id: int
    player_id: str
    match_id: str
    address: tuple[str, int]
    activity: str
    warm: bool
    receive_cipher: bool
    send_cipher: bool
    last_received: float
    next_look: float
    latest_sequence: int
