"""Stream sessions of a game host core: players on a reliable, ordered byte stream (WebSocket).

A browser cannot send UDP, so it plays over a WebSocket (docs/web.md, "The
game session over WebSocket"). To the seat router and the rooms such a
player is one more session: the same admission, seat, messages and
reconnection grace. What differs is only where the session's messages go,
and this module is that part:

- `StreamOutbox` is the rooms' `Outbox` in a core that has streams: it sends
  a UDP session's messages to the `ServerEndpoint` (as before) and queues a
  stream session's on its `StreamQueue`. Stream session ids are negative
  (-1, -2, ...) and the endpoint's are positive, so the two never collide
  and telling them apart is one comparison.
- `StreamQueue` holds what one stream owes its peer until the adapter takes
  it. A stream is reliable and ordered, so every message is sent, in order,
  with one exception: of the unreliable messages (states) only the newest
  pending one is kept. A state replaced before it left is dropped, so a
  client that reads slowly gets fewer states, never a growing backlog of
  stale ones; reliable messages (welcome, events, phases, results, errors
  and the reliably sent states) are never dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from vinom.hosting.interfaces import StreamMessage
from vinom.protocol.events import UNRELIABLE
from vinom.protocol.server import ServerEndpoint


class StreamQueue:
    """What one stream session owes its peer, in order (see the module docstring)."""

    __slots__ = ("closed", "match_id", "pending", "player_id", "session_id", "state_at")

    def __init__(self, session_id: int, player_id: str, match_id: str) -> None:
        self.session_id = session_id
        self.player_id = player_id
        self.match_id = match_id
        # Messages waiting, oldest first; a replaced state's slot holds None.
        self.pending: list[tuple[int, bytes] | None] = []
        # Where in `pending` the unsent state is (-1: none).
        self.state_at = -1
        self.closed = False

    def push(self, channel: int, data: bytes) -> bool:
        """Queue a message; True if the queue was empty (the stream has news)."""
        pending = self.pending
        was_empty = not pending
        if channel == UNRELIABLE:
            if self.state_at >= 0:
                pending[self.state_at] = None  # superseded before it left
            self.state_at = len(pending)
        pending.append((channel, data))
        return was_empty

    def take(self) -> list[tuple[int, bytes]]:
        """Everything pending, in order, leaving the queue empty."""
        pending, self.pending = self.pending, []
        self.state_at = -1
        return [m for m in pending if m is not None]


class StreamOutbox:
    """The rooms' outbox in a core with stream sessions: endpoint or stream queue by id.

    `on_close(session_id)` is called when the router closes a stream session
    (the core then reports it closed and tells the router, as the endpoint
    would for a UDP session).
    """

    def __init__(self, endpoint: ServerEndpoint, on_close: Callable[[int], object]) -> None:
        self.endpoint = endpoint
        self.streams: dict[int, StreamQueue] = {}
        # Streams with messages pending, in the order they got their first.
        self.dirty: list[StreamQueue] = []
        self._send = endpoint.send_message
        self._close = endpoint.close_session
        self._on_close = on_close

    def send_message(self, session_id: int, channel: int, data: bytes) -> bool:
        if session_id > 0:
            return self._send(session_id, channel, data)
        stream = self.streams.get(session_id)
        if stream is None:
            return False
        if stream.push(channel, data):
            self.dirty.append(stream)
        return True

    def set_ack_delays(self, session_id: int, own_s: float, peer_s: float) -> bool:
        # A stream (WebSocket) has TCP's acks, none of the reliability layer's.
        return session_id > 0 and self.endpoint.set_ack_delays(session_id, own_s, peer_s)

    def close_session(self, session_id: int) -> None:
        if session_id > 0:
            self._close(session_id)
        elif session_id in self.streams:
            self._on_close(session_id)

    def take_messages(self) -> list[StreamMessage]:
        """What every stream owes now, stream by stream, each in order."""
        out: list[StreamMessage] = []
        dirty, self.dirty = self.dirty, []
        for stream in dirty:
            session_id = stream.session_id
            out.extend((session_id, channel, data) for channel, data in stream.take())
        return out
