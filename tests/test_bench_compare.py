"""`python -m benchmarks compare`: one scenario run alternately on two builds.

Each test starts `python -m benchmarks compare` as a real child process,
which runs the scenario's real harness on both sides; the baseline is this
test's own virtualenv (or something that is not one). The scenario is
udp-echo at a tiny size: the figures mean nothing, how they are gathered
and compared does.
"""

# slow: runs the benchmarks (python -m benchmarks)

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from twisted.trial import unittest

import vinom
from tests.test_bench import ROOT, bench_env

# The cheapest real run: vinom's half of udp-echo only, once, for half a second.
# Its own --rounds (1) is not compare's (2).
TINY_UDP_ECHO = (
    "udp-echo", "--only", "vinom", "--rounds", "1", "--warmup", "0.2", "--duration", "0.5",
    "--clients", "2", "--window", "2",
)  # fmt: skip


def run_compare(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "compare", *args],
        capture_output=True, text=True, timeout=timeout, env=bench_env(), cwd=ROOT, check=False,
    )  # fmt: skip


def json_line(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise AssertionError(f"no JSON line:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


class CompareTests(unittest.TestCase):
    def assertClose(self, shown: float, computed: float, name: str) -> None:
        self.assertLessEqual(abs(shown - computed), 1e-4, f"{name}: {shown} vs {computed}")

    def test_alternates_two_builds_and_compares_every_figure(self) -> None:
        baseline = sys.prefix
        done = run_compare("--baseline", baseline, "--rounds", "2", *TINY_UDP_ECHO)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        summary = json_line(done)

        # A is the baseline's python, B this one; each says which vinom it ran.
        sides = summary["sides"]
        self.assertTrue(same_path(sides["A"]["python"], os.path.join(baseline, "bin", "python")))
        self.assertEqual(sides["B"]["python"], sys.executable)
        self.assertFalse(sides["A"]["sources"])
        # B measures the vinom this test imports (bench_env: the sources when it does).
        self.assertTrue(same_path(sides["B"]["build"]["path"], os.path.dirname(vinom.__file__)))
        self.assertEqual(sides["B"]["sources"], "VINOM_BENCH_SOURCES" in bench_env())
        for side in ("A", "B"):
            self.assertIn(sides[side]["build"]["code"], ("pure", "compiled"))

        # Both sides ran twice, alternated, one run after the other.
        runs = summary["runs"]
        self.assertEqual(
            [(run["side"], run["round"]) for run in runs], [("A", 1), ("B", 1), ("A", 2), ("B", 2)]
        )
        for earlier, later in itertools.pairwise(runs):
            self.assertGreaterEqual(
                later["started"] + 0.01, earlier["started"] + earlier["seconds"]
            )
        for run in runs:
            self.assertEqual(run["exit"], 0)
            self.assertNotIn("error", run)
            result = run["result"]
            self.assertEqual(result["scenario"], "udp-echo")
            self.assertEqual(result["rounds"], 1)  # the scenario's options reached it
            self.assertEqual(result["build"]["code"], sides[run["side"]]["build"]["code"])
        self.assertEqual(summary["failed_runs"], 0)

        # Every number of the runs' JSON is a figure; its statistics come from those runs.
        figures = summary["figures"]
        names = [
            name for name, value in runs[0]["result"].items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]  # fmt: skip
        self.assertIn("vinom_per_s", names)
        self.assertEqual([n for n in figures if n in names], names)  # the scenario's order
        self.assertIn("vinom_runs_per_s[0]", figures)  # list items, flattened
        for name in names:
            values = {
                side: [run["result"][name] for run in runs if run["side"] == side]
                for side in ("A", "B")
            }
            entry = figures[name]
            for side in ("A", "B"):
                self.assertEqual(entry[side]["values"], values[side], name)
                self.assertEqual(entry[side]["min"], min(values[side]), name)
                self.assertEqual(entry[side]["max"], max(values[side]), name)
                self.assertAlmostEqual(entry[side]["median"], statistics.median(values[side]))
            a, b = entry["A"]["median"], entry["B"]["median"]
            if a == 0:
                self.assertNotIn("ratio", entry, name)
                continue
            # Ratios are rounded to four decimals.
            self.assertClose(entry["ratio"], b / a, name)
            by_round = [vb / va for va, vb in zip(values["A"], values["B"], strict=True) if va != 0]
            self.assertClose(entry["ratio_range"][0], min(by_round), name)
            self.assertClose(entry["ratio_range"][1], max(by_round), name)
            if all(v > 0 for v in values["A"] + values["B"]):
                # With two rounds the ratio of medians lies between the rounds' ratios.
                low, high = entry["ratio_range"]
                self.assertTrue(low - 1e-3 <= entry["ratio"] <= high + 1e-3, name)

        # The table a reader sees says the same.
        table = done.stdout.strip().splitlines()[:-1]
        self.assertTrue(any(line.startswith(f"A (baseline): {sides['A']['python']}")
                            for line in table))  # fmt: skip
        self.assertTrue(any(line.startswith(f"B (measured): {sys.executable}") for line in table))
        row = next(line for line in table if line.split()[:1] == ["vinom_per_s"])
        self.assertIn(f"{figures['vinom_per_s']['ratio']:.3f}", row.split())

    def test_a_baseline_that_is_not_a_virtualenv_is_one_error_line(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        done = run_compare("--baseline", directory, *TINY_UDP_ECHO, timeout=60)
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, "")
        lines = done.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertIn(directory, lines[0])
        self.assertIn("not a virtualenv", lines[0])

    def test_a_failed_run_is_reported_and_the_others_still_run(self) -> None:
        # A "baseline" whose interpreter starts (the check of its vinom passes) but
        # whose first benchmark run fails, as a flaky build would; the next one runs.
        venv = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, venv)
        os.mkdir(os.path.join(venv, "bin"))
        python = os.path.join(venv, "bin", "python")
        failed_once = os.path.join(venv, "failed-once")
        with open(python, "w") as script:
            script.write(
                "#!/bin/sh\n"
                f'if [ "$1" = "-m" ] && [ ! -e {failed_once} ]; then touch {failed_once};'
                ' echo "this build is broken: no module _speedups" >&2; exit 3; fi\n'
                f'exec {sys.executable} "$@"\n'
            )
        os.chmod(python, 0o755)
        done = run_compare("--baseline", venv, "--rounds", "2", *TINY_UDP_ECHO)
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertNotIn("Traceback", done.stderr)
        summary = json_line(done)
        runs = summary["runs"]
        self.assertEqual(
            [(run["side"], run["round"], "error" in run) for run in runs],
            [("A", 1, True), ("B", 1, False), ("A", 2, False), ("B", 2, False)],
        )
        self.assertEqual(summary["failed_runs"], 1)
        self.assertEqual(runs[0]["exit"], 3)
        self.assertIn("no module _speedups", runs[0]["stderr_tail"])
        for run in runs[1:]:
            self.assertEqual(run["result"]["scenario"], "udp-echo")
        # The failed round counts in no figure: A's figures are its second round's.
        a_value = runs[2]["result"]["vinom_per_s"]
        b_values = [runs[1]["result"]["vinom_per_s"], runs[3]["result"]["vinom_per_s"]]
        figure = summary["figures"]["vinom_per_s"]
        self.assertEqual(figure["A"]["values"], [None, a_value])
        self.assertEqual(figure["A"]["median"], a_value)
        self.assertEqual(figure["B"]["values"], b_values)
        self.assertClose(figure["ratio"], statistics.median(b_values) / a_value, "vinom_per_s")
        self.assertClose(figure["ratio_range"][0], b_values[1] / a_value, "vinom_per_s")
        self.assertClose(figure["ratio_range"][1], b_values[1] / a_value, "vinom_per_s")
        self.assertIn("A round 1 FAILED: exit status 3", done.stdout)
        self.assertIn("no module _speedups", done.stdout)

    def test_carries_the_arena_figures_of_issue_35(self) -> None:
        # play --game arena over a lossy path, once a side: every figure of issue
        # #35's item 7 is compared, both sides measured it, and the table names it.
        done = run_compare(
            "--baseline", sys.prefix, "--rounds", "1", "play", "--game", "arena", "--warmup",
            "0.3", "--duration", "0.7", "--loss", "0.1",
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        figures = json_line(done)["figures"]
        for name in (
            "loss", "kbytes_per_s_per_client", "states_per_s_per_client",
            "input_to_state_p50_ms", "input_to_state_p99_ms", "server_cpu_ms_per_player_s",
            "datagrams_host_to_client_per_s_per_player",
            "datagrams_client_to_host_per_s_per_player", "dropped_to_client", "dropped_to_host",
        ):  # fmt: skip
            self.assertIn("A", figures[name], name)
            self.assertIn("B", figures[name], name)
            self.assertIn(name, done.stdout)
        self.assertEqual(figures["loss"]["A"]["median"], 0.1)

    def test_one_build_with_two_option_sets(self) -> None:
        # --baseline-args without --baseline: both sides run this build; only side A
        # adds the options (here: the host records no match, as play's cost of
        # recording is measured).
        done = run_compare(
            "--baseline-args", "--no-record", "--rounds", "1", "play", "--game", "arena",
            "--warmup", "0.3", "--duration", "0.7",
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        summary = json_line(done)
        sides = summary["sides"]
        self.assertEqual((sides["A"]["python"], sides["B"]["python"]),
                         (sys.executable, sys.executable))  # fmt: skip
        self.assertEqual(sides["A"]["build"], sides["B"]["build"])
        self.assertEqual((sides["A"]["args"], sides["B"]["args"]), (["--no-record"], []))
        self.assertEqual(summary["args"],
                         ["--game", "arena", "--warmup", "0.3", "--duration", "0.7"])  # fmt: skip
        recording = {run["side"]: run["result"]["recording"] for run in summary["runs"]}
        self.assertEqual(recording, {"A": False, "B": True})
        table = done.stdout.strip().splitlines()[:-1]
        self.assertTrue(any(line.startswith("A (baseline)") and line.endswith("with --no-record")
                            for line in table), table)  # fmt: skip

    def test_options_side_a_cannot_take_are_refused_before_any_run(self) -> None:
        done = run_compare("--baseline-args", "--no-such-option", *TINY_UDP_ECHO, timeout=60)
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, "")
        self.assertIn("no-such-option", done.stderr)

    def test_compares_play_over_webtransport(self) -> None:
        # The transport of issue #37 against itself, once a side: the figures the
        # issue asks for (server CPU per move and p99) are compared.
        done = run_compare(
            "--baseline", sys.prefix, "--rounds", "1", "play", "--transport", "webtransport",
            "--rooms", "2", "--warmup", "0.3", "--duration", "0.7",
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        summary = json_line(done)
        self.assertEqual([run["result"]["transport"] for run in summary["runs"]],
                         ["webtransport", "webtransport"])  # fmt: skip
        for name in ("server_cpu_us_per_move", "p99_ms", "moves_per_s"):
            self.assertIn("A", summary["figures"][name], name)
            self.assertIn("B", summary["figures"][name], name)
            self.assertIn(name, done.stdout)
