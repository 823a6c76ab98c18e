"""The play scenario: R rooms x 2 duel players, one move in flight per player.

Each player sends move `{seq: n}` (reliable channel); the room accepts it
only if n is the sender's previous seq + 1, and then broadcasts a state of
about 50 bytes (both counters and the version) to both players on the
unreliable channel. A player sends its next move as soon as it sees a
state that includes its last one. After a warm-up the window is measured:
`moves_per_s` counts the moves the server applied (its seat router's
counter), `msgs_delivered_per_s` the messages the players received, and
the latency of a move runs from sending it to the first state showing it.

The server is one real inline game host (GameHostProtocol over a
GameHostCore: endpoint, seat router, rooms, the duel game) built directly from the pieces with
all R matches added, without a lobby; the load process seals the players'
connect tokens with the key it shares with the server.
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
    latency_ms,
    non_negative_floats,
    positive_int,
    progress_for,
    report_failure,
    spawn_room_loads,
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
        ["rooms", None, "100", "Duel rooms (two players each)."],
        ["loads", None, "1", "Load processes sharing the players (all on the load core)."],
        ["warmup", None, "2", "Seconds of warm-up after every player connected."],
        ["duration", None, "10", "Seconds measured."],
        ["state-interval", None, "1.0", "Rooms' periodic state interval (the server default)."],
    ]

    def postOptions(self) -> None:
        self["rooms"] = positive_int(self, "rooms")
        self["loads"] = positive_int(self, "loads")
        if self["loads"] > self["rooms"]:
            raise usage.UsageError("--loads cannot exceed --rooms")
        non_negative_floats(self, "warmup", "duration", "state-interval")



def run(options: Options) -> int:
    key = os.urandom(32)
    progress = progress_for(options, "play", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        progress.update(f"{message.get('count', 0):,} moves", message.get("elapsed"))

    server_cpu, load_cpus = cpu_plan(options["loads"], options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["rooms", json.dumps({
                    "key": key.hex(),
                    "rooms": options["rooms"],
                    "state_interval": options["state-interval"],
                })],
                server_cpu,
            )  # fmt: skip
            ready = harness.wait_for(server, "ready", 60)
            loads = spawn_room_loads(
                harness, "play", ready["port"], key, options["rooms"], options, load_cpus
            )
            measured = MeasuredRun(
                harness, server, loads, options, "play", options["duration"]
            )
            results = measured.run(mark_server=True)
    except BenchError as e:
        progress.finish()
        return report_failure("play", e, options)
    progress.finish()
    window = measured.window_s or 1e-9
    before, after = (m["counters"] for m in measured.server_marks)
    applied = after["actions_applied"] - before["actions_applied"]
    rejected = after["actions_rejected"] - before["actions_rejected"]
    histogram = merge_histograms(r["histogram"] for r in results)
    errors = sum(int(r["errors"]) for r in results) + rejected
    error_codes: dict[str, int] = {}
    for r in results:
        for code, n in r["error_codes"].items():
            error_codes[code] = error_codes.get(code, 0) + int(n)
    load_cores = len({c for c in load_cpus}) if load_cpus[0] is not None else 1
    summary: dict[str, Any] = {
        "scenario": "play",
        "rooms": options["rooms"],
        "players": 2 * options["rooms"],
        "loads": options["loads"],
        "moves_per_s": round(applied / window, 1),
        "msgs_delivered_per_s": round(sum(int(r["messages"]) for r in results) / window, 1),
        **latency_ms(histogram),
        "errors": errors,
        # Moves sent again after RESEND_S without a state showing them (lost datagrams).
        "resends": sum(int(r.get("resends", 0)) for r in results),
        **measured.cpu_figures(),
        "server_cpu_us_per_move": round(measured.server_cpu_s * 1e6 / max(applied, 1), 2),
        "load_cpu_us_per_move": round(measured.load_cpu_s * 1e6 / max(applied, 1), 2),
        "bottleneck": bottleneck(measured.server_cpu_s, measured.load_cpu_s, window, load_cores),
    }
    if error_codes:
        summary["error_codes"] = error_codes
    rows: list[tuple[str, Any]] = [
        ("moves applied / s", summary["moves_per_s"]),
        ("messages delivered / s", summary["msgs_delivered_per_s"]),
        ("move latency p50 / p99 ms", f"{summary['p50_ms']} / {summary['p99_ms']}"),
        ("server CPU us / move", summary["server_cpu_us_per_move"]),
        ("load CPU us / move", summary["load_cpu_us_per_move"]),
        ("errors", errors),
        cpu_row(measured.server_cpu_s, measured.load_cpu_s, window, summary["bottleneck"]),
    ]
    report(
        f"play: {options['rooms']} duel rooms x 2 players, {options['loads']} load process(es), "
        f"{options['duration']:g} s measured",
        rows, summary, table=options.show_table,
    )
    return 0 if errors == 0 else 1
