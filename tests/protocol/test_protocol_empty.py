"""Idle sessions share their empty tables, and sessions never share state.

A session's reliability layer keeps its queues and tables empty and shared
until it uses them (vinom.protocol.reliability), so an idle session costs less
memory; these tests hold that from outside: what the process allocates per idle
session, and that what one session does is never seen by another.
"""

from __future__ import annotations

import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from vinom.protocol.reliability import MessageTooLarge, Reliability

# Six tables of its own (56-64 bytes each even empty), its ten size limits of
# its own (80 bytes), its reassembly state between fragmented messages (64
# bytes) or its counts of rare faults (64 bytes) would put an idle session's
# layer above this; sharing the first two and making the others when first
# needed keeps it below.
IDLE_LAYER_BYTES = 384


def allocated_per_layer(count: int = 2000) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        layers = [Reliability(max_body=1200, now=0.0) for _ in range(count)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del layers
    return (after - before) / count


def deliver(sender: Reliability, receiver: Reliability, now: float) -> list[bytes]:
    got: list[bytes] = []
    for body in sender.build_bodies(now):
        messages = receiver.receive_body(body, now)
        assert messages is not None
        got.extend(data for _, data in messages)
    return got


class SharedEmptyTableTests(SynchronousTestCase):
    def test_an_idle_session_allocates_no_tables_of_its_own(self) -> None:
        self.assertLess(allocated_per_layer(), IDLE_LAYER_BYTES)

    def test_one_session_s_traffic_is_never_seen_by_another(self) -> None:
        first, second = Reliability(max_body=1200, now=0.0), Reliability(max_body=1200, now=0.0)
        peer = Reliability(max_body=1200, now=0.0)
        first.send_reliable(b"hello")
        first.send_unreliable(b"tick")
        self.assertEqual(second.build_bodies(0.0), [])
        self.assertIsNone(second.next_timer())
        self.assertEqual(sorted(deliver(first, peer, 0.0)), [b"hello", b"tick"])
        # After a burst and compact(), both still start from nothing of the other's.
        first.compact()
        second.send_reliable(b"second's own")
        self.assertEqual(deliver(second, Reliability(max_body=1200, now=0.0), 0.1),
                         [b"second's own"])
        self.assertEqual(Reliability(max_body=1200, now=0.0).build_bodies(0.2), [])

    def test_layers_made_differently_keep_their_own_limits(self) -> None:
        # Layers made with the same arguments share their limits; others have theirs.
        small = Reliability(max_body=64, now=0.0, max_pending_bytes=100, max_receive_message=10)
        large = Reliability(max_body=1200, now=0.0)
        same = Reliability(max_body=64, now=0.0, max_pending_bytes=100, max_receive_message=10)
        self.assertEqual(
            (small.max_reliable_message, large.max_reliable_message), (256 * 49, 256 * 1024)
        )
        self.assertEqual(same.max_pending_bytes, 100)
        self.assertRaises(MessageTooLarge, small.send_unreliable, bytes(16 * 50 + 1))
        large.send_unreliable(bytes(16 * 50 + 1))
        # The receiving limit: a 20-byte message is dropped by `small`, taken by `large`.
        sender = Reliability(max_body=1200, now=0.0)
        sender.send_reliable(bytes(20))
        (body,) = sender.build_bodies(0.0)
        self.assertEqual(small.receive_body(body, 0.0), [])
        self.assertEqual(small.oversized_dropped, 1)
        self.assertEqual(large.receive_body(body, 0.0), [(1, bytes(20))])

    def test_fault_counts_start_at_zero_and_count_from_the_first(self) -> None:
        # A layer's rare-fault counts are made at the first fault, per layer.
        layer, other = Reliability(max_body=1200, now=0.0), Reliability(max_body=1200, now=0.0)
        self.assertEqual((layer.malformed_bodies, layer.stats()["malformed_bodies"]), (0, 0))
        self.assertIsNone(layer.receive_body(b"\x00", 0.0))
        self.assertIsNone(layer.receive_body(b"\x01\x02", 0.0))
        self.assertEqual((layer.malformed_bodies, layer.stats()["malformed_bodies"]), (2, 2))
        self.assertEqual((layer.protocol_errors, layer.duplicates_dropped), (0, 0))
        self.assertEqual(other.malformed_bodies, 0)
