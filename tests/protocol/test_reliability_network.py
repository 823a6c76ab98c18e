"""Two Reliability endpoints over a simulated network: loss, duplication, reordering, delay.

The simulation is a discrete-event loop that drives `now` itself: datagrams arrive
at their scheduled time, each endpoint then runs its timers and builds its bodies,
and the clock jumps to the next arrival, timer or scripted send.
"""

from __future__ import annotations

import heapq
import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from vinom.protocol.reliability import Reliability

COUNTER = struct.Struct("<I")


class Network:
    """Two endpoints and the links between them; every knob can change mid-run."""

    def __init__(
        self,
        seed: int,
        *,
        max_body: int = 1150,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.02,
        jitter: float = 0.0,
        max_receive_buffer: int | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.endpoints = (
            Reliability(max_body=max_body, now=0.0, max_receive_buffer=max_receive_buffer),
            Reliability(max_body=max_body, now=0.0, max_receive_buffer=max_receive_buffer),
        )
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.jitter = jitter
        self.max_body = max_body
        self.in_flight: list[tuple[float, int, int, bytes]] = []
        self.sends: list[tuple[float, int, int, int, bytes]] = []  # time, n, side, ch, data
        self.received: tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]] = ([], [])
        self.datagrams = 0
        self._counter = 0

    def schedule_send(self, when: float, side: int, channel: int, data: bytes) -> None:
        self._counter += 1
        heapq.heappush(self.sends, (when, self._counter, side, channel, data))

    def _transmit(self, side: int, body: bytes) -> None:
        assert len(body) <= self.max_body
        self.datagrams += 1
        copies = 1 + (self.rng.random() < self.duplicate)
        for _ in range(copies):
            if self.rng.random() < self.loss:
                continue
            self._counter += 1
            arrival = self.now + self.delay + self.rng.random() * self.jitter
            heapq.heappush(self.in_flight, (arrival, self._counter, 1 - side, body))

    def _next_time(self) -> float | None:
        times = [t for t in (e.next_timer() for e in self.endpoints) if t is not None]
        if self.in_flight:
            times.append(self.in_flight[0][0])
        if self.sends:
            times.append(self.sends[0][0])
        return min(times) if times else None

    def run(self, until: float) -> None:
        """Advance the simulation to `until` (or until nothing at all is left to do)."""
        same_time_steps = 0
        while True:
            when = self._next_time()
            if when is None or when > until:
                self.now = max(self.now, until) if when is not None else self.now
                return
            if when <= self.now:
                same_time_steps += 1
                # A timer at or before now means "build again": that must make
                # progress, not spin.
                assert same_time_steps < 1000, "next_timer keeps returning the past"
            else:
                same_time_steps = 0
                self.now = when
            self._step()

    def _step(self) -> None:
        now = self.now
        while self.in_flight and self.in_flight[0][0] <= now:
            _arrival, _n, side, body = heapq.heappop(self.in_flight)
            result = self.endpoints[side].receive_body(body, now)
            assert result is not None, "a body our peer built was rejected"
            self.received[side].extend(result)
        while self.sends and self.sends[0][0] <= now:
            _when, _n, side, channel, data = heapq.heappop(self.sends)
            if channel:
                self.endpoints[side].send_reliable(data)
            else:
                self.endpoints[side].send_unreliable(data)
        for side, endpoint in enumerate(self.endpoints):
            timer = endpoint.next_timer()
            if timer is not None and timer <= now:
                endpoint.handle_timer(now)
            for body in endpoint.build_bodies(now):
                self._transmit(side, body)

    def settle(self, limit: float = 120.0) -> None:
        """Heal the network and run until both endpoints have nothing left to do."""
        self.loss = 0.0
        self.duplicate = 0.0
        self.run(self.now + limit)
        assert self._next_time() is None, "did not settle"

    def reliable(self, side: int) -> list[bytes]:
        return [data for channel, data in self.received[side] if channel == 1]

    def unreliable(self, side: int) -> list[bytes]:
        return [data for channel, data in self.received[side] if channel == 0]


def numbered(n: int, size: int) -> bytes:
    """A message whose first four bytes say which one it is."""
    return COUNTER.pack(n) + bytes((n + i) % 251 for i in range(max(0, size - 4)))


class NetworkTests(TestCase):
    maxDiff = 2000

    def test_clean_network_delivers_everything_promptly(self) -> None:
        net = Network(1, delay=0.025)
        for n in range(100):
            net.schedule_send(n * 0.016, 0, 1, numbered(n, 30))
            net.schedule_send(n * 0.016, 1, 0, numbered(n, 50))
        net.settle()
        self.assertEqual(net.reliable(1), [numbered(n, 30) for n in range(100)])
        self.assertEqual(net.unreliable(0), [numbered(n, 50) for n in range(100)])
        a, b = net.endpoints
        self.assertEqual(a.resent_messages + b.resent_messages, 0)
        self.assertEqual(a.lost_packets + b.lost_packets, 0)
        # Acks ride on the snapshots or wait the ack delay, and the delay each ack
        # reports is left out: the RTT is the path's 50 ms (within the field's 1 ms).
        for side in (a, b):
            self.assertAlmostEqual(side.rtt_s, 0.05, delta=0.001)

    def test_lossy_network_loss_statistic_and_resends(self) -> None:
        net = Network(7, loss=0.2, delay=0.03, jitter=0.01)
        for n in range(500):
            net.schedule_send(n * 0.02, 0, 1, numbered(n, 20))
            net.schedule_send(n * 0.02, 1, 0, numbered(n, 40))
        net.run(10.0)
        a = net.endpoints[0]
        self.assertGreater(a.resent_messages, 50)
        self.assertGreater(a.loss, 0.08)
        self.assertLess(a.loss, 0.4)
        self.assertGreater(a.rtt_s, 0.05)
        net.settle()
        self.assertEqual(net.reliable(1), [numbered(n, 20) for n in range(500)])

    def test_total_outage_then_recovery(self) -> None:
        net = Network(3, delay=0.02)
        for n in range(50):
            net.schedule_send(n * 0.1, 0, 1, numbered(n, 10))
        net.run(1.0)
        net.loss = 1.0
        net.run(6.0)
        delivered_before = len(net.reliable(1))
        self.assertLess(delivered_before, 20)
        net.loss = 0.0
        net.run(7.5)  # back-off is capped at 1 s, so everything is through by now
        self.assertEqual(net.reliable(1), [numbered(n, 10) for n in range(50)])
        net.settle()

    def test_large_messages_both_ways_under_loss(self) -> None:
        net = Network(11, loss=0.1, duplicate=0.1, delay=0.02, jitter=0.03)
        big = [numbered(n, 20_000 + 1000 * n) for n in range(5)]
        for n, data in enumerate(big):
            net.schedule_send(n * 0.05, 0, 1, data)
            net.schedule_send(n * 0.05, 1, 1, data[::-1])
        net.run(5.0)
        net.settle()
        self.assertEqual(net.reliable(1), big)
        self.assertEqual(net.reliable(0), [data[::-1] for data in big])


messages = st.lists(
    st.tuples(st.sampled_from([0, 1]), st.integers(0, 600)), min_size=1, max_size=40
)


class PropertyTests(TestCase):
    maxDiff = 2000

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.integers(0, 2**32),
        loss=st.floats(0.0, 0.6),
        duplicate=st.floats(0.0, 0.5),
        delay=st.floats(0.0, 0.15),
        jitter=st.floats(0.0, 0.3),
        max_body=st.integers(32, 300),
        script=messages,
        spacing=st.floats(0.0, 0.05),
    )
    def test_exactly_once_in_order_and_never_backwards(
        self,
        seed: int,
        loss: float,
        duplicate: float,
        delay: float,
        jitter: float,
        max_body: int,
        script: list[tuple[int, int]],
        spacing: float,
    ) -> None:
        net = Network(seed, max_body=max_body, loss=loss, duplicate=duplicate,
                      delay=delay, jitter=jitter)
        sent: dict[tuple[int, int], list[bytes]] = {(s, c): [] for s in (0, 1) for c in (0, 1)}
        limit = net.endpoints[0].max_unreliable_message
        for n, (channel, size) in enumerate(script):
            side = n % 2
            if channel == 0:
                size = min(size, limit)
            data = numbered(n, size)
            sent[side, channel].append(data)
            net.schedule_send(n * spacing, side, channel, data)
        net.run(3.0)
        net.settle()
        for side in (0, 1):
            # Reliable: exactly the messages the peer sent, each once, in order.
            self.assertEqual(net.reliable(side), sent[1 - side, 1])
            # Unreliable: whole messages the peer sent, strictly newer each time.
            order = [sent[1 - side, 0].index(data) for data in net.unreliable(side)]
            self.assertEqual(order, sorted(set(order)))
            if not loss and not jitter and sent[1 - side, 0]:
                self.assertEqual(net.unreliable(side)[-1], sent[1 - side, 0][-1])
            self.assertEqual(net.endpoints[side].protocol_errors, 0)
            self.assertEqual(net.endpoints[side].buffered_bytes, 0)
            self.assertEqual(net.endpoints[side].receive_buffered_bytes, 0)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.integers(0, 2**32),
        loss=st.floats(0.0, 0.5),
        jitter=st.floats(0.0, 0.2),
        max_receive_buffer=st.integers(1, 3000),
        sizes=st.lists(st.integers(0, 600), min_size=1, max_size=60),
    )
    def test_a_small_receive_buffer_loses_nothing(
        self, seed: int, loss: float, jitter: float, max_receive_buffer: int, sizes: list[int]
    ) -> None:
        """Bodies refused for the out-of-order buffer's sake are resent, never lost."""
        net = Network(seed, max_body=200, loss=loss, jitter=jitter,
                      max_receive_buffer=max_receive_buffer)
        sent = [numbered(n, size) for n, size in enumerate(sizes)]
        for n, data in enumerate(sent):
            net.schedule_send(n * 0.002, 0, 1, data)
        peak = 0
        while net.now < 3.0 and net._next_time() is not None:
            net.run(net.now + 0.01)
            peak = max(peak, net.endpoints[1].receive_buffered_bytes)
        net.settle()
        self.assertEqual(net.reliable(1), sent)
        # The buffer, one body over it at most, and one message in reassembly.
        self.assertLessEqual(peak, max_receive_buffer + 200 + max(sizes))
        self.assertEqual(net.endpoints[1].receive_buffered_bytes, 0)
        self.assertEqual(net.endpoints[0].buffered_bytes, 0)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        drops=st.lists(st.booleans(), min_size=1, max_size=64),
        reorder=st.lists(st.integers(0, 5), min_size=1, max_size=64),
        count=st.integers(1, 300),
    )
    def test_any_drop_and_reorder_pattern(
        self, drops: list[bool], reorder: list[int], count: int
    ) -> None:
        """Bodies are dropped and held back by a cycled pattern hypothesis chooses."""
        a, b = Reliability(max_body=100, now=0.0), Reliability(max_body=100, now=0.0)
        expected = [numbered(n, n % 150) for n in range(count)]
        for data in expected:
            a.send_reliable(data)
        got: list[bytes] = []
        held: list[tuple[int, bytes]] = []
        n = 0
        now = 0.0
        for _round in range(5000):
            now += 0.01
            for body in a.build_bodies(now):
                n += 1
                # Past the pattern's first pass nothing is dropped any more.
                if n < 4 * len(drops) and drops[n % len(drops)]:
                    continue
                held.append((n + reorder[n % len(reorder)], body))
            held.sort(key=lambda item: item[0])
            while held and (held[0][0] <= n or not a.next_timer()):
                result = b.receive_body(held.pop(0)[1], now)
                assert result is not None
                got.extend(data for _channel, data in result)
            for body in b.build_bodies(now):
                a.receive_body(body, now)
            if len(got) == count and not held and a.buffered_bytes == 0:
                break
        self.assertEqual(got, expected)
        self.assertEqual(a.buffered_bytes, 0)
