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

Installed builds compile this module with mypyc (setup.py, COMPILED): there its
declared types are checked at run time and its classes' methods cannot be
replaced on an instance. tox runs the suite on both builds.
"""

from __future__ import annotations

import struct
from typing import Any

from vinom.protocol.handover import ReliabilityHandover

# --- wire layout (little-endian, like the rest of vinom's packets) ------------------

BODY_HEADER = struct.Struct("<HHIB")  # packet sequence, ack, ack bits, ack delay (ms)
MESSAGE_HEADER = struct.Struct("<HH")  # info (channel, fragment flag, length), id
FRAGMENT_MESSAGE_HEADER = struct.Struct("<HHBB")  # ... plus fragment index, last index
BODY_HEADER_SIZE = BODY_HEADER.size  # 9
MESSAGE_HEADER_SIZE = MESSAGE_HEADER.size  # 4
FRAGMENT_HEADER_SIZE = FRAGMENT_MESSAGE_HEADER.size  # 6

CHANNEL_SHIFT = 14  # info bits 15..14: channel (0 unreliable, 1 reliable, 2-3 reserved)
FRAGMENT_FLAG = 0x2000  # info bit 13: a fragment header (index, last index) follows
LENGTH_MASK = 0x1FFF  # info bits 12..0: length of the message data in this body
RELIABLE_INFO = 1 << CHANNEL_SHIFT

UNRELIABLE_CHANNEL = 0
RELIABLE_CHANNEL = 1

# --- bounds and timers --------------------------------------------------------------

#: Packets an ack covers before the newest one it names (the ack bitfield's width).
ACK_BITS = 32
#: Reliable ids a sender may have outstanding, and the receiver's reorder window.
RECEIVE_WINDOW = 256
#: Fragments of one message (the fragment header stores the last index in one byte).
MAX_FRAGMENTS = 256
#: Fragments of one unreliable message: snapshots are meant to be small.
MAX_UNRELIABLE_FRAGMENTS = 16
#: Messages in one body. With STALE_PACKETS this keeps 16-bit ids unambiguous.
MAX_MESSAGES_PER_BODY = 64
#: Bodies older than this many packets behind the newest one received are ignored.
STALE_PACKETS = 256
#: Sent-packet records kept while waiting for their acks.
MAX_SENT_RECORDS = 256
#: Bodies one build_bodies call returns; the rest goes out PACING_S later.
MAX_BODIES_PER_BUILD = 64
PACING_S = 0.001
#: Message-bearing bodies received before an ack is owed even for unreliable traffic,
#: so that every packet shows up in at least one ack while it is inside the bitfield.
ACK_EVERY_BODIES = 16
#: Unsent unreliable messages kept (oldest dropped first).
MAX_UNRELIABLE_QUEUE = 64

#: How long a side may hold an owed ack hoping to piggyback it (its own), and how
#: long it assumes the peer may (the RTO allows for it): `set_ack_delays`.
DEFAULT_ACK_DELAY_S = 0.010
#: The range either ack delay may be set to: longer holds would slow loss recovery.
MAX_ACK_DELAY_S = 0.100
#: The body header's ack_delay field: whole milliseconds, saturating at 255 (a
#: saturated value says "255 ms or more": such an ack gives no RTT sample).
ACK_DELAY_UNIT_S = 0.001
ACK_DELAY_FIELD_MAX = 255
INITIAL_RTO_S = 0.2
MIN_RTO_S = 0.02
MAX_RTO_S = 1.0
#: A partly received fragmented snapshot is dropped after this long.
UNRELIABLE_PARTIAL_TIMEOUT_S = 1.0
#: Weight of one packet's fate in the smoothed loss fraction.
LOSS_ALPHA = 1.0 / 32.0

DEFAULT_MAX_RELIABLE_MESSAGE = 256 * 1024
DEFAULT_MAX_UNRELIABLE_MESSAGE = 16 * 1024
DEFAULT_MAX_PENDING_BYTES = 1024 * 1024

BODY_LIMIT_MIN = 32  # the range max_body may take
BODY_LIMIT_MAX = LENGTH_MASK + 1  # 8192

_INF = float("inf")
# Shared stand-ins for a session's empty queues and tables until it uses them (and
# again once compact() found them empty): an empty list or dict still costs 56-64
# bytes, six per session, times every idle session. Never written to: every write
# first checks for them by identity and gives the session its own.
_NO_LIST: list[Any] = []
_NO_DICT: dict[Any, Any] = {}
_MASK16 = 0xFFFF
_MASK32 = 0xFFFFFFFF
_SINGLE_MESSAGE_BODY = BODY_HEADER_SIZE + MESSAGE_HEADER_SIZE
_unpack_body_header = BODY_HEADER.unpack_from
_pack_body_header = BODY_HEADER.pack
_unpack_message_header = MESSAGE_HEADER.unpack_from
# A body header and the first message header at once (the single-message cases).
_unpack_single_message_body = struct.Struct("<HHIBHH").unpack_from
_pack_message_header = MESSAGE_HEADER.pack
_pack_fragment_header = FRAGMENT_MESSAGE_HEADER.pack


# The arguments a `_Sizes` is made from, in order (also its key in _SIZES).
_SizesKey = tuple[int, int, int, int, float, int | None, int | None, float]


class _Sizes:
    """A layer's size limits and ack delays (see `Reliability.__init__`), never changed.

    Thousands of sessions are made with the same few arguments: they share one of
    these (`_sizes_for`) instead of each holding ten fields (80 bytes a session).
    """

    __slots__ = (
        "ack_delay_s",
        "fragment_data",
        "key",
        "max_body",
        "max_pending_bytes",
        "max_reliable_message",
        "max_unreliable_message",
        "peer_ack_delay_s",
        "recv_buffer_limit",
        "recv_reliable_limit",
        "recv_unreliable_limit",
        "single_data",
    )

    def __init__(
        self,
        max_body: int,
        max_reliable_message: int,
        max_unreliable_message: int,
        max_pending_bytes: int,
        ack_delay_s: float,
        max_receive_message: int | None,
        max_receive_buffer: int | None,
        peer_ack_delay_s: float,
    ) -> None:
        self.max_body = max_body
        # The arguments, for `Reliability.set_ack_delays` to find the record that
        # differs only in its ack delays (set by `_sizes_for`).
        self.key: _SizesKey = (max_body, max_reliable_message, max_unreliable_message,
                               max_pending_bytes, ack_delay_s, max_receive_message,
                               max_receive_buffer, peer_ack_delay_s)  # fmt: skip
        # Data of an unfragmented message that fills an otherwise empty body, and of
        # one fragment of a fragmented one.
        self.single_data = max_body - BODY_HEADER_SIZE - MESSAGE_HEADER_SIZE
        self.fragment_data = max_body - BODY_HEADER_SIZE - FRAGMENT_HEADER_SIZE
        self.max_reliable_message = min(max_reliable_message, MAX_FRAGMENTS * self.fragment_data)
        self.max_unreliable_message = min(
            max_unreliable_message, MAX_UNRELIABLE_FRAGMENTS * self.fragment_data
        )
        self.max_pending_bytes = max_pending_bytes
        self.ack_delay_s = ack_delay_s
        self.peer_ack_delay_s = peer_ack_delay_s
        # What the peer may send us may be less than what we may send it (a game
        # host sends large states but accepts only small actions): larger messages
        # are consumed and dropped (`oversized_dropped`), never held whole.
        self.recv_reliable_limit = self.max_reliable_message
        self.recv_unreliable_limit = self.max_unreliable_message
        if max_receive_message is not None:
            self.recv_reliable_limit = min(self.recv_reliable_limit, max_receive_message)
            self.recv_unreliable_limit = min(self.recv_unreliable_limit, max_receive_message)
        # Bytes of out-of-order reliable messages we hold before refusing bodies
        # that would add more (None: the receive window alone bounds them).
        self.recv_buffer_limit = max_receive_buffer


_SIZES: dict[_SizesKey, _Sizes] = {}
# Configurations remembered; a process uses a handful, so this bound only keeps a
# caller that varies them (a test, a fuzzer) from growing the table for ever.
_MAX_SIZES = 64


def _sizes_for(
    max_body: int,
    max_reliable_message: int,
    max_unreliable_message: int,
    max_pending_bytes: int,
    ack_delay_s: float,
    max_receive_message: int | None,
    max_receive_buffer: int | None,
    peer_ack_delay_s: float,
) -> _Sizes:
    """The shared `_Sizes` for these arguments."""
    key = (max_body, max_reliable_message, max_unreliable_message, max_pending_bytes,
           ack_delay_s, max_receive_message, max_receive_buffer,
           peer_ack_delay_s)  # fmt: skip
    sizes = _SIZES.get(key)
    if sizes is None:
        if len(_SIZES) >= _MAX_SIZES:
            _SIZES.clear()
        sizes = _SIZES[key] = _Sizes(*key)
    return sizes


def _check_ack_delay(name: str, value: float) -> None:
    """Refuse an ack delay outside [0, MAX_ACK_DELAY_S] (NaN included)."""
    if not 0.0 <= value <= MAX_ACK_DELAY_S:
        raise ValueError(f"{name} must be in [0, {MAX_ACK_DELAY_S}] s, not {value}")


class _FaultCounts:
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


class _Reassembly:
    """The fragments of the reliable message being delivered, collected in order.

    Made per fragmented message, so that a session holds none between them."""

    __slots__ = ("dropping", "last", "next", "parts", "size")

    def __init__(self, last: int, parts: list[bytes], size: int, dropping: bool) -> None:
        self.last = last  # the message's last fragment index
        self.next = 1  # the fragment index expected next
        self.parts = parts
        self.size = size  # bytes in parts
        # Over the receive limit: its remaining fragments are consumed without
        # keeping their data.
        self.dropping = dropping


class _PartialSnapshot:
    """The fragments received of one fragmented unreliable message (any order).

    Made per fragmented snapshot, so that a session holds none between them."""

    __slots__ = ("have", "parts", "sequence", "since", "size")

    def __init__(self, sequence: int, last: int, now: float) -> None:
        self.sequence = sequence  # its 16-bit snapshot sequence
        self.parts: list[bytes | None] = [None] * (last + 1)
        self.have = 0  # fragments in parts
        self.size = 0  # bytes in parts
        self.since = now  # when its first fragment came (it expires after a while)


class ReliabilityError(Exception):
    """Base class of what `send_reliable` and `send_unreliable` refuse."""


class MessageTooLarge(ReliabilityError, ValueError):
    """The message exceeds the channel's size limit."""


class SendQueueFull(ReliabilityError):
    """Too many reliable bytes are waiting for acks: the peer is not keeping up.

    The session cannot keep its exactly-once promise any more; close it.
    """


class Reliability:
    """Both channels of one session, one side. Not thread-safe; cheap when idle."""

    __slots__ = (
        "_ack_due",
        "_ack_every_count",
        "_buffered_bytes",
        "_fault_counts",
        "_last_now",
        "_loss_base",
        "_loss_mark",
        "_next_id",
        "_next_send_id",
        "_next_seq",
        "_oldest_unacked",
        "_pending",
        "_reassembly",
        "_recv_any",
        "_recv_at",
        "_recv_bits",
        "_recv_buffer",
        "_recv_buffer_bytes",
        "_recv_latest",
        "_recv_next",
        "_reliable_seqs",
        "_resend_due",
        "_resume_at",
        "_sent",
        "_sizes",
        "_unacked",
        "_unrel_delivered",
        "_unrel_next",
        "_unrel_partial",
        "_unrel_queue",
        "acked_packets",
        "lost_packets",
        "min_rtt_s",
        "received_bodies",
        "resent_messages",
        "rto_s",
        "rtt_s",
        "rtt_samples",
        "rttvar",
    )

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
        _check_ack_delay("ack_delay_s", ack_delay_s)
        _check_ack_delay("peer_ack_delay_s", peer_ack_delay_s)
        # The sizes and the ack delays: one shared object for every layer made with
        # the same arguments (thousands of sessions, a few configurations).
        self._sizes = _sizes_for(
            max_body,
            max_reliable_message,
            max_unreliable_message,
            max_pending_bytes,
            ack_delay_s,
            max_receive_message,
            max_receive_buffer,
            peer_ack_delay_s,
        )
        self._last_now = now
        self._resume_at = now

        # Sending: packets.
        self._next_seq = 0
        self._sent: dict[int, tuple[float, tuple[int, ...]]] = _NO_DICT
        # Sequences of sent packets that carried reliable messages, oldest first
        # (lazily trimmed to those still unresolved with a message still unacked):
        # new messages wait while the next packet would push the oldest out of the
        # peer's ack bitfield. Resends are never held back, so this cannot stall.
        self._reliable_seqs: list[int] = _NO_LIST
        # Sending: reliable messages. Ids below _next_send_id have been sent; the
        # pending list holds the encoded messages from _next_send_id on.
        self._next_id = 0
        self._next_send_id = 0
        self._oldest_unacked = 0
        self._pending: list[bytes] = _NO_LIST
        # id -> (encoded, times sent, resend due), in id order. _resend_due is at most
        # the earliest due time (exact after each scan, possibly early after acks).
        self._unacked: dict[int, tuple[bytes, int, float]] = _NO_DICT
        self._resend_due = _INF
        self._buffered_bytes = 0
        # Sending: unreliable messages (encoded, sent once at the next build).
        self._unrel_next = 0
        self._unrel_queue: list[bytes] = _NO_LIST

        # Receiving: packets.
        self._recv_any = False
        self._recv_latest = -1
        self._recv_bits = 0
        # When the newest packet (the one our `ack` names) arrived: our bodies report
        # how long after it they were built (the ack_delay field). Infinite before
        # any: the field says 0.
        self._recv_at = _INF
        self._ack_due = _INF
        self._ack_every_count = 0
        # Receiving: reliable. Out-of-order messages wait in _recv_buffer as
        # (fragment index or -1, last index, data); fragments of the message being
        # delivered collect in _reassembly (made for each fragmented message).
        self._recv_next = 0
        self._recv_buffer: dict[int, tuple[int, int, bytes]] = _NO_DICT
        self._recv_buffer_bytes = 0
        self._reassembly: _Reassembly | None = None
        # Receiving: unreliable (a fragmented snapshot collects in _unrel_partial).
        self._unrel_delivered = -1  # 16-bit sequence of the last delivered, -1: none
        self._unrel_partial: _PartialSnapshot | None = None

        # Statistics.
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
        self.received_bodies = 0
        self.resent_messages = 0
        # What a well-behaved peer on a good link rarely causes, counted once it
        # happens (see the properties of the same names).
        self._fault_counts: _FaultCounts | None = None

    def set_ack_delays(self, own_s: float, peer_s: float) -> None:
        """Set this session's ack delays (seconds, each in [0, MAX_ACK_DELAY_S]).

        `own_s`: how long this side holds an ack owed for a reliable message, hoping
        to piggyback it on a body it will send anyway (a side that sends every tick
        sets its tick interval, so that no ack-only body goes out). `peer_s`: how
        long the peer may hold its acks; the RTO allows for it (RTO = srtt + 4 *
        rttvar + peer_s). An ack already owed keeps the time it was owed for.
        Raises ValueError out of range.
        """
        _check_ack_delay("own_s", own_s)
        _check_ack_delay("peer_s", peer_s)
        key = self._sizes.key
        # Sessions of one room set the same values: they share the new record too.
        self._sizes = _sizes_for(
            key[0], key[1], key[2], key[3], own_s, key[5], key[6], peer_s
        )
        if self.rtt_samples:
            self._update_rto()

    # --- sending ---------------------------------------------------------------------

    def send_reliable(self, data: bytes) -> None:
        """Queue `data` for channel 1: delivered exactly once, in order.

        Raises `MessageTooLarge` above `max_reliable_message` and `SendQueueFull` when
        queued plus unacknowledged bytes would exceed `max_pending_bytes`.
        """
        size = len(data)
        if size > self._sizes.max_reliable_message:
            raise MessageTooLarge(f"{size} bytes > {self.max_reliable_message} (reliable)")
        if self._buffered_bytes + size > self._sizes.max_pending_bytes:
            raise SendQueueFull(f"{self._buffered_bytes} bytes waiting for acks")
        message_id = self._next_id
        pending = self._pending
        if pending is _NO_LIST:
            pending = self._pending = []
        if size <= self._sizes.single_data:
            encoded = _pack_message_header(RELIABLE_INFO | size, message_id & _MASK16) + data
            pending.append(encoded)
            self._next_id = message_id + 1
            self._buffered_bytes += len(encoded)
            return
        chunk = self._sizes.fragment_data
        last = (size - 1) // chunk
        info = RELIABLE_INFO | FRAGMENT_FLAG
        for index in range(last + 1):
            piece = data[index * chunk : (index + 1) * chunk]
            encoded = (
                _pack_fragment_header(info | len(piece), message_id & _MASK16, index, last)
                + piece
            )
            pending.append(encoded)
            self._buffered_bytes += len(encoded)
            message_id += 1
        self._next_id = message_id

    def reliable_mark(self) -> int:
        """The id the next reliable message gets: every one queued so far is below it."""
        return self._next_id

    def reliable_acked(self, mark: int) -> bool:
        """True once every reliable message below `mark` has been acknowledged."""
        return self._oldest_unacked >= mark

    def send_unreliable(self, data: bytes) -> None:
        """Queue `data` for channel 0: sent once at the next build, never resent.

        The receiver delivers it only if it is newer than every channel-0 message it
        has delivered. Messages above one body are fragmented, up to
        `max_unreliable_message` (else `MessageTooLarge`); all fragments go out in the
        same build_bodies call.
        """
        size = len(data)
        if size > self._sizes.max_unreliable_message:
            raise MessageTooLarge(f"{size} bytes > {self.max_unreliable_message} (unreliable)")
        sequence = self._unrel_next & _MASK16
        self._unrel_next += 1
        queue = self._unrel_queue
        if queue is _NO_LIST:
            queue = self._unrel_queue = []
        if size <= self._sizes.single_data:
            queue.append(_pack_message_header(size, sequence) + data)
        else:
            chunk = self._sizes.fragment_data
            last = (size - 1) // chunk
            for index in range(last + 1):
                piece = data[index * chunk : (index + 1) * chunk]
                queue.append(
                    _pack_fragment_header(FRAGMENT_FLAG | len(piece), sequence, index, last)
                    + piece
                )
        excess = len(queue) - MAX_UNRELIABLE_QUEUE
        if excess > 0:
            del queue[:excess]
            self._faults().unreliable_dropped += excess

    def replace_unreliable(self, data: bytes) -> None:
        """`send_unreliable`, dropping first every channel-0 message still queued
        unsent (counted in `unreliable_dropped`), for a sender whose channel 0
        carries snapshots where only the newest counts (a game host's states).

        Only what never left is dropped: channel 0 is never resent or waited for,
        so nothing else changes.
        """
        if len(data) > self.max_unreliable_message:
            raise MessageTooLarge(f"{len(data)} bytes > {self.max_unreliable_message} (unreliable)")
        queue = self._unrel_queue
        if queue:
            self._faults().unreliable_dropped += len(queue)
            queue.clear()
        self.send_unreliable(data)

    def build_bodies(self, now: float) -> list[bytes]:
        """The bodies to send now: resends first, then snapshots, then new messages.

        Adds an ack-only body when an ack is owed and nothing else is going out.
        Returns [] when nothing is due.
        """
        self._last_now = now
        if (
            not self._unrel_queue
            and not self._pending
            and self._ack_due > now
            and self._resend_due > now
        ):
            self._resume_at = now
            return []
        if self._resend_due > now:
            # The common cases, without the general loop below: one snapshot (a
            # host's state), or one reliable message (a client's action), alone.
            queue = self._unrel_queue
            pending = self._pending
            if not pending:
                if len(queue) == 1:
                    encoded = queue[0]
                    if BODY_HEADER_SIZE + len(encoded) <= self._sizes.max_body:
                        queue.clear()
                        self._resume_at = now
                        return [self._seal_single(encoded, (), now)]
            elif not queue and len(pending) == 1:
                message_id = self._next_send_id
                if message_id < self._oldest_unacked + RECEIVE_WINDOW:
                    reliable_seqs = self._trim_reliable_seqs()
                    if not reliable_seqs or self._next_seq <= reliable_seqs[0] + ACK_BITS:
                        encoded = pending[0]
                        pending.clear()
                        unacked = self._unacked
                        if unacked is _NO_DICT:
                            unacked = self._unacked = {}
                        due = now + self.rto_s
                        unacked[message_id] = (encoded, 1, due)
                        self._next_send_id = message_id + 1
                        if due < self._resend_due:
                            self._resend_due = due
                        self._resume_at = now
                        return [self._seal_single(encoded, (message_id,), now)]
        max_body = self._sizes.max_body
        out: list[bytes] = []
        parts: list[bytes] = [b""]  # [0] becomes the body header
        ids: list[int] = []
        size = BODY_HEADER_SIZE
        capped = False
        unacked = self._unacked

        if self._resend_due <= now:
            # Oldest first: in-order delivery waits for the oldest missing message.
            rto = self.rto_s
            earliest = _INF
            for message_id, (encoded, times, due) in unacked.items():
                if due > now:
                    if due < earliest:
                        earliest = due
                    continue
                if size + len(encoded) > max_body or len(parts) > MAX_MESSAGES_PER_BODY:
                    if len(out) + 1 >= MAX_BODIES_PER_BUILD:
                        capped = True
                        earliest = due  # the rest waits for the next call
                        break
                    out.append(self._seal(parts, ids, now))
                    parts = [b""]
                    ids = []
                    size = BODY_HEADER_SIZE
                parts.append(encoded)
                ids.append(message_id)
                size += len(encoded)
                backoff = rto * (1 << (times if times < 6 else 6))
                due = now + (backoff if backoff < MAX_RTO_S else MAX_RTO_S)
                unacked[message_id] = (encoded, times + 1, due)  # same key: safe mid-loop
                if due < earliest:
                    earliest = due
                self.resent_messages += 1
            self._resend_due = earliest

        # Lists, not deques, for the queues: an empty deque costs half a kilobyte,
        # and a session is idle most of the time.
        queue = self._unrel_queue
        if queue and not capped:
            taken = 0
            for encoded in queue:
                if size + len(encoded) > max_body or len(parts) > MAX_MESSAGES_PER_BODY:
                    if len(out) + 1 >= MAX_BODIES_PER_BUILD:
                        capped = True
                        break
                    out.append(self._seal(parts, ids, now))
                    parts = [b""]
                    ids = []
                    size = BODY_HEADER_SIZE
                parts.append(encoded)
                size += len(encoded)
                taken += 1
            if taken == len(queue):
                queue.clear()
            else:
                del queue[:taken]

        pending = self._pending
        if pending and not capped:
            if unacked is _NO_DICT:
                unacked = self._unacked = {}
            if self._reliable_seqs is _NO_LIST:
                # The window check below reads it while _seal appends to it.
                self._reliable_seqs = []
            limit = self._oldest_unacked + RECEIVE_WINDOW
            message_id = self._next_send_id
            due = now + self.rto_s
            reliable_seqs = self._trim_reliable_seqs()
            for encoded in pending:
                if message_id >= limit:
                    break
                if size + len(encoded) > max_body or len(parts) > MAX_MESSAGES_PER_BODY:
                    if len(out) + 1 >= MAX_BODIES_PER_BUILD:
                        capped = True
                        break
                    out.append(self._seal(parts, ids, now))
                    parts = [b""]
                    ids = []
                    size = BODY_HEADER_SIZE
                if not ids and reliable_seqs and self._next_seq > reliable_seqs[0] + ACK_BITS:
                    break  # wait for acks rather than outrun the peer's ack bitfield
                parts.append(encoded)
                ids.append(message_id)
                size += len(encoded)
                unacked[message_id] = (encoded, 1, due)
                message_id += 1
            taken = message_id - self._next_send_id
            if taken:
                if taken == len(pending):
                    pending.clear()
                else:
                    del pending[:taken]
                self._next_send_id = message_id
                if due < self._resend_due:
                    self._resend_due = due

        if len(parts) > 1 or (not out and self._ack_due <= now):
            out.append(self._seal(parts, ids, now))
        self._resume_at = now + PACING_S if capped else now
        return out

    def _seal_single(self, encoded: bytes, ids: tuple[int, ...], now: float) -> bytes:
        """_seal for a body of one message (the fast paths of build_bodies)."""
        seq = self._next_seq
        self._next_seq = seq + 1
        sent = self._sent
        if sent is _NO_DICT:
            sent = self._sent = {}
        sent[seq] = (now, ids)
        if ids:
            reliable_seqs = self._reliable_seqs
            if reliable_seqs is _NO_LIST:
                reliable_seqs = self._reliable_seqs = []
            reliable_seqs.append(seq)
            if len(reliable_seqs) > 2 * MAX_SENT_RECORDS:
                self._trim_reliable_seqs()
        if len(sent) > MAX_SENT_RECORDS:
            del sent[next(iter(sent))]
        self._ack_due = _INF
        self._ack_every_count = 0
        # How long our ack has been held, in whole ms (rounded; saturating).
        held = (now - self._recv_at) * 1000.0 + 0.5
        delay = 0 if held < 1.0 else ACK_DELAY_FIELD_MAX if held >= 255.0 else int(held)
        return (
            _pack_body_header(
                seq & _MASK16, self._recv_latest & _MASK16, self._recv_bits, delay
            )
            + encoded
        )

    def _seal(self, parts: list[bytes], ids: list[int], now: float) -> bytes:
        """Finish one body: header with the current acks, and remember what it carried."""
        seq = self._next_seq
        self._next_seq = seq + 1
        # How long our ack has been held, in whole ms (rounded; saturating).
        held = (now - self._recv_at) * 1000.0 + 0.5
        delay = 0 if held < 1.0 else ACK_DELAY_FIELD_MAX if held >= 255.0 else int(held)
        parts[0] = _pack_body_header(
            seq & _MASK16, self._recv_latest & _MASK16, self._recv_bits, delay
        )
        sent = self._sent
        if sent is _NO_DICT:
            sent = self._sent = {}
        if ids:
            sent[seq] = (now, tuple(ids))
            reliable_seqs = self._reliable_seqs
            if reliable_seqs is _NO_LIST:
                reliable_seqs = self._reliable_seqs = []
            reliable_seqs.append(seq)
            if len(reliable_seqs) > 2 * MAX_SENT_RECORDS:
                # Only trimmed when new messages wait; resends alone must not grow it.
                self._trim_reliable_seqs()
        else:
            sent[seq] = (now, ())
        if len(sent) > MAX_SENT_RECORDS:
            # The peer is not acking: forget the oldest record (its messages still
            # resend on their timers and are acked through later packets).
            del sent[next(iter(sent))]
        self._ack_due = _INF
        self._ack_every_count = 0
        return b"".join(parts)

    # --- receiving -------------------------------------------------------------------

    def receive_body(self, body: bytes, now: float) -> list[tuple[int, bytes]] | None:
        """Process one decrypted body; return the messages it completes, in order.

        Returns None, changing nothing, if the body is malformed. Never raises.
        """
        self._last_now = now
        total = len(body)
        # Both sides use the same max_body (it follows from the datagram limit); a
        # longer body is malformed, which also caps what one body can make us hold.
        if total < BODY_HEADER_SIZE or total > self._sizes.max_body:
            self._faults().malformed_bodies += 1
            return None
        # Parse and validate everything before changing any state.
        messages: list[tuple[int, int, int, int, int, int]]
        offset = BODY_HEADER_SIZE
        if total >= _SINGLE_MESSAGE_BODY:
            # The common case first: one whole message on channel 0 or 1 (a state, an
            # action) fills the body; one unpack parses it, the loop is skipped.
            seq16, ack16, ack_bits, ack_delay, info, message_id = (
                _unpack_single_message_body(body)
            )
            if info < 0x8000 and not info & FRAGMENT_FLAG and (
                (info & LENGTH_MASK) + _SINGLE_MESSAGE_BODY == total
            ):
                messages = [
                    (info >> CHANNEL_SHIFT, message_id, -1, 0, _SINGLE_MESSAGE_BODY, total)
                ]
                offset = total
            else:
                messages = []
        else:
            seq16, ack16, ack_bits, ack_delay = _unpack_body_header(body, 0)
            messages = []
        max_fragments = MAX_FRAGMENTS
        try:
            while offset < total:
                info, message_id = _unpack_message_header(body, offset)
                channel = info >> CHANNEL_SHIFT
                length = info & LENGTH_MASK
                if info & FRAGMENT_FLAG:
                    index = body[offset + 4]
                    last = body[offset + 5]
                    offset += FRAGMENT_HEADER_SIZE
                    if (
                        last == 0
                        or index > last
                        or length == 0
                        or (channel == UNRELIABLE_CHANNEL and last >= MAX_UNRELIABLE_FRAGMENTS)
                        or last >= max_fragments
                    ):
                        raise ValueError
                else:
                    index = -1
                    last = 0
                    offset += MESSAGE_HEADER_SIZE
                if info >= 0x8000:  # channels 2 and 3 are reserved
                    raise ValueError
                end = offset + length
                if end > total:
                    raise ValueError
                messages.append((channel, message_id, index, last, offset, end))
                offset = end
        except (struct.error, IndexError, ValueError):
            self._faults().malformed_bodies += 1
            return None
        if len(messages) > MAX_MESSAGES_PER_BODY:
            self._faults().malformed_bodies += 1
            return None

        if (
            self._sizes.recv_buffer_limit is not None
            and self._recv_buffer_bytes + total > self._sizes.recv_buffer_limit
            and self._would_overfill(messages)
        ):
            # Not recorded, so not acked: the peer resends what it carried later,
            # once the gap before it is filled and the buffer drained.
            self._faults().refused_bodies += 1
            return []

        if not self._record_body(seq16, ack16, ack_bits, ack_delay, now):
            return []

        out: list[tuple[int, bytes]] = []
        if not messages:
            return out
        self._ack_every_count += 1
        if self._ack_every_count >= ACK_EVERY_BODIES:
            self._ack_due = now
        reliable_seen = False
        for channel, message_id, index, last, start, end in messages:
            if channel:
                reliable_seen = True
                expected = self._recv_next
                distance = (message_id - expected) & _MASK16
                if distance == 0:
                    if (
                        index < 0
                        and self._reassembly is None
                        and end - start <= self._sizes.recv_reliable_limit
                    ):
                        out.append((1, body[start:end]))
                    else:
                        self._deliver_fragment(index, last, body[start:end], out)
                    expected += 1
                    buffer = self._recv_buffer
                    if buffer:
                        while expected in buffer:
                            index, last, data = buffer.pop(expected)
                            self._recv_buffer_bytes -= len(data)
                            if (
                                index < 0
                                and self._reassembly is None
                                and len(data) <= self._sizes.recv_reliable_limit
                            ):
                                out.append((1, data))
                            else:
                                self._deliver_fragment(index, last, data, out)
                            expected += 1
                    self._recv_next = expected
                elif distance < RECEIVE_WINDOW:
                    full_id = expected + distance
                    buffer = self._recv_buffer
                    if full_id in buffer:
                        self._faults().duplicates_dropped += 1
                    else:
                        if buffer is _NO_DICT:
                            buffer = self._recv_buffer = {}
                        buffer[full_id] = (index, last, body[start:end])
                        self._recv_buffer_bytes += end - start
                elif distance >= 0x8000:
                    self._faults().duplicates_dropped += 1
                else:
                    self._faults().out_of_window += 1
            elif index < 0:
                delivered = self._unrel_delivered
                if end - start > self._sizes.recv_unreliable_limit:
                    self._faults().oversized_dropped += 1
                elif delivered < 0 or 0 < ((message_id - delivered) & _MASK16) < 0x8000:
                    out.append((0, body[start:end]))
                    self._unrel_delivered = message_id
                else:
                    self._faults().duplicates_dropped += 1  # not newer than what the app has
            else:
                self._receive_unreliable_fragment(
                    message_id, index, last, body[start:end], now, out
                )
        if reliable_seen:
            due = now + self._sizes.ack_delay_s
            if due < self._ack_due:
                self._ack_due = due
        return out

    def _record_body(
        self, seq16: int, ack16: int, ack_bits: int, ack_delay: int, now: float
    ) -> bool:
        """Record an accepted body's packet sequence for our acks and take the acks it
        carries (`ack_delay`: the header's field, ms); False (counted) for a
        duplicate or a stale one, changing nothing."""
        # Packet sequence: map the 16 bits to the nearest full sequence.
        latest = self._recv_latest
        delta = (seq16 - latest) & _MASK16
        if delta >= 0x8000:
            delta -= 0x10000
        if delta > 0 or not self._recv_any:
            self._recv_at = now
            if not self._recv_any:
                self._recv_any = True
                self._recv_bits = 0
                self._recv_latest = seq16
            elif delta <= ACK_BITS:
                self._recv_bits = (((self._recv_bits << 1) | 1) << (delta - 1)) & _MASK32
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

        sent = self._sent
        if sent:
            newest_sent = self._next_seq - 1
            distance = (newest_sent - ack16) & _MASK16
            if distance < 0x8000:  # else: an ack for a packet we have not sent yet
                ack = newest_sent - distance
                first = next(iter(sent))
                if first == ack:
                    # The common case, inline: the peer acks our oldest open packet.
                    record = sent.pop(ack)
                    if record[1]:
                        self._acked(record)
                    else:
                        self.acked_packets += 1
                    if ack_delay < ACK_DELAY_FIELD_MAX:
                        self._sample_rtt(now - record[0], ack_delay)
                elif first < ack:
                    self._process_acks(ack, ack_bits, ack_delay, now)
        return True

    def _process_acks(self, ack: int, ack_bits: int, ack_delay: int, now: float) -> None:
        """Mark the packets an ack covers, sample the RTT, write off the lost.

        `ack` is the full sequence the peer names; the oldest open record is older.
        `ack_delay` (ms) is how long the peer held its ack of `ack`.
        """
        sent = self._sent
        # Records are in sequence order and hold only unresolved packets, so this
        # visits at most the 33 the ack covers plus those it writes off.
        resolved: list[tuple[int, bool]] = []
        low = ack - ACK_BITS
        for seq in sent:
            if seq >= ack:
                if seq == ack:
                    resolved.append((seq, True))
                break
            if seq < low:
                resolved.append((seq, False))
            elif (ack_bits >> (ack - 1 - seq)) & 1:
                resolved.append((seq, True))
        lost = 0
        for seq, acked in resolved:
            record = sent.pop(seq)
            if acked:
                self._acked(record)
                # Only the packet the ack names has a known ack delay: the others
                # were acked later than the peer received them.
                if seq == ack and ack_delay < ACK_DELAY_FIELD_MAX:
                    self._sample_rtt(now - record[0], ack_delay)
            else:
                lost += 1
        if lost:
            # Fold the acks since the last loss into the smoothed fraction first.
            loss = self.loss
            self._loss_mark = self.acked_packets
            for _ in range(lost):
                loss += (1.0 - loss) * LOSS_ALPHA
            self._loss_base = loss
            self.lost_packets += lost

    def _acked(self, record: tuple[float, tuple[int, ...]]) -> None:
        """One packet acknowledged: its messages are delivered."""
        self.acked_packets += 1
        ids = record[1]
        if not ids:
            return
        unacked = self._unacked
        freed = 0
        if unacked:
            for message_id in ids:
                entry = unacked.pop(message_id, None)
                if entry is not None:
                    freed += len(entry[0])
        self._buffered_bytes -= freed
        oldest = self._oldest_unacked
        limit = self._next_send_id
        while oldest < limit and oldest not in unacked:
            oldest += 1
        self._oldest_unacked = oldest
        if not unacked:
            self._resend_due = _INF

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

    def _would_overfill(self, messages: list[tuple[int, int, int, int, int, int]]) -> bool:
        """Whether a body would push the out-of-order buffer past its limit.

        A body that carries the next expected reliable id is always taken: it
        advances delivery, so refusing it could stall the channel.
        """
        expected = self._recv_next
        buffer = self._recv_buffer
        added = 0
        for channel, message_id, _index, _last, start, end in messages:
            if channel:
                distance = (message_id - expected) & _MASK16
                if distance == 0:
                    return False
                if distance < RECEIVE_WINDOW and expected + distance not in buffer:
                    added += end - start
        limit = self._sizes.recv_buffer_limit
        return added > 0 and limit is not None and self._recv_buffer_bytes + added > limit

    def _deliver_fragment(
        self, index: int, last: int, data: bytes, out: list[tuple[int, bytes]]
    ) -> None:
        """In-order delivery when a fragment, a reassembly or an oversized message is involved."""
        limit = self._sizes.recv_reliable_limit
        if index <= 0:
            if self._reassembly is not None:
                # A new message began before the last one was complete.
                self._faults().protocol_errors += 1
                self._reassembly = None
            if index < 0:
                if len(data) > limit:
                    self._faults().oversized_dropped += 1
                else:
                    out.append((1, data))
                return
            if len(data) > limit:
                self._faults().oversized_dropped += 1
                self._reassembly = _Reassembly(last, [], 0, True)
            else:
                self._reassembly = _Reassembly(last, [data], len(data), False)
            return
        reassembly = self._reassembly
        if reassembly is None or last != reassembly.last or index != reassembly.next:
            self._faults().protocol_errors += 1
            self._reassembly = None
            return
        reassembly.next = index + 1
        if not reassembly.dropping:
            size = reassembly.size + len(data)
            if size > limit:
                # Too large for us (not necessarily a broken peer: our limit may be
                # below its): consume the rest of it without keeping anything.
                self._faults().oversized_dropped += 1
                reassembly.parts = []
                reassembly.size = 0
                reassembly.dropping = True
            else:
                reassembly.parts.append(data)
                reassembly.size = size
        if index == last:
            self._reassembly = None
            if not reassembly.dropping:
                out.append((1, b"".join(reassembly.parts)))

    def _receive_unreliable_fragment(
        self,
        sequence: int,
        index: int,
        last: int,
        data: bytes,
        now: float,
        out: list[tuple[int, bytes]],
    ) -> None:
        delivered = self._unrel_delivered
        if delivered >= 0 and not 0 < ((sequence - delivered) & _MASK16) < 0x8000:
            self._faults().duplicates_dropped += 1  # not newer than what the app already has
            return
        partial = self._unrel_partial
        if partial is None or partial.sequence != sequence:
            if partial is not None and 0 < ((partial.sequence - sequence) & _MASK16) < 0x8000:
                self._faults().duplicates_dropped += 1  # older than the snapshot being assembled
                return
            partial = self._unrel_partial = _PartialSnapshot(sequence, last, now)
        elif len(partial.parts) != last + 1:
            self._faults().protocol_errors += 1
            return
        parts = partial.parts
        if parts[index] is not None:
            self._faults().duplicates_dropped += 1
            return
        size = partial.size + len(data)
        if size > self._sizes.recv_unreliable_limit:
            if size > self._sizes.max_unreliable_message:
                self._faults().protocol_errors += 1
            else:
                # Too large for us: skip this snapshot's other fragments too.
                self._faults().oversized_dropped += 1
                self._unrel_delivered = sequence
            self._unrel_partial = None
            return
        parts[index] = data
        partial.size = size
        partial.have += 1
        if partial.have == last + 1:
            out.append((0, b"".join(parts)))  # type: ignore[arg-type]
            self._unrel_delivered = sequence
            self._unrel_partial = None

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
        return None if when == _INF else when

    def _can_send_new(self) -> bool:
        """Whether a pending reliable message may go out (both windows open)."""
        if not self._pending or self._next_send_id >= self._oldest_unacked + RECEIVE_WINDOW:
            return False
        reliable_seqs = self._trim_reliable_seqs()
        return not reliable_seqs or self._next_seq <= reliable_seqs[0] + ACK_BITS

    def _trim_reliable_seqs(self) -> list[int]:
        """Drop packets whose fate no longer matters: resolved, or all messages acked."""
        reliable_seqs = self._reliable_seqs
        sent = self._sent
        unacked = self._unacked
        done = 0
        for seq in reliable_seqs:
            record = sent.get(seq)
            if record is not None and any(i in unacked for i in record[1]):
                break
            done += 1
        if done:
            del reliable_seqs[:done]
        return reliable_seqs

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
            self._unacked = _NO_DICT
        if not self._recv_buffer:
            self._recv_buffer = _NO_DICT
        if forget_records:
            sent = {seq: record for seq, record in self._sent.items() if record[1]}
        else:
            sent = dict(self._sent)
        self._sent = sent or _NO_DICT
        if not self._trim_reliable_seqs():
            self._reliable_seqs = _NO_LIST
        if not self._pending:
            self._pending = _NO_LIST
        if not self._unrel_queue:
            self._unrel_queue = _NO_LIST

    def handle_timer(self, now: float) -> None:
        """Housekeeping at a timer: expire a partial snapshot that stopped arriving."""
        self._last_now = now
        partial = self._unrel_partial
        if partial is not None and now >= partial.since + UNRELIABLE_PARTIAL_TIMEOUT_S:
            self._unrel_partial = None
            self._faults().unreliable_dropped += 1

    # --- introspection ---------------------------------------------------------------

    @property
    def loss(self) -> float:
        """Smoothed fraction of packets written off as lost (weight 1/32 per packet)."""
        return self._loss_base * (1.0 - LOSS_ALPHA) ** (self.acked_packets - self._loss_mark)

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

    def _faults(self) -> _FaultCounts:
        counts = self._fault_counts
        if counts is None:
            counts = self._fault_counts = _FaultCounts()
        return counts

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
            reliable_ack_owed=self._ack_due != _INF,
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
