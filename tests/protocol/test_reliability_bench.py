"""A micro-benchmark of the reliability layer, and a smoke test that keeps it working.

`bench_reliability()` is meant for `python -m benchmarks` (or `python -m
tests.protocol.test_reliability_bench`); the test only runs it at a tiny size. Figures are CPU
time of the calling thread (the split between build and receive is wall time from
perf_counter, less the cost of reading the clock), so other processes matter less.

Scenarios:
- pingpong: a client sends one 40-byte action (reliable) per body; the server
  answers each with one 50-byte snapshot (unreliable) that carries the ack, as in
  `benchmarks play`. Reported per body: the sender's send_* plus build_bodies, the
  receiver's receive_body (ack processing and RTT sampling included).
- bulk: one 256 KiB reliable message, fragmented and reassembled, acked as it goes.
"""

from __future__ import annotations

import json
import math
import time

from twisted.trial.unittest import TestCase

from vinom.protocol.reliability import Reliability

MAX_BODY = 1150


def _pingpong(rounds: int, split: bool) -> tuple[float, float, float, int]:
    """Run the ping-pong; returns (total CPU s, build s, receive s, bodies)."""
    clock = time.perf_counter
    client = Reliability(max_body=MAX_BODY, now=0.0)
    server = Reliability(max_body=MAX_BODY, now=0.0)
    action = b"a" * 40
    snapshot = b"s" * 50
    now = 0.0
    build = receive = 0.0
    delivered = 0
    started = time.thread_time()
    if split:
        for _ in range(rounds):
            now += 0.001
            t0 = clock()
            client.send_reliable(action)
            bodies = client.build_bodies(now)
            t1 = clock()
            for body in bodies:
                delivered += len(server.receive_body(body, now + 0.0005) or ())
            t2 = clock()
            server.send_unreliable(snapshot)
            replies = server.build_bodies(now + 0.0005)
            t3 = clock()
            for body in replies:
                delivered += len(client.receive_body(body, now + 0.001) or ())
            t4 = clock()
            build += (t1 - t0) + (t3 - t2)
            receive += (t2 - t1) + (t4 - t3)
        # Take out what reading the clock costs: each side's sum spans two readings
        # per round.
        t0 = clock()
        for _ in range(rounds):
            clock()
            clock()
        overhead = clock() - t0
        build -= overhead
        receive -= overhead
    else:
        for _ in range(rounds):
            now += 0.001
            client.send_reliable(action)
            for body in client.build_bodies(now):
                delivered += len(server.receive_body(body, now + 0.0005) or ())
            server.send_unreliable(snapshot)
            for body in server.build_bodies(now + 0.0005):
                delivered += len(client.receive_body(body, now + 0.001) or ())
    total = time.thread_time() - started
    assert delivered == 2 * rounds, delivered
    return total, build, receive, client.sent_bodies + server.sent_bodies


def bench_reliability(rounds: int = 100_000, bulk_messages: int = 20) -> dict[str, float]:
    """Measure the reliability layer's CPU cost; returns figures in microseconds and MB/s."""
    total, _, _, bodies = _pingpong(rounds, split=False)
    _, build, receive, _ = _pingpong(rounds, split=True)
    figures = {
        "pingpong_bodies": float(bodies),
        "pingpong_us_per_body": total / bodies * 1e6,
        "pingpong_build_us_per_body": build / bodies * 1e6,
        "pingpong_receive_us_per_body": receive / bodies * 1e6,
    }

    sender = Reliability(max_body=MAX_BODY, now=0.0)
    receiver = Reliability(max_body=MAX_BODY, now=0.0)
    message = bytes(range(256)) * 1024
    now = 0.0
    got = 0
    clock = time.thread_time
    started = clock()
    for _ in range(bulk_messages):
        sender.send_reliable(message)
        while True:
            now += 0.001
            for body in sender.build_bodies(now):
                for _channel, data in receiver.receive_body(body, now) or ():
                    got += len(data)
            for body in receiver.build_bodies(now + receiver.ack_delay_s):
                sender.receive_body(body, now)
            if not sender.buffered_bytes:
                break
    elapsed = clock() - started
    assert got == bulk_messages * len(message), got
    figures["bulk_mb_per_s"] = got / elapsed / 1e6
    figures["bulk_us_per_body"] = elapsed / (sender.sent_bodies + receiver.sent_bodies) * 1e6
    return figures


class BenchSmokeTests(TestCase):
    def test_bench_runs_and_reports(self) -> None:
        figures = bench_reliability(rounds=300, bulk_messages=1)
        self.assertEqual(figures["pingpong_bodies"], 600.0)
        # The thread's CPU time never runs backwards ...
        for key in ("pingpong_us_per_body", "bulk_mb_per_s", "bulk_us_per_body"):
            self.assertGreaterEqual(figures[key], 0.0, key)
        self.assertGreater(figures["bulk_mb_per_s"], 0.0)
        # ... but the build/receive split is wall time less the clock's own cost,
        # measured apart: on a busy machine, at this tiny size, it may come out
        # below zero. A figure, reported, not held to anything (a loaded run saw -5.4).
        for key in ("pingpong_build_us_per_body", "pingpong_receive_us_per_body"):
            self.assertTrue(math.isfinite(figures[key]), key)


if __name__ == "__main__":
    print(json.dumps(bench_reliability()))
