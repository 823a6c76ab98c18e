"""The payload body's wire layout and the reliability layer's bounds (sans-I/O).

What `vinom.protocol.reliability` puts on the wire and reads from it, byte for
byte (docs/protocol.md section 13): the body and message headers, the info bits,
the bounds every buffer a peer can fill is held to and the timers, the size
limits a configuration gives (`Sizes`), and the two pure steps at the edges of
the layer: `parse_body`, which checks a whole body and lists its messages
before anything changes, and `fragments`, which splits a message too large for
one body into the messages that carry it. `slim_body` and `body_of_slim`
rewrite a body in the slim layout a slim payload carries (section 13.3) and
back: the layer itself only ever sees the full layout.

The layer itself (reliability.py and the modules it is built from) works on
unbounded ints; only what this module packs carries their low 16 bits.
"""

from __future__ import annotations

import struct

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

INF = float("inf")
MASK16 = 0xFFFF
MASK32 = 0xFFFFFFFF
#: A body of exactly one unfragmented message: header and message header.
SINGLE_MESSAGE_BODY = BODY_HEADER_SIZE + MESSAGE_HEADER_SIZE
pack_body_header = BODY_HEADER.pack
pack_message_header = MESSAGE_HEADER.pack
_unpack_body_header = BODY_HEADER.unpack_from
_unpack_message_header = MESSAGE_HEADER.unpack_from
# A body header and the first message header at once (the single-message case).
_unpack_single_message_body = struct.Struct("<HHIBHH").unpack_from
_pack_fragment_header = FRAGMENT_MESSAGE_HEADER.pack

#: One message of a parsed body: channel, id (16 bits), fragment index (-1: not
#: a fragment), last fragment index, and where its data starts and ends in the body.
Message = tuple[int, int, int, int, int, int]
#: A parsed body: packet sequence, ack, ack bits, ack delay (ms), its messages.
ParsedBody = tuple[int, int, int, int, list[Message]]

# The arguments a `Sizes` is made from, in order (also its key in _SIZES).
SizesKey = tuple[int, int, int, int, float, int | None, int | None, float]


class Sizes:
    """A layer's size limits and ack delays (see `Reliability.__init__`), never changed.

    Thousands of sessions are made with the same few arguments: they share one of
    these (`sizes_for`) instead of each holding ten fields (80 bytes a session).
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
        # differs only in its ack delays (set by `sizes_for`).
        self.key: SizesKey = (max_body, max_reliable_message, max_unreliable_message,
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


_SIZES: dict[SizesKey, Sizes] = {}
# Configurations remembered; a process uses a handful, so this bound only keeps a
# caller that varies them (a test, a fuzzer) from growing the table for ever.
_MAX_SIZES = 64


def sizes_for(
    max_body: int,
    max_reliable_message: int,
    max_unreliable_message: int,
    max_pending_bytes: int,
    ack_delay_s: float,
    max_receive_message: int | None,
    max_receive_buffer: int | None,
    peer_ack_delay_s: float,
) -> Sizes:
    """The shared `Sizes` for these arguments."""
    key = (max_body, max_reliable_message, max_unreliable_message, max_pending_bytes,
           ack_delay_s, max_receive_message, max_receive_buffer,
           peer_ack_delay_s)  # fmt: skip
    sizes = _SIZES.get(key)
    if sizes is None:
        if len(_SIZES) >= _MAX_SIZES:
            _SIZES.clear()
        sizes = _SIZES[key] = Sizes(*key)
    return sizes


def check_ack_delay(name: str, value: float) -> None:
    """Refuse an ack delay outside [0, MAX_ACK_DELAY_S] (NaN included)."""
    if not 0.0 <= value <= MAX_ACK_DELAY_S:
        raise ValueError(f"{name} must be in [0, {MAX_ACK_DELAY_S}] s, not {value}")


def ack_delay_field(held_s: float) -> int:
    """The body header's ack_delay for an ack held `held_s` seconds: whole ms,
    rounded, saturating at ACK_DELAY_FIELD_MAX (negative: 0)."""
    held = held_s * 1000.0 + 0.5
    return 0 if held < 1.0 else ACK_DELAY_FIELD_MAX if held >= 255.0 else int(held)


def parse_body(body: bytes, max_body: int) -> ParsedBody | None:
    """A body's header fields and its messages, or None if it is malformed.

    Checks everything a body can get wrong on its own (lengths, reserved
    channels, fragment headers, the message count), so that the layer changes
    nothing for a body it cannot take whole. Never raises.
    """
    total = len(body)
    # Both sides use the same max_body (it follows from the datagram limit); a
    # longer body is malformed, which also caps what one body can make us hold.
    if total < BODY_HEADER_SIZE or total > max_body:
        return None
    messages: list[Message]
    offset = BODY_HEADER_SIZE
    if total >= SINGLE_MESSAGE_BODY:
        # The common case first: one whole message on channel 0 or 1 (a state, an
        # action) fills the body; one unpack parses it, the loop is skipped.
        seq16, ack16, ack_bits, ack_delay, info, message_id = _unpack_single_message_body(body)
        if info < 0x8000 and not info & FRAGMENT_FLAG and (
            (info & LENGTH_MASK) + SINGLE_MESSAGE_BODY == total
        ):
            return (
                seq16, ack16, ack_bits, ack_delay,
                [(info >> CHANNEL_SHIFT, message_id, -1, 0, SINGLE_MESSAGE_BODY, total)],
            )  # fmt: skip
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
                    return None
            else:
                index = -1
                last = 0
                offset += MESSAGE_HEADER_SIZE
            if info >= 0x8000:  # channels 2 and 3 are reserved
                return None
            end = offset + length
            if end > total:
                return None
            messages.append((channel, message_id, index, last, offset, end))
            offset = end
    except (struct.error, IndexError):
        return None
    if len(messages) > MAX_MESSAGES_PER_BODY:
        return None
    return seq16, ack16, ack_bits, ack_delay, messages


# --- slim bodies (docs/protocol.md section 13.3, "Slim layout") ----------------------

# The form byte: bits 0..3, byte i of ack_bits follows (it is not FF: the bytes
# that are all ones, every byte on a clean path, are left out); bit 4, the body
# is one unfragmented message, sent as its id and data alone (the data runs to
# the end of the body); bit 5, that message is on channel 1. Bits 6 and 7 are 0.
SLIM_ACK_BYTES = 0x0F
SLIM_SINGLE = 0x10
SLIM_RELIABLE = 0x20
_SLIM_RESERVED = 0xC0
SLIM_HEADER_SIZE = 6  # form, packet sequence, ack, ack delay (ms)
# The slim layout is written from slices of the full one, which it keeps in the
# same order, without unpacking them: about 40% less than through struct, on
# every datagram of a session that reads it.
_ALL_ACKED = b"\xff\xff\xff\xff"
_BYTES = [bytes((i,)) for i in range(256)]
_pack_info = struct.Struct("<H").pack
# The message id's offset in a single-message body of the full layout.
_SINGLE_ID = BODY_HEADER_SIZE + 2


def slim_body(body: bytes) -> bytes:
    """`body`, a body this side's layer built (at least its 9-byte header: else
    ValueError), in the slim layout: 5 bytes shorter for one message on a clean
    path, at worst (four ack bytes named, several messages) 1 byte longer."""
    if len(body) < BODY_HEADER_SIZE:
        raise ValueError("a body has at least its 9-byte header")
    form = 0
    kept = b""
    if body[4:8] != _ALL_ACKED:
        held = bytearray()
        for i in range(4):
            byte = body[4 + i]
            if byte != 0xFF:
                form |= 1 << i
                held.append(byte)
        kept = bytes(held)
    total = len(body)
    rest = BODY_HEADER_SIZE
    if total >= SINGLE_MESSAGE_BODY:
        info = body[BODY_HEADER_SIZE] | body[BODY_HEADER_SIZE + 1] << 8
        if info < 0x8000 and not info & FRAGMENT_FLAG and (
            (info & LENGTH_MASK) + SINGLE_MESSAGE_BODY == total
        ):
            form |= SLIM_SINGLE | (SLIM_RELIABLE if info >= RELIABLE_INFO else 0)
            rest = _SINGLE_ID  # the message's id, then its data
    # form, sequence and ack, ack delay, the ack bytes named, then the rest.
    return b"".join((_BYTES[form], body[:4], body[8:9], kept, body[rest:]))


def body_of_slim(slim: bytes) -> bytes | None:
    """The body (full layout) a slim body stands for, or None if the slim layout
    itself is malformed (reserved bits, too short); `parse_body` judges the rest.
    Never raises."""
    total = len(slim)
    if total < SLIM_HEADER_SIZE:
        return None
    form = slim[0]
    if form & _SLIM_RESERVED or (form & SLIM_RELIABLE and not form & SLIM_SINGLE):
        return None
    offset = SLIM_HEADER_SIZE
    acked = _ALL_ACKED
    if form & SLIM_ACK_BYTES:
        bits = bytearray(_ALL_ACKED)
        for i in range(4):
            if form >> i & 1:
                if offset >= total:
                    return None
                bits[i] = slim[offset]
                offset += 1
        acked = bytes(bits)
    if form & SLIM_SINGLE:
        length = total - offset - 2
        if length < 0 or length > LENGTH_MASK:
            return None
        info = (RELIABLE_INFO if form & SLIM_RELIABLE else 0) | length
        return b"".join((slim[1:5], acked, slim[5:6], _pack_info(info), slim[offset:]))
    return b"".join((slim[1:5], acked, slim[5:6], slim[offset:]))


def fragments(data: bytes, info: int, message_id: int, step: int, chunk: int) -> list[bytes]:
    """`data` split into fragment messages of at most `chunk` bytes each.

    `info`: the channel's bits and FRAGMENT_FLAG; the first fragment takes
    `message_id` and each next one `step` more (1: reliable fragments take
    consecutive ids; 0: a snapshot's all share its sequence).
    """
    last = (len(data) - 1) // chunk
    encoded = []
    for index in range(last + 1):
        piece = data[index * chunk : (index + 1) * chunk]
        encoded.append(
            _pack_fragment_header(info | len(piece), message_id & MASK16, index, last) + piece
        )
        message_id += step
    return encoded
