"""Acks both ways, and what they teach: the first part of `Reliability` (sans-I/O).

`ReliabilityAcks` holds what one side of a session knows about packets as
packets, whatever they carry:

- the packet sequences received from the peer, which every body we build acks
  (the newest, a 32-bit bitfield of the ones before it and how long we held that
  ack: `_record_packet`, `_ack_header`), and when an ack is owed;
- the round-trip time and the retransmission timeout taken from the peer's acks
  of our packets (RFC 6298 timers, RFC 9002's ack delay: `_sample_rtt`), and the
  smoothed loss fraction;
- the size limits (`Sizes`) and the counts of what a peer rarely causes.

It is the base of the chain of classes `Reliability` is made of, each in its own
module: this one, then `ReliabilitySender` (reliability_send.py: queues, the send
window, resends, building bodies, taking the peer's acks), then
`ReliabilityReceiver` (reliability_receive.py: reading bodies, the reorder
window, reassembly), then `Reliability` (reliability.py: the public face). One
object per session rather than one per part: thousands of idle sessions each
pay for one object header, and the compiled build (mypyc) reads every field
of the chain at a fixed offset. A part uses what the parts below it define.
"""

from __future__ import annotations

from typing import Any

from vinom.protocol.reliability_wire import (
    ACK_BITS,
    ACK_DELAY_UNIT_S,
    INF,
    INITIAL_RTO_S,
    LOSS_ALPHA,
    MASK16,
    MASK32,
    MAX_RTO_S,
    MIN_RTO_S,
    STALE_PACKETS,
    Sizes,
    ack_delay_field,
    pack_body_header,
)

# Shared stand-ins for a session's empty queues and tables until it uses them (and
# again once compact() found them empty): an empty list or dict still costs 56-64
# bytes, six per session, times every idle session. Never written to: every write
# first checks for them by identity and gives the session its own.
NO_LIST: list[Any] = []
NO_DICT: dict[Any, Any] = {}


class FaultCounts:
    """A layer's counts of what a peer rarely causes (see `Reliability`'s properties):
    made at the first, so that a session that never sees one holds no fields for them."""

    __slots__ = (
        "duplicates_dropped",
        "malformed_bodies",
        "out_of_window",
        "oversized_dropped",
        "protocol_errors",
        "refused_bodies",
        "stale_bodies",
        "unreliable_dropped",
    )

    def __init__(self) -> None:
        self.duplicates_dropped = 0
        self.malformed_bodies = 0
        self.out_of_window = 0
        self.oversized_dropped = 0
        self.protocol_errors = 0
        self.refused_bodies = 0
        self.stale_bodies = 0
        self.unreliable_dropped = 0


class ReliabilityAcks:
    """The packet acks we owe the peer and the timers its acks of ours give."""

    __slots__ = (
        "_ack_due",
        "_ack_every_count",
        "_fault_counts",
        "_last_now",
        "_loss_base",
        "_loss_mark",
        "_recv_any",
        "_recv_at",
        "_recv_bits",
        "_recv_latest",
        "_sizes",
        "acked_packets",
        "lost_packets",
        "min_rtt_s",
        "received_bodies",
        "rto_s",
        "rtt_s",
        "rtt_samples",
        "rttvar",
    )

    def __init__(self, sizes: Sizes, now: float) -> None:
        # The sizes and the ack delays: one shared object for every layer made with
        # the same arguments (thousands of sessions, a few configurations).
        self._sizes = sizes
        self._last_now = now

        # The packets received: the ack we owe.
        self._recv_any = False
        self._recv_latest = -1
        self._recv_bits = 0
        # When the newest packet (the one our `ack` names) arrived: our bodies report
        # how long after it they were built (the ack_delay field). Infinite before
        # any: the field says 0.
        self._recv_at = INF
        # When a body must go out for its ack alone, and the message-bearing bodies
        # received since our last body (ACK_EVERY_BODIES).
        self._ack_due = INF
        self._ack_every_count = 0
        self.received_bodies = 0

        # What the peer's acks of our packets tell.
        self.rtt_s = 0.0
        self.rttvar = 0.0
        self.rtt_samples = 0
        # Smallest RTT sample taken (after the peer's ack delay is left out), the
        # floor that a reported ack delay may not take a sample below (RFC 9002).
        self.min_rtt_s = 0.0
        self.rto_s = INITIAL_RTO_S
        # Smoothed loss: _loss_base as of the _loss_mark-th ack; later acks decay it.
        self._loss_base = 0.0
        self._loss_mark = 0
        self.acked_packets = 0
        self.lost_packets = 0
        # What a well-behaved peer on a good link rarely causes, counted once it
        # happens (see the properties of the same names).
        self._fault_counts: FaultCounts | None = None

    def _faults(self) -> FaultCounts:
        counts = self._fault_counts
        if counts is None:
            counts = self._fault_counts = FaultCounts()
        return counts

    # --- the acks we owe -------------------------------------------------------------

    def _record_packet(self, seq16: int, now: float) -> bool:
        """Record a body's packet sequence for our acks; False (counted) for a
        duplicate or a stale one, changing nothing."""
        # Map the 16 bits to the nearest full sequence.
        latest = self._recv_latest
        delta = (seq16 - latest) & MASK16
        if delta >= 0x8000:
            delta -= 0x10000
        if delta > 0 or not self._recv_any:
            self._recv_at = now
            if not self._recv_any:
                self._recv_any = True
                self._recv_bits = 0
                self._recv_latest = seq16
            elif delta <= ACK_BITS:
                self._recv_bits = (((self._recv_bits << 1) | 1) << (delta - 1)) & MASK32
                self._recv_latest = latest + delta
            else:
                self._recv_bits = 0
                self._recv_latest = latest + delta
        elif delta == 0:
            self._faults().duplicates_dropped += 1
            return False
        elif delta >= -ACK_BITS:
            bit = 1 << (-delta - 1)
            if self._recv_bits & bit:
                self._faults().duplicates_dropped += 1
                return False
            self._recv_bits |= bit
        elif delta < -STALE_PACKETS:
            self._faults().stale_bodies += 1
            return False
        self.received_bodies += 1
        return True

    def _ack_header(self, seq: int, now: float) -> bytes:
        """The header of our body `seq` built at `now`: the ack it carries pays what
        we owed, so none is owed any more."""
        self._ack_due = INF
        self._ack_every_count = 0
        return pack_body_header(
            seq & MASK16,
            self._recv_latest & MASK16,
            self._recv_bits,
            ack_delay_field(now - self._recv_at),
        )

    # --- what the peer's acks tell ---------------------------------------------------

    def _sample_rtt(self, latest: float, ack_delay_ms: int) -> None:
        """Take one RTT sample: `latest` = now - send time of the packet an ack named,
        `ack_delay_ms` = how long the peer says it held that ack (the header field,
        below its saturated value)."""
        # RFC 9002, section 5.3: leave out the peer's ack delay unless that would take
        # the sample below min_rtt. Unlike QUIC, whose handshake acks are never held,
        # every ack of a vinom peer may be held (a ticking room's, always), so min_rtt
        # is the smallest *adjusted* sample, and the test allows one field unit
        # (1 ms: the field is rounded) below it. A delay that would take the sample
        # further below is not believed (the raw sample is used).
        samples = self.rtt_samples
        if ack_delay_ms:
            adjusted = latest - ack_delay_ms * ACK_DELAY_UNIT_S
            floor = (self.min_rtt_s if samples else 0.0) - ACK_DELAY_UNIT_S
            if adjusted >= floor:
                latest = adjusted if adjusted > 0.0 else 0.0
        if samples:
            if latest < self.min_rtt_s:
                self.min_rtt_s = latest
            # RFC 6298, section 2.
            srtt = self.rtt_s
            deviation = srtt - latest if srtt > latest else latest - srtt
            rttvar = self.rttvar + (deviation - self.rttvar) * 0.25
            srtt += (latest - srtt) * 0.125
        else:
            self.min_rtt_s = srtt = latest
            rttvar = latest * 0.5
        self.rtt_s = srtt
        self.rttvar = rttvar
        self.rtt_samples = samples + 1
        # The RTO (_update_rto, inline: this runs for most bodies received).
        rto = srtt + 4.0 * rttvar + self._sizes.peer_ack_delay_s
        self.rto_s = MIN_RTO_S if rto < MIN_RTO_S else MAX_RTO_S if rto > MAX_RTO_S else rto

    def _update_rto(self) -> None:
        """RTO = srtt + 4 * rttvar + the peer's ack delay, clamped (section 13.8)."""
        rto = self.rtt_s + 4.0 * self.rttvar + self._sizes.peer_ack_delay_s
        self.rto_s = MIN_RTO_S if rto < MIN_RTO_S else MAX_RTO_S if rto > MAX_RTO_S else rto

    def _count_lost(self, lost: int) -> None:
        """`lost` packets written off: fold them into the smoothed loss fraction."""
        # Fold the acks since the last loss into the smoothed fraction first.
        loss = self.loss
        self._loss_mark = self.acked_packets
        for _ in range(lost):
            loss += (1.0 - loss) * LOSS_ALPHA
        self._loss_base = loss
        self.lost_packets += lost

    @property
    def loss(self) -> float:
        """Smoothed fraction of packets written off as lost (weight 1/32 per packet)."""
        return self._loss_base * (1.0 - LOSS_ALPHA) ** (self.acked_packets - self._loss_mark)
