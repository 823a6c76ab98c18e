"""Smoke runs of every benchmark scenario at tiny sizes, through the real harness.

Each test starts `python -m benchmarks <scenario>` as a real child process,
which itself starts real server and load processes on 127.0.0.1; the test
checks the JSON line has its keys and sane values. These runs keep the
harness from rotting; they measure nothing (figures at these sizes mean
little) and every one finishes in a few seconds.
"""

# slow: runs the benchmarks (python -m benchmarks)

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil
from twisted.trial import unittest

import vinom
from benchmarks.echo_load import split_window
from benchmarks.harness import (
    BenchError,
    Harness,
    bottleneck,
    cpu_plan,
    decode_histogram,
    how_it_waited,
    merge_histograms,
    percentile_ms,
)
from benchmarks.loadgen import Latencies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_env() -> dict[str, str]:
    """The environment of a benchmark child process: it measures the vinom these tests import."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    if os.path.realpath(vinom.__file__).startswith(os.path.realpath(ROOT) + os.sep):
        env["VINOM_BENCH_SOURCES"] = "1"  # the sources, as here (tox's tests-pure)
    return env


def run_bench(*args: str, timeout: float = 60.0) -> tuple[int, dict[str, Any], str]:
    """Run the bench as a child process; (exit code, its JSON line, its stderr)."""
    env = bench_env()
    # The bench's own hard limit comes first, so that a stall is reported by the
    # harness (which wait, and the workers' stderr) rather than cut off here.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args, "--quiet", "--timeout", str(timeout - 10)],
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    lines = done.stdout.decode().strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return done.returncode, result, done.stderr.decode()


def listening_ports(pid: int, command: str) -> set[int]:
    """The ports the descendants of `pid` whose command line names `command` listen on
    (TCP) or are bound to with no peer (UDP)."""
    ports: set[int] = set()
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return ports
    for process in children:
        try:
            if command not in " ".join(process.cmdline()):
                continue
            for c in process.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
                    ports.add(c.laddr.port)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return ports


def _alive(process: psutil.Process) -> bool:
    """Running, and not a zombie waiting for whoever adopted it to reap it."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class HarnessPieceTests(unittest.TestCase):
    """The small pure pieces the scenarios rely on."""

    def test_window_split(self) -> None:
        self.assertEqual(split_window(32, 4), [8, 8, 8, 8])
        self.assertEqual(split_window(10, 4), [3, 3, 2, 2])
        # Every socket keeps at least one message in flight.
        self.assertEqual(split_window(2, 4), [1, 1, 1, 1])

    def test_cpu_plan_unpinned(self) -> None:
        self.assertEqual(cpu_plan(3, pin=False), (None, [None, None, None]))

    def test_cpu_plan_keeps_server_core_to_itself(self) -> None:
        server, loads = cpu_plan(3, pin=True)
        if server is None:
            self.assertEqual(loads, [None, None, None])
        else:
            self.assertNotIn(server, loads)
            self.assertEqual(len(loads), 3)

    def test_latencies_round_trip_and_merge(self) -> None:
        first, second = Latencies(), Latencies()
        for value in (100, 100, 200, 5000):
            first.record(value)
        second.record(0)  # clamped to the histogram's lowest value
        self.assertEqual(decode_histogram(first.encoded()).get_total_count(), 4)
        merged = merge_histograms([first.encoded(), second.encoded()])
        self.assertEqual(merged.get_total_count(), 5)
        self.assertAlmostEqual(percentile_ms(merged, 100), 5.0, places=1)
        self.assertEqual(percentile_ms(merge_histograms([]), 99), 0.0)

    def test_a_worker_ignoring_stdin_dies_with_a_killed_harness(self) -> None:
        # A harness process starts a command that never reads its standard input
        # (as redis-server), then is killed with SIGKILL: the kernel kills the command.
        script = (
            "import sys, time\n"
            "from benchmarks.harness import Harness\n"
            "harness = Harness(60).__enter__()\n"
            "worker = harness.spawn_command('sleeper', ['sleep', '300'], None,\n"
            "                               ignores_stdin=True)\n"
            "print(worker.pid, flush=True)\n"
            "time.sleep(300)\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                  env=bench_env(), cwd=ROOT)  # fmt: skip
        self.addCleanup(parent.wait)
        self.addCleanup(parent.kill)
        assert parent.stdout is not None
        sleeper = psutil.Process(int(parent.stdout.readline()))
        self.assertTrue(sleeper.is_running())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30
        while _alive(sleeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        dead = not _alive(sleeper)
        if not dead:
            sleeper.kill()
        self.assertTrue(dead, "the command outlived its killed harness")

    def test_close_stops_a_worker_ignoring_stdin_at_once(self) -> None:
        waited_out: list[float | None] = []
        with Harness(60) as harness:
            worker = harness.spawn_command("sleeper", ["sleep", "300"], None, ignores_stdin=True)
            wait = worker.popen.wait

            def counted_wait(timeout: float | None = None) -> int:
                try:
                    return wait(timeout)
                except subprocess.TimeoutExpired:
                    waited_out.append(timeout)
                    raise

            worker.popen.wait = counted_wait  # type: ignore[method-assign]
        self.assertEqual(worker.popen.returncode, -signal.SIGTERM)
        # SIGTERM at once, not after the grace given to workers that read stdin (3 s):
        # no wait for it to end ran out.
        self.assertEqual(waited_out, [])

    def test_a_silent_worker_is_reported_with_the_cpu_its_wait_used(self) -> None:
        # A server that never answers: the error says what it did meanwhile.
        with Harness(60) as harness:
            worker = harness.spawn_command("server", ["sleep", "300"], None, ignores_stdin=True)
            with self.assertRaises(BenchError) as raised:
                harness.wait_for(worker, "mark", 1.0)
        message = str(raised.exception).splitlines()[0]
        self.assertRegex(message, r"^server did not send 'mark' in time \(server used "
                                  r"0\.\d CPU s in the 1\.\d s waited, idle\)")  # fmt: skip

    def test_a_wait_using_a_fifth_of_a_core_or_more_is_a_loop(self) -> None:
        # A server stuck in a loop (its stack shows where) is told apart from one
        # waiting for something that never comes. (A real spinning child gets less
        # than a fifth of a core while the suite's other lanes load the machine.)
        self.assertEqual(how_it_waited("server", 0.61, 3.0),
                         "server used 0.6 CPU s in the 3.0 s waited, busy: a loop, not a wait")
        self.assertEqual(how_it_waited("server", 0.59, 3.0),
                         "server used 0.6 CPU s in the 3.0 s waited, idle")  # fmt: skip

    def test_bottleneck(self) -> None:
        self.assertEqual(bottleneck(9.8, 5.0, 10.0), "server")
        self.assertEqual(bottleneck(5.0, 9.8, 10.0), "load")
        self.assertEqual(bottleneck(5.0, 5.0, 10.0), "neither (latency-bound)")


class PeerInstallTests(unittest.TestCase):
    """colyseus-play's install of the peer, by two runs at once (two test processes
    on a fresh machine), with a stand-in `npm` that takes its time."""

    def test_two_installs_at_once_leave_one_whole_node_modules(self) -> None:
        from benchmarks.colyseus_play import ensure_installed

        root = os.path.abspath(self.mktemp())
        tools = os.path.join(root, "bin")
        os.makedirs(tools)
        npm = os.path.join(tools, "npm")
        with open(npm, "w") as f:
            f.write("#!/bin/sh\nsleep 0.3\nmkdir -p node_modules/pkg\n"
                    "echo $$ > node_modules/pkg/index.js\n")  # fmt: skip
        os.chmod(npm, 0o755)
        os.symlink(npm, os.path.join(tools, "node"))  # only looked for
        directory = os.path.join(root, "peer")
        path = os.environ["PATH"]
        os.environ["PATH"] = tools + os.pathsep + path
        self.addCleanup(os.environ.__setitem__, "PATH", path)
        errors: list[BaseException] = []

        def install() -> None:
            try:
                ensure_installed(directory)
            except BaseException as e:  # reported by the test
                errors.append(e)

        threads = [threading.Thread(target=install) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(sorted(os.listdir(os.path.join(directory, "node_modules"))), ["pkg"])
        self.assertTrue(os.path.isfile(os.path.join(directory, "load.mjs")))


class ScenarioSmokeTests(unittest.TestCase):
    """Each scenario end to end at a tiny size."""

    def assertRate(self, result: dict[str, Any], key: str) -> None:
        self.assertIsInstance(result.get(key), float, f"{key} in {result}")
        self.assertGreater(result[key], 0, key)

    def test_udp_echo(self) -> None:
        code, result, stderr = run_bench(
            "udp-echo", "--warmup", "0.2", "--duration", "0.5", "--window", "8", "--clients", "2",
            "--rounds", "2",
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "udp-echo")
        # Two runs of each half; each half reports its median (here: the slower) run.
        self.assertEqual(len(result["bare_runs_per_s"]), 2)
        self.assertEqual(len(result["vinom_runs_per_s"]), 2)
        self.assertEqual(result["vinom_per_s"], min(result["vinom_runs_per_s"]))
        self.assertRate(result, "bare_per_s")
        self.assertRate(result, "vinom_per_s")
        self.assertGreater(result["ratio"], 0)
        self.assertGreater(result["server_cpu_s"], 0)
        self.assertGreater(result["load_cpu_s"], 0)

    def test_usage_error(self) -> None:
        code, result, stderr = run_bench("udp-echo", "--window", "0")
        self.assertEqual(code, 2)
        self.assertIn("--window", stderr)
        self.assertEqual(result, {})

    def test_handshake(self) -> None:
        code, result, stderr = run_bench(
            "handshake", "--warmup", "0.2", "--duration", "0.5", "--slots", "4"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "handshake")
        self.assertRate(result, "handshakes_per_s")
        self.assertEqual(result["failures"], 0)
        self.assertGreater(result["server_cpu_s"], 0)
        self.assertGreater(result["load_cpu_s"], 0)
        self.assertGreater(result["p99_ms"], 0)

    def test_play(self) -> None:
        code, result, stderr = run_bench(
            "play", "--rooms", "3", "--warmup", "0.3", "--duration", "0.7"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "play")
        self.assertEqual(result["players"], 6)
        # The host records its matches, as `twistd vinom` does by default, on its reactor.
        self.assertIs(result["recording"], True)
        self.assertEqual(result["reactor"], "vinom.net.reactor.EPollReactor")
        self.assertRate(result, "moves_per_s")
        # Every applied move reaches both players of its room.
        self.assertGreater(result["msgs_delivered_per_s"], result["moves_per_s"])
        self.assertEqual(result["errors"], 0)
        self.assertGreater(result["server_cpu_us_per_move"], 0)
        self.assertGreater(result["p99_ms"], 0)
        self.assertGreaterEqual(result["p99_ms"], result["p50_ms"])

    def test_every_server_port_is_in_the_range_given(self) -> None:
        """`--ports LOW-HIGH`: every port the run's servers listen on (vinom's lobby,
        its game host's UDP ports, the WebSocket) is in the range, watched from outside
        in the processes themselves while they run."""
        low = random.Random().randrange(20_000, 29_000)
        high = low + 299
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks", "--ports", f"{low}-{high}", "play",
             "--game", "arena", "--transport", "ws", "--warmup", "0.5", "--duration", "1.5",
             "--quiet", "--timeout", "50"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bench_env(), cwd=ROOT,
        )  # fmt: skip
        seen: set[int] = set()
        while child.poll() is None:
            seen |= listening_ports(child.pid, "benchmarks.server_worker")
            time.sleep(0.1)
        out, err = child.communicate()
        result = json.loads(out.decode().strip().splitlines()[-1])
        self.assertArenaPlayed(child.returncode, result, err.decode(), "ws")
        # The WebSocket and the game host's UDP ports at least.
        self.assertGreaterEqual(len(seen), 2, seen)
        self.assertEqual({p for p in seen if not low <= p <= high}, set(), (low, high))

    def test_a_malformed_port_range_is_a_usage_error(self) -> None:
        code, _, stderr = run_bench("--ports", "9-x", "udp-echo")
        self.assertEqual(code, 2)
        self.assertIn("a port range is LOW-HIGH, not '9-x'", stderr)

    def test_play_arena(self) -> None:
        code, result, stderr = run_bench(
            "play", "--game", "arena", "--warmup", "0.5", "--duration", "1"
        )
        self.assertArenaPlayed(code, result, stderr, "udp")
        self.assertEqual((result["dropped_to_client"], result["dropped_to_host"]), (0, 0))
        # The host's own counts of its datagrams (UDP only).
        self.assertGreater(result["host_datagrams_out_per_s_per_player"], 0)
        self.assertGreater(result["host_datagrams_in_per_s_per_player"], 0)

    def test_play_arena_over_websocket(self) -> None:
        code, result, stderr = run_bench(
            "play", "--game", "arena", "--transport", "websocket", "--warmup", "0.5",
            "--duration", "1",
        )  # fmt: skip
        self.assertArenaPlayed(code, result, stderr, "websocket")
        # One WebSocket message each way per state and per input.
        self.assertLessEqual(result["datagrams_host_to_client_per_s_per_player_max"], 20 + 1)
        self.assertNotIn("host_datagrams_out_per_s_per_player", result)

    def test_play_arena_over_plain_websocket(self) -> None:
        code, result, stderr = run_bench(
            "play", "--game", "arena", "--transport", "ws", "--players", "12", "--warmup",
            "0.5", "--duration", "1",
        )  # fmt: skip
        self.assertArenaPlayed(code, result, stderr, "ws", players=12)

    def test_play_arena_over_webtransport(self) -> None:
        code, result, stderr = run_bench(
            "play", "--game", "arena", "--transport", "webtransport", "--warmup", "0.5",
            "--duration", "1.5",
        )  # fmt: skip
        self.assertArenaPlayed(code, result, stderr, "webtransport")
        # The states came as QUIC packets (with the acks of the inputs' packets).
        self.assertGreaterEqual(result["datagrams_host_to_client_per_s_per_player"],
                                result["states_per_s_per_client"] * 0.9)  # fmt: skip

    def test_browser_transports_are_not_impaired(self) -> None:
        for args, why in [
            (("--transport", "ws", "--loss", "0.1"), "--loss and --delay"),
            (("--transport", "webtransport", "--delay", "20"), "--loss and --delay"),
            (("--transport", "websocket", "--bare"), "--bare"),
        ]:
            code, result, stderr = run_bench("play", "--game", "arena", *args)
            self.assertEqual(code, 2, (args, stderr))
            self.assertIn(why, stderr, args)
            self.assertEqual(result, {})

    def assertArenaPlayed(
        self, code: int, result: dict[str, Any], stderr: str, transport: str, players: int = 8
    ) -> None:
        """An arena run's figures: every player played, states and bytes at the tick's pace."""
        # What made a run fail is in its figures (--quiet leaves stderr empty).
        self.assertEqual(code, 0, (stderr, {k: v for k, v in result.items() if k in (
            "errors", "error_codes", "client_drops", "session_events", "input_outcomes")}))
        self.assertEqual((result["scenario"], result["game"]), ("play", "arena"))
        self.assertEqual(result["transport"], transport)
        self.assertEqual((result["rooms"], result["players"]), (1, players))
        self.assertEqual(result["errors"], 0)
        self.assertRate(result, "inputs_per_s")
        # At most one state per 20 Hz tick (one more can fall in a window's edges).
        self.assertGreater(result["states_per_s_per_client"], 0)
        self.assertLessEqual(result["states_per_s_per_client_max"], 20 + 1 / 1.0)
        self.assertGreater(result["kbytes_per_s_per_client"], 0)
        self.assertGreater(result["server_cpu_ms_per_player_s"], 0)
        self.assertGreater(result["input_to_state_p99_ms"], 0)
        self.assertGreaterEqual(result["input_to_state_p99_ms"], result["input_to_state_p50_ms"])
        self.assertGreaterEqual(result["echo_p99_ms"], result["echo_p50_ms"])
        # Datagrams each way, counted by the load: at least a state a tick from the
        # host, at least an input each time one is due from the player.
        self.assertGreater(result["datagrams_host_to_client_per_s_per_player"], 0)
        self.assertGreaterEqual(
            result["datagrams_host_to_client_per_s_per_player_max"],
            result["datagrams_host_to_client_per_s_per_player"],
        )
        self.assertGreater(result["datagrams_client_to_host_per_s_per_player"], 0)
        self.assertEqual((result["loss"], result["delay_ms"]), (0, 0))
        # The rooms' tick moved (no bound below: a loaded machine starves the host).
        self.assertGreater(result["ticks_per_s"], 0)
        self.assertLessEqual(result["ticks_per_s"], 20 + 2)
        # Each state took some bytes on the wire, and no more than a datagram holds.
        per_state = result["kbytes_per_s_per_client"] * 1000 / result["states_per_s_per_client"]
        self.assertTrue(20 < per_state < 1200, per_state)
        # Every snap's baseline was there, and each rebuilt cleanly.
        drops = result.get("client_drops", {})
        self.assertEqual((drops.get("snap_unknown_baseline", 0), drops.get("snap_corrupt", 0)),
                         (0, 0), drops)  # fmt: skip

    def test_play_arena_with_spectators(self) -> None:
        code, result, stderr = run_bench(
            "play", "--game", "arena", "--spectators", "5", "--warmup", "0.5", "--duration", "1"
        )
        self.assertEqual(code, 0, (stderr, result))
        self.assertEqual((result["spectators"], result["errors"]), (5, 0))
        # Every spectator gets the match's states (one per tick at most, a few in a
        # window on a loaded machine), each datagram at least a state's bytes.
        self.assertGreater(result["spectator_states_per_s"], 0)
        self.assertLessEqual(result["spectator_states_per_s"], 20 + 1)
        self.assertGreater(result["spectator_kbytes_per_s"], 0)
        self.assertGreaterEqual(result["spectator_datagrams_per_s"],
                                5 * result["spectator_states_per_s"] * 0.9)  # fmt: skip
        self.assertGreater(result["input_to_state_p99_ms"], 0)
        code, _result, stderr = run_bench("play", "--spectators", "5")
        self.assertEqual(code, 2)
        self.assertIn("--spectators watch an arena match", stderr)

    def test_play_arena_over_a_lossy_delayed_path(self) -> None:
        code, result, stderr = run_bench(
            "play", "--game", "arena", "--warmup", "0.5", "--duration", "1.5", "--loss", "0.2",
            "--delay", "20", "--loss-seed", "7", "--snapshot-checksums",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["loss"], result["delay_ms"], result["loss_seed"]), (0.2, 20, 7))
        # The load dropped datagrams both ways (about one in five; no bound on a
        # loaded machine beyond "some, not all"), and inputs still got through.
        self.assertGreater(result["dropped_to_client"], 0)
        self.assertGreater(result["dropped_to_host"], 0)
        for direction in ("to_client", "to_host"):
            self.assertGreater(result[f"observed_loss_{direction}"], 0)
            self.assertLess(result[f"observed_loss_{direction}"], 1)
        self.assertEqual(result["errors"], 0)
        self.assertRate(result, "inputs_per_s")
        self.assertGreater(result["states_per_s_per_client"], 0)
        self.assertGreater(result["kbytes_per_s_per_client"], 0)
        self.assertGreater(result["input_to_state_p99_ms"], 0)
        # Every snap the players rebuilt matched the host's view (its checksum).
        self.assertEqual(result.get("client_drops", {}).get("snap_checksum", 0), 0)
        self.assertEqual(result.get("client_drops", {}).get("snap_corrupt", 0), 0)
        # Real-time inputs: the host applied some, and counted what became of the rest.
        self.assertGreater(result["input_outcomes"]["applied"], 0)

    def test_loss_and_delay_are_checked(self) -> None:
        for args, why in [
            (("--game", "arena", "--loss", "1"), "--loss"),
            (("--game", "arena", "--loss", "-0.1"), "loss"),
            (("--game", "arena", "--delay", "-5"), "delay"),
            (("--loss", "0.1"), "--game arena"),
            (("--delay", "100"), "--game arena"),
            (("--snapshot-checksums",), "--game arena"),
        ]:
            code, _result, stderr = run_bench("play", *args)
            self.assertNotEqual(code, 0, args)
            self.assertIn(why, stderr, args)

    def test_arena_is_hosted_in_the_server_process(self) -> None:
        code, _result, stderr = run_bench("play", "--game", "arena", "--host-workers", "1")
        self.assertNotEqual(code, 0)
        self.assertIn("--game arena", stderr)

    def test_play_over_websocket(self) -> None:
        code, result, stderr = run_bench(
            # 40 players from one address: more than /game's default per-address cap,
            # which the bench server lifts as the match scenario lifts the lobby's.
            "play", "--rooms", "20", "--transport", "websocket", "--warmup", "0.3",
            "--duration", "0.7",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["scenario"], result["transport"]), ("play", "websocket"))
        self.assertEqual((result["server"], result["players"]), ("vinom", 40))
        self.assertRate(result, "moves_per_s")
        # Every applied move reaches both players of its room, over their sockets.
        self.assertGreater(result["msgs_delivered_per_s"], result["moves_per_s"])
        self.assertEqual(result["errors"], 0)
        self.assertEqual(result["resends"], 0)
        self.assertGreater(result["server_cpu_us_per_move"], 0)
        self.assertGreaterEqual(result["p99_ms"], result["p50_ms"])

    def test_play_on_the_bare_websocket_floor(self) -> None:
        code, result, stderr = run_bench(
            "play", "--rooms", "2", "--transport", "websocket", "--bare", "--warmup", "0.3",
            "--duration", "0.7",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        # Named by the server that ran (a run that started vinom's own said "vinom").
        self.assertEqual((result["transport"], result["server"]), ("websocket", "bare twisted"))
        self.assertFalse(result["recording"])
        self.assertEqual(result["reactor"], "vinom.net.reactor.EPollReactor")
        self.assertRate(result, "moves_per_s")
        self.assertGreater(result["msgs_delivered_per_s"], result["moves_per_s"])
        self.assertEqual(result["errors"], 0)
        self.assertGreater(result["server_cpu_us_per_move"], 0)

    def test_bare_is_only_for_the_game_websocket(self) -> None:
        code, _result, stderr = run_bench("play", "--bare")
        self.assertNotEqual(code, 0)
        self.assertIn("--bare", stderr)

    def test_play_over_plain_websocket_on_twisteds_reactor(self) -> None:
        code, result, stderr = run_bench(
            "play", "--rooms", "2", "--transport", "ws", "--warmup", "0.3", "--duration", "0.7",
            "--stock-reactor",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["transport"], "ws")
        self.assertEqual(result["reactor"], "twisted.internet.epollreactor.EPollReactor")
        self.assertRate(result, "moves_per_s")
        self.assertGreater(result["msgs_delivered_per_s"], result["moves_per_s"])
        self.assertEqual(result["errors"], 0)

    def test_play_over_webtransport(self) -> None:
        # Each player an aioquic client on a UDP socket of its own (as a browser with
        # WebTransport): 20 QUIC connections from one address, past the listener's
        # default per-address cap, which the bench server lifts.
        code, result, stderr = run_bench(
            "play", "--rooms", "10", "--transport", "webtransport", "--warmup", "0.5",
            "--duration", "2",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["scenario"], result["transport"]), ("play", "webtransport"))
        self.assertEqual(result["players"], 20)
        self.assertRate(result, "moves_per_s")
        # Every applied move reaches both players of its room (as datagrams).
        self.assertGreater(result["msgs_delivered_per_s"], result["moves_per_s"])
        self.assertEqual(result["errors"], 0)
        self.assertGreater(result["server_cpu_us_per_move"], 0)
        self.assertGreaterEqual(result["p99_ms"], result["p50_ms"])

    def test_colyseus_play(self) -> None:
        # The peer's duel: a real Colyseus server and @colyseus/sdk players (Node.js),
        # installed from the peer's lockfile by the scenario on its first run (npm ci).
        code, result, stderr = run_bench(
            "colyseus-play", "--rooms", "3", "--warmup", "0.3", "--duration", "0.7",
            timeout=150.0,
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["scenario"], result["transport"]), ("colyseus-play", "ws"))
        with open(os.path.join(ROOT, "benchmarks/peers/colyseus/package-lock.json")) as f:
            locked = json.load(f)["packages"]["node_modules/@colyseus/core"]["version"]
        self.assertEqual(result["colyseus"], locked)
        self.assertEqual(result["players"], 6)
        self.assertRate(result, "moves_per_s")
        # Every applied move reaches both players of its room.
        self.assertGreater(result["msgs_delivered_per_s"], result["moves_per_s"])
        self.assertEqual(result["errors"], 0)
        self.assertGreater(result["server_cpu_us_per_move"], 0)
        self.assertGreaterEqual(result["p99_ms"], result["p50_ms"])

    def test_colyseus_play_arena(self) -> None:
        # The peer's arena: a schema state seen through each client's StateView, ticked
        # and patched 20 times a second, inputs from @colyseus/sdk players.
        code, result, stderr = run_bench(
            "colyseus-play", "--game", "arena", "--players", "4", "--warmup", "0.5",
            "--duration", "1.5", timeout=150.0,
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["scenario"], result["game"]), ("colyseus-play", "arena"))
        self.assertEqual((result["rooms"], result["players"]), (1, 4))
        self.assertGreater(result["inputs_per_s"], 0)
        # Every client got patches and saw the room tick; the frames carry a header
        # beyond their payload.
        self.assertGreater(result["states_per_s_per_client"], 0)
        self.assertGreater(result["ticks_per_s"], 0)
        self.assertGreater(result["kbytes_per_s_per_client"],
                           result["payload_kbytes_per_s_per_client"])  # fmt: skip
        self.assertGreater(result["payload_kbytes_per_s_per_client"], 0)
        # Inputs were seen applied (the owner's `ack`) in the window.
        self.assertGreaterEqual(result["input_to_state_p99_ms"], result["input_to_state_p50_ms"])
        self.assertGreater(result["input_to_state_p50_ms"], 0)
        self.assertEqual(result["errors"], 0)
        self.assertGreater(result["server_cpu_ms_per_player_s"], 0)
        code, _, stderr = run_bench("colyseus-play", "--game", "chess")
        self.assertEqual(code, 2, stderr)
        self.assertIn("--game is duel or arena", stderr)

    def test_shape_runs_both_servers_at_each_room_size_and_draws_them(self) -> None:
        # vinom's arena and the Colyseus peer's, one room at each size, alternated.
        plot = os.path.join(tempfile.mkdtemp(), "shape.svg")
        code, result, stderr = run_bench(
            "shape", "--players", "2,4", "--rounds", "1", "--warmup", "0.5", "--duration", "1",
            "--plot", plot, timeout=240.0,
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        figures = result["figures"]
        for server in ("vinom", "Colyseus"):
            self.assertEqual(sorted(figures[server]), ["2", "4"])
            for size in ("2", "4"):
                run = result["runs"][server][size][0]
                self.assertEqual((run["rooms"], run["players"], run["errors"]), (1, int(size), 0))
                self.assertEqual(figures[server][size]["cpu_median"],
                                 run["server_cpu_ms_per_player_s"])  # fmt: skip
                self.assertGreater(figures[server][size]["cpu_median"], 0)
        for size in ("2", "4"):
            self.assertEqual(figures["ratio"][size], round(
                figures["vinom"][size]["cpu_median"] / figures["Colyseus"][size]["cpu_median"], 3))
        with open(plot, encoding="utf-8") as f:
            drawn = f.read()
        self.assertEqual(drawn.count("<polyline"), 2)
        self.assertEqual(drawn.count("<circle"), 4)
        code, _, stderr = run_bench("shape", "--players", "1,8")
        self.assertEqual(code, 2, stderr)
        self.assertIn("each room size at least 2", stderr)

    def test_a_tls_proxy_fronts_only_the_plain_game_socket(self) -> None:
        for transport in ("udp", "websocket"):
            code, result, stderr = run_bench(
                "play", "--transport", transport, "--tls-proxy", "haproxy"
            )
            self.assertEqual(code, 2, stderr)
            self.assertIn("--tls-proxy terminates TLS in front of vinom's plain /game", stderr)
            self.assertEqual(result, {})

    def test_webtransport_is_neither_bare_nor_relayed(self) -> None:
        for extra in ("--bare", "--relay"):
            code, result, stderr = run_bench("play", "--transport", "webtransport", extra)
            self.assertEqual(code, 2, stderr)
            self.assertIn(extra, stderr)
            self.assertNotIn("Traceback", stderr)
            self.assertEqual(result, {})

    def test_play_websocket_with_host_workers_is_a_usage_error(self) -> None:
        code, result, stderr = run_bench(
            "play", "--rooms", "2", "--transport", "websocket", "--host-workers", "1"
        )
        self.assertEqual(code, 2)
        self.assertIn("--transport", stderr)
        self.assertEqual(result, {})

    def test_play_with_host_workers(self) -> None:
        code, result, stderr = run_bench(
            "play", "--rooms", "4", "--host-workers", "2", "--warmup", "0.3", "--duration", "0.7"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["host_workers"], 2)
        self.assertEqual(result["errors"], 0)
        self.assertRate(result, "moves_per_s")
        # One host on each worker, and each worker's rooms moved.
        workers = result["workers"]
        self.assertEqual(len(workers), 2)
        self.assertEqual(len({w["pid"] for w in workers}), 2)
        for worker in workers:
            self.assertGreater(worker["moves"], 0, worker)
            self.assertGreaterEqual(worker["cpu_us_per_move"], 0)
        self.assertGreaterEqual(result["lobby_cpu_share"], 0)
        self.assertLessEqual(result["lobby_cpu_share"], 1)
        self.assertIn("worker_cpu_us_per_move", result)

    def test_play_host_workers_usage_error(self) -> None:
        code, result, stderr = run_bench("play", "--rooms", "2", "--host-workers", "3")
        self.assertEqual(code, 2)
        self.assertIn("--host-workers", stderr)
        self.assertEqual(result, {})

    def test_sessions(self) -> None:
        code, result, stderr = run_bench(
            "sessions", "--sessions", "20", "--warmup", "0.2", "--duration", "2"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "sessions")
        self.assertEqual(result["sessions"], 20)
        self.assertEqual(result["errors"], 0)
        self.assertEqual(result["failed_to_connect"], 0)
        # Twenty idle sessions cost too little CPU to measure in two seconds.
        self.assertGreaterEqual(result["server_cpu_pct"], 0)
        self.assertLess(result["server_cpu_pct"], 100)
        # Keepalives flow both ways while the sessions are idle.
        self.assertGreater(result["server_datagrams_per_s"], 0)
        # Twenty sessions may fit in memory the process already holds: the figure
        # is reported, but only thousands of sessions make it meaningful.
        self.assertIsInstance(result["rss_bytes_per_session"], int)
        self.assertGreater(result["rss_end_bytes"], result["rss_bytes_per_session"])

    def test_match(self) -> None:
        code, result, stderr = run_bench("match", "--clients", "20", "--in-flight", "10")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "match")
        self.assertEqual(result["clients"], 20)
        self.assertEqual(result["errors"], 0)
        self.assertRate(result, "clients_per_s")
        self.assertGreater(result["wall_s"], 0)
        self.assertGreater(result["p99_ms"], 0)
        self.assertGreater(result["server_cpu_ms_per_client"], 0)
        self.assertEqual(result["client"], "lean")
        self.assertTrue(result["tls"].startswith("TLSv1.3 "), result["tls"])
        # TLS is the default.
        self.assertIs(result["lobby_tls"], True)
        # As twistd vinom by default, the server recorded every match: a file each.
        self.assertEqual(result["records"], 10)

    def test_match_with_returning_players(self) -> None:
        # Ten players play two matches each: their second connections resume.
        code, result, stderr = run_bench(
            "match", "--clients", "20", "--in-flight", "10", "--returning"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["errors"], 0)
        self.assertTrue(result["returning"])
        self.assertEqual(result["tls_resumed"], 10)

    def test_match_on_a_plain_lobby(self) -> None:
        # As behind a TLS-terminating load balancer: the lobby on plain TCP, the
        # clients speaking plain lobby frames to it, every client in a full room.
        code, result, stderr = run_bench(
            "match", "--clients", "20", "--in-flight", "10", "--lobby-tls", "off"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["clients"], result["errors"]), (20, 0))
        self.assertIs(result["lobby_tls"], False)
        # No TLS was negotiated with anyone.
        self.assertNotIn("tls", result)
        self.assertRate(result, "clients_per_s")
        self.assertGreater(result["server_cpu_ms_per_client"], 0)

    def test_match_without_records(self) -> None:
        # `--no-record` is twistd vinom's: the matches are played, none recorded.
        code, result, stderr = run_bench(
            "match", "--clients", "10", "--in-flight", "10", "--lobby-tls", "off", "--no-record"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["clients"], result["errors"], result["records"]), (10, 0, 0))

    def test_match_with_host_workers(self) -> None:
        code, result, stderr = run_bench(
            "match", "--clients", "10", "--in-flight", "10", "--host-workers", "1"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["host_workers"], 1)
        self.assertEqual(result["clients"], 10)
        self.assertEqual(result["errors"], 0)
        self.assertRate(result, "clients_per_s")
        self.assertGreaterEqual(result["worker_cpu_s"], 0)

    def test_match_through_a_gateway(self) -> None:
        code, result, stderr = run_bench("match", "--clients", "20", "--in-flight", "10",
                                         "--gateway")  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertTrue(result["gateway"])
        self.assertEqual((result["clients"], result["errors"]), (20, 0))
        self.assertRate(result, "clients_per_s")
        # TLS passed through to the lobby: the clients negotiated with it.
        self.assertTrue(result["tls"].startswith("TLSv1.3 "), result["tls"])
        # Twenty clients may cost the gateway less than the CPU clock's tick: reported, >= 0.
        self.assertGreaterEqual(result["gateway_cpu_ms_per_client"], 0)
        self.assertEqual(result["cores"].keys(), {"server", "load", "gateway"})
        self.assertEqual((result["gateway_tls"], result["gateway_tls_terminated"]),
                         ("passthrough", 0))  # fmt: skip
        self.assertFalse(result["gateway_floor"])

    def test_match_through_the_gateway_floor(self) -> None:
        code, result, stderr = run_bench("match", "--clients", "20", "--in-flight", "10",
                                         "--gateway", "--gateway-floor")  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["gateway"], result["gateway_floor"]), (True, True))
        # Bare portforward with a PROXY header in front of the lobby still makes every match.
        self.assertEqual((result["clients"], result["errors"]), (20, 0))
        self.assertTrue(result["tls"].startswith("TLSv1.3 "), result["tls"])
        self.assertGreaterEqual(result["gateway_cpu_ms_per_client"], 0)
        for args, says in [
            (("--gateway-floor",), "--gateway-floor needs --gateway"),
            (("--gateway", "--gateway-tls", "terminate", "--gateway-floor"),
             "--gateway-floor needs --gateway, passing TLS through"),
        ]:  # fmt: skip
            code, result, stderr = run_bench("match", *args)
            self.assertEqual(code, 2, stderr)
            self.assertIn(says, stderr)

    def test_match_through_a_gateway_terminating_tls(self) -> None:
        code, result, stderr = run_bench("match", "--clients", "20", "--in-flight", "10",
                                         "--gateway", "--gateway-tls", "terminate")  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["gateway"], result["gateway_tls"]), (True, "terminate"))
        self.assertEqual((result["clients"], result["errors"]), (20, 0))
        self.assertRate(result, "clients_per_s")
        # Every client's TLS ended at the gateway (whose certificate it verified), and the
        # lobby behind it, on plain TCP, still turned all twenty into full rooms.
        self.assertEqual(result["gateway_tls_terminated"], 20)
        self.assertTrue(result["tls"].startswith("TLSv1.3 "), result["tls"])
        self.assertGreaterEqual(result["gateway_cpu_ms_per_client"], 0)

    def test_match_through_two_lobbies_on_redis(self) -> None:
        code, result, stderr = run_bench(
            "match", "--clients", "20", "--in-flight", "10", "--lobbies", "2", "--redis",
            timeout=120,
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["scenario"], result["lobbies"], result["redis"]),
                         ("match", 2, True))  # fmt: skip
        self.assertEqual((result["clients"], result["errors"]), (20, 0))
        # Every client reached its full room, through one lobby or the other.
        self.assertEqual(sum(result["lobby_clients"]), 20)
        self.assertEqual(len(result["lobby_clients"]), 2)
        self.assertTrue(all(count > 0 for count in result["lobby_clients"]), result)
        self.assertLessEqual(result["matches_across_lobbies"], 10)
        self.assertRate(result, "clients_per_s")
        # The CPU of each server process, and their sum.
        by_process = result["server_cpu_by_process"]
        self.assertEqual(set(by_process), {"lobby0", "lobby1", "host", "redis"})
        self.assertAlmostEqual(sum(by_process.values()), result["server_cpu_s"], delta=0.01)
        self.assertGreater(by_process["lobby0"] + by_process["lobby1"], 0)
        self.assertGreater(result["server_cpu_ms_per_client"], 0)

    def test_match_with_signed_in_clients(self) -> None:
        # Ten players play two matches each on a server that signs players in: every
        # client is welcomed (a hello without credentials would be refused), and each
        # player's two sign-ins are one account of the server's database.
        for kind in ("jwt", "signed", "device"):
            code, result, stderr = run_bench(
                "match", "--clients", "20", "--in-flight", "10", "--returning", "--auth", kind
            )
            self.assertEqual(code, 0, stderr)
            self.assertEqual((result["auth"], result["clients"], result["errors"]),
                             (kind, 20, 0), stderr)  # fmt: skip
            self.assertEqual(result["accounts"], 10, kind)
        code, result, stderr = run_bench("match", "--clients", "10", "--in-flight", "10")
        self.assertEqual((code, result["auth"]), (0, "guest"), stderr)
        self.assertNotIn("accounts", result)

    def test_match_lobbies_usage_errors(self) -> None:
        for args, says in [
            (("--lobbies", "2"), "--lobbies more than 1 needs --redis"),
            (("--lobbies", "0", "--redis"), "--lobbies must be at least 1"),
            (("--redis", "--client", "twisted"), "--redis runs the lean clients only"),
            (("--lobby-tls", "maybe"), "--lobby-tls must be one of on, off"),
            (("--lobby-tls", "off", "--returning"), "no TLS session to resume"),
            (("--lobby-tls", "off", "--gateway"), "--lobby-tls off and --gateway"),
            (("--lobby-tls", "off", "--client", "twisted"), "--lobby-tls off runs the lean"),
            (("--auth", "password"), "--auth must be one of guest, jwt, signed, device"),
            (("--auth", "jwt", "--redis"), "--auth jwt runs one server process"),
            (("--auth", "device", "--client", "twisted"), "--auth device runs the lean clients"),
        ]:
            code, result, stderr = run_bench("match", *args)
            self.assertEqual(code, 2, stderr)
            self.assertIn(says, stderr)
            self.assertEqual(result, {})

    def test_spawn(self) -> None:
        for pool in ("1", "0"):
            code, result, stderr = run_bench(
                "spawn", "--matches", "3", "--pool", pool, "--interval", "0.3", "--think", "0"
            )
            self.assertEqual(code, 0, stderr)
            self.assertEqual(result["scenario"], "spawn")
            self.assertEqual(result["pool"], int(pool))
            # One child, and one spawn latency, per match; every match played out.
            self.assertEqual((result["spawns"], result["finished"]), (3, 3))
            self.assertEqual(result["errors"], 0)
            self.assertGreater(result["p50_ms"], 0)
            self.assertGreaterEqual(result["p99_ms"], result["p50_ms"])

    def test_drain(self) -> None:
        code, result, stderr = run_bench(
            "drain", "--matches", "2", "--think", "0.4", "--host-workers", "1"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "drain")
        # SIGTERM came while both matches ran; both played to their end.
        self.assertEqual((result["matches"], result["running"]), (2, 2))
        self.assertEqual((result["finished"], result["aborted"], result["lost"]), (2, 0, 0))
        self.assertEqual(result["exit_code"], 0)
        self.assertGreater(result["drain_s"], 0)

    def test_lobby_idle(self) -> None:
        code, result, stderr = run_bench("lobby-idle", "--connections", "30")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "lobby-idle")
        # Every connection held at once, by the vinom lobby and by the bare TLS server.
        self.assertEqual((result["held"], result["server_connections"]), (30, 30))
        self.assertEqual((result["bare_held"], result["bare_server_connections"]), (30, 30))
        self.assertEqual(result["errors"], 0)
        for name in ("rss_bytes_per_connection", "rss_retained_per_connection"):
            self.assertIsInstance(result[name], int)
            self.assertIsInstance(result[f"bare_{name}"], int)

    def test_matchmaker_with_redis(self) -> None:
        code, result, stderr = run_bench(
            "matchmaker", "--redis", "--lobbies", "2", "--tickets", "400", "--in-flight", "20"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "matchmaker")
        self.assertEqual((result["store"], result["lobbies"]), ("redis", 2))
        self.assertEqual((result["tickets"], result["matches"]), (400, 200))
        self.assertEqual((result["double_matches"], result["missing"]), (0, 0))
        # Heard by the lobbies of its players (and the one that formed it): two at most.
        self.assertTrue(1 <= result["heard_per_match"] <= 2, result)
        self.assertRate(result, "tickets_per_s")

    def test_matchmaker_with_redis_and_parties(self) -> None:
        code, result, stderr = run_bench(
            "matchmaker", "--redis", "--lobbies", "2", "--tickets", "400", "--in-flight", "20",
            "--party-size", "2",
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((result["party_size"], result["matches"]), (2, 200))
        self.assertEqual((result["double_matches"], result["missing"]), (0, 0))
        self.assertTrue(1 <= result["heard_per_match"] <= 2, result)
        self.assertRate(result, "players_per_s")

    def test_match_with_the_client_library(self) -> None:
        code, result, stderr = run_bench(
            "match", "--clients", "4", "--in-flight", "4", "--client", "twisted"
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["client"], "twisted")
        self.assertEqual(result["clients"], 4)
        self.assertEqual(result["errors"], 0)
        self.assertGreater(result["p99_ms"], 0)

    def test_soak(self) -> None:
        code, result, stderr = run_bench(
            "soak", "--bots", "4", "--warmup", "0.5", "--duration", "3", "--think", "0",
            "--seed", "1",
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(result["scenario"], "soak")
        self.assertEqual(result["errors"], 0)
        self.assertGreaterEqual(result["games"], 0)
        self.assertGreater(result["moves"], 0)
        self.assertGreater(result["rss_start_bytes"], 0)
        self.assertGreater(result["rss_end_bytes"], 0)


class LoadCommandTests(unittest.TestCase):
    """`python -m benchmarks.load` (the load generator) against a real server in a child process."""

    def test_bots_play_and_summary(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        env = bench_env()
        server = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server_worker", "server",
             json.dumps({"data_dir": data_dir, "udp_ports": 16})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=ROOT,
        )  # fmt: skip

        def stop_server() -> None:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.close()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            server.stdout.close()

        self.addCleanup(stop_server)
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        self.assertEqual(ready["type"], "ready")
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.load",
             "--lobby", f"127.0.0.1:{ready['lobby_port']}", "--trust", ready["trust"],
             "--game", "maze", "--bots", "4", "--duration", "5", "--think", "0",
             "--json", "--quiet"],
            capture_output=True, timeout=60, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr.decode())
        summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
        self.assertEqual(summary["bots"], 4)
        self.assertEqual(summary["errors"], 0)
        self.assertGreaterEqual(summary["matches_started"], 2)
        self.assertGreater(summary["moves"], 0)
        self.assertGreater(summary["move_p99_ms"], 0)

    def test_usage_error(self) -> None:
        from benchmarks import load

        self.assertEqual(load.main(["--lobby", "nonsense"]), 2)
        self.assertEqual(load.parse_lobby("example.org:7350"), ("example.org", 7350))
        self.assertEqual(load.parse_lobby("[::1]:7350"), ("::1", 7350))


class LossyLinkTests(unittest.TestCase):
    """The arena load's simulated loss draws the same drops for the same seed."""

    def test_draws_depend_on_the_seed_the_player_and_the_direction_only(self) -> None:
        from benchmarks.arena_load import IN, OUT, LossyLink

        def drops(seed: int, player: str, direction: int) -> list[bool]:
            rng = LossyLink(0.1, 0.0, seed).rngs(player)[direction]
            return [rng.random() < 0.1 for _ in range(1000)]

        self.assertEqual(drops(35, "p1", OUT), drops(35, "p1", OUT))
        self.assertNotEqual(drops(35, "p1", OUT), drops(35, "p1", IN))
        self.assertNotEqual(drops(35, "p1", OUT), drops(35, "p2", OUT))
        self.assertNotEqual(drops(35, "p1", OUT), drops(36, "p1", OUT))
        self.assertTrue(50 < sum(drops(35, "p1", IN)) < 150)

    def test_the_state_wire_reads_a_state_and_builds_an_input(self) -> None:
        import msgpack

        from benchmarks.arena_load import StateWire
        from vinom.protocol.events import RELIABLE

        wire = StateWire()
        channel, data = wire.input(3, [1.0, -2.0], 0.0)
        self.assertEqual(channel, RELIABLE)
        self.assertEqual(
            msgpack.unpackb(data), {"t": "action", "a": {"move": [1.0, -2.0], "n": 3}, "i": 3}
        )
        view = {"ack": 2, "players": []}
        state = msgpack.unpackb(msgpack.packb(
            {"t": "state", "v": 9, "p": "playing", "r": None, "k": 41, "ts": 0, "s": view, "i": 3}
        ))  # fmt: skip
        self.assertEqual(wire.update(state, 0.0), (41, True, view, 2, 3))
        self.assertIsNone(wire.update({"t": "error", "code": "x"}, 0.0))

    def test_the_snap_wire_repeats_unacknowledged_inputs_on_channel_0(self) -> None:
        import msgpack

        from benchmarks.arena_load import SnapWire, wire_for
        from vinom.protocol.events import UNRELIABLE

        class Conn:
            reliability = None
            delays: tuple[float, float] | None = None

            def set_ack_delays(self, own_s: float, peer_s: float) -> None:
                self.delays = (own_s, peer_s)

        conn = Conn()
        wire = wire_for({"t": "welcome", "tick_rate": 20, "snapshot_rate": 20}, conn)
        assert isinstance(wire, SnapWire)
        self.assertEqual(conn.delays, (0.05, 0.05))  # acks ride on inputs and snaps
        wire.input(1, [1.0, 0.0], 0.0)
        channel, data = wire.input(2, [0.0, 1.0], 0.05)
        self.assertEqual(channel, UNRELIABLE)
        message = msgpack.unpackb(data)
        self.assertEqual((message["t"], message["a"]), ("input", None))
        self.assertEqual([value["n"] for _tick, value in message["x"]], [1, 2])
        ticks = [tick for tick, _value in message["x"]]
        self.assertLess(ticks[0], ticks[1])
        # A room without a tick keeps the state wire.
        self.assertNotIsInstance(wire_for({"t": "welcome", "tick_rate": 0}, conn), SnapWire)

    def test_the_snap_wire_on_a_stream_stamps_inputs_for_the_next_tick(self) -> None:
        import msgpack

        from benchmarks.arena_load import SnapWire, wire_for
        from vinom.protocol.events import UNRELIABLE

        # A WebSocket or WebTransport player has no session connection: no session
        # acks to set, and its inputs assume no round trip (loopback).
        wire = wire_for({"t": "welcome", "tick_rate": 20, "snapshot_rate": 20}, None)
        assert isinstance(wire, SnapWire)
        channel, data = wire.input(1, [1.0, 0.0], 0.0)
        self.assertEqual(channel, UNRELIABLE)
        [(tick, value)] = msgpack.unpackb(data)["x"]
        self.assertEqual((tick, value["n"]), (1, 1))  # no snap seen yet: the first tick
