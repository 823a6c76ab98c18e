"""The receiving side of `Reliability`: bodies read, messages delivered in order (sans-I/O).

`ReliabilityReceiver` is the third part of the chain `Reliability` is made of
(reliability_acks.py says why a chain). `receive_body` takes one decrypted body:
it is parsed and checked whole first (reliability_wire.parse_body), its packet
sequence recorded for our acks, the acks it carries handed to the sending side,
and then each message goes

- on channel 1 (reliable), to the application at once if it is the next id
  expected, followed by every later one it unblocks from the reorder buffer;
  into that buffer if it is ahead, within RECEIVE_WINDOW ids; dropped and
  counted if it was delivered already or is beyond the window. A fragmented
  message is put together in order (`Reassembly`) and delivered whole;
- on channel 0 (unreliable), to the application only if it is newer than the
  last snapshot delivered; a fragmented one is collected in any order
  (`PartialSnapshot`, newest wins) and expires if it stops arriving.

What a peer can make this side hold is bounded: the window, the optional limit
on buffered bytes (a body that would overfill it is refused whole, unacked, so
that the peer resends it later), and the receive size limits (a larger message
is consumed and dropped, never held whole).
"""

from __future__ import annotations

from vinom.protocol.reliability_acks import NO_DICT
from vinom.protocol.reliability_send import ReliabilitySender
from vinom.protocol.reliability_wire import (
    ACK_EVERY_BODIES,
    MASK16,
    RECEIVE_WINDOW,
    Message,
    Sizes,
    parse_body,
)


class Reassembly:
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


class PartialSnapshot:
    """The fragments received of one fragmented unreliable message (any order).

    Made per fragmented snapshot, so that a session holds none between them."""

    __slots__ = ("have", "parts", "sequence", "since", "size")

    def __init__(self, sequence: int, last: int, now: float) -> None:
        self.sequence = sequence  # its 16-bit snapshot sequence
        self.parts: list[bytes | None] = [None] * (last + 1)
        self.have = 0  # fragments in parts
        self.size = 0  # bytes in parts
        self.since = now  # when its first fragment came (it expires after a while)


class ReliabilityReceiver(ReliabilitySender):
    """The messages one side receives: reordered, reassembled, delivered once."""

    __slots__ = (
        "_reassembly",
        "_recv_buffer",
        "_recv_buffer_bytes",
        "_recv_next",
        "_unrel_delivered",
        "_unrel_partial",
    )

    def __init__(self, sizes: Sizes, now: float) -> None:
        super().__init__(sizes, now)
        # Reliable. Out-of-order messages wait in _recv_buffer as (fragment index
        # or -1, last index, data); fragments of the message being delivered
        # collect in _reassembly (made for each fragmented message).
        self._recv_next = 0
        self._recv_buffer: dict[int, tuple[int, int, bytes]] = NO_DICT
        self._recv_buffer_bytes = 0
        self._reassembly: Reassembly | None = None
        # Unreliable (a fragmented snapshot collects in _unrel_partial).
        self._unrel_delivered = -1  # 16-bit sequence of the last delivered, -1: none
        self._unrel_partial: PartialSnapshot | None = None

    def receive_body(self, body: bytes, now: float) -> list[tuple[int, bytes]] | None:
        """Process one decrypted body; return the messages it completes, in order.

        Returns None, changing nothing, if the body is malformed. Never raises.
        """
        self._last_now = now
        # Parse and validate everything before changing any state.
        parsed = parse_body(body, self._sizes.max_body)
        if parsed is None:
            self._faults().malformed_bodies += 1
            return None
        seq16, ack16, ack_bits, ack_delay, messages = parsed
        limit = self._sizes.recv_buffer_limit
        if (
            limit is not None
            and self._recv_buffer_bytes + len(body) > limit
            and self._would_overfill(messages)
        ):
            # Not recorded, so not acked: the peer resends what it carried later,
            # once the gap before it is filled and the buffer drained.
            self._faults().refused_bodies += 1
            return []
        if not self._record_packet(seq16, now):
            return []
        self._take_ack(ack16, ack_bits, ack_delay, now)

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
                self._receive_reliable(message_id, index, last, body, start, end, out)
            elif index < 0:
                self._receive_snapshot(message_id, body, start, end, out)
            else:
                self._receive_unreliable_fragment(
                    message_id, index, last, body[start:end], now, out
                )
        if reliable_seen:
            due = now + self._sizes.ack_delay_s
            if due < self._ack_due:
                self._ack_due = due
        return out

    def _receive_reliable(
        self,
        message_id: int,
        index: int,
        last: int,
        body: bytes,
        start: int,
        end: int,
        out: list[tuple[int, bytes]],
    ) -> None:
        """One channel-1 message (`body[start:end]`, id `message_id` in 16 bits):
        delivered with every one it unblocks, held for later, or dropped (counted)."""
        expected = self._recv_next
        distance = (message_id - expected) & MASK16
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
                if buffer is NO_DICT:
                    buffer = self._recv_buffer = {}
                buffer[full_id] = (index, last, body[start:end])
                self._recv_buffer_bytes += end - start
        elif distance >= 0x8000:
            self._faults().duplicates_dropped += 1
        else:
            self._faults().out_of_window += 1

    def _receive_snapshot(
        self, sequence: int, body: bytes, start: int, end: int, out: list[tuple[int, bytes]]
    ) -> None:
        """One whole channel-0 message: delivered if newer than the last one delivered."""
        delivered = self._unrel_delivered
        if end - start > self._sizes.recv_unreliable_limit:
            self._faults().oversized_dropped += 1
        elif delivered < 0 or 0 < ((sequence - delivered) & MASK16) < 0x8000:
            out.append((0, body[start:end]))
            self._unrel_delivered = sequence
        else:
            self._faults().duplicates_dropped += 1  # not newer than what the app has

    def _would_overfill(self, messages: list[Message]) -> bool:
        """Whether a body would push the out-of-order buffer past its limit.

        A body that carries the next expected reliable id is always taken: it
        advances delivery, so refusing it could stall the channel.
        """
        expected = self._recv_next
        buffer = self._recv_buffer
        added = 0
        for channel, message_id, _index, _last, start, end in messages:
            if channel:
                distance = (message_id - expected) & MASK16
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
                self._reassembly = Reassembly(last, [], 0, True)
            else:
                self._reassembly = Reassembly(last, [data], len(data), False)
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
        """One fragment of a snapshot: kept until the snapshot is whole (then
        delivered), unless a newer one has been delivered or is being assembled."""
        delivered = self._unrel_delivered
        if delivered >= 0 and not 0 < ((sequence - delivered) & MASK16) < 0x8000:
            self._faults().duplicates_dropped += 1  # not newer than what the app already has
            return
        partial = self._unrel_partial
        if partial is None or partial.sequence != sequence:
            if partial is not None and 0 < ((partial.sequence - sequence) & MASK16) < 0x8000:
                self._faults().duplicates_dropped += 1  # older than the snapshot being assembled
                return
            partial = self._unrel_partial = PartialSnapshot(sequence, last, now)
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
