"""The sending side of `Reliability`: queues, the send window, resends, bodies (sans-I/O).

`ReliabilitySender` is the second part of the chain `Reliability` is made of
(reliability_acks.py says why a chain). It holds

- the messages queued: reliable ones, encoded with their ids (`send_reliable`;
  a large one as fragments that each take an id, reliability_wire.fragments),
  until the send window lets them go; unreliable ones (`send_unreliable`), sent
  once at the next build;
- the send window: reliable ids sent and not yet acked, each with its resend
  time (RTO, doubled per resend up to MAX_RTO_S), at most RECEIVE_WINDOW ids
  past the oldest unacked, and no new message while the next packet would push
  the oldest packet still carrying one out of the peer's ack bitfield;
- the records of our packets, each with the ids it carried, until an ack
  resolves it (`_take_ack`: acked, or written off as lost past the bitfield).

`build_bodies` fills bodies in this order: resends, then snapshots, then new
reliable messages, up to MAX_BODIES_PER_BUILD a call (the rest PACING_S later);
a body of one message alone, the common case, takes a shorter path.
"""

from __future__ import annotations

from vinom.protocol.reliability_acks import NO_DICT, NO_LIST, ReliabilityAcks
from vinom.protocol.reliability_wire import (
    ACK_BITS,
    ACK_DELAY_FIELD_MAX,
    BODY_HEADER_SIZE,
    FRAGMENT_FLAG,
    INF,
    MASK16,
    MAX_BODIES_PER_BUILD,
    MAX_MESSAGES_PER_BODY,
    MAX_RTO_S,
    MAX_SENT_RECORDS,
    MAX_UNRELIABLE_QUEUE,
    PACING_S,
    RECEIVE_WINDOW,
    RELIABLE_INFO,
    Sizes,
    fragments,
    pack_message_header,
)


class ReliabilityError(Exception):
    """Base class of what `send_reliable` and `send_unreliable` refuse."""


class MessageTooLarge(ReliabilityError, ValueError):
    """The message exceeds the channel's size limit."""


class SendQueueFull(ReliabilityError):
    """Too many reliable bytes are waiting for acks: the peer is not keeping up.

    The session cannot keep its exactly-once promise any more; close it.
    """


class _BodyBatch:
    """The bodies one `build_bodies` call makes: those finished, and the one being filled."""

    __slots__ = ("capped", "ids", "out", "parts", "size")

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.parts: list[bytes] = [b""]  # [0] becomes the body header
        self.ids: list[int] = []  # the reliable ids in parts
        self.size = BODY_HEADER_SIZE
        # True once the call made MAX_BODIES_PER_BUILD: the rest waits PACING_S.
        self.capped = False


class ReliabilitySender(ReliabilityAcks):
    """The messages one side sends: queued, in flight, resent until acked."""

    __slots__ = (
        "_buffered_bytes",
        "_next_id",
        "_next_send_id",
        "_next_seq",
        "_oldest_unacked",
        "_pending",
        "_reliable_seqs",
        "_resend_due",
        "_resume_at",
        "_sent",
        "_unacked",
        "_unrel_next",
        "_unrel_queue",
        "resent_messages",
    )

    def __init__(self, sizes: Sizes, now: float) -> None:
        super().__init__(sizes, now)
        # When build_bodies may go on after a capped call (PACING_S).
        self._resume_at = now
        # Packets: sequence -> (when sent, the reliable ids it carried), oldest first.
        self._next_seq = 0
        self._sent: dict[int, tuple[float, tuple[int, ...]]] = NO_DICT
        # Sequences of sent packets that carried reliable messages, oldest first
        # (lazily trimmed to those still unresolved with a message still unacked):
        # new messages wait while the next packet would push the oldest out of the
        # peer's ack bitfield. Resends are never held back, so this cannot stall.
        self._reliable_seqs: list[int] = NO_LIST
        # Reliable messages. Ids below _next_send_id have been sent; the pending
        # list holds the encoded messages from _next_send_id on.
        self._next_id = 0
        self._next_send_id = 0
        self._oldest_unacked = 0
        self._pending: list[bytes] = NO_LIST
        # id -> (encoded, times sent, resend due), in id order. _resend_due is at most
        # the earliest due time (exact after each scan, possibly early after acks).
        self._unacked: dict[int, tuple[bytes, int, float]] = NO_DICT
        self._resend_due = INF
        self._buffered_bytes = 0
        self.resent_messages = 0
        # Unreliable messages (encoded, sent once at the next build).
        self._unrel_next = 0
        self._unrel_queue: list[bytes] = NO_LIST

    # --- queueing --------------------------------------------------------------------

    def send_reliable(self, data: bytes) -> None:
        """Queue `data` for channel 1: delivered exactly once, in order.

        Raises `MessageTooLarge` above `max_reliable_message` and `SendQueueFull` when
        queued plus unacknowledged bytes would exceed `max_pending_bytes`.
        """
        size = len(data)
        sizes = self._sizes
        if size > sizes.max_reliable_message:
            raise MessageTooLarge(f"{size} bytes > {sizes.max_reliable_message} (reliable)")
        if self._buffered_bytes + size > sizes.max_pending_bytes:
            raise SendQueueFull(f"{self._buffered_bytes} bytes waiting for acks")
        message_id = self._next_id
        pending = self._pending
        if pending is NO_LIST:
            pending = self._pending = []
        if size <= sizes.single_data:
            encoded = pack_message_header(RELIABLE_INFO | size, message_id & MASK16) + data
            pending.append(encoded)
            self._next_id = message_id + 1
            self._buffered_bytes += len(encoded)
            return
        pieces = fragments(data, RELIABLE_INFO | FRAGMENT_FLAG, message_id, 1, sizes.fragment_data)
        pending.extend(pieces)
        self._buffered_bytes += sum(len(encoded) for encoded in pieces)
        self._next_id = message_id + len(pieces)

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
        sizes = self._sizes
        if size > sizes.max_unreliable_message:
            raise MessageTooLarge(f"{size} bytes > {sizes.max_unreliable_message} (unreliable)")
        sequence = self._unrel_next & MASK16
        self._unrel_next += 1
        queue = self._unrel_queue
        if queue is NO_LIST:
            queue = self._unrel_queue = []
        if size <= sizes.single_data:
            queue.append(pack_message_header(size, sequence) + data)
        else:
            queue.extend(fragments(data, FRAGMENT_FLAG, sequence, 0, sizes.fragment_data))
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
        limit = self._sizes.max_unreliable_message
        if len(data) > limit:
            raise MessageTooLarge(f"{len(data)} bytes > {limit} (unreliable)")
        queue = self._unrel_queue
        if queue:
            self._faults().unreliable_dropped += len(queue)
            queue.clear()
        self.send_unreliable(data)

    # --- building bodies -------------------------------------------------------------

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
            alone = self._build_alone(now)
            if alone is not None:
                self._resume_at = now
                return [alone]
        batch = _BodyBatch()
        if self._resend_due <= now:
            self._add_resends(batch, now)
        # Lists, not deques, for the queues: an empty deque costs half a kilobyte,
        # and a session is idle most of the time.
        if self._unrel_queue and not batch.capped:
            self._add_snapshots(batch, now)
        if self._pending and not batch.capped:
            self._add_new_reliable(batch, now)
        out = batch.out
        if len(batch.parts) > 1 or (not out and self._ack_due <= now):
            out.append(self._seal(batch.parts, batch.ids, now))
        self._resume_at = now + PACING_S if batch.capped else now
        return out

    def _build_alone(self, now: float) -> bytes | None:
        """The body when exactly one message is to go and nothing is to be resent:
        one snapshot (a host's state), or one reliable message (a client's action)
        the windows let go. None for every other case (the general path)."""
        queue = self._unrel_queue
        pending = self._pending
        if not pending:
            if len(queue) == 1:
                encoded = queue[0]
                if BODY_HEADER_SIZE + len(encoded) <= self._sizes.max_body:
                    queue.clear()
                    return self._seal_single(encoded, (), now)
        elif not queue and len(pending) == 1:
            message_id = self._next_send_id
            if message_id < self._oldest_unacked + RECEIVE_WINDOW:
                reliable_seqs = self._trim_reliable_seqs()
                if not reliable_seqs or self._next_seq <= reliable_seqs[0] + ACK_BITS:
                    encoded = pending[0]
                    pending.clear()
                    unacked = self._unacked
                    if unacked is NO_DICT:
                        unacked = self._unacked = {}
                    due = now + self.rto_s
                    unacked[message_id] = (encoded, 1, due)
                    self._next_send_id = message_id + 1
                    if due < self._resend_due:
                        self._resend_due = due
                    return self._seal_single(encoded, (message_id,), now)
        return None

    def _next_body(self, batch: _BodyBatch, now: float) -> bool:
        """Seal the body being filled and begin another; False (and the batch capped)
        if this call has made as many as it may."""
        if len(batch.out) + 1 >= MAX_BODIES_PER_BUILD:
            batch.capped = True
            return False
        batch.out.append(self._seal(batch.parts, batch.ids, now))
        batch.parts = [b""]
        batch.ids = []
        batch.size = BODY_HEADER_SIZE
        return True

    def _add_resends(self, batch: _BodyBatch, now: float) -> None:
        """The reliable messages whose resend time has come, oldest first (in-order
        delivery waits for the oldest missing one), each due again after a backoff."""
        max_body = self._sizes.max_body
        unacked = self._unacked
        rto = self.rto_s
        earliest = INF
        for message_id, (encoded, times, due) in unacked.items():
            if due > now:
                if due < earliest:
                    earliest = due
                continue
            if (
                batch.size + len(encoded) > max_body or len(batch.parts) > MAX_MESSAGES_PER_BODY
            ) and not self._next_body(batch, now):
                earliest = due  # the rest waits for the next call
                break
            batch.parts.append(encoded)
            batch.ids.append(message_id)
            batch.size += len(encoded)
            backoff = rto * (1 << (times if times < 6 else 6))
            due = now + (backoff if backoff < MAX_RTO_S else MAX_RTO_S)
            unacked[message_id] = (encoded, times + 1, due)  # same key: safe mid-loop
            if due < earliest:
                earliest = due
            self.resent_messages += 1
        self._resend_due = earliest

    def _add_snapshots(self, batch: _BodyBatch, now: float) -> None:
        """The queued unreliable messages, each sent this once."""
        max_body = self._sizes.max_body
        queue = self._unrel_queue
        taken = 0
        for encoded in queue:
            if (
                batch.size + len(encoded) > max_body or len(batch.parts) > MAX_MESSAGES_PER_BODY
            ) and not self._next_body(batch, now):
                break
            batch.parts.append(encoded)
            batch.size += len(encoded)
            taken += 1
        if taken == len(queue):
            queue.clear()
        else:
            del queue[:taken]

    def _add_new_reliable(self, batch: _BodyBatch, now: float) -> None:
        """The pending reliable messages the windows let go: at most RECEIVE_WINDOW
        ids past the oldest unacked, and none in a body that would push the oldest
        packet still carrying one out of the peer's ack bitfield."""
        max_body = self._sizes.max_body
        pending = self._pending
        unacked = self._unacked
        if unacked is NO_DICT:
            unacked = self._unacked = {}
        if self._reliable_seqs is NO_LIST:
            # The window check below reads it while _seal appends to it.
            self._reliable_seqs = []
        limit = self._oldest_unacked + RECEIVE_WINDOW
        message_id = self._next_send_id
        due = now + self.rto_s
        reliable_seqs = self._trim_reliable_seqs()
        for encoded in pending:
            if message_id >= limit:
                break
            if (
                batch.size + len(encoded) > max_body or len(batch.parts) > MAX_MESSAGES_PER_BODY
            ) and not self._next_body(batch, now):
                break
            if not batch.ids and reliable_seqs and self._next_seq > reliable_seqs[0] + ACK_BITS:
                break  # wait for acks rather than outrun the peer's ack bitfield
            batch.parts.append(encoded)
            batch.ids.append(message_id)
            batch.size += len(encoded)
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

    def _seal_single(self, encoded: bytes, ids: tuple[int, ...], now: float) -> bytes:
        """_seal for a body of one message (the shorter path of build_bodies)."""
        seq = self._next_seq
        self._next_seq = seq + 1
        sent = self._sent
        if sent is NO_DICT:
            sent = self._sent = {}
        sent[seq] = (now, ids)
        if ids:
            reliable_seqs = self._reliable_seqs
            if reliable_seqs is NO_LIST:
                reliable_seqs = self._reliable_seqs = []
            reliable_seqs.append(seq)
            if len(reliable_seqs) > 2 * MAX_SENT_RECORDS:
                self._trim_reliable_seqs()
        if len(sent) > MAX_SENT_RECORDS:
            del sent[next(iter(sent))]
        return self._ack_header(seq, now) + encoded

    def _seal(self, parts: list[bytes], ids: list[int], now: float) -> bytes:
        """Finish one body: header with the current acks, and remember what it carried."""
        seq = self._next_seq
        self._next_seq = seq + 1
        parts[0] = self._ack_header(seq, now)
        sent = self._sent
        if sent is NO_DICT:
            sent = self._sent = {}
        if ids:
            sent[seq] = (now, tuple(ids))
            reliable_seqs = self._reliable_seqs
            if reliable_seqs is NO_LIST:
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
        return b"".join(parts)

    # --- the window ------------------------------------------------------------------

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

    # --- the peer's acks -------------------------------------------------------------

    def _take_ack(self, ack16: int, ack_bits: int, ack_delay: int, now: float) -> None:
        """Take the acks of a body the peer sent: `ack16`, the packet it names,
        `ack_bits` the 32 before it, `ack_delay` (ms) how long the peer held it."""
        sent = self._sent
        if not sent:
            return
        newest_sent = self._next_seq - 1
        distance = (newest_sent - ack16) & MASK16
        if distance >= 0x8000:
            return  # an ack for a packet we have not sent yet
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
            self._count_lost(lost)

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
            self._resend_due = INF
