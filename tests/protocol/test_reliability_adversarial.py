"""Adversarial tests for vinom.protocol.reliability: garbage, mutations, a hostile peer.

The packet layer authenticates every body, so what reaches `receive_body` was built by
the peer; but the peer may be buggy or hostile. Whatever it sends, receive_body must
not raise, a malformed body must change nothing, and what the peer can make us hold
must stay within the documented bounds.
"""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from vinom.protocol.reliability import (
    BODY_HEADER,
    MAX_FRAGMENTS,
    MAX_UNRELIABLE_FRAGMENTS,
    RECEIVE_WINDOW,
    Reliability,
)

MAX_BODY = 200


def fresh() -> Reliability:
    return Reliability(max_body=MAX_BODY, now=0.0)


def sample_bodies() -> list[bytes]:
    """Valid bodies of every shape: ack-only, each channel, fragments, many messages."""
    a, b = fresh(), fresh()
    out: list[bytes] = []
    a.send_reliable(b"action")
    a.send_unreliable(b"state")
    out += a.build_bodies(0.0)
    a.send_reliable(bytes(range(250)) * 2)  # three fragments
    a.send_unreliable(bytes(400))  # three unreliable fragments
    out += a.build_bodies(0.1)
    for n in range(30):
        a.send_reliable(bytes([n]))
    out += a.build_bodies(0.2)
    b.receive_body(out[0], 0.3)
    out += b.build_bodies(0.5)  # ack-only
    return out


def hostile_bound(side: Reliability) -> int:
    """The most the documented bounds let a peer make one endpoint hold."""
    largest_message = MAX_BODY - BODY_HEADER.size - 4
    return (
        (RECEIVE_WINDOW - 1) * largest_message
        + side.max_reliable_message
        + side.max_unreliable_message
    )


def assert_result(result: object) -> None:
    assert result is None or (
        isinstance(result, list)
        and all(
            isinstance(item, tuple)
            and item[0] in (0, 1)
            and isinstance(item[1], bytes)
            for item in result
        )
    ), result


class GarbageTests(TestCase):
    @settings(max_examples=400, deadline=None)
    @given(data=st.binary(max_size=MAX_BODY + 20))
    def test_arbitrary_bytes_never_raise(self, data: bytes) -> None:
        side = fresh()
        assert_result(side.receive_body(data, 0.0))
        side.send_reliable(b"x")
        for body in side.build_bodies(0.0):
            self.assertLessEqual(len(body), MAX_BODY)

    def test_random_datagrams(self) -> None:
        rng = random.Random(1234)
        side = fresh()
        for n in range(100_000):
            data = rng.randbytes(rng.randrange(0, MAX_BODY + 1))
            assert_result(side.receive_body(data, n * 0.001))
            if n % 1000 == 0:
                side.build_bodies(n * 0.001)
                side.handle_timer(n * 0.001)
            self.assertLessEqual(side.receive_buffered_bytes, hostile_bound(side))
        self.assertGreater(side.malformed_bodies, 50_000)

    def test_every_bit_flip_and_truncation_of_valid_bodies(self) -> None:
        bodies = sample_bodies()
        self.assertGreater(len(bodies), 6)
        for body in bodies:
            for cut in range(len(body)):
                assert_result(fresh().receive_body(body[:cut], 0.0))
            for bit in range(len(body) * 8):
                mutated = bytearray(body)
                mutated[bit // 8] ^= 1 << (bit % 8)
                assert_result(fresh().receive_body(bytes(mutated), 0.0))

    def test_malformed_shapes(self) -> None:
        header = BODY_HEADER.pack(0, 0xFFFF, 0, 0)
        cases = {
            "short header": header[:7],
            # Version 1's 8-byte header (an ack-only body then) is one byte short now.
            "version 1 ack-only body": header[:8],
            "truncated message header": header + b"\x01\x00\x00",
            "length past the end": header + struct.pack("<HH", 5, 0) + b"abcd",
            "reserved channel 2": header + struct.pack("<HH", 0x8000, 0),
            "reserved channel 3": header + struct.pack("<HH", 0xC000, 0),
            "truncated fragment header": header + struct.pack("<HHB", 0x6001, 0, 0),
            "fragment of one": header + struct.pack("<HHBB", 0x6001, 0, 0, 0) + b"x",
            "index past last": header + struct.pack("<HHBB", 0x6001, 0, 3, 2) + b"x",
            "empty fragment": header + struct.pack("<HHBB", 0x6000, 0, 0, 2),
            "too many unreliable fragments":
                header + struct.pack("<HHBB", 0x2001, 0, 0, MAX_UNRELIABLE_FRAGMENTS) + b"x",
            "longer than max_body": header + struct.pack("<HH", MAX_BODY, 0) + bytes(MAX_BODY),
        }
        for name, data in cases.items():
            with self.subTest(name):
                side = fresh()
                self.assertIsNone(side.receive_body(data, 0.0))
                self.assertEqual(side.malformed_bodies, 1)
                self.assertEqual(side.received_bodies, 0)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        garbage=st.lists(st.binary(max_size=60), min_size=1, max_size=8),
        positions=st.lists(st.integers(0, 40), min_size=1, max_size=8),
        flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=8),
    )
    def test_malformed_bodies_change_nothing(
        self, garbage: list[bytes], positions: list[int], flips: list[tuple[int, int]]
    ) -> None:
        """A receiver fed extra malformed bodies behaves byte for byte like its twin."""
        sender = Reliability(max_body=MAX_BODY, now=0.0)
        stream: list[bytes] = []
        for n in range(40):
            sender.send_reliable(bytes([n]) * (n * 7))
            sender.send_unreliable(bytes([n]))
            stream += sender.build_bodies(n * 0.01)
        # Malformed candidates: garbage plus bit-flipped valid bodies.
        candidates = list(garbage)
        for index, bit in flips:
            mutated = bytearray(stream[index % len(stream)])
            mutated[(index // 8) % len(mutated)] ^= 1 << bit
            candidates.append(bytes(mutated))
        twin, victim = fresh(), fresh()
        inserted = 0
        for step, body in enumerate(stream):
            now = step * 0.01
            if step in positions:
                for candidate in candidates:
                    probe = fresh()
                    if probe.receive_body(candidate, 0.0) is None:
                        self.assertIsNone(victim.receive_body(candidate, now))
                        inserted += 1
            self.assertEqual(victim.receive_body(body, now), twin.receive_body(body, now))
            self.assertEqual(victim.build_bodies(now + 0.02), twin.build_bodies(now + 0.02))
            self.assertEqual(victim.next_timer(), twin.next_timer())
        self.assertEqual(victim.malformed_bodies, inserted)
        victim_stats = victim.stats()
        twin_stats = twin.stats()
        del victim_stats["malformed_bodies"], twin_stats["malformed_bodies"]
        self.assertEqual(victim_stats, twin_stats)


# A hostile peer's well-formed bodies: any header, any ids, any fragment fields.
hostile_message = st.one_of(
    st.tuples(st.just(0), st.integers(0, 0xFFFF), st.integers(0, 40)),
    st.tuples(st.just(1), st.integers(0, 0xFFFF), st.integers(0, 40)),
    st.tuples(
        st.sampled_from([0x2000, 0x6000]),
        st.integers(0, 0xFFFF),
        st.integers(1, 40),
        st.integers(0, 255),
        st.integers(1, 255),
    ),
)


def hostile_body(seq: int, ack: int, bits: int, messages: list[tuple[int, ...]]) -> bytes:
    out = bytearray(BODY_HEADER.pack(seq, ack, bits, 0))
    for message in messages:
        if len(message) == 3:
            channel, message_id, length = message
            part = struct.pack("<HH", channel << 14 | length, message_id) + bytes(length)
        else:
            flags, message_id, length, index, last = message
            index = min(index, last)
            if flags == 0x2000:
                last = min(last, MAX_UNRELIABLE_FRAGMENTS - 1)
                index = min(index, last)
            part = struct.pack("<HHBB", flags | length, message_id, index, last) + bytes(length)
        if len(out) + len(part) > MAX_BODY:
            break
        out += part
    return bytes(out)


class HostilePeerTests(TestCase):
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        bodies=st.lists(
            st.tuples(
                st.integers(0, 0xFFFF),
                st.integers(0, 0xFFFF),
                st.integers(0, 0xFFFFFFFF),
                st.lists(hostile_message, max_size=12),
            ),
            min_size=1,
            max_size=80,
        )
    )
    def test_well_formed_hostile_traffic_stays_bounded(
        self, bodies: list[tuple[int, int, int, list[tuple[int, ...]]]]
    ) -> None:
        side = fresh()
        for n in range(20):
            side.send_reliable(bytes(n))
        side.build_bodies(0.0)
        for step, (seq, ack, bits, messages) in enumerate(bodies):
            now = step * 0.005
            result = side.receive_body(hostile_body(seq, ack, bits, messages), now)
            self.assertIsNotNone(result)
            assert_result(result)
            self.assertLess(side.stats()["out_of_order_messages"], RECEIVE_WINDOW)
            self.assertLessEqual(side.receive_buffered_bytes, hostile_bound(side))
            for body in side.build_bodies(now):
                self.assertLessEqual(len(body), MAX_BODY)
            when = side.next_timer()
            if when is not None and when <= now:
                side.handle_timer(now)

    def test_worst_case_is_what_the_bounds_say(self) -> None:
        """Fill the reorder window, a reassembly and a partial snapshot to the brim."""
        side = fresh()
        largest = MAX_BODY - BODY_HEADER.size - 4
        seq = 0
        # Message 0 never arrives: ids 1..255 wait in the window at full size.
        for message_id in range(1, RECEIVE_WINDOW):
            data = struct.pack("<HH", 0x4000 | largest, message_id) + bytes(largest)
            self.assertEqual(side.receive_body(BODY_HEADER.pack(seq, 0, 0, 0) + data, 0.0), [])
            seq += 1
        self.assertEqual(side.receive_buffered_bytes, (RECEIVE_WINDOW - 1) * largest)
        # Further ids beyond the window are refused, not stored.
        data = struct.pack("<HH", 0x4000 | largest, RECEIVE_WINDOW) + bytes(largest)
        side.receive_body(BODY_HEADER.pack(seq, 0, 0, 0) + data, 0.0)
        seq += 1
        self.assertEqual(side.out_of_window, 1)
        self.assertEqual(side.receive_buffered_bytes, (RECEIVE_WINDOW - 1) * largest)

        # A reassembly that never completes: fragments 0..254 of 256, delivered in order.
        other = fresh()
        chunk = MAX_BODY - BODY_HEADER.size - 6
        for index in range(MAX_FRAGMENTS - 1):
            data = struct.pack("<HHBB", 0x6000 | chunk, index, index, MAX_FRAGMENTS - 1)
            other.receive_body(BODY_HEADER.pack(index, 0, 0, 0) + data + bytes(chunk), 0.0)
        self.assertLessEqual(other.receive_buffered_bytes, other.max_reliable_message)
        self.assertGreater(other.receive_buffered_bytes, other.max_reliable_message - 2 * chunk)
        # A partial snapshot: at most max_unreliable_message, and it expires.
        data = struct.pack("<HHBB", 0x2000 | chunk, 7, 0, MAX_UNRELIABLE_FRAGMENTS - 1)
        other.receive_body(BODY_HEADER.pack(MAX_FRAGMENTS, 0, 0, 0) + data + bytes(chunk), 0.0)
        self.assertLessEqual(
            other.receive_buffered_bytes,
            other.max_reliable_message + other.max_unreliable_message,
        )
        other.handle_timer(5.0)
        self.assertLessEqual(other.receive_buffered_bytes, other.max_reliable_message)

    def test_replayed_body_flood(self) -> None:
        side = fresh()
        body = BODY_HEADER.pack(0, 0, 0, 0) + struct.pack("<HH", 0x4001, 0) + b"x"
        self.assertEqual(side.receive_body(body, 0.0), [(1, b"x")])
        for _ in range(10_000):
            self.assertEqual(side.receive_body(body, 0.0), [])
        self.assertEqual(side.duplicates_dropped, 10_000)
        self.assertEqual(side.receive_buffered_bytes, 0)

    def test_peer_that_never_acks_cannot_grow_our_send_state(self) -> None:
        side = Reliability(max_body=MAX_BODY, now=0.0, max_pending_bytes=50_000)
        now = 0.0
        sent = 0
        for _ in range(2000):
            now += 0.05
            try:
                side.send_reliable(bytes(100))
                sent += 1
            except Exception:
                pass
            side.send_unreliable(bytes(50))
            side.build_bodies(now)
            side.handle_timer(now)
        self.assertLessEqual(side.buffered_bytes, 50_000)
        self.assertLess(sent, 2000)
        self.assertLessEqual(side.stats()["sent_records"], 256)
        self.assertLessEqual(side.stats()["unacked_messages"], RECEIVE_WINDOW)

    def test_peer_that_keeps_the_session_alive_but_never_acks(self) -> None:
        """Resends go on for as long as the session lives; their bookkeeping must not grow."""
        side = fresh()
        for n in range(20):  # all sent at once: nothing waits, only resends happen
            side.send_reliable(bytes([n]) * 150)
        now = 0.0
        for _ in range(3000):
            when = side.next_timer()
            assert when is not None
            now = max(now, when)
            side.handle_timer(now)
            self.assertLessEqual(len(side.build_bodies(now)), 64)
            self.assertLessEqual(side.stats()["sent_records"], 256)
            self.assertLessEqual(side.stats()["reliable_records"], 2 * 256 + 1)
        self.assertGreater(now, 2000.0)  # back-off capped at 1 s: a long run
        self.assertGreater(side.resent_messages, 50_000)

    def test_peer_that_acks_everything_at_once(self) -> None:
        """Forged acks (all bits set) may make us drop messages, never grow state."""
        side = fresh()
        now = 0.0
        for n in range(5000):
            now += 0.001
            side.send_reliable(bytes(20))
            for body in side.build_bodies(now):
                seq = BODY_HEADER.unpack_from(body)[0]
                side.receive_body(BODY_HEADER.pack(n & 0xFFFF, seq, 0xFFFFFFFF, 0), now)
        self.assertEqual(side.buffered_bytes, 0)
        self.assertEqual(side.stats()["unacked_messages"], 0)
        self.assertIsNone(side.next_timer())
