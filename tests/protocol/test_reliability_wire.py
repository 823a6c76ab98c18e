"""The body's wire layout (vinom.protocol.reliability_wire): parsing and fragmenting.

The layer's behaviour is tested through `Reliability` (test_reliability*.py);
these pin the two pure steps at its edges on bytes built by hand from
docs/protocol.md section 13.
"""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from vinom.protocol.reliability_wire import (
    BODY_HEADER,
    FRAGMENT_FLAG,
    MAX_MESSAGES_PER_BODY,
    MESSAGE_HEADER,
    RELIABLE_INFO,
    fragments,
    parse_body,
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
