"""The sessions scenario: N idle vinom sessions held by one game host.

N players (N/2 duel rooms of two, every room playing) complete the
handshake and then send nothing: only keepalives flow, in both directions,
every 5/3 s per session when idle (the protocol's default keepalive
interval). Rooms send state only on change here (`state_interval` 0), so
that the traffic is keepalives only. After a warm-up the server's CPU is
measured over the window, as a percentage of one core, and its resident
memory per session: (RSS at the end of the window - RSS of the empty host
before any match was added) / sessions, so the figure includes each
session's share of its room, match and seat, not just the protocol state.

As in play, the server is one real inline game host built directly from
the pieces, without a lobby.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.python import usage

from benchmarks.common import (
    MeasuredRun,
    ScenarioOptions,
    cpu_plan,
    cpu_row,
    non_negative_floats,
    positive_int,
    progress_for,
    report_failure,
    spawn_room_loads,
)
from benchmarks.harness import BenchError, Harness, report


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["sessions", "n", "10000", "Idle sessions (an even number: two per room)."],
        ["loads", None, "1", "Load processes sharing the sessions (all on the load core)."],
        ["warmup", None, "3", "Seconds after every session connected, before measuring."],
        ["duration", None, "30", "Seconds measured."],
    ]

    def postOptions(self) -> None:
        self["sessions"] = positive_int(self, "sessions")
        if self["sessions"] % 2:
            raise usage.UsageError("--sessions must be even (two players per room)")
        self["loads"] = positive_int(self, "loads")
        if self["loads"] > self["sessions"] // 2:
            raise usage.UsageError("--loads cannot exceed the number of rooms")
        non_negative_floats(self, "warmup", "duration")

    def planned_seconds(self) -> float:
        # Connecting takes a while too: allow for 1,000 handshakes a second.
        return float(self["warmup"]) + float(self["duration"]) + self["sessions"] / 1000.0


def _sum_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for name, n in one.items():
            total[name] = total.get(name, 0) + int(n)
    return total


def run(options: Options) -> int:
    key = os.urandom(32)
    rooms = options["sessions"] // 2
    progress = progress_for(options, "sessions", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        if message.get("phase") == "connect":
            progress.update(f"connecting: {message.get('count', 0):,}", 0.0)
        else:
            progress.update(f"{message.get('count', 0):,} sessions idle", message.get("elapsed"))

    server_cpu, load_cpus = cpu_plan(options["loads"], options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["rooms", json.dumps({"key": key.hex(), "rooms": rooms, "state_interval": 0})],
                server_cpu,
            )
            ready = harness.wait_for(server, "ready", 60)
            loads = spawn_room_loads(
                harness, "sessions", ready["port"], key, rooms, options, load_cpus,
                connect_limit=options.planned_seconds() + 30,
            )
            measured = MeasuredRun(
                harness, server, loads, options, "sessions", options["duration"]
            )
            results = measured.run(mark_server=True)
    except BenchError as e:
        progress.finish()
        return report_failure("sessions", e, options)
    progress.finish()
    window = measured.window_s or 1e-9
    before, after = measured.server_marks
    held = int(after["counters"]["sessions"])
    errors = sum(int(r["errors"]) for r in results)
    rss_end = int(after["rss"])
    rss_empty = int(ready["rss_empty"])
    summary: dict[str, Any] = {
        "scenario": "sessions",
        "sessions": held,
        "wanted": options["sessions"],
        "server_cpu_pct": round(100.0 * measured.server_cpu_s / window, 2),
        "rss_bytes_per_session": round((rss_end - rss_empty) / max(held, 1)),
        "rss_empty_bytes": rss_empty,
        "rss_end_bytes": rss_end,
        "server_datagrams_per_s": round(
            (after["counters"]["datagrams_received"] + after["counters"]["datagrams_sent"]
             - before["counters"]["datagrams_received"] - before["counters"]["datagrams_sent"])
            / window,
            1,
        ),
        "errors": errors,
        **measured.cpu_figures(),
        "connect_s": round(max(float(r["connect_s"]) for r in results), 2),
        "failed_to_connect": sum(int(r["failed_to_connect"]) for r in results),
        "client_events": _sum_counts(r["events"] for r in results),
        "server_drops": after["counters"]["drops"],
    }
    rows: list[tuple[str, Any]] = [
        ("sessions held", f"{held:,} of {options['sessions']:,}"),
        ("server CPU % of one core", summary["server_cpu_pct"]),
        ("server RSS bytes / session", summary["rss_bytes_per_session"]),
        ("server RSS empty / end MB",
         f"{rss_empty / 1e6:.1f} / {rss_end / 1e6:.1f}"),
        ("server datagrams in+out / s", summary["server_datagrams_per_s"]),
        ("time to connect all s", summary["connect_s"]),
        ("failed to connect", summary["failed_to_connect"]),
        ("errors", errors),
        cpu_row(measured.server_cpu_s, measured.load_cpu_s, window),
    ]
    report(
        f"sessions: {options['sessions']:,} idle sessions, {options['duration']:g} s measured",
        rows, summary, table=options.show_table,
    )
    failed = summary["failed_to_connect"]
    return 0 if errors == 0 and failed == 0 and held == options["sessions"] else 1
