"""The soak scenario: bots play maze games back to back over a lossy network.

`bots` bots (default 1,000) each loop: TLS lobby, `hello`, queue for
`maze`, UDP session, play the match to its end with the game's own bot
(`IBot`, one action in flight, `think` seconds between actions), and queue
again. Every datagram a bot sends or receives is dropped with probability
`loss` (default 5%) on the client side. The server is the whole vinom
server (`makeService`). After `warmup` seconds the window starts: the
server's resident memory then is `rss_start_bytes`, at the end of the window
`rss_end_bytes`; `games` counts the maze games that finished in the window,
`errors` everything that went wrong for a bot (lobby errors, failed
handshakes, timed-out or aborted matches; actions rejected as stale are
counted apart, as `rejected`, since a bot's move can legitimately go stale).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any

from benchmarks.common import (
    MeasuredRun,
    ScenarioOptions,
    cpu_plan,
    cpu_row,
    non_negative_floats,
    positive_int,
    progress_for,
    report_failure,
)
from benchmarks.harness import BenchError, Harness, merge_histograms, percentile_ms, report

RSS_SAMPLE_S = 10.0


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optFlags = [
        ["census", None, "Count the server's live objects by type at both ends of the window "
                         "and trace its allocations in between (tracemalloc); report what grew. "
                         "Slows the server down: for finding leaks, not for figures."],
    ]
    optParameters = [
        ["bots", "b", "1000", "Bots playing at once."],
        ["game", "g", "maze", "Game the bots play."],
        ["warmup", None, "180", "Seconds before the window: every bot in a game and the "
                                "server's heap at its working size (see docs/performance.md)."],
        ["duration", None, "300", "Seconds measured."],
        ["loss", None, "0.05", "Probability that the network drops a client's datagram."],
        ["think", None, "0.2", "Seconds a bot waits before each action."],
        ["lobby-slots", None, "64", "Lobby connections the bots may hold at once."],
        ["udp-ports", None, "0", "Server UDP port pool (0: one per two bots, plus slack)."],
        ["seed", None, None, "Random seed of the bots and the simulated loss."],
    ]

    def postOptions(self) -> None:
        for name in ("bots", "lobby-slots"):
            self[name] = positive_int(self, name)
        non_negative_floats(self, "warmup", "duration", "loss", "think")
        if self["loss"] >= 1:
            from twisted.python import usage

            raise usage.UsageError("--loss must be below 1")
        ports = int(self["udp-ports"])
        self["udp-ports"] = ports if ports > 0 else self["bots"] // 2 + 64


def run(options: Options) -> int:
    progress = progress_for(options, "soak", options.planned_seconds())

    rss_trace: list[float] = []
    servers: list[Any] = []

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        # The server's memory every 10 s over the whole run: does it level off?
        elapsed = float(message.get("elapsed", 0.0))
        if servers and elapsed >= RSS_SAMPLE_S * len(rss_trace):
            rss_trace.append(round(servers[0].rss_bytes() / 1e6, 1))
        progress.update(
            f"{message.get('games', 0):,} games, {message.get('playing', 0):,} playing, "
            f"{message.get('errors', 0)} errors",
            message.get("elapsed"),
        )

    data_dir = tempfile.mkdtemp(prefix="vinom-bench-soak-")
    server_cpu, load_cpus = cpu_plan(1, options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["server", json.dumps({"data_dir": data_dir, "udp_ports": options["udp-ports"]})],
                server_cpu,
            )
            servers.append(server)
            ready = harness.wait_for(server, "ready", 60)
            settings = {
                "host": "127.0.0.1",
                "port": ready["lobby_port"],
                "trust": ready["trust"],
                "game": options["game"],
                "bots": options["bots"],
                "warmup": options["warmup"],
                "duration": options["duration"],
                "loss": options["loss"],
                "think": options["think"],
                "lobby_slots": options["lobby-slots"],
                "seed": options["seed"],
            }
            load = harness.spawn(
                "load", "benchmarks.lobby_worker", ["fleet", json.dumps(settings)],
                load_cpus[0],
            )
            measured = MeasuredRun(harness, server, [load], options, "soak", options["duration"])
            (result,) = measured.run(mark_server=True, census=options["census"])
    except BenchError as e:
        progress.finish()
        return report_failure("soak", e, options)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    progress.finish()
    window = float(result["window_s"]) or 1e-9
    start, end = measured.server_marks
    rss_start, rss_end = int(start["rss"]), int(end["rss"])
    histogram = merge_histograms([result["histogram"]])
    kinds = dict(result["error_kinds"])
    rejected = sum(n for k, n in kinds.items() if k.startswith("rejected_"))
    summary: dict[str, Any] = {
        "scenario": "soak",
        "bots": options["bots"],
        "game": options["game"],
        "loss": options["loss"],
        "window_s": round(window, 1),
        "games": int(result["games"]),
        "matches_started": int(result["matches_started"]),
        "moves": int(result["moves"]),
        "moves_per_s": round(int(result["moves"]) / window, 1),
        "move_p50_ms": percentile_ms(histogram, 50),
        "move_p99_ms": percentile_ms(histogram, 99),
        "errors": int(result["errors"]),
        "rejected": rejected,
        "rss_start_bytes": rss_start,
        "rss_end_bytes": rss_end,
        "rss_growth_pct": round(100.0 * (rss_end - rss_start) / max(rss_start, 1), 2),
        **measured.cpu_figures(),
        "datagrams_dropped": int(result["dropped_in"]) + int(result["dropped_out"]),
        "bots_not_stopped": int(result.get("still_running", 0)),
        "rss_mb_every_10s": rss_trace,
    }
    summary["server_counters_start"] = start["counters"]
    summary["server_counters_end"] = end["counters"]
    if options["census"]:
        before, after = start.get("census", {}), end.get("census", {})
        growth = {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}
        summary["census_growth"] = dict(sorted(growth.items(), key=lambda kv: -kv[1])[:15])
        summary["allocations_growth"] = end.get("allocations", {})
    errors_by_kind = {k: n for k, n in kinds.items() if not k.startswith("rejected_")}
    if errors_by_kind:
        summary["error_kinds"] = errors_by_kind
    rows: list[tuple[str, Any]] = [
        ("games finished", summary["games"]),
        ("matches started", summary["matches_started"]),
        ("moves applied / s", summary["moves_per_s"]),
        ("move latency p50 / p99 ms", f"{summary['move_p50_ms']} / {summary['move_p99_ms']}"),
        ("errors", summary["errors"]),
        ("rejected (stale) actions", rejected),
        ("server RSS start / end MB", f"{rss_start / 1e6:.1f} / {rss_end / 1e6:.1f} "
                                      f"({summary['rss_growth_pct']:+.1f}%)"),
        ("datagrams dropped by the simulated network", summary["datagrams_dropped"]),
        cpu_row(measured.server_cpu_s, measured.load_cpu_s, window),
    ]
    report(
        f"soak: {options['bots']:,} {options['game']} bots, {options['loss']:.0%} loss, "
        f"{options['duration']:g} s measured",
        rows, summary, table=options.show_table,
    )
    return 0 if summary["errors"] == 0 else 1
