"""The match scenario: C clients from a TLS lobby connection to the first state of a full room.

Each client connects to the lobby over TLS (verifying the server's
certificate), says `hello`, queues for the 2-player `duel` game, receives
`match_found`, completes the UDP handshake with its game host and waits for
the first state (or phase) of its full room; that time, from starting its
connection, is its latency. It then leaves the match, so the room ends and
its port returns to the pool. At most `in_flight` clients run at once; a
new one starts as soon as one is done. The server is the whole vinom
server of `twistd vinom` (`vinom.tap.makeService`: lobby, FIFO matchmaker,
port allocator, inline game hosts) with the per-IP abuse limits lifted
(every bench client comes from 127.0.0.1). The window is the whole run:
`wall_s` from the first client's start to the last client's end.

The load's clients are lean by default (`benchmarks.match_load`: one
plain poll loop, pyOpenSSL on the sockets, the sans-I/O UDP client): the
same conversation with the server as the vinom client library's (TLS
handshake, frames, datagrams), for less of the load's CPU; `tls` in the
JSON names the protocol, cipher and key exchange they negotiated.
`--client twisted` runs the client library itself on the reactor
(`benchmarks.lobby_load.match_client`), for comparison.

`--host-workers N` (N > 0) hosts the games in N game-host worker processes,
as `twistd vinom --host-workers N` does (the default, 0, hosts them in the
server process); the run starts once every worker is live. The workers
inherit the server process's core, and `server_cpu_s` counts the lobby
process only; `worker_cpu_s` is the workers' CPU over the window (from
their heartbeats).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any

from twisted.python import usage

from benchmarks.common import (
    MeasuredRun,
    ScenarioOptions,
    cpu_plan,
    cpu_row,
    latency_ms,
    non_negative_int,
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

# --client -> the load worker's kind.
CLIENT_KINDS = {"lean": "match", "twisted": "match-twisted"}


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["clients", "c", "1000", "Clients (an even number: the game seats two)."],
        ["in-flight", None, "200", "Clients in progress at once."],
        ["udp-ports", None, "256", "Size of the server's UDP port pool (concurrent games)."],
        ["backlog", None, None, "The lobby's listen backlog (default: the server's own, "
                                "Twisted's 50)."],
        ["client", None, "lean", "The load's clients: 'lean' (plain poll loop) or 'twisted' "
                                 "(the vinom client library on the reactor)."],
        ["host-workers", None, "0", "Game-host worker processes (0: games in the server "
                                    "process)."],
    ]

    def postOptions(self) -> None:
        for name in ("clients", "in-flight", "udp-ports"):
            self[name] = positive_int(self, name)
        if self["backlog"] is not None:
            self["backlog"] = positive_int(self, "backlog")
        self["host-workers"] = non_negative_int(self, "host-workers")
        if self["client"] not in CLIENT_KINDS:
            raise usage.UsageError(f"--client must be one of {', '.join(CLIENT_KINDS)}")
        if self["clients"] % 2:
            raise usage.UsageError("--clients must be even (two players per match)")

    def planned_seconds(self) -> float:
        return self["clients"] / 100.0


def run(options: Options) -> int:
    progress = progress_for(options, "match", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        done = int(message.get("count", 0))
        progress.update(
            f"{done:,} of {options['clients']:,} clients",
            options.planned_seconds() * done / options["clients"],
        )

    data_dir = tempfile.mkdtemp(prefix="vinom-bench-match-")
    server_cpu, load_cpus = cpu_plan(1, options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["server", json.dumps({
                    "data_dir": data_dir,
                    "udp_ports": options["udp-ports"],
                    "lobby_extra": f":backlog={options['backlog']}" if options["backlog"] else "",
                    "extra_args": ["--host-workers", str(options["host-workers"])],
                })],
                server_cpu,
            )
            ready = harness.wait_for(server, "ready", 60)
            settings = {
                "host": "127.0.0.1",
                "port": ready["lobby_port"],
                "trust": ready["trust"],
                "clients": options["clients"],
                "in_flight": options["in-flight"],
                "game": "duel",
            }
            load = harness.spawn(
                "load", "benchmarks.lobby_worker",
                [CLIENT_KINDS[options["client"]], json.dumps(settings)],
                load_cpus[0],
            )
            measured = MeasuredRun(
                harness, server, [load], options, "match", options.planned_seconds()
            )
            (result,) = measured.run(mark_server=options["host-workers"] > 0)
    except BenchError as e:
        progress.finish()
        return report_failure("match", e, options)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    progress.finish()
    wall = float(result["window_s"]) or 1e-9
    histogram = merge_histograms([result["histogram"]])
    clients = int(result["clients"])
    summary: dict[str, Any] = {
        "scenario": "match",
        "clients": clients,
        "in_flight": options["in-flight"],
        "client": options["client"],
        "host_workers": options["host-workers"],
        "wall_s": round(wall, 3),
        "clients_per_s": round(int(result["completed"]) / wall, 1),
        **latency_ms(histogram),
        "errors": int(result["errors"]),
        **measured.cpu_figures(),
        "server_cpu_ms_per_client": round(measured.server_cpu_s * 1e3 / max(clients, 1), 3),
        "load_cpu_ms_per_client": round(measured.load_cpu_s * 1e3 / max(clients, 1), 3),
        "bottleneck": bottleneck(measured.server_cpu_s, measured.load_cpu_s, wall),
    }
    if measured.server_marks:
        before, after = (m["counters"]["workers"] for m in measured.server_marks)
        worker_cpu_s = sum(float(w["cpu_seconds"]) for w in after) - sum(
            float(w["cpu_seconds"]) for w in before
        )
        summary["worker_cpu_s"] = round(worker_cpu_s, 3)
        summary["worker_cpu_ms_per_client"] = round(worker_cpu_s * 1e3 / max(clients, 1), 3)
    if result.get("tls"):
        summary["tls"] = result["tls"]
    if result["error_kinds"]:
        summary["error_kinds"] = result["error_kinds"]
    rows: list[tuple[str, Any]] = [
        ("clients matched and in a full room / s", summary["clients_per_s"]),
        ("wall time s", summary["wall_s"]),
        ("latency p50 / p99 ms", f"{summary['p50_ms']} / {summary['p99_ms']}"),
        ("server CPU ms / client", summary["server_cpu_ms_per_client"]),
        *([("  game-host workers' CPU ms / client", summary["worker_cpu_ms_per_client"])]
          if "worker_cpu_ms_per_client" in summary else []),
        ("load CPU ms / client", summary["load_cpu_ms_per_client"]),
        ("errors", summary["errors"]),
        cpu_row(measured.server_cpu_s, measured.load_cpu_s, wall, summary["bottleneck"]),
    ]
    report(
        f"match: {clients:,} clients, {options['in-flight']} in flight"
        + (f", {options['host-workers']} game-host worker(s)" if options["host-workers"] else ""),
        rows, summary, table=options.show_table,
    )
    return 0 if summary["errors"] == 0 else 1
