"""The spawn scenario: a match placed to its own child process listening (--matches per-match).

The server is the whole vinom server (`vinom.server.tap.makeService`, as in match)
with `--matches per-match --process-pool P`: each match gets a child process
of its own, taken from P children started ahead (P = 0: started for the
match). The run begins once the P pre-started children are ready. Bots then
play `matches` (default 50) quick games (`tictactoe` by default, with the
game's own bots, `think` seconds between moves) through the TLS lobby,
`at_once` matches at a time (default 1: one after another, each queued once
the previous one's players saw its end), each at least `interval` seconds
(default 0.5) after the previous one began: matches arrive at most
`at_once / interval` per second. P pre-started children sustain about P
matches per child start-up time (a Python start-up, about 0.3 s on an idle
core); matches arriving faster than that wait for a start-up like without a
pool.

A spawn latency is what the server's `ProcessPerMatch` records for each
match: the seconds from `start_host` (the match was placed and has its port)
to the child listening on that port. The server keeps every observation
(not only its histogram's buckets) and reports them at the end: `p50_ms`
and `p99_ms` (nearest rank) over all of them. `finished` counts the
matches every player of which saw `finished`.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from typing import Any

from benchmarks.common import (
    MeasuredRun,
    ScenarioOptions,
    cpu_plan,
    cpu_row,
    non_negative_floats,
    non_negative_int,
    positive_int,
    progress_for,
    report_failure,
)
from benchmarks.harness import BenchError, Harness, report


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["matches", None, "50", "Matches played (each one spawn latency)."],
        ["pool", None, "2", "Children started ahead (--process-pool; 0: none)."],
        ["at-once", None, "1", "Matches under way at a time."],
        ["game", None, "tictactoe", "The (two-player) game the bots play."],
        ["think", None, "0", "Seconds a bot waits before each move."],
        ["interval", None, "0.5", "Seconds at least between the starts of a lane's matches."],
    ]

    def postOptions(self) -> None:
        self["matches"] = positive_int(self, "matches")
        self["at-once"] = positive_int(self, "at-once")
        self["pool"] = non_negative_int(self, "pool")
        non_negative_floats(self, "think", "interval")

    def planned_seconds(self) -> float:
        # A Python start-up per match without a pool, the interval with one.
        per_match = max(self["interval"], 0.5 if self["pool"] == 0 else 0.2)
        return self["matches"] * per_match / self["at-once"]


def nearest_rank(values: list[float], percentile: float) -> float:
    """The nearest-rank percentile of `values` (0.0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


def run(options: Options) -> int:
    progress = progress_for(options, "spawn", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        done = int(message.get("count", 0))
        progress.update(
            f"{done:,} of {options['matches']:,} matches",
            options.planned_seconds() * done / options["matches"],
        )

    data_dir = tempfile.mkdtemp(prefix="vinom-bench-spawn-")
    server_cpu, load_cpus = cpu_plan(1, options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["server", json.dumps({
                    "data_dir": data_dir,
                    "udp_ports": 64,
                    "games": options["game"],
                    "extra_args": ["--matches", "per-match",
                                   "--process-pool", str(options["pool"])],
                })],
                server_cpu,
            )  # fmt: skip
            ready = harness.wait_for(server, "ready", 90)
            load = harness.spawn(
                "load", "benchmarks.lobby_worker",
                ["matches", json.dumps({
                    "host": "127.0.0.1",
                    "port": ready["lobby_port"],
                    "trust": ready["trust"],
                    "game": options["game"],
                    "matches": options["matches"],
                    "at_once": options["at-once"],
        "interval_s": options["interval"],
                    "think": options["think"],
                    "interval": options["interval"],
                })],
                load_cpus[0],
            )  # fmt: skip
            measured = MeasuredRun(
                harness, server, [load], options, "spawn", options.planned_seconds()
            )
            (result,) = measured.run(mark_server=True)
    except BenchError as e:
        progress.finish()
        return report_failure("spawn", e, options)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    progress.finish()
    samples = [float(x) for x in measured.server_marks[-1]["counters"]["spawn_samples"]]
    wall = float(result["window_s"]) or 1e-9
    errors = (
        int(result["lost"]) + sum(result["bot_failures"].values())
        + (options["matches"] - int(result["matches"]))
    )
    summary: dict[str, Any] = {
        "scenario": "spawn",
        "pool": options["pool"],
        "game": options["game"],
        "at_once": options["at-once"],
        "interval_s": options["interval"],
        "matches": int(result["matches"]),
        "finished": int(result["finished"]),
        "aborted": int(result["aborted"]),
        "spawns": len(samples),
        "p50_ms": round(nearest_rank(samples, 50) * 1e3, 3),
        "p99_ms": round(nearest_rank(samples, 99) * 1e3, 3),
        "max_ms": round(max(samples, default=0.0) * 1e3, 3),
        "mean_ms": round(sum(samples) * 1e3 / max(len(samples), 1), 3),
        "wall_s": round(wall, 3),
        "errors": errors,
        **measured.cpu_figures(),
    }
    if result["bot_failures"]:
        summary["bot_failures"] = result["bot_failures"]
    rows: list[tuple[str, Any]] = [
        ("spawn latency p50 / p99 ms", f"{summary['p50_ms']} / {summary['p99_ms']}"),
        ("spawn latency mean / max ms", f"{summary['mean_ms']} / {summary['max_ms']}"),
        ("spawns observed", summary["spawns"]),
        ("matches finished / aborted", f"{summary['finished']} / {summary['aborted']}"),
        ("errors", errors),
        cpu_row(measured.server_cpu_s, measured.load_cpu_s, wall,
                label="lobby / load CPU s"),
    ]
    report(
        f"spawn: {options['matches']} {options['game']} matches, a child process each, "
        f"pool of {options['pool']}, {options['at-once']} at a time, "
        f"{options['interval']:g} s apart",
        rows, summary, table=options.show_table,
    )
    ok = errors == 0 and summary["spawns"] == options["matches"]
    return 0 if ok else 1
