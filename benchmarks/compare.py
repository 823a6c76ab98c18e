"""Run one scenario alternately on two builds and compare every figure.

`python -m benchmarks compare --baseline VENV [--rounds N] <scenario> [options]`
runs `<scenario> [options]` on build A, the virtualenv VENV's `bin/python`,
and on build B, the interpreter running `compare`, alternately (A B A B ...)
for N rounds. Every run is a child `python -m benchmarks <scenario> --json -q`
using this checkout's harness (on PYTHONPATH), started in a temporary
directory outside the checkout, so that each side imports its own installed
vinom. Side A never measures the checkout's sources; side B does when
VINOM_BENCH_SOURCES=1 is set, and says so.

For every numeric figure of the scenario's JSON line (nested keys flattened
as `a.b`, list items as `a[0]`), in the order the scenario gives them, it
prints both sides' range and median, the ratio B/A of the medians and the
range of the per-round ratios, and which build each side ran. A run that
fails (non-zero exit status or no JSON line) is shown with the end of its
standard error; the other runs still run, and `compare` then exits with 1.
Only runs alternated in one session compare: these machines drift too much
between sessions.

`--baseline-args ARGS` adds ARGS (shell words) to side A's scenario options
only: with it `--baseline` may be left out, and both sides then run this
interpreter (and its vinom), so one option's cost is measured on one build,
e.g. `compare --baseline-args --no-record play` for match recording's (A: not
recording, B: recording). Only pass an option a side's build knows.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType
from typing import IO, Any

from twisted.python import usage

from benchmarks.common import ScenarioOptions
from benchmarks.harness import human_number
from benchmarks.results import json_object

SIDES = ("A", "B")

# Where this harness lives: both sides' runs import `benchmarks` from here.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Seconds a run may take beyond its scenario's own hard limit (interpreter start-up).
RUN_SLACK_S = 60.0

# Which vinom an interpreter imports under a side's environment, and that it can
# run the harness at all; `import benchmarks` applies the same sys.path rule as a run.
PROBE = """\
import json, os
import benchmarks.harness
import vinom
from vinom.server.build import build_info
print(json.dumps({**build_info(), "version": vinom.__version__,
                  "path": os.path.dirname(os.path.abspath(vinom.__file__))}))
"""


def rounds(text: str) -> int:
    """usage.Options coerce of --rounds."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--rounds must be a whole number, at least 1 (not {text!r})")
    return value


rounds.coerceDoc = "A whole number, at least 1."  # type: ignore[attr-defined]


class Options(usage.Options):
    synopsis = (
        "(--baseline VENV | --baseline-args ARGS) [--rounds N] <scenario> [scenario options]"
    )
    longdesc = __doc__
    optFlags = [
        ["json", None, "Print only the JSON line (no table)."],
        ["quiet", "q", "No line on standard error as each run starts and ends."],
    ]
    optParameters = [
        ["baseline", None, None, "Virtualenv of build A: its bin/python runs side A.", str],
        ["rounds", None, 3, "Runs of each side, alternated A B A B ...", rounds],
        [
            "baseline-args",
            None,
            None,
            "Scenario options (shell words) side A adds to the given ones; without "
            "--baseline, side A is this interpreter too (one build, two option sets).",
            str,
        ],
    ]

    scenario: str
    scenario_args: list[str]
    scenario_options: usage.Options
    # Side A's scenario options beyond the shared ones (--baseline-args).
    baseline_args: list[str]

    def parseArgs(self, *args: str) -> None:
        # The scenarios are those of `python -m benchmarks`, whose Options parses
        # this one as its subcommand (`parent`), compare aside.
        table = {
            name: parser
            for name, _short, parser, _doc in getattr(self.parent, "subCommands", [])
            if name not in ("compare", "shape")
        }
        if not args or args[0] not in table:
            raise usage.UsageError("name the scenario to compare: " + ", ".join(table))
        self.scenario, *self.scenario_args = args
        try:
            self.baseline_args = shlex.split(self["baseline-args"] or "")
        except ValueError as e:
            raise usage.UsageError(f"--baseline-args: {e}") from None
        # Checked here, once, rather than by each of the 2N runs (side A's options too).
        self.scenario_options = table[self.scenario]()
        try:
            self.scenario_options.parseOptions(self.scenario_args)
            if self.baseline_args:
                table[self.scenario]().parseOptions([*self.scenario_args, *self.baseline_args])
        except usage.UsageError as e:
            raise usage.UsageError(f"{self.scenario}: {e}") from None
        if self.scenario_options.get("profile"):
            # Every run would write the same files, in a directory removed after.
            raise usage.UsageError("--profile: profile each build on its own, not with compare")

    def postOptions(self) -> None:
        if self["baseline"] is None and not self.baseline_args:
            raise usage.UsageError(
                "--baseline VENV (the virtualenv of build A) or --baseline-args ARGS "
                "(side A's own options on this build) is required"
            )

    def side_args(self, side: str) -> list[str]:
        """The scenario's options on `side`."""
        return [*self.scenario_args, *(self.baseline_args if side == "A" else ())]

    def run_limit(self) -> float | None:
        """Seconds after which one run is stopped (its scenario's hard limit, and start-up)."""
        if isinstance(self.scenario_options, ScenarioOptions):
            return self.scenario_options.hard_limit() + RUN_SLACK_S
        return None


class SetupError(Exception):
    """A side cannot run at all (not a virtualenv, no vinom, no harness requirements)."""


def measures_sources() -> bool:
    """Whether side B measures this checkout's sources rather than an installed vinom."""
    return bool(os.environ.get("VINOM_BENCH_SOURCES"))


def side_env(sources: bool) -> dict[str, str]:
    """The environment of one side's runs: the same for both but VINOM_BENCH_SOURCES,
    kept only where the side measures the sources (B, and A when it is B's build:
    a baseline VENV always measures the vinom installed in it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    if not sources:
        env.pop("VINOM_BENCH_SOURCES", None)
    return env


def baseline_python(venv: str) -> str:
    python = os.path.join(venv, "bin", "python")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise SetupError(f"--baseline {venv} is not a virtualenv: there is no {python}")
    return python


def probe(side: str, python: str, cwd: str, sources: bool) -> dict[str, Any]:
    """The build record of the vinom `python` imports as `side` (see PROBE)."""
    try:
        done = subprocess.run(
            [python, "-c", PROBE], capture_output=True, cwd=cwd, env=side_env(sources),
            timeout=120, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SetupError(f"side {side} ({python}) does not start: {e}") from None
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"]
        raise SetupError(f"side {side} ({python}) cannot run the benchmarks: {why[-1]}")
    try:
        record: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        raise SetupError(f"side {side} ({python}) printed {lines[-1]!r}, not its build") from None
    return record


def run_child(
    argv: Sequence[str], cwd: str, env: Mapping[str, str], timeout: float | None = None
) -> tuple[int | None, dict[str, Any] | None, str | None, str]:
    """A child `python -m benchmarks <scenario> ... --json -q` (this and `shape` start
    them): its exit status (None: stopped at `timeout`), its JSON line's object, why it
    failed (None: it did not) and the end of its standard error."""
    try:
        done = subprocess.run(argv, capture_output=True, cwd=cwd, env=env, timeout=timeout,
                              check=False)  # fmt: skip
        code: int | None = done.returncode
        stdout, stderr = done.stdout, done.stderr
        error = None if code == 0 else f"exit status {code}"
    except subprocess.TimeoutExpired as e:
        code, stdout, stderr = None, e.stdout or b"", e.stderr or b""
        error = f"stopped after {e.timeout:.0f} s"
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    result = json_object(lines[-1]) if lines else None
    if result is None and error is None:
        error = "no JSON line on standard output"
    return code, result, error, stderr.decode("utf-8", "replace")[-2000:]


def run_once(
    side: str, number: int, python: str, sources: bool, options: Options, cwd: str,
    out: IO[str] | None,
) -> dict[str, Any]:
    """One run of the scenario on `side`: its record for the `runs` list."""
    argv = [python, "-m", "benchmarks", options.scenario, *options.side_args(side), "--json", "-q"]
    if out is not None:
        out.write(f"compare: {side} round {number}/{options['rounds']} ... ")
        out.flush()
    record: dict[str, Any] = {"side": side, "round": number, "started": round(time.time(), 3)}
    started = time.monotonic()
    code, result, error, tail = run_child(argv, cwd, side_env(sources), options.run_limit())
    record["seconds"] = round(time.monotonic() - started, 3)
    record["exit"] = code
    if result is not None:
        record["result"] = result
    if error is not None:
        record["error"] = error
        record["stderr_tail"] = tail
    if out is not None:
        out.write(f"{'FAILED: ' + error if error else 'ok'} ({record['seconds']:.1f} s)\n")
        out.flush()
    return record


def numeric_figures(value: Any, name: str = "") -> Iterator[tuple[str, float]]:
    """Every finite number in a JSON value, by flattened name (`a.b`, `a[0]`), in order."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from numeric_figures(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numeric_figures(item, f"{name}[{index}]")


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Figure -> each side's values by round (None: that run failed or had no such
    figure), their min, max and median; the ratio B/A of the medians and the range of
    the per-round ratios. Failed runs count in no figure."""
    rounds = range(1, max((run["round"] for run in runs), default=0) + 1)
    # Figure -> side -> round -> value; dicts keep the order figures first appear in.
    table: dict[str, dict[str, dict[int, float]]] = {}
    for run in runs:
        if "error" in run:
            continue
        for name, value in numeric_figures(run["result"]):
            table.setdefault(name, {side: {} for side in SIDES})[run["side"]][run["round"]] = value
    figures: dict[str, dict[str, Any]] = {}
    for name, sides in table.items():
        entry: dict[str, Any] = {}
        for side, by_round in sides.items():
            if by_round:
                values = list(by_round.values())
                median = statistics.median(values)
                if all(isinstance(v, int) for v in values) and median == int(median):
                    median = int(median)  # a count stays a count
                entry[side] = {
                    "min": min(values),
                    "max": max(values),
                    "median": median,
                    "values": [by_round.get(n) for n in rounds],
                }
        a, b = entry.get("A"), entry.get("B")
        if a is not None and b is not None and a["median"] != 0:
            entry["ratio"] = round(b["median"] / a["median"], 4)
        per_round = [
            sides["B"][n] / sides["A"][n]
            for n in rounds
            if n in sides["A"] and n in sides["B"] and sides["A"][n] != 0
        ]
        if per_round:
            entry["ratio_range"] = [round(min(per_round), 4), round(max(per_round), 4)]
        figures[name] = entry
    return figures


def describe_side(side: str, record: Mapping[str, Any]) -> str:
    build = record["build"]
    role = "baseline" if side == "A" else "measured"
    text = (
        f"{side} ({role}): {record['python']}: vinom {build['version']} {build['code']}"
        f" (AEAD {build['aead']}) from {build['path']}"
    )
    if record.get("sources"):
        text += ", the checkout's sources (VINOM_BENCH_SOURCES=1)"
    if record.get("args"):
        text += f", with {shlex.join(record['args'])}"
    return text


def _range(stats: Mapping[str, Any] | None) -> str:
    if stats is None:
        return "-"
    return f"{human_number(stats['min'])} - {human_number(stats['max'])}"


def write_table(out: IO[str], title: str, summary: Mapping[str, Any]) -> None:
    out.write(f"{title}\n{'-' * len(title)}\n")
    for side in SIDES:
        out.write(describe_side(side, summary["sides"][side]) + "\n")
    header = ("figure", "A median", "A range", "B median", "B range", "B/A", "B/A by round")
    rows = [header]
    for name, entry in summary["figures"].items():
        a, b = entry.get("A"), entry.get("B")
        ratio_range = entry.get("ratio_range")
        rows.append((
            name,
            human_number(a["median"]) if a else "-",
            _range(a),
            human_number(b["median"]) if b else "-",
            _range(b),
            f"{entry['ratio']:.3f}" if "ratio" in entry else "-",
            f"{ratio_range[0]:.3f} - {ratio_range[1]:.3f}" if ratio_range else "-",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out.write("\n")
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.write("  ".join(cells).rstrip() + "\n")
    for run in summary["runs"]:
        if "error" in run:
            out.write(f"\n{run['side']} round {run['round']} FAILED: {run['error']}\n")
            for line in run["stderr_tail"].strip().splitlines()[-20:]:
                out.write(f"    {line}\n")


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(options: Options) -> int:
    pythons = {"B": sys.executable}
    # Without --baseline, side A is this build too (only its options differ).
    same_build = options["baseline"] is None
    sources = {"A": same_build and measures_sources(), "B": measures_sources()}
    out = sys.stdout
    progress = None if options["quiet"] else sys.stderr
    # SIGTERM ends compare as Ctrl-C does: the run under way is killed, and its
    # harness's children follow it (benchmarks/harness.py).
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        with tempfile.TemporaryDirectory(prefix="vinom-compare-") as cwd:
            try:
                pythons["A"] = (
                    sys.executable if same_build else baseline_python(options["baseline"])
                )
                builds = {side: probe(side, pythons[side], cwd, sources[side]) for side in SIDES}
            except SetupError as e:
                sys.stderr.write(f"compare: {e}\n")
                return 2
            runs = [
                run_once(side, number, pythons[side], sources[side], options, cwd, progress)
                for number in range(1, options["rounds"] + 1)
                for side in SIDES
            ]
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = sum(1 for r in runs if "error" in r)
    summary = {
        "compare": options.scenario,
        "args": options.scenario_args,
        "rounds": options["rounds"],
        "sides": {
            side: {"python": pythons[side], "sources": sources[side], "build": builds[side],
                   "args": options.side_args(side)[len(options.scenario_args):]}
            for side in SIDES
        },
        "runs": runs,
        "failed_runs": failed,
        "figures": summarize(runs),
    }
    if not options["json"]:
        title = (
            f"compare: {shlex.join([options.scenario, *options.scenario_args])}, "
            f"{options['rounds']} rounds alternated (A B A B ...)"
        )
        write_table(out, title, summary)
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return 1 if failed else 0
