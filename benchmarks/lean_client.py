"""A lean client for the data phase of the udp-echo and play loads.

Those scenarios measure the host. Their load process must therefore cost less
per message than the host, or the figure is the load's limit (the issue says
to make the load cheaper rather than report that). `ClientConnection`, which
game clients use, is general: events, timers, a reliability layer with
resends, fragments, statistics. Here, once `ClientConnection` has completed
the handshake, `LeanSession` takes its session over through the public
`ClientConnection.hand_over()` (vinom.protocol.handover) and does only what
these exchanges need, with the same bytes on the wire:

- receive: the packet header, the session's `ReplayWindow`, AES-256-GCM open, the body
  header (recorded for our acks exactly as `Reliability.receive_body` records
  it) and whole messages: channel 0 delivered if newer than the last (latest
  wins), channel 1 in order (early ones held until the gap is filled);
- send: bodies with our packet sequence, the newest packet received and the
  32-bit ack bitfield, and channel-0 messages (`seal`: as `build_bodies` packs
  a queue of snapshots) or one channel-1 message (`send_reliable`, with the
  next message id; `resend` sends it again under a new packet sequence).

What `Reliability` would do besides (remember what each packet carried, take
the peer's acks, sample the RTT, count losses, time resends) never changes a
byte it sends in these exchanges, so it is left out; tests check that both
produce the same datagrams. One timing differs: the ack `Reliability` owes
for a reliable message goes out 10 ms later if nothing else does; the lean
loads send that same body at once when they have nothing else to send. A
fragmented message ends the lean session as `unexpected`: neither bench host
sends one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from vinom.protocol.client import ClientConnection
from vinom.protocol.config import ClientConfig
from vinom.protocol.crypto import InvalidTag
from vinom.protocol.reliability import (
    ACK_BITS,
    ACK_EVERY_BODIES,
    BODY_HEADER,
    BODY_HEADER_SIZE,
    CHANNEL_SHIFT,
    FRAGMENT_FLAG,
    MAX_MESSAGES_PER_BODY,
    MAX_UNRELIABLE_QUEUE,
    MESSAGE_HEADER,
    MESSAGE_HEADER_SIZE,
    RECEIVE_WINDOW,
    RELIABLE_INFO,
    STALE_PACKETS,
)
from vinom.protocol.wire import (
    DISCONNECT,
    HEADER_SIZE,
    KEEPALIVE,
    MAX_BODY,
    MIN_SEALED_PACKET,
    NONCE_DOMAIN_SESSION,
    PAYLOAD,
)

_HEADER = struct.Struct("<BQ")


def handover_config() -> ClientConfig:
    """The config of a connection a `LeanSession` will take over: slim payloads
    (docs/protocol.md 5.10) not offered, since it does not read them (a `compare`
    baseline that predates them has no such option, and never offers them)."""
    try:
        return ClientConfig(slim_payloads=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return ClientConfig()


# A short payload (docs/protocol.md 5.9), written here: a `compare` baseline may
# predate it (its host never sends one, since its client never offers them).
_SHORT_PAYLOAD = 8
_SHORT_HEADER = struct.Struct("<BH")
_MIN_SHORT = _SHORT_HEADER.size + 16
_SEQUENCE = struct.Struct("<Q")
_NONCE = struct.Struct("<IQ")
# The body header, then one message header: the installed vinom's (protocol 2 added
# the ack delay byte; a `compare` baseline may predate it).
_BODY_AND_MESSAGE = struct.Struct(BODY_HEADER.format + MESSAGE_HEADER.format.lstrip("<"))
# The ack_delay this client reports (docs/protocol.md 13.3): it acks at once, when it
# replies or moves next, and keeps no clock per packet, so it says 0 (the host's RTT
# for it then includes the time to its next move, as before protocol version 2).
# Empty on a build whose header has no such field.
_ACK_DELAY: tuple[int, ...] = (0,) if len(BODY_HEADER.unpack(bytes(BODY_HEADER.size))) == 4 else ()
_MASK16 = 0xFFFF
_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_LENGTH_MASK = 0x1FFF
_SINGLE = _BODY_AND_MESSAGE.size  # 13 (12 before protocol 2)
_NOTHING: list[bytes] = []  # never appended to


class LeanSession:
    """The session of a connected `ClientConnection`, carried on by hand (module docstring)."""

    __slots__ = (
        "acks_owed", "body_seq", "clock", "closed", "delivered", "last_reliable", "next_id",
        "recv_any", "recv_at", "recv_bits", "recv_buffer", "recv_latest", "recv_next",
        "reliable_owed", "rx", "short", "tx", "tx_seq", "unexpected", "unrel_next", "window",
    )  # fmt: skip

    def __init__(self, conn: ClientConnection, clock: Callable[[], float] | None = None) -> None:
        # Raises ValueError unless the connection is connected and at rest. With a
        # `clock` (seconds), the ack delay reported is the time since the newest
        # packet arrived, as Reliability reports it; without, 0 (module docstring).
        self.clock = clock
        self.recv_at = 0.0 if clock is None else clock()
        if getattr(conn.config, "slim_payloads", False):
            raise ValueError("a LeanSession reads no slim payloads: connect with handover_config()")
        handover = conn.hand_over()
        layer = handover.reliability
        self.rx = handover.receive_aead
        self.tx = handover.send_aead
        self.tx_seq = handover.next_packet_sequence
        self.window = handover.replay_window
        # A short payload came: ours go short too (as ClientConnection's).
        self.short = getattr(handover, "sends_short", False)
        self.body_seq = layer.next_body_sequence
        self.recv_any = layer.received_any
        self.recv_latest = layer.latest_received
        self.recv_bits = layer.received_bits
        self.unrel_next = layer.next_unreliable_id
        self.delivered = layer.last_unreliable_delivered
        self.next_id = layer.next_reliable_id
        self.last_reliable = b""  # the encoded message send_reliable sent last
        self.recv_next = layer.next_reliable_expected
        self.recv_buffer = dict(layer.held_reliable)
        # A channel-1 message arrived since our last body: an ack is owed.
        self.reliable_owed = layer.reliable_ack_owed
        # Bodies with messages since our last one: at ACK_EVERY_BODIES an ack is owed
        # even with nothing to answer (older snapshots arriving late deliver nothing).
        self.acks_owed = layer.bodies_since_ack
        self.closed = False
        self.unexpected = 0

    @property
    def ack_owed(self) -> bool:
        """An ack-only body is due (`seal([])` makes it): sixteen bodies with messages
        since our last body, or a reliable message since it. `Reliability` sends
        the latter 10 ms after the message if nothing else went meanwhile; the
        lean loads send it at once when they have nothing else to send, which
        gives the host the same body a little earlier."""
        return self.acks_owed >= ACK_EVERY_BODIES or self.reliable_owed

    def receive(self, data: bytes) -> list[bytes]:
        """The messages a datagram from the host delivers, both channels, in order
        (none if it is dropped)."""
        if not data:
            return _NOTHING
        kind = data[0]
        window = self.window
        if kind == _SHORT_PAYLOAD:
            if len(data) < _MIN_SHORT:
                return _NOTHING
            latest = window.latest
            seq = latest + (((data[1] | data[2] << 8) - latest + 0x8000) & _MASK16) - 0x8000
            sealed, associated = data[_SHORT_HEADER.size:], _HEADER.pack(kind, seq)
            kind = PAYLOAD
        else:
            if len(data) < MIN_SEALED_PACKET:
                return _NOTHING
            if kind != PAYLOAD and kind != KEEPALIVE and kind != DISCONNECT:
                return _NOTHING
            seq = _SEQUENCE.unpack_from(data, 1)[0]
            sealed, associated = data[HEADER_SIZE:], data[:HEADER_SIZE]
        if not 0 <= seq <= _MASK64 or window.is_replay(seq):
            return _NOTHING
        try:
            plain = self.rx.decrypt(_NONCE.pack(NONCE_DOMAIN_SESSION, seq), sealed, associated)
        except InvalidTag:
            return _NOTHING
        window.mark(seq)
        if associated[0] == _SHORT_PAYLOAD:
            self.short = True
        if kind != PAYLOAD:
            if kind == DISCONNECT:
                self.closed = True
            return _NOTHING
        total = len(plain)
        if total == BODY_HEADER_SIZE:
            # Ack-only (the host's ack of a resent move, say): recorded for our acks,
            # nothing to deliver, and it owes no ack in return.
            self._record(BODY_HEADER.unpack_from(plain)[0])
            return _NOTHING
        if total < _SINGLE:
            self.unexpected += 1
            self.closed = True
            return _NOTHING
        fields = _BODY_AND_MESSAGE.unpack_from(plain)
        seq16, info, message_id = fields[0], fields[-2], fields[-1]
        found: list[tuple[int, int, int, int]] | None
        if info <= _LENGTH_MASK and _SINGLE + info == total:
            found = [(0, message_id, _SINGLE, total)]  # the common case: one state
        else:
            found = self._parse(plain)
            if found is None:
                # Not whole messages of channels 0 and 1: not these exchanges.
                self.unexpected += 1
                self.closed = True
                return _NOTHING
        if not self._record(seq16):
            return _NOTHING
        self.acks_owed += 1
        out: list[bytes] = []
        for channel, message_id, start, end in found:
            if channel:
                self.reliable_owed = True
                self._receive_reliable(message_id, plain[start:end], out)
                continue
            delivered = self.delivered
            if delivered >= 0 and not 0 < ((message_id - delivered) & _MASK16) < 0x8000:
                continue  # not newer than the last one delivered
            self.delivered = message_id
            out.append(plain[start:end])
        return out

    def _record(self, seq16: int) -> bool:
        """The body's sequence, recorded for our acks (as Reliability._record_body);
        False for a duplicate or a stale one."""
        latest = self.recv_latest
        delta = (seq16 - latest) & _MASK16
        if delta >= 0x8000:
            delta -= 0x10000
        if (not self.recv_any or delta > 0) and self.clock is not None:
            self.recv_at = self.clock()
        if not self.recv_any:
            self.recv_any = True
            self.recv_bits = 0
            self.recv_latest = seq16
        elif delta > 0:
            if delta <= ACK_BITS:
                self.recv_bits = (((self.recv_bits << 1) | 1) << (delta - 1)) & _MASK32
            else:
                self.recv_bits = 0
            self.recv_latest = latest + delta
        elif delta == 0:
            return False
        elif delta >= -ACK_BITS:
            bit = 1 << (-delta - 1)
            if self.recv_bits & bit:
                return False
            self.recv_bits |= bit
        elif delta < -STALE_PACKETS:
            return False
        return True

    def _receive_reliable(self, message_id: int, data: bytes, out: list[bytes]) -> None:
        expected = self.recv_next
        distance = (message_id - expected) & _MASK16
        if distance == 0:
            out.append(data)
            expected += 1
            buffer = self.recv_buffer
            while expected in buffer:
                out.append(buffer.pop(expected))
                expected += 1
            self.recv_next = expected
        elif distance < RECEIVE_WINDOW:
            self.recv_buffer.setdefault(expected + distance, data)
        # else: a duplicate (or beyond the window, which a correct host never sends)

    @staticmethod
    def _parse(plain: bytes) -> list[tuple[int, int, int, int]] | None:
        """(channel, id, start, end) of each message of a body of whole messages on
        channels 0 and 1."""
        found = []
        offset = BODY_HEADER_SIZE
        total = len(plain)
        while offset < total:
            if offset + MESSAGE_HEADER_SIZE > total:
                return None
            info, message_id = MESSAGE_HEADER.unpack_from(plain, offset)
            offset += MESSAGE_HEADER_SIZE
            channel = info >> CHANNEL_SHIFT
            length = info & _LENGTH_MASK
            end = offset + length
            if channel > 1 or info & FRAGMENT_FLAG or end > total:
                return None
            found.append((channel, message_id, offset, end))
            offset = end
        return found if 0 < len(found) <= MAX_MESSAGES_PER_BODY else None

    def seal(self, messages: list[bytes]) -> list[bytes]:
        """The datagrams carrying `messages` on channel 0, packed as `build_bodies` packs
        a queue of snapshots (the newest 64 kept; none above 1163 bytes); with no
        messages, the ack-only body owed, if one is (`ack_owed`)."""
        if not messages:
            if not self.ack_owed:
                return []
            return [self._seal_body(BODY_HEADER.pack(
                self.body_seq & _MASK16, self.recv_latest & _MASK16, self.recv_bits,
                *self._ack_delay(),
            ))]  # fmt: skip
        unrel = self.unrel_next
        self.unrel_next = unrel + len(messages)
        if len(messages) > MAX_UNRELIABLE_QUEUE:
            unrel += len(messages) - MAX_UNRELIABLE_QUEUE
            messages = messages[-MAX_UNRELIABLE_QUEUE:]
        if len(messages) == 1:
            return [self._seal_body(
                _BODY_AND_MESSAGE.pack(
                    self.body_seq & _MASK16, self.recv_latest & _MASK16, self.recv_bits,
                    *self._ack_delay(), len(messages[0]), unrel & _MASK16,
                )
                + messages[0]
            )]  # fmt: skip
        out = []
        parts: list[bytes] = []
        size = BODY_HEADER_SIZE
        for message in messages:
            encoded = MESSAGE_HEADER.pack(len(message), unrel & _MASK16) + message
            unrel += 1
            if parts and (size + len(encoded) > MAX_BODY or len(parts) >= MAX_MESSAGES_PER_BODY):
                out.append(self._seal_parts(parts))
                parts = []
                size = BODY_HEADER_SIZE
            parts.append(encoded)
            size += len(encoded)
        if parts:
            out.append(self._seal_parts(parts))
        return out

    def send_reliable(self, data: bytes) -> bytes:
        """The datagram carrying `data` on channel 1, alone in its body (at most 1163
        bytes), as `build_bodies` sends a single reliable message."""
        encoded = MESSAGE_HEADER.pack(RELIABLE_INFO | len(data), self.next_id & _MASK16) + data
        self.next_id += 1
        self.last_reliable = encoded
        return self._seal_parts([encoded])

    def resend(self) -> bytes:
        """The last reliable message again, in a new packet (its resend)."""
        return self._seal_parts([self.last_reliable])

    def _ack_delay(self) -> tuple[int, ...]:
        """The body header's ack delay field, if the installed protocol has one."""
        if not _ACK_DELAY or self.clock is None or not self.recv_any:
            return _ACK_DELAY
        # As Reliability rounds it: to the nearest ms, saturating at 255.
        held = (self.clock() - self.recv_at) * 1000.0 + 0.5
        return (0 if held < 1.0 else 255 if held >= 255.0 else int(held),)

    def _seal_parts(self, parts: list[bytes]) -> bytes:
        header = BODY_HEADER.pack(self.body_seq & _MASK16, self.recv_latest & _MASK16,
                                  self.recv_bits, *self._ack_delay())
        return self._seal_body(header + b"".join(parts))

    def _seal_body(self, body: bytes) -> bytes:
        self.body_seq += 1
        self.acks_owed = 0
        self.reliable_owed = False
        seq = self.tx_seq
        self.tx_seq = seq + 1
        nonce = _NONCE.pack(NONCE_DOMAIN_SESSION, seq)
        if self.short:
            return (_SHORT_HEADER.pack(_SHORT_PAYLOAD, seq & _MASK16)
                    + self.tx.encrypt(nonce, body, _HEADER.pack(_SHORT_PAYLOAD, seq)))  # fmt: skip
        header = _HEADER.pack(PAYLOAD, seq)
        return header + self.tx.encrypt(nonce, body, header)
