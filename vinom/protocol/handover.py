"""A connected client session handed to another driver: `ClientConnection.hand_over()`.

A load generator that speaks only a subset of the protocol (say, small
messages that never fragment) can drive thousands of sessions for less CPU
than `ClientConnection` with its general reliability layer. Once the
handshake is done, `ClientConnection.hand_over()` gives it everything the
session's next bytes depend on: the keys, the packet sequence, the replay
window, and the reliability layer's counters (`Reliability.hand_over()`). The
connection is closed afterwards and sends nothing more; the new driver must
produce the same bytes the connection would have (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from vinom.protocol.crypto import Aead
from vinom.protocol.replay import ReplayWindow


@frozen
class ReliabilityHandover:
    """What a `Reliability` layer with nothing in flight knows about its session.

    Sending: `next_body_sequence` (16-bit body sequence, not yet masked),
    `next_unreliable_id`, `next_reliable_id`. Receiving: `received_any`,
    `latest_received` and `received_bits` (what our acks say),
    `last_unreliable_delivered` (-1: none yet), `next_reliable_expected` and
    `held_reliable` (whole reliable messages that arrived early, by id).
    Acks owed: `reliable_ack_owed` (a reliable message arrived since our last
    body) and `bodies_since_ack` (bodies with messages since our last body).
    """

    next_body_sequence: int
    next_unreliable_id: int
    next_reliable_id: int
    received_any: bool
    latest_received: int
    received_bits: int
    last_unreliable_delivered: int
    next_reliable_expected: int
    held_reliable: Mapping[int, bytes]
    reliable_ack_owed: bool
    bodies_since_ack: int


@frozen
class SessionHandover:
    """A connected session: its AEADs, next packet sequence, replay window and layer."""

    send_aead: Aead
    receive_aead: Aead
    next_packet_sequence: int
    replay_window: ReplayWindow
    reliability: ReliabilityHandover
    # A short payload came from the host: this side sends its payloads short too.
    # (Offers still due are not handed over: the new driver makes none.)
    sends_short: bool = False
    # A slim payload came (docs/protocol.md §5.10): this side's go slim (and short).
    sends_slim: bool = False
