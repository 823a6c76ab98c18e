"""Where rooms and the seat router put what they send: the `Outbox` seam.

Rooms never call out of the game host: they hand each message for a session
to an outbox, which only queues it. In a game host core the outbox is the
`ServerEndpoint` itself (its `send_message` queues the message on the
session's reliability layer; nothing is transmitted until the adapter asks
the core for `datagrams_to_send`), so a move's states cost no copy and no
extra queue. A test or another transport may pass anything with these
methods.
"""

from __future__ import annotations

from typing import Protocol


class Outbox(Protocol):
    """Queues messages for sessions (the endpoint is one)."""

    def send_message(self, session_id: int, channel: int, data: bytes) -> object:
        """Queue one message for the session on a channel (0 unreliable, 1 reliable)."""


class SessionOutbox(Outbox, Protocol):
    """An `Outbox` that can also end sessions (what the seat router needs)."""

    def close_session(self, session_id: int) -> None:
        """End the session (its peer is told), then report it closed."""

    def set_ack_delays(self, session_id: int, own_s: float, peer_s: float) -> object:
        """How long the session may hold an owed ack (`own_s`) and its peer may
        (`peer_s`); a session with no acks of its own (a stream) ignores it."""

