"""`python -m benchmarks --save-results DIR <command>`: a run's JSON line kept as a dated
result file (benchmarks/results.py), as the files of benchmarks/results/ are written."""

# slow: runs the benchmarks (python -m benchmarks)

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from benchmarks import results
from tests.test_bench import ROOT, bench_env
from tests.test_bench_compare import TINY_UDP_ECHO


def run_saving(directory: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "--save-results", directory, *args],
        capture_output=True, text=True, timeout=120, env=bench_env(), cwd=ROOT, check=False,
    )  # fmt: skip


class SaveResultsTests(unittest.TestCase):
    def test_a_run_is_saved_as_a_dated_result_file(self) -> None:
        directory = os.path.join(os.path.abspath(self.mktemp()), "results")  # made by the run
        done = run_saving(directory, *TINY_UDP_ECHO, "-q")
        self.assertEqual(done.returncode, 0, done.stderr)
        printed = json.loads(done.stdout.strip().splitlines()[-1])
        [name] = os.listdir(directory)
        today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        self.assertRegex(name, rf"^{today}-udp-echo-\d{{6}}\.json$")
        self.assertIn(os.path.join(directory, name), done.stderr)
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            saved = json.load(f)
        self.assertEqual(saved["command"], "udp-echo")
        self.assertEqual(saved["args"], [*TINY_UDP_ECHO[1:], "-q"])
        self.assertEqual(saved["exit"], 0)
        self.assertEqual(saved["result"], printed)
        self.assertEqual(saved["machine"]["cpus"], os.cpu_count())
        self.assertEqual(len(saved["machine"]["load_average"]), 2)

    def test_a_usage_error_saves_nothing(self) -> None:
        directory = os.path.abspath(self.mktemp())
        done = run_saving(directory, "udp-echo", "--window", "0")
        self.assertEqual(done.returncode, 2)
        self.assertFalse(os.path.exists(directory))

    def test_a_file_in_place_of_the_directory_is_one_usage_error(self) -> None:
        with tempfile.NamedTemporaryFile() as f:
            done = run_saving(f.name, *TINY_UDP_ECHO)
        self.assertEqual(done.returncode, 2)
        self.assertIn(f"--save-results: {f.name} is not a directory", done.stderr)


class ResultFileTests(unittest.SynchronousTestCase):
    def test_the_closing_json_lines_are_kept_and_passed_through(self) -> None:
        out = io.StringIO()
        kept = results.JsonLines(out)
        kept.write('table\n{"a": 1}\n')
        kept.write("more table\n")
        kept.write('{"fault": "x"}\n{"fault"')
        kept.write(': "y"}\n')
        self.assertEqual(
            out.getvalue(), 'table\n{"a": 1}\nmore table\n{"fault": "x"}\n{"fault": "y"}\n'
        )
        self.assertEqual(kept.result(), [{"fault": "x"}, {"fault": "y"}])
        single = results.JsonLines(io.StringIO())
        single.write('{"scenario": "play"}')  # no newline at the end
        self.assertEqual(single.result(), {"scenario": "play"})
        self.assertIsNone(results.JsonLines(io.StringIO()).result())

    def test_names_never_overwrite_a_result(self) -> None:
        directory = self.mktemp()
        when = datetime.datetime(2026, 11, 25, 19, 45, 22, tzinfo=datetime.UTC)
        args = ["--rounds", "3", "play"]
        first = results.save(directory, "compare", args, 0, {"x": 1}, 0.5, when, "play")
        second = results.save(directory, "compare", args, 1, {"x": 2}, 0.5, when, "play")
        self.assertEqual(os.path.basename(first), "2026-11-25-compare-play-194522.json")
        self.assertEqual(os.path.basename(second), "2026-11-25-compare-play-194522-2.json")
        with open(first, encoding="utf-8") as f:
            self.assertEqual(json.load(f)["result"], {"x": 1})
