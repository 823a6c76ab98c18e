"""The handshake scenario: completed vinom UDP handshakes per second.

`slots` clients at a time each present a fresh connect token (sealed by
the load process with the key it shares with the server, as the lobby
would) and run the whole handshake against a game host process: padded
`request`, stateless `challenge`, `response`, `welcome`. Each client that
is welcomed counts once, sends one `disconnect` and is replaced at once by a
new client on a new socket with a new token. The server is the same
`ServerEndpoint` behind `GameHostProtocol` as in udp-echo, admitting every
valid token. The latency is from creating the client to its `welcome`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from benchmarks.common import (
    MeasuredRun,
    ScenarioOptions,
    cpu_plan,
    cpu_row,
    latency_ms,
    non_negative_floats,
    positive_int,
    progress_for,
    report_failure,
)
from benchmarks.harness import (
    BenchError,
    Harness,
    bottleneck,
    merge_histograms,
    report,
)


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["slots", None, "32", "Handshakes in progress at once."],
        ["warmup", None, "1", "Seconds of warm-up."],
        ["duration", None, "5", "Seconds measured."],
    ]

    def postOptions(self) -> None:
        self["slots"] = positive_int(self, "slots")
        non_negative_floats(self, "warmup", "duration")


def run(options: Options) -> int:
    key = os.urandom(32)
    progress = progress_for(options, "handshake", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        progress.update(f"{message.get('count', 0):,} handshakes", message.get("elapsed"))

    server_cpu, load_cpus = cpu_plan(1, options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.echo_server", ["--mode", "vinom", "--key", key.hex()],
                server_cpu,
            )
            ready = harness.wait_for(server, "ready", 30)
            settings = {
                "host": "127.0.0.1",
                "port": ready["port"],
                "key": key.hex(),
                "slots": options["slots"],
                "warmup": options["warmup"],
                "duration": options["duration"],
            }
            load = harness.spawn(
                "load", "benchmarks.load_worker", ["handshake", json.dumps(settings)],
                load_cpus[0],
            )
            measured = MeasuredRun(
                harness, server, [load], options, "handshake", options["duration"]
            )
            (result,) = measured.run(mark_server=True)
    except BenchError as e:
        progress.finish()
        return report_failure("handshake", e, options)
    progress.finish()
    window = float(result["window_s"]) or 1e-9
    histogram = merge_histograms([result["histogram"]])
    first, last = (m["counters"] for m in measured.server_marks)
    welcomes = last["welcomes_sent"] - first["welcomes_sent"]
    summary: dict[str, Any] = {
        "scenario": "handshake",
        "slots": options["slots"],
        "handshakes_per_s": round(result["count"] / window, 1),
        "handshakes": result["count"],
        "failures": result["failures"],
        **latency_ms(histogram),
        **measured.cpu_figures(),
        "server_us_per_handshake": round(measured.server_cpu_s * 1e6 / max(welcomes, 1), 1),
        "server_drops": last["drops"],
        "bottleneck": bottleneck(measured.server_cpu_s, measured.load_cpu_s, window),
    }
    rows: list[tuple[str, Any]] = [
        ("handshakes/s", summary["handshakes_per_s"]),
        ("latency p50 / p99 ms", f"{summary['p50_ms']} / {summary['p99_ms']}"),
        ("server CPU us / handshake", summary["server_us_per_handshake"]),
        ("failed handshakes", summary["failures"]),
        cpu_row(measured.server_cpu_s, measured.load_cpu_s, window, summary["bottleneck"]),
    ]
    report(
        f"handshake: {options['slots']} in flight, {options['duration']:g} s measured",
        rows, summary, table=options.show_table,
    )
    return 0 if result["failures"] == 0 else 1
