"""Unit tests for vinom.protocol.reliability: exact bytes, acks, timers, windows, limits."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

from twisted.trial.unittest import TestCase

from tests.support.vectors import unhex, vectors
from vinom.protocol.events import RELIABLE
from vinom.protocol.reliability import (
    ACK_BITS,
    ACK_EVERY_BODIES,
    BODY_HEADER,
    DEFAULT_ACK_DELAY_S,
    INITIAL_RTO_S,
    MAX_MESSAGES_PER_BODY,
    MAX_RTO_S,
    MAX_SENT_RECORDS,
    MIN_RTO_S,
    RECEIVE_WINDOW,
    MessageTooLarge,
    Reliability,
    SendQueueFull,
)


def endpoint(max_body: int = 1150, now: float = 0.0, **kwargs: Any) -> Reliability:
    return Reliability(max_body=max_body, now=now, **kwargs)


def timer(side: Reliability) -> float:
    when = side.next_timer()
    assert when is not None
    return when


def header(body: bytes) -> tuple[int, int, int]:
    seq, ack, bits, _delay = BODY_HEADER.unpack_from(body, 0)
    return seq, ack, bits


def ack_delay_field(body: bytes) -> int:
    """The body header's ack_delay byte (ms)."""
    return body[8]


def body(seq: int, ack: int = 0xFFFF, bits: int = 0, *messages: bytes, delay: int = 0) -> bytes:
    """A hand-made body: header (ack delay `delay` ms) plus already encoded messages."""
    return BODY_HEADER.pack(seq, ack, bits, delay) + b"".join(messages)


def reliable(message_id: int, data: bytes) -> bytes:
    return struct.pack("<HH", 0x4000 | len(data), message_id) + data


def unreliable(sequence: int, data: bytes) -> bytes:
    return struct.pack("<HH", len(data), sequence) + data


def fragment(channel: int, message_id: int, index: int, last: int, data: bytes) -> bytes:
    return struct.pack("<HHBB", channel << 14 | 0x2000 | len(data), message_id, index, last) + data


def deliver(
    source: Reliability, target: Reliability, now: float
) -> list[tuple[int, bytes]]:
    """Move everything `source` has due at `now` to `target`; return what it delivers."""
    delivered: list[tuple[int, bytes]] = []
    for item in source.build_bodies(now):
        result = target.receive_body(item, now)
        assert result is not None
        delivered.extend(result)
    return delivered


class ConstructionTests(TestCase):
    def test_max_body_bounds(self) -> None:
        for bad in (0, 31, 8193, 65536):
            with self.subTest(max_body=bad):
                self.assertRaises(ValueError, Reliability, max_body=bad, now=0.0)
        endpoint(max_body=32)
        endpoint(max_body=8192)

    def test_message_limits_follow_the_body_size(self) -> None:
        # 256 fragments of (1150 - 9 - 6) bytes exceed 256 KiB, so the default holds.
        self.assertEqual(endpoint().max_reliable_message, 256 * 1024)
        self.assertEqual(endpoint().max_unreliable_message, 16 * 1024)
        # With 32-byte bodies a fragment carries 17 bytes: 256 and 16 fragments.
        small = endpoint(max_body=32)
        self.assertEqual(small.max_reliable_message, 256 * 17)
        self.assertEqual(small.max_unreliable_message, 16 * 17)

    def test_idle_endpoint_has_nothing_to_do(self) -> None:
        side = endpoint()
        self.assertEqual(side.build_bodies(5.0), [])
        self.assertIsNone(side.next_timer())
        side.handle_timer(6.0)
        self.assertEqual(side.build_bodies(6.0), [])


class LayoutTests(TestCase):
    """Exact bytes beyond the test vectors (those are `VectorTests`)."""

    def test_ack_only_body(self) -> None:
        side = endpoint()
        side.receive_body(body(0, 0xFFFF, 0, reliable(0, b"x")), 1.0)
        # The ack delay byte says the ack was held 10 ms.
        self.assertEqual(
            side.build_bodies(1.0 + DEFAULT_ACK_DELAY_S), [bytes(8) + bytes([10])]
        )

    def test_unreliable_fragments_share_one_sequence(self) -> None:
        side = endpoint(max_body=32)
        side.send_unreliable(b"a")
        side.send_unreliable(bytes(20))  # 19 would fit one body unfragmented
        bodies = side.build_bodies(0.0)
        self.assertEqual(
            bodies,
            [
                bytes.fromhex("0000ffff0000000000" "01000000" "61"),
                bytes.fromhex("0100ffff0000000000" "112001000001") + bytes(17),
                bytes.fromhex("0200ffff0000000000" "032001000101") + bytes(3),
            ],
        )

    def test_single_message_exactly_fills_a_body(self) -> None:
        side = endpoint(max_body=32)
        side.send_reliable(bytes(19))  # 9 + 4 + 19 = 32: not fragmented
        [only] = side.build_bodies(0.0)
        self.assertEqual(len(only), 32)
        self.assertEqual(only[9:13], bytes.fromhex("13400000"))
        side.send_reliable(bytes(20))  # one more byte: two fragments (17 + 3)
        self.assertEqual([len(b) for b in side.build_bodies(0.0)], [32, 18])

    def test_bodies_never_exceed_max_body(self) -> None:
        side = endpoint(max_body=100)
        for size in (0, 1, 50, 87, 88, 89, 200, 1000):
            side.send_reliable(bytes(size))
            side.send_unreliable(bytes(size // 2))
        bodies = side.build_bodies(0.0)
        self.assertTrue(bodies)
        self.assertLessEqual(max(len(b) for b in bodies), 100)


class AckTests(TestCase):
    def test_ack_and_bitfield_name_the_received_packets(self) -> None:
        side = endpoint()
        for seq in (0, 1, 3):
            self.assertEqual(side.receive_body(body(seq, 0xFFFF, 0, unreliable(seq, b"")), 0.0),
                             [(0, b"")])
        side.send_unreliable(b"")
        # ack 3; bit 0 is packet 2 (missing), bit 1 packet 1, bit 2 packet 0.
        self.assertEqual(header(side.build_bodies(0.0)[0]), (0, 3, 0b110))

    def test_late_packet_fills_its_bit(self) -> None:
        side = endpoint()
        for seq in (0, 1, 3, 2):
            side.receive_body(body(seq, 0xFFFF, 0, unreliable(seq, b"")), 0.0)
        side.send_unreliable(b"")
        self.assertEqual(header(side.build_bodies(0.0)[0]), (0, 3, 0b111))

    def test_a_gap_wider_than_the_bitfield_clears_it(self) -> None:
        side = endpoint()
        side.receive_body(body(0), 0.0)
        side.receive_body(body(ACK_BITS + 1), 0.0)
        side.send_unreliable(b"")
        self.assertEqual(header(side.build_bodies(0.0)[0])[1:], (ACK_BITS + 1, 0))
        side.receive_body(body(ACK_BITS), 0.0)
        side.send_unreliable(b"")
        self.assertEqual(header(side.build_bodies(0.0)[0])[1:], (ACK_BITS + 1, 1))

    def test_reliable_message_owes_an_ack_after_the_delay(self) -> None:
        side = endpoint()
        self.assertEqual(side.receive_body(body(0, 0xFFFF, 0, reliable(0, b"m")), 1.0),
                         [(1, b"m")])
        self.assertEqual(side.next_timer(), 1.0 + DEFAULT_ACK_DELAY_S)
        self.assertEqual(side.build_bodies(1.005), [])
        [ack] = side.build_bodies(1.0 + DEFAULT_ACK_DELAY_S)
        self.assertEqual(header(ack), (0, 0, 0))
        self.assertIsNone(side.next_timer())
        self.assertEqual(side.build_bodies(2.0), [])

    def test_outgoing_messages_carry_the_ack_without_an_extra_body(self) -> None:
        side = endpoint()
        side.receive_body(body(0, 0xFFFF, 0, reliable(0, b"m")), 1.0)
        side.send_unreliable(b"state")
        [reply] = side.build_bodies(1.001)
        self.assertEqual(header(reply), (0, 0, 0))
        self.assertEqual(side.build_bodies(2.0), [])
        self.assertIsNone(side.next_timer())

    def test_unreliable_traffic_is_acked_every_few_bodies(self) -> None:
        side = endpoint()
        for seq in range(ACK_EVERY_BODIES - 1):
            side.receive_body(body(seq, 0xFFFF, 0, unreliable(seq, b"s")), 0.0)
        self.assertIsNone(side.next_timer())
        self.assertEqual(side.build_bodies(1.0), [])
        side.receive_body(body(ACK_EVERY_BODIES - 1, 0xFFFF, 0, unreliable(99, b"s")), 1.0)
        self.assertEqual(side.next_timer(), 1.0)
        [ack] = side.build_bodies(1.0)
        self.assertEqual(header(ack), (0, ACK_EVERY_BODIES - 1, 0x7FFF))

    def test_ack_only_bodies_do_not_owe_acks(self) -> None:
        side = endpoint()
        for seq in range(3 * ACK_EVERY_BODIES):
            self.assertEqual(side.receive_body(body(seq), 0.0), [])
        self.assertIsNone(side.next_timer())

    def test_acked_messages_are_not_resent(self) -> None:
        a, b = endpoint(), endpoint()
        a.send_reliable(b"one")
        self.assertEqual(deliver(a, b, 0.0), [(1, b"one")])
        self.assertEqual(deliver(b, a, 0.01), [])
        self.assertEqual(a.buffered_bytes, 0)
        self.assertIsNone(a.next_timer())
        self.assertEqual(a.build_bodies(10.0), [])
        self.assertEqual(a.resent_messages, 0)

    def test_ack_for_an_unsent_packet_is_ignored(self) -> None:
        side = endpoint()
        side.send_reliable(b"x")
        side.build_bodies(0.0)
        self.assertEqual(side.receive_body(body(0, 5, 0xFFFFFFFF), 0.01), [])
        self.assertEqual(side.acked_packets, 0)
        self.assertEqual(side.buffered_bytes, 4 + 1)


def exchange(
    a: Reliability, b: Reliability, sent: float, path_s: float, held_s: float = 0.0
) -> None:
    """`a` sends a reliable ping at `sent`; `b` gets it `path_s / 2` later, holds
    its ack `held_s` (then sends a snapshot carrying it, or an ack-only body if
    `held_s` is its ack delay), and its reply reaches `a` `path_s / 2` after it
    leaves."""
    a.send_reliable(b"ping")
    arrives = sent + path_s / 2
    for item in a.build_bodies(sent):
        b.receive_body(item, arrives)
    if held_s < b.ack_delay_s:
        b.send_unreliable(b"pong")  # the ack rides on it
    replies = b.build_bodies(arrives + held_s)
    assert replies, "b owes an ack"
    for item in replies:
        a.receive_body(item, arrives + held_s + path_s / 2)


class RoundTripTimeTests(TestCase):
    def test_first_sample_and_rto(self) -> None:
        a, b = endpoint(), endpoint()
        exchange(a, b, 0.0, 0.1, held_s=DEFAULT_ACK_DELAY_S)
        self.assertEqual(a.rtt_samples, 1)
        self.assertAlmostEqual(a.rtt_s, 0.1)
        self.assertAlmostEqual(a.min_rtt_s, 0.1)
        self.assertAlmostEqual(a.rttvar, 0.05)
        # The peer's ack delay (default 10 ms) is part of the RTO.
        self.assertAlmostEqual(a.rto_s, 0.1 + 4 * 0.05 + DEFAULT_ACK_DELAY_S)

    def test_smoothing(self) -> None:
        a, b = endpoint(), endpoint()
        exchange(a, b, 0.0, 0.1)
        exchange(a, b, 1.0, 0.2)
        # RFC 6298: rttvar = 3/4 * 0.05 + 1/4 * |0.1 - 0.2|, srtt = 7/8 * 0.1 + 1/8 * 0.2
        self.assertAlmostEqual(a.rttvar, 0.0625)
        self.assertAlmostEqual(a.rtt_s, 0.1125)
        self.assertAlmostEqual(a.min_rtt_s, 0.1)

    def test_rto_is_clamped(self) -> None:
        a, b = endpoint(), endpoint()
        exchange(a, b, 0.0, 0.0)
        self.assertEqual(a.rto_s, MIN_RTO_S)
        slow_a, slow_b = endpoint(), endpoint()
        exchange(slow_a, slow_b, 0.0, 3.0)
        self.assertEqual(slow_a.rto_s, MAX_RTO_S)

    def test_a_peer_holding_its_ack_50_ms_does_not_inflate_the_rtt(self) -> None:
        # The peer holds every ack 50 ms (its tick); the path is 20 ms. Without the
        # reported delay left out the estimate would read 70 ms.
        a = endpoint(peer_ack_delay_s=0.05)
        b = endpoint(ack_delay_s=0.05)
        now = 0.0
        for _ in range(20):
            exchange(a, b, now, 0.02, held_s=0.05)
            now += 0.1
        self.assertEqual(a.rtt_samples, 20)
        self.assertAlmostEqual(a.rtt_s, 0.02, delta=0.002)
        self.assertAlmostEqual(a.min_rtt_s, 0.02, delta=0.002)
        # The RTO allows for the peer's hold instead.
        self.assertAlmostEqual(a.rto_s, a.rtt_s + 4 * a.rttvar + 0.05)

    def test_the_ack_delay_field_says_how_long_the_ack_was_held(self) -> None:
        side = endpoint(ack_delay_s=0.1)
        side.receive_body(body(0, 0xFFFF, 0, reliable(0, b"x")), 1.0)
        for held, field in ((0.0, 0), (0.0004, 0), (0.0006, 1), (0.0374, 37), (0.1, 100)):
            side.send_unreliable(b"s")
            [sent] = side.build_bodies(1.0 + held)
            self.assertEqual(ack_delay_field(sent), field, held)
        # Before any body arrived there is no ack to hold: 0, whatever the time.
        fresh = endpoint()
        fresh.send_unreliable(b"s")
        self.assertEqual(ack_delay_field(fresh.build_bodies(50.0)[0]), 0)

    def test_the_ack_delay_field_saturates_and_then_gives_no_sample(self) -> None:
        a, b = endpoint(), endpoint()
        a.send_unreliable(b"state")
        deliver(a, b, 0.0)
        b.send_unreliable(b"state")  # b's next body comes 0.5 s later: 255 ms or more
        [late] = b.build_bodies(0.5)
        self.assertEqual(ack_delay_field(late), 255)
        a.receive_body(late, 0.5)
        self.assertEqual(a.acked_packets, 1)
        self.assertEqual(a.rtt_samples, 0)
        self.assertEqual(a.rto_s, INITIAL_RTO_S)

    def test_unreliable_only_packets_give_samples_now(self) -> None:
        # Their acks may ride late on the peer's next body, but the delay is reported.
        a, b = endpoint(), endpoint()
        a.send_unreliable(b"state")
        for item in a.build_bodies(0.0):
            b.receive_body(item, 0.015)
        b.send_unreliable(b"state")  # held 40 ms, then 15 ms back
        for item in b.build_bodies(0.055):
            a.receive_body(item, 0.07)
        self.assertEqual(a.rtt_samples, 1)
        self.assertAlmostEqual(a.rtt_s, 0.03)

    def test_a_delay_that_would_take_the_sample_below_min_rtt_is_not_believed(self) -> None:
        a, b = endpoint(), endpoint(ack_delay_s=0.1)
        exchange(a, b, 0.0, 0.04, held_s=0.01)
        self.assertAlmostEqual(a.min_rtt_s, 0.04)
        # A body claiming a 60 ms hold after a 70 ms round trip says the path took
        # 10 ms: more than one field unit below min_rtt, so the raw 70 ms is used.
        a.send_unreliable(b"s")
        [sent] = a.build_bodies(1.0)
        b.receive_body(sent, 1.0)
        b.send_unreliable(b"s")
        [reply] = b.build_bodies(1.0)
        forged = reply[:8] + bytes([60]) + reply[9:]
        a.receive_body(forged, 1.07)
        self.assertEqual(a.rtt_samples, 2)
        self.assertAlmostEqual(a.rtt_s, 0.04 + (0.07 - 0.04) / 8)
        self.assertAlmostEqual(a.min_rtt_s, 0.04)

    def test_set_ack_delays(self) -> None:
        a, b = endpoint(), endpoint()
        exchange(a, b, 0.0, 0.04)
        rto = a.rto_s
        # own: b holds an owed ack 50 ms now; peer: a's RTO allows for 50 ms.
        b.set_ack_delays(0.05, DEFAULT_ACK_DELAY_S)
        a.set_ack_delays(DEFAULT_ACK_DELAY_S, 0.05)
        self.assertEqual((b.ack_delay_s, b.peer_ack_delay_s), (0.05, DEFAULT_ACK_DELAY_S))
        self.assertAlmostEqual(a.rto_s, rto + 0.05 - DEFAULT_ACK_DELAY_S)
        a.send_reliable(b"ping")
        for item in a.build_bodies(1.0):
            b.receive_body(item, 1.0)
        self.assertAlmostEqual(timer(b), 1.05)
        self.assertEqual(b.build_bodies(1.049), [])
        [ack] = b.build_bodies(1.05)
        self.assertEqual(ack_delay_field(ack), 50)
        # The other limits are kept, and sessions with the same delays share them.
        c = endpoint(max_receive_message=100)
        c.set_ack_delays(0.05, DEFAULT_ACK_DELAY_S)
        self.assertEqual(c.max_reliable_message, a.max_reliable_message)
        sender = endpoint()
        sender.send_reliable(bytes(101))
        self.assertEqual(deliver(sender, c, 2.0), [])
        self.assertEqual(c.oversized_dropped, 1)
        for bad in (-0.001, 0.1001, float("nan")):
            self.assertRaises(ValueError, a.set_ack_delays, bad, 0.01)
            self.assertRaises(ValueError, a.set_ack_delays, 0.01, bad)
            self.assertRaises(ValueError, endpoint, ack_delay_s=bad)
            self.assertRaises(ValueError, endpoint, peer_ack_delay_s=bad)
        a.set_ack_delays(0.0, 0.1)  # both ends of the range


class ResendTests(TestCase):
    def test_resend_after_rto_with_backoff(self) -> None:
        side = endpoint()
        side.send_reliable(b"lost")
        [first] = side.build_bodies(0.0)
        self.assertEqual(side.next_timer(), INITIAL_RTO_S)
        self.assertEqual(side.build_bodies(INITIAL_RTO_S - 0.001), [])
        [second] = side.build_bodies(INITIAL_RTO_S)
        self.assertEqual(header(second)[0], 1)
        self.assertEqual(second[9:], first[9:])  # same message id and bytes
        self.assertEqual(side.resent_messages, 1)
        self.assertAlmostEqual(timer(side), INITIAL_RTO_S + 2 * INITIAL_RTO_S)
        self.assertEqual(len(side.build_bodies(3 * INITIAL_RTO_S)), 1)
        self.assertAlmostEqual(timer(side), 3 * INITIAL_RTO_S + 4 * INITIAL_RTO_S)
        # The back-off stops at MAX_RTO_S.
        side.build_bodies(7 * INITIAL_RTO_S)
        self.assertAlmostEqual(timer(side), 7 * INITIAL_RTO_S + MAX_RTO_S)

    def test_resend_is_delivered_once(self) -> None:
        a, b = endpoint(), endpoint()
        a.send_reliable(b"m")
        [first] = a.build_bodies(0.0)
        [again] = a.build_bodies(INITIAL_RTO_S)
        self.assertEqual(b.receive_body(again, 0.3), [(1, b"m")])
        self.assertEqual(b.receive_body(first, 0.3), [])
        self.assertEqual(b.duplicates_dropped, 1)

    def test_duplicate_packet_is_dropped(self) -> None:
        a, b = endpoint(), endpoint()
        a.send_reliable(b"m")
        a.send_unreliable(b"s")
        [item] = a.build_bodies(0.0)
        self.assertEqual(b.receive_body(item, 0.0), [(0, b"s"), (1, b"m")])
        self.assertEqual(b.receive_body(item, 0.0), [])
        self.assertEqual(b.received_bodies, 1)
        self.assertEqual(b.duplicates_dropped, 1)

    def test_lost_packets_are_counted_when_they_leave_the_bitfield(self) -> None:
        a, b = endpoint(), endpoint()
        now = 0.0
        for n in range(ACK_BITS + 2):
            a.send_unreliable(b"s")
            [item] = a.build_bodies(now)
            if n != 0:
                b.receive_body(item, now)
            now += 0.01
        b.send_unreliable(b"ack")
        deliver(b, a, now)
        self.assertEqual(a.lost_packets, 1)
        self.assertEqual(a.acked_packets, ACK_BITS + 1)
        self.assertGreater(a.loss, 0.0)
        self.assertLess(a.loss, 0.05)


class OrderTests(TestCase):
    def test_out_of_order_messages_wait_for_the_gap(self) -> None:
        a, b = endpoint(max_body=32), endpoint()
        for text in (b"first", b"second", b"third"):
            a.send_reliable(text.ljust(19, b"."))  # one message per 32-byte body
        one, two, three = a.build_bodies(0.0)
        self.assertEqual(b.receive_body(three, 0.0), [])
        self.assertEqual(b.receive_body(two, 0.0), [])
        self.assertEqual(b.receive_body(one, 0.0),
                         [(1, b"first" + b"." * 14), (1, b"second" + b"." * 13),
                          (1, b"third" + b"." * 14)])

    def test_unreliable_never_goes_backwards(self) -> None:
        a, b = endpoint(), endpoint()
        a.send_unreliable(b"v1")
        [v1] = a.build_bodies(0.0)
        a.send_unreliable(b"v2")
        [v2] = a.build_bodies(0.0)
        self.assertEqual(b.receive_body(v2, 0.0), [(0, b"v2")])
        self.assertEqual(b.receive_body(v1, 0.0), [])
        self.assertEqual(b.duplicates_dropped, 1)

    def test_unreliable_sequence_wraps(self) -> None:
        side = endpoint()
        self.assertEqual(side.receive_body(body(0, 0xFFFF, 0, unreliable(0xFFFE, b"a")), 0.0),
                         [(0, b"a")])
        self.assertEqual(side.receive_body(body(1, 0xFFFF, 0, unreliable(0xFFFF, b"b")), 0.0),
                         [(0, b"b")])
        self.assertEqual(side.receive_body(body(2, 0xFFFF, 0, unreliable(0, b"c")), 0.0),
                         [(0, b"c")])
        self.assertEqual(side.receive_body(body(3, 0xFFFF, 0, unreliable(0xFFFF, b"old")), 0.0),
                         [])

    def test_reliable_ids_and_packet_sequences_wrap(self) -> None:
        # 70,000 messages in 1,100 bodies (64 each) and 70,000 one-message bodies.
        a, b = endpoint(), endpoint()
        now = 0.0
        expected = 0
        for batch in range(1100):
            for n in range(64):
                a.send_reliable(struct.pack("<I", batch * 64 + n))
            for _channel, data in deliver(a, b, now):
                self.assertEqual(struct.unpack("<I", data)[0], expected)
                expected += 1
            deliver(b, a, now + 0.001)
            now += 0.01
        self.assertEqual(expected, 1100 * 64)
        for n in range(70_000):
            a.send_reliable(struct.pack("<I", n))
            self.assertEqual(deliver(a, b, now), [(1, struct.pack("<I", n))])
            deliver(b, a, now)
            now += 0.001
        deliver(b, a, now + DEFAULT_ACK_DELAY_S)
        self.assertEqual(a.buffered_bytes, 0)
        self.assertEqual(a.resent_messages, 0)
        self.assertEqual(a.sent_bodies, 1100 + 70_000)
        self.assertEqual(b.duplicates_dropped + b.out_of_window + b.stale_bodies, 0)


class WindowTests(TestCase):
    def test_sender_keeps_at_most_a_window_of_ids_outstanding(self) -> None:
        side = endpoint()
        for n in range(RECEIVE_WINDOW + 44):
            side.send_reliable(bytes([n % 256]))
        sent = sum((len(b) - BODY_HEADER.size) // 5 for b in side.build_bodies(0.0))
        self.assertEqual(sent, RECEIVE_WINDOW)
        self.assertIsNone(side.build_bodies(0.0) or None)
        self.assertEqual(side.next_timer(), INITIAL_RTO_S)  # only the resend timer

    def test_sender_waits_rather_than_outrun_the_ack_bitfield(self) -> None:
        side = endpoint(max_body=64)
        for _ in range(50):
            side.send_reliable(bytes(51))  # one per body (9 + 4 + 51 = 64)
        self.assertEqual(len(side.build_bodies(0.0)), ACK_BITS + 1)
        self.assertEqual(side.build_bodies(0.0), [])

    def test_window_opens_when_acks_arrive(self) -> None:
        a, b = endpoint(max_body=64), endpoint(max_body=64)
        for n in range(50):
            a.send_reliable(bytes([n]) * 51)
        got = deliver(a, b, 0.0)
        self.assertEqual(len(got), ACK_BITS + 1)
        deliver(b, a, 0.01)
        self.assertEqual(a.next_timer(), 0.01)  # as soon as possible
        got += deliver(a, b, 0.01)
        self.assertEqual([data[0] for _, data in got], list(range(50)))

    def test_receiver_ignores_ids_beyond_its_window(self) -> None:
        side = endpoint()
        self.assertEqual(side.receive_body(body(0, 0xFFFF, 0, reliable(RECEIVE_WINDOW, b"x")),
                                           0.0), [])
        self.assertEqual(side.out_of_window, 1)
        self.assertEqual(side.receive_buffered_bytes, 0)
        self.assertEqual(side.receive_body(body(1, 0xFFFF, 0,
                                                reliable(RECEIVE_WINDOW - 1, b"y")), 0.0), [])
        self.assertEqual(side.receive_buffered_bytes, 1)

    def test_stale_bodies_are_ignored(self) -> None:
        side = endpoint()
        side.receive_body(body(300), 0.0)
        self.assertEqual(side.receive_body(body(300 - 257, 0xFFFF, 0, reliable(0, b"x")), 0.0),
                         [])
        self.assertEqual(side.stale_bodies, 1)
        self.assertEqual(side.receive_body(body(300 - 256, 0xFFFF, 0, reliable(0, b"x")), 0.0),
                         [(1, b"x")])

    def test_messages_per_body_are_limited(self) -> None:
        side = endpoint()
        for _ in range(MAX_MESSAGES_PER_BODY + 1):
            side.send_reliable(b"")
        self.assertEqual([len(b) for b in side.build_bodies(0.0)],
                         [9 + 4 * MAX_MESSAGES_PER_BODY, 9 + 4])
        receiver = endpoint()
        too_many = body(0, 0xFFFF, 0, *[unreliable(n, b"") for n in range(65)])
        self.assertIsNone(receiver.receive_body(too_many, 0.0))


class FragmentTests(TestCase):
    def test_large_reliable_message_reassembles(self) -> None:
        a, b = endpoint(), endpoint()
        data = bytes(range(256)) * 1024  # 256 KiB
        a.send_reliable(data)
        got: list[tuple[int, bytes]] = []
        now = 0.0
        while not got:
            got += deliver(a, b, now)
            deliver(b, a, now + 0.005)
            now += 0.01
        self.assertEqual(got, [(1, data)])
        self.assertEqual(a.resent_messages, 0)
        self.assertEqual(a.lost_packets, 0)

    def test_large_unreliable_message_reassembles_in_any_order(self) -> None:
        a, b = endpoint(max_body=64), endpoint(max_body=64)
        data = bytes(range(196))
        a.send_unreliable(data)
        bodies = a.build_bodies(0.0)
        self.assertEqual(len(bodies), 4)  # 49 data bytes per fragment
        got: list[tuple[int, bytes]] = []
        for item in reversed(bodies):
            got += b.receive_body(item, 0.0) or []
        self.assertEqual(got, [(0, data)])

    def test_newer_snapshot_replaces_an_incomplete_one(self) -> None:
        a, b = endpoint(max_body=64), endpoint(max_body=64)
        a.send_unreliable(b"A" * 98)  # two fragments of 49 bytes
        old = a.build_bodies(0.0)
        a.send_unreliable(b"B" * 98)
        new = a.build_bodies(0.0)
        self.assertEqual(b.receive_body(old[0], 0.0), [])
        self.assertEqual(b.receive_body(new[0], 0.0), [])
        self.assertEqual(b.receive_body(old[1], 0.0), [])  # older: dropped
        self.assertEqual(b.receive_body(new[1], 0.0), [(0, b"B" * 98)])

    def test_incomplete_snapshot_expires(self) -> None:
        a, b = endpoint(max_body=64), endpoint(max_body=64)
        a.send_unreliable(bytes(98))
        first, _second = a.build_bodies(0.0)
        b.receive_body(first, 1.0)
        self.assertEqual(b.receive_buffered_bytes, 49)
        self.assertEqual(b.next_timer(), 2.0)
        b.handle_timer(2.0)
        self.assertEqual(b.receive_buffered_bytes, 0)
        self.assertIsNone(b.next_timer())

    def test_inconsistent_fragments_are_a_protocol_error(self) -> None:
        side = endpoint()
        self.assertEqual(side.receive_body(body(0, 0xFFFF, 0,
                                                fragment(1, 0, 0, 2, b"a"),
                                                fragment(1, 1, 1, 3, b"b"),  # other count
                                                reliable(2, b"next")), 0.0),
                         [(1, b"next")])
        self.assertEqual(side.protocol_errors, 1)
        self.assertEqual(side.receive_buffered_bytes, 0)


class LimitTests(TestCase):
    def test_message_too_large(self) -> None:
        side = endpoint()
        self.assertRaises(MessageTooLarge, side.send_reliable, bytes(256 * 1024 + 1))
        self.assertRaises(MessageTooLarge, side.send_unreliable, bytes(16 * 1024 + 1))
        self.assertRaises(ValueError, side.send_reliable, bytes(256 * 1024 + 1))

    def test_send_queue_full(self) -> None:
        side = endpoint(max_pending_bytes=10_000)
        for _ in range(9):
            side.send_reliable(bytes(1000))
        self.assertRaises(SendQueueFull, side.send_reliable, bytes(1000))
        self.assertEqual(side.buffered_bytes, 9 * 1004)

    def test_unreliable_queue_drops_the_oldest(self) -> None:
        side = endpoint()
        for n in range(100):
            side.send_unreliable(bytes([n]))
        self.assertEqual(side.unreliable_dropped, 100 - 64)
        first = side.build_bodies(0.0)[0]
        self.assertEqual(first[9:14], unreliable(36, bytes([36])))

    def test_replace_unreliable_drops_only_what_was_never_sent(self) -> None:
        sender, receiver = endpoint(max_body=32), endpoint(max_body=32)
        sender.send_unreliable(b"v1")
        sent = sender.build_bodies(0.0)
        sender.send_unreliable(b"v2")
        sender.send_unreliable(bytes(40))  # three fragments, never sent
        sender.send_reliable(b"event")
        sender.replace_unreliable(b"v4")
        self.assertEqual(sender.unreliable_dropped, 4)
        later = sender.build_bodies(0.01)
        got = [m for b in sent + later for m in (receiver.receive_body(b, 0.02) or [])]
        self.assertEqual(got, [(0, b"v1"), (0, b"v4"), (1, b"event")])
        # The reliable message is acked and done; no channel-0 message is waited for.
        sender.receive_body(receiver.build_bodies(0.05)[0], 0.05)
        self.assertEqual(sender.buffered_bytes, 0)
        self.assertIsNone(sender.next_timer())

    def test_replace_unreliable_too_large_drops_nothing(self) -> None:
        side = endpoint()
        side.send_unreliable(b"v1")
        self.assertRaises(MessageTooLarge, side.replace_unreliable, bytes(16 * 1024 + 1))
        self.assertEqual(side.unreliable_dropped, 0)
        self.assertEqual(len(side.build_bodies(0.0)), 1)

    def test_sent_records_are_bounded_when_the_peer_never_acks(self) -> None:
        side = endpoint()
        for n in range(3 * MAX_SENT_RECORDS):
            side.send_unreliable(b"s")
            side.build_bodies(n * 0.01)
        self.assertEqual(side.stats()["sent_records"], MAX_SENT_RECORDS)


class ReceiveLimitTests(TestCase):
    """A side may accept less than it may send (a game host: small actions in, big states out)."""

    def test_oversized_messages_are_consumed_not_held(self) -> None:
        sender, host = endpoint(), endpoint(max_receive_message=2048)
        sender.send_reliable(b"a" * 2048)  # two fragments, at the limit
        sender.send_reliable(b"b" * 5000)  # five fragments, over it
        sender.send_reliable(b"c" * 1100)  # one body, under it
        sender.send_reliable(b"d" * 1100)
        got: list[tuple[int, bytes]] = []
        held = 0
        for item in sender.build_bodies(0.0):
            result = host.receive_body(item, 0.0)
            assert result is not None
            got.extend(result)
            held = max(held, host.receive_buffered_bytes)
        self.assertEqual(got, [(1, b"a" * 2048), (1, b"c" * 1100), (1, b"d" * 1100)])
        self.assertEqual(host.oversized_dropped, 1)
        self.assertEqual(host.protocol_errors, 0)
        self.assertLessEqual(held, 2048)
        # Every fragment was acked: nothing is resent for the dropped message.
        deliver(host, sender, 0.02)
        self.assertEqual(sender.buffered_bytes, 0)
        self.assertEqual(host.receive_buffered_bytes, 0)

    def test_a_single_body_message_over_the_limit(self) -> None:
        host = endpoint(max_receive_message=100)
        self.assertEqual(host.receive_body(body(0, 0xFFFF, 0, reliable(0, bytes(101)),
                                                unreliable(0, bytes(101)),
                                                reliable(1, b"ok")), 0.0),
                         [(1, b"ok")])
        self.assertEqual(host.oversized_dropped, 2)

    def test_oversized_snapshot_is_skipped(self) -> None:
        sender, host = endpoint(max_body=64), endpoint(max_body=64, max_receive_message=100)
        sender.send_unreliable(bytes(300))
        sender.send_unreliable(bytes(80))
        got = deliver(sender, host, 0.0)
        self.assertEqual(got, [(0, bytes(80))])
        self.assertEqual(host.oversized_dropped, 1)
        self.assertEqual(host.receive_buffered_bytes, 0)

    def test_the_limit_is_on_receiving_only(self) -> None:
        host, client = endpoint(max_receive_message=2048), endpoint()
        host.send_reliable(bytes(range(256)) * 400)  # 100 KiB
        got: list[tuple[int, bytes]] = []
        now = 0.0
        while not got and now < 5.0:
            got += deliver(host, client, now)
            deliver(client, host, now + 0.01)
            now += 0.02
        self.assertEqual(got, [(1, bytes(range(256)) * 400)])

    def test_out_of_order_bytes_are_bounded_and_nothing_is_lost(self) -> None:
        sender, host = endpoint(), endpoint(max_receive_buffer=8000)
        messages = [bytes([n]) * 1000 for n in range(40)]
        for data in messages:
            sender.send_reliable(data)
        bodies = sender.build_bodies(0.0)
        got: list[tuple[int, bytes]] = []
        for item in bodies[1:]:  # the first body is lost
            result = host.receive_body(item, 0.0)
            assert result is not None
            got.extend(result)
            self.assertLessEqual(host.receive_buffered_bytes, 8000 + len(item))
        self.assertEqual(got, [])
        self.assertGreater(host.refused_bodies, 0)
        # The refused bodies were not acked: the sender resends them, all arrive once.
        now = 0.0
        while len(got) < len(messages) and now < 30.0:
            now += 0.01
            deliver(host, sender, now)
            got += deliver(sender, host, now)
        self.assertEqual(got, [(1, data) for data in messages])
        self.assertEqual(host.receive_buffered_bytes, 0)

    def test_limits_must_be_positive(self) -> None:
        self.assertRaises(ValueError, endpoint, max_receive_message=0)
        self.assertRaises(ValueError, endpoint, max_receive_buffer=0)


class CompactTests(TestCase):
    def test_compact_gives_back_grown_tables_and_changes_nothing(self) -> None:
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        a, b = endpoint(), endpoint()
        for n in range(200):
            a.send_reliable(b"%d" % n)
        got = deliver(a, b, 0.0)
        deliver(b, a, 0.02)  # everything acked: a's tables are empty but grown
        self.assertEqual(a.buffered_bytes, 0)
        before = tracemalloc.get_traced_memory()[0]
        a.compact()
        b.compact()
        self.assertLess(tracemalloc.get_traced_memory()[0], before - 1000)
        for n in range(200, 210):
            a.send_reliable(b"%d" % n)
        got += deliver(a, b, 0.1)
        deliver(b, a, 0.12)
        self.assertEqual(got, [(1, b"%d" % n) for n in range(210)])
        self.assertEqual(a.buffered_bytes, 0)
        self.assertEqual(a.stats()["resent_messages"], 0)

    def test_compact_keeps_unfinished_state(self) -> None:
        a, b = endpoint(), endpoint()
        for n in range(5):
            a.send_reliable(b"%d" % n)
        (first,) = a.build_bodies(0.0)
        a.send_reliable(b"x")
        (second,) = a.build_bodies(0.0)
        # Nothing acked yet on a; b holds an out-of-order message.
        self.assertEqual(b.receive_body(second, 0.0), [])
        a.compact()
        b.compact()
        self.assertEqual(b.receive_body(first, 0.0),
                         [(1, b"%d" % n) for n in range(5)] + [(1, b"x")])
        deliver(b, a, 0.02)
        self.assertEqual(a.buffered_bytes, 0)


class SingleSnapshotTests(TestCase):
    def test_an_oversized_snapshot_alone_in_its_body_is_dropped_and_counted(self) -> None:
        a, b = endpoint(), endpoint(max_receive_message=10)
        a.send_unreliable(b"x" * 11)
        (body,) = a.build_bodies(0.0)
        self.assertEqual(b.receive_body(body, 0.0), [])
        self.assertEqual(b.stats()["oversized_dropped"], 1)
        a.send_unreliable(b"x" * 10)  # at the limit: delivered
        (body,) = a.build_bodies(0.0)
        self.assertEqual(b.receive_body(body, 0.0), [(0, b"x" * 10)])
        self.assertEqual(b.stats()["received_bodies"], 2)


class CompactKeepingRecordsTests(TestCase):
    def test_unacked_snapshot_records_are_kept_or_forgotten(self) -> None:
        """A quiet (not idle) session keeps the records of snapshots its peer will
        still ack; an idle one forgets them. Either way nothing else changes."""
        for forget in (False, True):
            a, b = endpoint(), endpoint()
            for n in range(3):
                a.send_unreliable(b"state %d" % n)
                (body,) = a.build_bodies(0.0)
                self.assertEqual(b.receive_body(body, 0.0), [(0, b"state %d" % n)])
            a.compact(forget_records=forget)
            acked = a.stats()["acked_packets"]
            deliver(b, a, 0.01)  # b's body acks all three
            b.send_unreliable(b"reply")
            deliver(b, a, 0.02)
            self.assertEqual(a.stats()["acked_packets"] - acked, 0 if forget else 3)
            self.assertEqual(a.stats()["lost_packets"], 0)


class VectorTests(TestCase):
    """The reliability vectors of vectors/protocol.json (docs/protocol.md 13.14): the
    code must produce and accept exactly those bodies."""

    def setUp(self) -> None:
        self.vectors = vectors("reliability")
        self.assertEqual(len(self.vectors), 6)

    def vector(self, name: str) -> list[bytes]:
        return [unhex(b) for b in self.vectors[name]["bodies"]]

    def test_every_vector_is_produced_and_accepted(self) -> None:
        for name, v in self.vectors.items():
            with self.subTest(name=name):
                side = endpoint(max_body=v["max_body"])
                for received in v["received"]:
                    side.receive_body(unhex(received["hex"]), received["at"])
                for sent in v["send"]:
                    data = unhex(sent["hex"])
                    if sent["channel"] == RELIABLE:
                        side.send_reliable(data)
                    else:
                        side.send_unreliable(data)
                self.assertEqual([b.hex() for b in side.build_bodies(v["now"])], v["bodies"])
                if "delivered" in v:
                    receiver = endpoint(max_body=v["max_body"])
                    got = [m for b in self.vector(name) for m in receiver.receive_body(b, 0.0)]
                    self.assertEqual(got, [(d["channel"], unhex(d["hex"]))
                                           for d in v["delivered"]])  # fmt: skip

    def test_fragments_deliver_their_message_once_whole_in_any_order(self) -> None:
        for name in ("reliable_fragments", "unreliable_fragments"):
            v = self.vectors[name]
            [message] = [(d["channel"], unhex(d["hex"])) for d in v["delivered"]]
            # Reliable fragments in order, unreliable ones reversed: only the last completes it.
            bodies = self.vector(name)
            bodies = bodies if message[0] == RELIABLE else bodies[::-1]
            receiver = endpoint(max_body=v["max_body"])
            got = [receiver.receive_body(item, 0.0) for item in bodies]
            self.assertEqual(got, [[]] * (len(bodies) - 1) + [[message]], name)
