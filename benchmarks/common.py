"""Options every scenario shares, and the measured run of one server and its load processes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.python import usage

from benchmarks import profile
from benchmarks.harness import Harness, Progress, Worker, cpu_plan, percentile_ms, report


class ScenarioOptions(usage.Options):
    """Options common to every scenario; each scenario adds its own."""

    optFlags = [
        ["no-pin", None, "Do not pin the server and the load to separate cores."],
        ["profile-load", None, "With --profile: sample the (first) load process, not the server."],
        ["quiet", "q", "No progress bar."],
        ["json", None, "Print only the JSON line (no table)."],
    ]
    optParameters = [
        ["timeout", None, None, "Hard limit in seconds for the whole run (default: scenario's)."],
        [
            "profile",
            None,
            None,
            "Directory: sample the server with py-spy during the measured window, "
            "save the raw profile there and print the hottest functions.",
        ],
    ]

    # Seconds added to the scenario's own duration to make its default hard limit.
    slack = 60.0

    def planned_seconds(self) -> float:
        """How long the scenario should take; the default hard limit adds `slack`."""
        return float(self.get("warmup", 0) or 0) + float(self.get("duration", 0) or 0)

    def hard_limit(self) -> float:
        if self["timeout"] is not None:
            return float(self["timeout"])
        return self.planned_seconds() + self.slack

    @property
    def pin(self) -> bool:
        return not self["no-pin"]

    @property
    def show_table(self) -> bool:
        return not self["json"]


def positive_int(options: usage.Options, name: str) -> int:
    try:
        value = int(options[name])
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a whole number") from None
    if value < 1:
        raise usage.UsageError(f"--{name} must be at least 1")
    return value


def non_negative_int(options: usage.Options, name: str) -> int:
    try:
        value = int(options[name])
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a whole number") from None
    if value < 0:
        raise usage.UsageError(f"--{name} must not be negative")
    return value


def non_negative_float(options: usage.Options, name: str) -> float:
    try:
        value = float(options[name])
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a number") from None
    if value < 0:
        raise usage.UsageError(f"--{name} must not be negative")
    return value


def non_negative_floats(options: usage.Options, *names: str) -> None:
    """Check and convert each of the `names` options with `non_negative_float`."""
    for name in names:
        options[name] = non_negative_float(options, name)


def latency_ms(histogram: Any) -> dict[str, float]:
    """The `p50_ms` and `p99_ms` figures of a merged latency histogram."""
    return {"p50_ms": percentile_ms(histogram, 50), "p99_ms": percentile_ms(histogram, 99)}


def cpu_row(
    server_cpu_s: float,
    load_cpu_s: float,
    window_s: float,
    limit: str | None = None,
    label: str = "server / load CPU s",
) -> tuple[str, str]:
    """The table row with both sides' CPU seconds in the window (and the limiting side)."""
    text = f"{server_cpu_s:.2f} / {load_cpu_s:.2f} in {window_s:.1f} s"
    if limit is not None:
        text += f" (limit: {limit})"
    return (label, text)


class MeasuredRun:
    """The CPU each side used during the load's measured window.

    The load processes announce `measuring` and `window_end`; the server's
    CPU is sampled by the parent at those two moments (psutil), each load
    process reports its own CPU for the window in its `result`. A server
    of several processes passes the rest as `more_servers`: `server_cpu_s`
    is then their sum, and `server_cpu_by_process` each one's, by worker name.
    """

    def __init__(
        self,
        harness: Harness,
        server: Worker,
        loads: Sequence[Worker],
        options: ScenarioOptions,
        profile_name: str = "server",
        window_s: float = 10.0,
        more_servers: Sequence[Worker] = (),
    ) -> None:
        self.harness = harness
        self.profile_dir: str | None = options["profile"]
        profile_load = bool(options["profile-load"])
        self.profile_target = loads[0] if profile_load and loads else server
        self.profile_name = profile_name + ("-load" if profile_load else "")
        self.expected_window_s = window_s
        self.hotspots: list[profile.Hotspot] = []
        self.server = server
        self.servers = [server, *more_servers]
        self.loads = list(loads)
        self.server_cpu_s = 0.0
        self.server_cpu_by_process: dict[str, float] = {}
        self.results: list[dict[str, Any]] = []
        self.server_marks: list[dict[str, Any]] = []
        # Worker name -> its `mark` replies at both ends of the window.
        self.marks: dict[str, list[dict[str, Any]]] = {}

    def run(
        self, mark_server: bool = False, census: bool = False, mark: Sequence[Worker] = ()
    ) -> list[dict[str, Any]]:
        """Wait through the window; returns every load's `result` message.

        `mark_server` marks the server at both ends of the window
        (`server_marks`), `mark` any other workers (`marks`, by name).
        """
        marked = [*([self.server] if mark_server else []), *mark]
        for load in self.loads:
            self.harness.wait_for(load, "measuring")
        start = {worker.name: worker.cpu_seconds() for worker in self.servers}
        profiler = None
        if self.profile_dir is not None:
            os.makedirs(self.profile_dir, exist_ok=True)
            path = os.path.join(self.profile_dir, f"{self.profile_name}.txt")
            profiler = profile.start(self.profile_target.pid, path, self.expected_window_s)
        self._mark(marked, census)
        for load in self.loads:
            self.harness.wait_for(load, "window_end")
        end = {worker.name: worker.cpu_seconds() for worker in self.servers}
        if profiler is not None:
            profile.stop(profiler)
            self.hotspots = profile.summarize(path)
            profile.write_summary(
                self.hotspots, sys.stderr, f"profile ({self.profile_name}): {path}"
            )
        self._mark(marked, census)
        self.server_cpu_by_process = {name: end[name] - start[name] for name in start}
        self.server_cpu_s = sum(self.server_cpu_by_process.values())
        self.server_marks = self.marks.get(self.server.name, []) if mark_server else []
        self.results = [self.harness.wait_for(load, "result") for load in self.loads]
        return self.results

    def _mark(self, workers: Sequence[Worker], census: bool) -> None:
        for worker in workers:
            worker.send({"type": "mark", "census": census})
        for worker in workers:
            self.marks.setdefault(worker.name, []).append(
                self.harness.wait_for(worker, "mark", 60)
            )

    def cpu_figures(self) -> dict[str, float]:
        """`server_cpu_s` and `load_cpu_s` for the JSON summary."""
        return {
            "server_cpu_s": round(self.server_cpu_s, 3),
            "load_cpu_s": round(self.load_cpu_s, 3),
        }

    @property
    def load_cpu_s(self) -> float:
        return sum(float(r.get("load_cpu_s", 0.0)) for r in self.results)

    @property
    def window_s(self) -> float:
        windows = [float(r.get("window_s", 0.0)) for r in self.results]
        return max(windows) if windows else 0.0


def report_failure(scenario: str, error: BaseException, options: ScenarioOptions) -> int:
    """Print a failed run (table, JSON line with `error`, details on stderr); exit code 1."""
    text = str(error) or repr(error)
    first_line = text.splitlines()[0]
    report(
        f"{scenario}: FAILED",
        [("error", first_line)],
        {"scenario": scenario, "error": first_line},
        table=options.show_table,
    )
    sys.stderr.write(f"{text}\n")
    return 1


def progress_for(options: ScenarioOptions, label: str, total_s: float) -> Progress:
    return Progress(label, total_s, enabled=None if not options["quiet"] else False)


__all__ = [
    "MeasuredRun",
    "ScenarioOptions",
    "cpu_plan",
    "cpu_row",
    "latency_ms",
    "non_negative_float",
    "non_negative_floats",
    "non_negative_int",
    "positive_int",
    "progress_for",
    "report_failure",
]


def slices(total: int, parts: int) -> list[tuple[int, int]]:
    """[first, last) ranges splitting `total` rooms into `parts` nearly equal slices."""
    base, extra = divmod(total, parts)
    out = []
    first = 0
    for i in range(parts):
        last = first + base + (1 if i < extra else 0)
        out.append((first, last))
        first = last
    return out


def spawn_room_loads(
    harness: Harness,
    scenario: str,
    port: int,
    key: bytes,
    rooms: int,
    options: ScenarioOptions,
    load_cpus: Sequence[int | None],
    **extra: Any,
) -> list[Worker]:
    """One load worker per slice of the bench rooms, each with the rooms' shared key."""
    loads = []
    for index, (first, last) in enumerate(slices(rooms, options["loads"])):
        settings = {
            "host": "127.0.0.1",
            "port": port,
            "key": key.hex(),
            "first_room": first,
            "last_room": last,
            "warmup": options["warmup"],
            "duration": options["duration"],
            **extra,
        }
        loads.append(
            harness.spawn(
                f"load{index}", "benchmarks.load_worker",
                [scenario, json.dumps(settings)], load_cpus[index],
            )
        )
    return loads
