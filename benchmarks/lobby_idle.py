"""The lobby-idle scenario: what one idle TLS lobby connection costs the server in memory.

N clients (asyncio and the standard library's ssl, in one load process) open
TLS connections to the whole vinom server of `twistd vinom`, say `hello`,
wait for `welcome` and then stay idle. The server's resident memory is read
before, while the N connections are held, and after they are closed:
`rss_bytes_per_connection` is (held - before) / N, `rss_retained_per_connection`
(after close - before) / N: memory the process keeps for later connections
(freed by the allocator, not given back to the system). The same is then
measured for a bare Twisted TLS server with the same kind of certificate that
answers each line with one line (`bare_*`): the floor set by Twisted's TLS
and pyOpenSSL, under the lobby's own state.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from typing import Any

from benchmarks.common import ScenarioOptions, positive_int, progress_for, report_failure
from benchmarks.harness import BenchError, Harness, Worker, cpu_plan, report


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["connections", "n", "2000", "Idle TLS connections held."],
    ]

    def postOptions(self) -> None:
        self["connections"] = positive_int(self, "connections")

    def planned_seconds(self) -> float:
        return 10.0 + 2 * self["connections"] / 500.0


def _rss(harness: Harness, server: Worker) -> int:
    server.send({"type": "mark"})
    return int(harness.wait_for(server, "mark", 30)["rss"])


def _measure(harness: Harness, kind: str, data_dir: str, n: int, cpus: Any) -> dict[str, Any]:
    server_cpu, load_cpus = cpus
    settings: dict[str, Any] = {"data_dir": data_dir, "udp_ports": 8}
    if kind == "server":
        settings["extra_args"] = ["--limit", "lobby-hello-timeout=600",
                                  "--limit", "lobby-idle-timeout=600"]  # fmt: skip
    server = harness.spawn(f"{kind}", "benchmarks.server_worker", [kind, json.dumps(settings)],
                           server_cpu)
    ready = harness.wait_for(server, "ready", 60)
    time.sleep(0.5)
    before = _rss(harness, server)
    load = harness.spawn(
        "load", "benchmarks.idle_tls_load",
        [json.dumps({"host": "127.0.0.1", "port": ready["lobby_port"],
                     "trust": ready["trust"], "connections": n})],
        load_cpus[0],
    )
    held = harness.wait_for(load, "held", 30 + n / 100)
    time.sleep(1.0)
    server.send({"type": "mark"})
    mark = harness.wait_for(server, "mark", 30)
    holding = int(mark["rss"])
    load.send({"type": "close"})
    harness.wait_for(load, "closed", 60)
    time.sleep(2.0)
    after = _rss(harness, server)
    harness.stop(load)
    harness.stop(server)
    count = max(int(held["connections"]), 1)
    return {
        "held": int(held["connections"]),
        "failed": int(held["failed"]),
        "server_connections": int(mark["counters"].get("lobby_connections", -1)),
        "rss_bytes_per_connection": round((holding - before) / count),
        "rss_retained_per_connection": round((after - before) / count),
    }


def run(options: Options) -> int:
    n = options["connections"]
    progress = progress_for(options, "lobby-idle", options.planned_seconds())
    data_dir = tempfile.mkdtemp(prefix="vinom-bench-lobby-idle-")
    cpus = cpu_plan(1, options.pin)
    try:
        with Harness(options.hard_limit(), lambda worker, message: None) as harness:
            progress.update("vinom lobby", 0.0)
            vinom = _measure(harness, "server", data_dir, n, cpus)
            progress.update("bare Twisted TLS", options.planned_seconds() / 2)
            bare = _measure(harness, "bare-tls", data_dir, n, cpus)
    except BenchError as e:
        progress.finish()
        return report_failure("lobby-idle", e, options)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    progress.finish()
    summary: dict[str, Any] = {
        "scenario": "lobby-idle",
        "connections": n,
        **vinom,
        **{f"bare_{name}": value for name, value in bare.items()},
        "errors": vinom["failed"] + bare["failed"],
    }
    rows: list[tuple[str, Any]] = [
        ("connections held (vinom / bare)", f"{vinom['held']:,} / {bare['held']:,}"),
        ("RSS bytes / idle connection: vinom / bare Twisted TLS",
         f"{vinom['rss_bytes_per_connection']:,} / {bare['rss_bytes_per_connection']:,}"),
        ("RSS kept after close / connection: vinom / bare",
         f"{vinom['rss_retained_per_connection']:,} / {bare['rss_retained_per_connection']:,}"),
        ("connections that failed", summary["errors"]),
    ]
    report(f"lobby-idle: {n:,} idle TLS lobby connections", rows, summary,
           table=options.show_table)
    ok = summary["errors"] == 0 and vinom["server_connections"] == n
    return 0 if ok else 1
