"""Reliable and unreliable message channels inside encrypted payload packets (sans-I/O).

One `Reliability` per session per side sits between the application (snapshots on
channel 0, actions and events on channel 1) and the packet layer, which encrypts each
body this module builds into one `payload` packet and hands every decrypted body back.
Nothing here touches a socket, a reactor or a clock: every call takes `now` (seconds).

Design (Gaffer On Games' "reliable ordered messages", reliable.io, with RFC 6298
timers); docs/protocol.md section 13 is the byte-exact specification:

- Every body begins with a 16-bit packet sequence, the latest packet sequence received
  from the peer (`ack`), a 32-bit bitfield of the 32 sequences before it and how long
  (ms) the sender held that ack before building the body (`ack_delay`, as in QUIC).
  Acks are per packet; the sender remembers which reliable messages each packet carried.
- Reliable messages carry a 16-bit message id. A message too large for one body is
  split into fragments that each take their own consecutive id, so resends, acks and
  the receive window all work per fragment, and reassembly happens in order.
- Unreliable messages carry a 16-bit snapshot sequence; the receiver never delivers one
  that is not newer than the last one it delivered. Large snapshots are fragmented too
  (all fragments share the sequence) and reassembled one at a time, newest wins.
- Resends are timed from the measured round-trip time (smoothed RTT plus four times
  its variance plus the peer's ack delay, clamped), with exponential back-off per
  message. RTT samples leave out the delay the peer reports (RFC 9002 section 5.3),
  so a peer that deliberately holds its acks (to ride on its next tick) does not
  inflate the estimate.

Internally every sequence and id is an unbounded Python int; only the wire carries the
low 16 bits, which are mapped back to the nearest full value on receipt. Every buffer a
peer can fill is bounded (see the constants below and the bounds section of the spec).

The layer is one object made of a chain of classes, one module each (why one
object: reliability_acks.py): reliability_wire.py, the body's wire layout,
bounds and parsing; reliability_acks.py, the acks both ways and the RTT;
reliability_send.py, queues, send window, resends and building bodies;
reliability_receive.py, reading bodies, the reorder window and reassembly; and
this module, the public face: construction, timers and introspection. Every
name other modules and the docs use is importable from here.

Installed builds compile these modules with mypyc (setup.py, COMPILED): there their
declared types are checked at run time and their classes' methods cannot be
replaced on an instance. tox runs the suite on both builds.
"""

from __future__ import annotations

from typing import Any

from vinom.protocol.handover import ReliabilityHandover
from vinom.protocol.reliability_acks import NO_DICT, NO_LIST
from vinom.protocol.reliability_receive import ReliabilityReceiver
from vinom.protocol.reliability_send import MessageTooLarge, ReliabilityError, SendQueueFull
from vinom.protocol.reliability_wire import (
    ACK_BITS,
    ACK_DELAY_FIELD_MAX,
    ACK_DELAY_UNIT_S,
    ACK_EVERY_BODIES,
    BODY_HEADER,
    BODY_HEADER_SIZE,
    BODY_LIMIT_MAX,
    BODY_LIMIT_MIN,
    CHANNEL_SHIFT,
    DEFAULT_ACK_DELAY_S,
    DEFAULT_MAX_PENDING_BYTES,
    DEFAULT_MAX_RELIABLE_MESSAGE,
    DEFAULT_MAX_UNRELIABLE_MESSAGE,
    FRAGMENT_FLAG,
    FRAGMENT_HEADER_SIZE,
    FRAGMENT_MESSAGE_HEADER,
    INF,
    INITIAL_RTO_S,
    LENGTH_MASK,
    LOSS_ALPHA,
    MAX_ACK_DELAY_S,
    MAX_BODIES_PER_BUILD,
    MAX_FRAGMENTS,
    MAX_MESSAGES_PER_BODY,
    MAX_RTO_S,
    MAX_SENT_RECORDS,
    MAX_UNRELIABLE_FRAGMENTS,
    MAX_UNRELIABLE_QUEUE,
    MESSAGE_HEADER,
    MESSAGE_HEADER_SIZE,
    MIN_RTO_S,
    PACING_S,
    RECEIVE_WINDOW,
    RELIABLE_CHANNEL,
    RELIABLE_INFO,
    STALE_PACKETS,
    UNRELIABLE_CHANNEL,
    UNRELIABLE_PARTIAL_TIMEOUT_S,
    check_ack_delay,
    sizes_for,
)

# The layer's names, as every other module and the docs import them.
__all__ = [
    "ACK_BITS",
    "ACK_DELAY_FIELD_MAX",
    "ACK_DELAY_UNIT_S",
    "ACK_EVERY_BODIES",
    "BODY_HEADER",
    "BODY_HEADER_SIZE",
    "BODY_LIMIT_MAX",
    "BODY_LIMIT_MIN",
    "CHANNEL_SHIFT",
    "DEFAULT_ACK_DELAY_S",
    "DEFAULT_MAX_PENDING_BYTES",
    "DEFAULT_MAX_RELIABLE_MESSAGE",
    "DEFAULT_MAX_UNRELIABLE_MESSAGE",
    "FRAGMENT_FLAG",
    "FRAGMENT_HEADER_SIZE",
    "FRAGMENT_MESSAGE_HEADER",
    "INITIAL_RTO_S",
    "LENGTH_MASK",
    "LOSS_ALPHA",
    "MAX_ACK_DELAY_S",
    "MAX_BODIES_PER_BUILD",
    "MAX_FRAGMENTS",
    "MAX_MESSAGES_PER_BODY",
    "MAX_RTO_S",
    "MAX_SENT_RECORDS",
    "MAX_UNRELIABLE_FRAGMENTS",
    "MAX_UNRELIABLE_QUEUE",
    "MESSAGE_HEADER",
    "MESSAGE_HEADER_SIZE",
    "MIN_RTO_S",
    "PACING_S",
    "RECEIVE_WINDOW",
    "RELIABLE_CHANNEL",
    "RELIABLE_INFO",
    "STALE_PACKETS",
    "UNRELIABLE_CHANNEL",
    "UNRELIABLE_PARTIAL_TIMEOUT_S",
    "MessageTooLarge",
    "Reliability",
    "ReliabilityError",
    "SendQueueFull",
]


class Reliability(ReliabilityReceiver):
    """Both channels of one session, one side. Not thread-safe; cheap when idle."""

    __slots__ = ()

    def __init__(
        self,
        *,
        max_body: int,
        now: float,
        max_reliable_message: int = DEFAULT_MAX_RELIABLE_MESSAGE,
        max_unreliable_message: int = DEFAULT_MAX_UNRELIABLE_MESSAGE,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        ack_delay_s: float = DEFAULT_ACK_DELAY_S,
        max_receive_message: int | None = None,
        max_receive_buffer: int | None = None,
        peer_ack_delay_s: float = DEFAULT_ACK_DELAY_S,
    ) -> None:
        if not BODY_LIMIT_MIN <= max_body <= BODY_LIMIT_MAX:
            raise ValueError(
                f"max_body must be in [{BODY_LIMIT_MIN}, {BODY_LIMIT_MAX}], not {max_body}"
            )
        if max_receive_message is not None and max_receive_message < 1:
            raise ValueError("max_receive_message must be positive")
        if max_receive_buffer is not None and max_receive_buffer < 1:
            raise ValueError("max_receive_buffer must be positive")
        check_ack_delay("ack_delay_s", ack_delay_s)
        check_ack_delay("peer_ack_delay_s", peer_ack_delay_s)
        super().__init__(
            sizes_for(
                max_body,
                max_reliable_message,
                max_unreliable_message,
                max_pending_bytes,
                ack_delay_s,
                max_receive_message,
                max_receive_buffer,
                peer_ack_delay_s,
            ),
            now,
        )

    def set_ack_delays(self, own_s: float, peer_s: float) -> None:
        """Set this session's ack delays (seconds, each in [0, MAX_ACK_DELAY_S]).

        `own_s`: how long this side holds an ack owed for a reliable message, hoping
        to piggyback it on a body it will send anyway (a side that sends every tick
        sets its tick interval, so that no ack-only body goes out). `peer_s`: how
        long the peer may hold its acks; the RTO allows for it (RTO = srtt + 4 *
        rttvar + peer_s). An ack already owed keeps the time it was owed for.
        Raises ValueError out of range.
        """
        check_ack_delay("own_s", own_s)
        check_ack_delay("peer_s", peer_s)
        key = self._sizes.key
        # Sessions of one room set the same values: they share the new record too.
        self._sizes = sizes_for(
            key[0], key[1], key[2], key[3], own_s, key[5], key[6], peer_s
        )
        if self.rtt_samples:
            self._update_rto()

    # --- timers ----------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """When build_bodies next has something to send, or None if nothing is waiting.

        A time at or before the last `now` seen means "as soon as possible" (for
        example after an ack opened the send window). Call handle_timer(t) and then
        build_bodies(t) at that time.
        """
        when = self._ack_due
        if self._resend_due < when:
            when = self._resend_due
        if self._unrel_queue or (self._pending and self._can_send_new()):
            resume = self._resume_at if self._resume_at > self._last_now else self._last_now
            if resume < when:
                when = resume
        partial = self._unrel_partial
        if partial is not None:
            expiry = partial.since + UNRELIABLE_PARTIAL_TIMEOUT_S
            if expiry < when:
                when = expiry
        return None if when == INF else when

    def compact(self, forget_records: bool = True) -> None:
        """Give back what an idle session need not hold.

        For the packet layer to call when a session has gone idle (no bodies either
        way for a while): a dict that once held a burst of records keeps its grown
        table (dicts never shrink by themselves), and the records of our last
        bodies without reliable messages wait for acks an idle peer does not send.
        Those records are forgotten: neither acked nor counted lost, they only fed
        the statistics. Records of bodies with reliable messages are kept.
        `forget_records=False` keeps every record (tables are still rebuilt to
        their size): for a session that is quiet now but not idle, whose peer
        will still ack them.
        """
        if not self._unacked:
            self._unacked = NO_DICT
        if not self._recv_buffer:
            self._recv_buffer = NO_DICT
        if forget_records:
            sent = {seq: record for seq, record in self._sent.items() if record[1]}
        else:
            sent = dict(self._sent)
        self._sent = sent or NO_DICT
        if not self._trim_reliable_seqs():
            self._reliable_seqs = NO_LIST
        if not self._pending:
            self._pending = NO_LIST
        if not self._unrel_queue:
            self._unrel_queue = NO_LIST

    def handle_timer(self, now: float) -> None:
        """Housekeeping at a timer: expire a partial snapshot that stopped arriving."""
        self._last_now = now
        partial = self._unrel_partial
        if partial is not None and now >= partial.since + UNRELIABLE_PARTIAL_TIMEOUT_S:
            self._unrel_partial = None
            self._faults().unreliable_dropped += 1

    # --- introspection ---------------------------------------------------------------

    # --- introspection ---------------------------------------------------------------

    @property
    def duplicates_dropped(self) -> int:
        """Messages dropped as already delivered (or not newer, for snapshots)."""
        counts = self._fault_counts
        return 0 if counts is None else counts.duplicates_dropped

    @property
    def stale_bodies(self) -> int:
        """Bodies ignored for being too far behind the newest one received."""
        counts = self._fault_counts
        return 0 if counts is None else counts.stale_bodies

    @property
    def out_of_window(self) -> int:
        """Reliable messages dropped for being beyond the receive window."""
        counts = self._fault_counts
        return 0 if counts is None else counts.out_of_window

    @property
    def oversized_dropped(self) -> int:
        """Messages over this side's receive limit, consumed and dropped."""
        counts = self._fault_counts
        return 0 if counts is None else counts.oversized_dropped

    @property
    def refused_bodies(self) -> int:
        """Bodies refused whole: they would overfill the receive buffer."""
        counts = self._fault_counts
        return 0 if counts is None else counts.refused_bodies

    @property
    def malformed_bodies(self) -> int:
        """Bodies that did not parse."""
        counts = self._fault_counts
        return 0 if counts is None else counts.malformed_bodies

    @property
    def protocol_errors(self) -> int:
        """Fragments that broke the protocol's rules (dropped)."""
        counts = self._fault_counts
        return 0 if counts is None else counts.protocol_errors

    @property
    def unreliable_dropped(self) -> int:
        """Snapshots dropped: unsent when the queue overflowed or a newer one replaced
        them (`replace_unreliable`), or partly received and expired."""
        counts = self._fault_counts
        return 0 if counts is None else counts.unreliable_dropped
    @property
    def max_reliable_message(self) -> int:
        """Largest message `send_reliable` takes (bytes)."""
        return self._sizes.max_reliable_message

    @property
    def max_unreliable_message(self) -> int:
        """Largest message `send_unreliable` takes (bytes)."""
        return self._sizes.max_unreliable_message

    @property
    def max_pending_bytes(self) -> int:
        """Reliable bytes that may wait for acks before `SendQueueFull`."""
        return self._sizes.max_pending_bytes

    @property
    def ack_delay_s(self) -> float:
        """Longest this side holds an ack back for traffic to ride on (seconds)."""
        return self._sizes.ack_delay_s

    @property
    def peer_ack_delay_s(self) -> float:
        """Longest the peer is assumed to hold its acks (seconds; part of the RTO)."""
        return self._sizes.peer_ack_delay_s

    @property
    def sent_bodies(self) -> int:
        """Bodies built so far (every body has its own packet sequence)."""
        return self._next_seq

    @property
    def buffered_bytes(self) -> int:
        """Reliable bytes queued or waiting for acks (bounded by max_pending_bytes)."""
        return self._buffered_bytes

    @property
    def receive_buffered_bytes(self) -> int:
        """Bytes the peer has made us hold: out-of-order messages and reassemblies."""
        held = self._recv_buffer_bytes
        if self._reassembly is not None:
            held += self._reassembly.size
        if self._unrel_partial is not None:
            held += self._unrel_partial.size
        return held

    def hand_over(self) -> ReliabilityHandover:
        """What another driver of this session needs to carry on (vinom.protocol.handover).

        Raises ValueError unless the layer is at rest: nothing queued or unacked,
        no fragmented message half received. The layer must not be used afterwards.
        """
        if self._unrel_queue or self._pending or self._unacked:
            raise ValueError("the session still has messages to send")
        if self._reassembly is not None or any(
            index >= 0 for index, _, _ in self._recv_buffer.values()
        ):
            raise ValueError("the session is receiving a fragmented message")
        return ReliabilityHandover(
            next_body_sequence=self._next_seq,
            next_unreliable_id=self._unrel_next,
            next_reliable_id=self._next_id,
            received_any=self._recv_any,
            latest_received=self._recv_latest,
            received_bits=self._recv_bits,
            last_unreliable_delivered=self._unrel_delivered,
            next_reliable_expected=self._recv_next,
            held_reliable={i: data for i, (_, _, data) in self._recv_buffer.items()},
            reliable_ack_owed=self._ack_due != INF,
            bodies_since_ack=self._ack_every_count,
        )

    def stats(self) -> dict[str, Any]:
        """A snapshot of the statistics and of what the layer holds, for logs and benchmarks."""
        return {
            "rtt_s": self.rtt_s,
            "rttvar": self.rttvar,
            "rtt_samples": self.rtt_samples,
            "min_rtt_s": self.min_rtt_s,
            "rto_s": self.rto_s,
            "loss": self.loss,
            "sent_bodies": self.sent_bodies,
            "received_bodies": self.received_bodies,
            "acked_packets": self.acked_packets,
            "lost_packets": self.lost_packets,
            "resent_messages": self.resent_messages,
            "duplicates_dropped": self.duplicates_dropped,
            "stale_bodies": self.stale_bodies,
            "out_of_window": self.out_of_window,
            "oversized_dropped": self.oversized_dropped,
            "refused_bodies": self.refused_bodies,
            "malformed_bodies": self.malformed_bodies,
            "protocol_errors": self.protocol_errors,
            "unreliable_dropped": self.unreliable_dropped,
            "buffered_bytes": self._buffered_bytes,
            # What the layer holds now (each bounded, whatever the peer sends).
            "sent_records": len(self._sent),
            "reliable_records": len(self._reliable_seqs),
            "unacked_messages": len(self._unacked),
            "out_of_order_messages": len(self._recv_buffer),
        }
