"""The body's wire layout (vinom.protocol.reliability_wire): parsing, fragmenting and
the slim layout.

The layer's behaviour is tested through `Reliability` (test_reliability*.py);
these pin the two pure steps at its edges on bytes built by hand from
docs/protocol.md section 13.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vinom.protocol.reliability_wire import (
    BODY_HEADER,
    FRAGMENT_FLAG,
    MAX_MESSAGES_PER_BODY,
    MESSAGE_HEADER,
    RELIABLE_INFO,
    body_of_slim,
    fragments,
    parse_body,
    slim_body,
)

HEADER = BODY_HEADER.pack(7, 3, 0b101, 12)


class ParseBodyTests(SynchronousTestCase):
    def test_one_reliable_message(self) -> None:
        body = HEADER + MESSAGE_HEADER.pack(RELIABLE_INFO | 5, 42) + b"hello"
        self.assertEqual(
            parse_body(body, 1200), (7, 3, 0b101, 12, [(1, 42, -1, 0, 13, 18)])
        )

    def test_an_ack_only_body_has_no_message(self) -> None:
        self.assertEqual(parse_body(HEADER, 1200), (7, 3, 0b101, 12, []))

    def test_messages_and_a_fragment_in_one_body(self) -> None:
        body = (
            HEADER
            + MESSAGE_HEADER.pack(2, 9) + b"ab"
            + struct.pack("<HHBB", RELIABLE_INFO | FRAGMENT_FLAG | 1, 10, 1, 2) + b"z"
        )  # fmt: skip
        self.assertEqual(
            parse_body(body, 1200)[4],  # type: ignore[index]
            [(0, 9, -1, 0, 13, 15), (1, 10, 1, 2, 21, 22)],
        )

    def test_malformed_bodies(self) -> None:
        for body in [
            HEADER[:8],  # shorter than the header
            HEADER + MESSAGE_HEADER.pack(5, 1) + b"abcd",  # data past the end
            HEADER + MESSAGE_HEADER.pack((2 << 14) | 1, 1) + b"a",  # reserved channel
            HEADER + struct.pack("<HHBB", FRAGMENT_FLAG | 1, 1, 2, 1) + b"a",  # index > last
            HEADER + struct.pack("<HHBB", FRAGMENT_FLAG | 1, 1, 0, 16) + b"a",  # snapshot fragments
            HEADER + MESSAGE_HEADER.pack(0, 1) * (MAX_MESSAGES_PER_BODY + 1),  # too many
            HEADER + b"\x00",  # half a message header
        ]:
            self.assertIsNone(parse_body(body, 1200), body)

    def test_a_body_longer_than_max_body_is_malformed(self) -> None:
        body = HEADER + MESSAGE_HEADER.pack(RELIABLE_INFO | 5, 42) + b"hello"
        self.assertIsNone(parse_body(body, len(body) - 1))


class FragmentsTests(SynchronousTestCase):
    def test_reliable_fragments_take_consecutive_ids(self) -> None:
        info = RELIABLE_INFO | FRAGMENT_FLAG
        self.assertEqual(
            fragments(b"abcdefg", info, 0xFFFF, 1, 3),
            [
                struct.pack("<HHBB", info | 3, 0xFFFF, 0, 2) + b"abc",
                struct.pack("<HHBB", info | 3, 0, 1, 2) + b"def",
                struct.pack("<HHBB", info | 1, 1, 2, 2) + b"g",
            ],
        )

    def test_snapshot_fragments_share_their_sequence(self) -> None:
        self.assertEqual(
            fragments(b"abcd", FRAGMENT_FLAG, 5, 0, 2),
            [
                struct.pack("<HHBB", FRAGMENT_FLAG | 2, 5, 0, 1) + b"ab",
                struct.pack("<HHBB", FRAGMENT_FLAG | 2, 5, 1, 1) + b"cd",
            ],
        )


#: Bodies in the full layout and the slim one (docs/protocol.md section 13.3).
SLIM_EXAMPLES = [
    # One snapshot on a clean path: ack bits all ones, one message (5 bytes fewer).
    ("07000300ffffffff0c" "02000900" "6865", "1007000300" "0c" "0900" "6865"),
    # One reliable message: bit 5 says channel 1.
    ("07000300ffffffff0c" "02400900" "6865", "3007000300" "0c" "0900" "6865"),
    # Two ack bytes not all ones (form bits 1 and 3), two messages.
    ("07000300ff00ff120c" "01000900" "61" "01400a00" "62",
     "0a07000300" "0c" "00" "12" "01000900" "61" "01400a00" "62"),
    # An ack-only body before anything came: ack 0xffff, no bits (all four bytes).
    ("0000ffff00000000" "00", "0f0000ffff" "00" "00000000"),
]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A body of the full layout, as a layer builds it: header, then up to five
    messages of either channel, fragments among them."""
    byte = st.sampled_from([0xFF, 0xFF, 0x00, 0x7F, 0xFE])
    ack_bits = int.from_bytes(bytes(draw(st.lists(byte, min_size=4, max_size=4))), "little")
    body = BODY_HEADER.pack(draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)),
                            ack_bits, draw(st.integers(0, 255)))  # fmt: skip
    for _ in range(draw(st.integers(0, 5))):
        data = draw(st.binary(max_size=40))
        info = (RELIABLE_INFO if draw(st.booleans()) else 0) | len(data)
        message_id = draw(st.integers(0, 0xFFFF))
        if data and draw(st.booleans()):
            last = draw(st.integers(1, 15))
            body += struct.pack("<HHBB", info | FRAGMENT_FLAG, message_id,
                                draw(st.integers(0, last)), last) + data  # fmt: skip
        else:
            body += MESSAGE_HEADER.pack(info, message_id) + data
    return body


class SlimBodyTests(SynchronousTestCase):
    def test_the_documented_examples(self) -> None:
        for full, slim in SLIM_EXAMPLES:
            self.assertEqual(slim_body(bytes.fromhex(full)).hex(), slim, full)
            self.assertEqual(body_of_slim(bytes.fromhex(slim)), bytes.fromhex(full), slim)

    @settings(deadline=None)
    @given(bodies())
    def test_a_body_comes_back_whole_and_no_longer_than_it_saves(self, body: bytes) -> None:
        slim = slim_body(body)
        self.assertEqual(body_of_slim(slim), body)
        parsed = parse_body(body, 8192)
        assert parsed is not None
        _seq, _ack, ack_bits, _delay, messages = parsed
        kept = sum(1 for i in range(4) if (ack_bits >> 8 * i) & 0xFF != 0xFF)
        single = len(messages) == 1 and messages[0][2] == -1
        self.assertEqual(len(body) - len(slim), 3 - kept + 2 * single)

    def test_malformed_slim_bodies(self) -> None:
        for slim in [
            "",
            "1007000300",  # shorter than the slim header
            "4007000300" "0c",  # bit 6 reserved
            "8007000300" "0c",  # bit 7 reserved
            "2007000300" "0c" "0900",  # channel 1 without a single message
            "0f07000300" "0c" "ffff",  # two of the four ack bytes named
            "1007000300" "0c" "09",  # a single message without its id
        ]:
            self.assertIsNone(body_of_slim(bytes.fromhex(slim)), slim)

    @settings(deadline=None)
    @given(st.binary(max_size=64))
    def test_any_bytes_give_a_body_or_none(self, data: bytes) -> None:
        body = body_of_slim(data)
        if body is not None:
            self.assertGreaterEqual(len(body), BODY_HEADER.size)
