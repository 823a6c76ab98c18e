"""`python -m benchmarks udp-echo --relay` and `play --relay` end to end at a tiny size: the
bare echo direct and through a real relay process, and the duel rooms played through
one, with the relay's CPU per forwarded datagram."""

# slow: starts benchmark processes

from __future__ import annotations

import unittest

from tests.test_bench import run_bench


class RelayBenchTests(unittest.TestCase):
    def test_udp_echo_through_the_relay(self) -> None:
        code, result, stderr = run_bench(
            "udp-echo", "--relay", "--warmup", "0.2", "--duration", "0.5", "--window", "4",
            "--clients", "2", "--rounds", "1",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertGreater(result["bare_per_s"], 0)
        self.assertGreater(result["relayed_per_s"], 0)
        self.assertNotIn("vinom_per_s", [k for k, v in result.items() if v is not None])
        # Every echo crossed the relay twice; nothing was dropped on the way.
        self.assertEqual(result["relay_dropped"], 0)
        self.assertGreater(result["relay_cpu_us_per_datagram"], 0)
        self.assertIsInstance(result["added_p50_ms"], float)
        self.assertIsInstance(result["added_p99_ms"], float)

    def test_only_names_the_halves_that_exist(self) -> None:
        code, _, stderr = run_bench("udp-echo", "--relay", "--only", "vinom")
        self.assertEqual(code, 2)
        self.assertIn("--only must be 'bare' or 'relayed'", stderr)

    def test_play_through_the_relay(self) -> None:
        code, result, stderr = run_bench(
            "play", "--relay", "--rooms", "3", "--warmup", "0.3", "--duration", "0.7"
        )
        self.assertEqual(code, 0, stderr)
        self.assertGreater(result["moves_per_s"], 0)
        self.assertEqual(result["errors"], 0)
        # Every move and state crossed the relay; nothing was dropped on the way.
        self.assertEqual(result["relay_dropped"], 0)
        self.assertGreater(result["relay_forwarded_per_s"], result["moves_per_s"])
        self.assertGreater(result["relay_cpu_us_per_datagram"], 0)

    def test_the_game_websocket_is_not_relayed(self) -> None:
        code, _, stderr = run_bench("play", "--relay", "--transport", "ws")
        self.assertEqual(code, 2)
        self.assertIn("--relay relays UDP", stderr)
