"""The chaos scenario: faults injected into a real cluster on one machine, what players see.

For each fault (all of them in turn, or the one `--fault NAME` names) the
scenario starts a fresh cluster: a redis-server of its own, two lobbies
(`twistd -n vinom lobby`) and two game hosts (`twistd vinom host`, each
with `--host-workers` game-host worker processes), every process with its
own operations port, all sharing a token key file, the lobbies one dev
certificate. Each twistd process leads a process group of its own, so that
a signal reaches a host and its workers together, as it does a container
or a machine. Players (`benchmarks.chaos_players`: `--steady` players
playing `--game` matches in turn through both lobbies, `--waiters` ranked
players waiting for an opponent on lobby 0, and a pair of new players every
`--probe-every` seconds) play until the cluster is warm, then the fault is
injected once, and the players, the client library's `LobbyPlayer`
recovering as docs/client.md says, are
watched until the cluster is whole again or `--window` seconds have passed.

Faults (`FAULTS`): `lobby-kill` (SIGKILL to lobby 0, where the waiters
queue), `host-kill` (SIGKILL to the process group of the host running most
of the players' matches), `host-pause` (SIGSTOP to that host's process
group, SIGCONT `--pause` seconds later), `lobby-drain` (SIGTERM to lobby 0 while its players'
matches run; both lobbies run with `--limit drain-timeout=30`) and
`redis-failover` (SIGKILL to the Redis master: the cluster then runs on
`benchmarks.chaos_sentinel`'s master, replica and three sentinels, through
`--redis redis+sentinel://`; `failover_s` is the time until the sentinels
name the promoted replica; skipped, saying why, with a vinom that has no
Sentinel support).

Per fault, what players saw:

- `matches_lost`: matches one of our players was told of (`match_found`),
  not ghosts, that did not end `finished` for every one of our players in
  them (aborted, a session that closed for good, a host never reached);
- `ghost_matches`: matches with a player who was not there: a roster naming
  a player id none of our players holds (a dead lobby's ticket), or an
  abort `players_missing` where every player of ours had connected;
- `unanswered`: lobby requests with no reply within `--answer-bound`
  seconds (or none before the client left a silent lobby), and UDP
  handshakes with a game host that timed out; and `players_unanswered`,
  how many players had one;
- `whole_s`: seconds from the fault until the cluster was whole again: the
  end of the last interval in which a player was not in a normal state
  (queued, or getting the states of a match that is not a ghost, with no gap
  of more than `--gap` seconds), or of the last probe that was not matched
  and in its game within `--probe-bound` seconds. `null` when it was not
  whole by the end of the window.

Also: `matches` (those our players were told of after the fault, which
`finished`, `matches_lost`, `ghost_matches` and `still_running` add up to),
`running_at_fault` (and `host_running_at_fault`, those on the host hit),
`probes` and `probes_slow`, `errors` (error codes our players were answered,
e.g. `rate_limited`), `critical` and `tracebacks` (critical-level lines and
tracebacks in the cluster's logs), and for `lobby-drain` the lobby's
`exit_code` and `drain_s` (from SIGTERM to its exit).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from attrs import frozen
from twisted.python import usage

from benchmarks.chaos_sentinel import SentinelRedis
from benchmarks.common import (
    ScenarioOptions,
    non_negative_float,
    non_negative_int,
    positive_int,
    progress_for,
)
from benchmarks.drain import twistd_main
from benchmarks.harness import BenchError, Harness, Worker, build_info
from benchmarks.ports import free_tcp_port, free_udp_range
from benchmarks.redis_process import start_redis

# The lobbies' drain timeout: a drain that waits for its players' matches ends well within.
DRAIN_TIMEOUT = 30.0
UDP_PORTS_PER_HOST = 64


class Cluster:
    """Redis, two lobbies and two hosts as twistd processes, each in its own process group."""

    def __init__(self, harness: Harness, options: Options, data_dir: str) -> None:
        self.harness = harness
        self.options = options
        self.data_dir = data_dir
        self.lobbies: list[Worker] = []
        self.hosts: list[Worker] = []
        self.logs: dict[str, str] = {}
        self.lobby_ports: list[int] = []
        self.host_ports: list[tuple[int, int]] = []
        self.trust = ""
        self.redis_url = ""
        self.exited: dict[str, float] = {}
        self.sentinel: SentinelRedis | None = None

    def start(self, redis: str) -> None:
        from vinom.server.certs import ensure_dev_certificate

        key_file = os.path.join(self.data_dir, "token.key")
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key_file, 0o600)
        certificate = ensure_dev_certificate(os.path.join(self.data_dir, "certificate"))
        self.trust = str(certificate.certificate)
        if redis == "sentinel":
            self.sentinel = SentinelRedis(self.options["sentinel-down-after"])
            self.redis_url = self.sentinel.start(self.harness, self.data_dir)
        else:
            redis_dir = os.path.join(self.data_dir, "redis")
            os.makedirs(redis_dir)
            _, port = start_redis(self.harness, redis_dir, None)
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        shared = ["--redis", self.redis_url, "--token-key-file", key_file,
                  "--websocket", "none", "--limit", f"drain-timeout={DRAIN_TIMEOUT:g}"]  # fmt: skip
        for i in range(2):
            low, high = free_udp_range("127.0.0.1", UDP_PORTS_PER_HOST)
            self.host_ports.append((low, high))
            self.hosts.append(self._twistd(f"host{i}", ["host", *shared,
                "--udp-ports", f"{low}-{high}",
                "--udp-interface", "127.0.0.1", "--public-host", "127.0.0.1",
                "--host-workers", str(self.options["host-workers"])]))  # fmt: skip
        for i in range(2):
            port = free_tcp_port("127.0.0.1")
            self.lobby_ports.append(port)
            self.lobbies.append(self._twistd(f"lobby{i}", ["lobby", *shared,
                "--lobby", f"ssl:{port}:interface=127.0.0.1",
                "--certificate", str(certificate.certificate),
                "--private-key", str(certificate.private_key)]))  # fmt: skip
        for worker in self.hosts:
            self._wait_log(worker, "registered")
        for worker in self.lobbies:
            self._wait_log(worker, "starting on")

    def _twistd(self, name: str, args: Sequence[str]) -> Worker:
        directory = os.path.join(self.data_dir, name)
        os.makedirs(directory)
        log = self.logs[name] = os.path.join(directory, "twistd.log")
        ops = free_tcp_port("127.0.0.1")
        worker = self.harness.spawn_command(
            name,
            [sys.executable, "-c", twistd_main(), "-n", "--pidfile=", "--logfile", log, "vinom",
             *args, "--data-dir", directory, "--ops-port", f"tcp:{ops}:interface=127.0.0.1"],
            None, ignores_stdin=True, own_group=True,
        )  # fmt: skip

        def watch() -> None:
            worker.popen.wait()
            self.exited[name] = time.time()

        threading.Thread(target=watch, daemon=True).start()
        return worker

    def _wait_log(self, worker: Worker, text: str, limit: float = 90.0) -> None:
        deadline = time.monotonic() + limit
        while text not in self.log_text(worker.name):
            if not worker.running():
                raise BenchError(f"{worker.name} exited (code {worker.popen.returncode}):\n"
                                 f"{self.log_text(worker.name)[-4000:]}")  # fmt: skip
            if time.monotonic() > deadline:
                raise BenchError(f"{worker.name} did not log {text!r} within {limit:g} s:\n"
                                 f"{self.log_text(worker.name)[-4000:]}")  # fmt: skip
            time.sleep(0.05)

    def log_text(self, name: str) -> str:
        try:
            with open(self.logs[name], "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_count(self, text: str) -> int:
        """How many times `text` is in the processes' logs (all of them)."""
        return sum(self.log_text(name).count(text) for name in self.logs)

    def busiest_host(self, ports: Sequence[int]) -> int:
        """The index of the host running the most of these games (by their ports)."""
        counts = [sum(1 for p in ports if low <= p <= high) for low, high in self.host_ports]
        return counts.index(max(counts))

    def signal_group(self, worker: Worker, signum: int) -> None:
        os.killpg(worker.pid, signum)

    def close(self) -> None:
        """SIGKILL every process group (a stopped one too), before the harness reaps them."""
        for worker in [*self.lobbies, *self.hosts]:
            for signum in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.killpg(worker.pid, signum)
                except (ProcessLookupError, PermissionError):
                    break


@frozen
class Fault:
    """One fault: its name, what it does, and how it is injected (returns facts to report)."""

    name: str
    what: str
    # (cluster, options, the host to hit: the one running most of the players' matches)
    inject: Callable[[Cluster, Options, int], dict[str, Any]]
    # The Redis the cluster runs on: "plain" (one redis-server) or "sentinel".
    redis: str = "plain"
    # Seconds to watch at least after the fault, besides --settle.
    min_observe: Callable[[Options], float] = lambda options: 0.0


def lobby_kill(cluster: Cluster, options: Options, host: int) -> dict[str, Any]:
    cluster.signal_group(cluster.lobbies[0], signal.SIGKILL)
    return {}


def host_kill(cluster: Cluster, options: Options, host: int) -> dict[str, Any]:
    cluster.signal_group(cluster.hosts[host], signal.SIGKILL)
    return {}


def host_pause(cluster: Cluster, options: Options, host: int) -> dict[str, Any]:
    cluster.signal_group(cluster.hosts[host], signal.SIGSTOP)
    time.sleep(options["pause"])
    cluster.signal_group(cluster.hosts[host], signal.SIGCONT)
    return {"paused_s": options["pause"]}


def lobby_drain(cluster: Cluster, options: Options, host: int) -> dict[str, Any]:
    os.kill(cluster.lobbies[0].pid, signal.SIGTERM)
    return {}


def redis_failover(cluster: Cluster, options: Options, host: int) -> dict[str, Any]:
    assert cluster.sentinel is not None
    return cluster.sentinel.fail_master()


def sentinel_support() -> str | None:
    """Why the vinom measured cannot run on Redis Sentinel, or None if it can."""
    from vinom.cluster.client import parse_redis_url

    try:
        parse_redis_url("redis+sentinel://127.0.0.1:26379/mymaster/0")
    except ValueError:
        return SENTINEL_MISSING
    return None


SENTINEL_MISSING = "this vinom does not take --redis redis+sentinel:// (issue #25 item 4)"

FAULTS = {
    fault.name: fault
    for fault in (
        Fault("lobby-kill", "SIGKILL lobby 0 with its waiters queued", lobby_kill),
        Fault("host-kill", "SIGKILL a host (and its workers) with matches running", host_kill),
        Fault(
            "host-pause",
            "SIGSTOP a host (its process group), SIGCONT after --pause s",
            host_pause,
            min_observe=lambda options: options["pause"],
        ),
        Fault("lobby-drain", "SIGTERM lobby 0 with its players' matches running", lobby_drain),
        Fault(
            "redis-failover",
            "the Redis master killed under Sentinel",
            redis_failover,
            redis="sentinel",
        ),
    )
}


def unavailable(fault: Fault) -> str | None:
    """Why `fault` cannot run here, or None."""
    if fault.redis == "sentinel":
        return sentinel_support()
    return None


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["fault", "f", None, "Run this fault only: " + ", ".join(FAULTS) + " (default: all)."],
        ["steady", None, "16", "Players playing matches in turn through both lobbies."],
        ["waiters", None, "20", "Ranked players waiting on lobby 0 (nobody matches them)."],
        ["game", None, "tictactoe", "The (two-player) game the steady players play."],
        ["think", None, "0.5", "Seconds a steady player waits before each move."],
        ["probe-game", None, "maze", "The game the probes (new players) queue for."],
        ["probe-every", None, "1", "Seconds between two pairs of new players."],
        ["probe-bound", None, "1.5", "Seconds within which a new player is normally in its game."],
        ["answer-bound", None, "10", "Seconds within which a request must be answered."],
        ["gap", None, "3", "Seconds without a state in a running match that are not normal."],
        ["pause", None, "20", "Seconds host-pause keeps the host stopped."],
        ["warmup", None, "3", "Seconds the players play before the fault, once started."],
        ["window", None, "60", "Seconds at most to watch after the fault."],
        ["settle", None, "5", "Seconds the cluster must stay whole before a fault ends."],
        ["host-workers", None, "1", "Game-host worker processes per host."],
        [
            "sentinel-down-after",
            None,
            "5",
            "redis-failover: seconds without an answer after "
            "which the sentinels think the master down.",
        ],
        ["seed", None, "1", "Seed of the players' bots."],
        [
            "records",
            None,
            None,
            "Directory: save each fault's raw player records "
            "(FAULT.json) and the cluster's logs (FAULT-PROCESS.log) there.",
        ],
    ]

    def postOptions(self) -> None:
        if self["profile"] or self["profile-load"]:
            raise usage.UsageError("chaos does not profile (--profile): it measures outcomes")
        if self["fault"] is not None and self["fault"] not in FAULTS:
            raise usage.UsageError(
                f"--fault must be one of {', '.join(FAULTS)}, not {self['fault']!r}"
            )
        for name in ("steady", "host-workers"):
            self[name] = positive_int(self, name)
        for name in ("waiters", "seed"):
            self[name] = non_negative_int(self, name)
        for name in ("think", "probe-every", "probe-bound", "answer-bound", "gap", "pause",
                     "warmup", "window", "settle", "sentinel-down-after"):  # fmt: skip
            self[name] = non_negative_float(self, name)
        if self["steady"] % 2:
            raise usage.UsageError("--steady must be even (two players per match)")
        if self["probe-every"] <= 0:
            raise usage.UsageError("--probe-every must be more than 0")

    def faults(self) -> list[Fault]:
        return [FAULTS[self["fault"]]] if self["fault"] else list(FAULTS.values())

    def planned_seconds(self) -> float:
        return len(self.faults()) * (25.0 + self["warmup"] + self["window"] / 2)

    def hard_limit(self) -> float:
        if self["timeout"] is not None:
            return float(self["timeout"])
        return len(self.faults()) * (120.0 + self["warmup"] + self["window"] + self["pause"])


def analyse(result: dict[str, Any], probe_bound: float) -> dict[str, Any]:
    """The player-visible outcome of one fault from the players' records."""
    at, ended = float(result["fault_at"]), float(result["ended_at"])
    matches = [m for m in result["matches"] if m["found_at"] >= at
               or m["game_id"] in result["running_at_fault"]]  # fmt: skip
    counts = {"finished": 0, "lost": 0, "ghost": 0, "still_running": 0}
    for match in matches:
        outcomes = list(match["outcomes"].values())
        missing_with_all_there = any(o == "aborted:players_missing" for o in outcomes) and match[
            "connected"
        ] >= len(match["players"])
        if match["ghost"] or missing_with_all_there:
            counts["ghost"] += 1
        elif len(outcomes) < len(match["players"]):
            counts["still_running"] += 1
        elif all(o == "finished" for o in outcomes):
            counts["finished"] += 1
        else:
            counts["lost"] += 1
    ends: list[float] = []
    whole = True
    before = 0
    for player in result["players"]:
        for _start, end in player["intervals"]:
            if end <= at:
                before += 1
            else:
                ends.append(end)
        if player["open_since"] is not None:
            whole = False
    after_probes = [p for p in result["probes"] if p["started"] >= at]
    slow = [p for p in after_probes if not p["ok"] or p["took"] > probe_bound]
    ends += [p["ended"] for p in slow]
    if any(ended - p["started"] > probe_bound for p in result["probes_open"]):
        whole = False
    unanswered = sum(result["unanswered"].values())
    return {
        "matches": len(matches),
        "finished": counts["finished"],
        "matches_lost": counts["lost"],
        "ghost_matches": counts["ghost"],
        "still_running": counts["still_running"],
        "running_at_fault": len(result["running_at_fault"]),
        "unanswered": unanswered,
        "unanswered_by_request": result["unanswered"],
        "players_unanswered": int(result["players_unanswered"]),
        "requests": sum(result["requests"].values()),
        "players": len(result["players"]),
        "players_not_whole": sum(1 for p in result["players"] if p["open_since"] is not None),
        "whole_s": round(max([at, *ends]) - at, 2) if whole else None,
        "watched_s": round(ended - at, 2),
        "probes": len(after_probes),
        "probes_slow": len(slow),
        "errors": result["errors"],
        "anomalies_before_fault": before,
    }


def run_fault(fault: Fault, options: Options, progress: Any) -> dict[str, Any]:
    """A fresh cluster, the players, the fault; the outcome."""
    data_dir = tempfile.mkdtemp(prefix="vinom-bench-chaos-")
    cluster: Cluster | None = None
    try:
        with Harness(options.hard_limit()) as harness:
            cluster = Cluster(harness, options, data_dir)
            progress.update(f"{fault.name}: starting the cluster")
            cluster.start(fault.redis)
            players = harness.spawn(
                "players", "benchmarks.chaos_players",
                [json.dumps({
                    "lobbies": [{"host": "127.0.0.1", "port": p, "trust": cluster.trust}
                                for p in cluster.lobby_ports],
                    "steady": options["steady"], "waiters": options["waiters"],
                    "game": options["game"], "think": options["think"],
                    "probe_game": options["probe-game"], "probe_every": options["probe-every"],
                    "probe_bound": options["probe-bound"],
                    "probe_give_up": options["window"],
                    "answer_bound": options["answer-bound"], "gap": options["gap"],
                    "warmup": options["warmup"], "seed": options["seed"],
                })],
                None,
            )  # fmt: skip
            progress.update(f"{fault.name}: players warming up")
            ready = harness.wait_for(players, "ready", 120)
            progress.update(f"{fault.name}: injecting")
            players.send({"type": "running"})
            ports = harness.wait_for(players, "running", 30)["ports"]
            host = cluster.busiest_host(ports)
            at = time.time()
            players.send({
                "type": "fault", "at": at, "window": options["window"],
                "settle": options["settle"],
                "min_observe": fault.min_observe(options) + options["settle"],
            })  # fmt: skip
            facts = fault.inject(cluster, options, host)
            progress.update(f"{fault.name}: watching")
            result = harness.wait_for(players, "fault", options["window"] + 60)
            if options["records"]:
                os.makedirs(options["records"], exist_ok=True)
                with open(os.path.join(options["records"], f"{fault.name}.json"), "w") as f:
                    json.dump(result, f)
            outcome = {
                "fault": fault.name,
                "what": fault.what,
                **analyse(result, options["probe-bound"]),
                "matches_before": int(ready["matches"]),
            }
            outcome.update(facts)
            if fault.name.startswith("host-"):
                outcome["host_running_at_fault"] = sum(
                    1
                    for p in ports
                    if cluster.host_ports[host][0] <= p <= cluster.host_ports[host][1]
                )
            if fault.name == "lobby-drain":
                # A drain may outlast the watch: wait for the exit (--limit drain-timeout
                # bounds it).
                limit = time.time() + DRAIN_TIMEOUT + 5
                while "lobby0" not in cluster.exited and time.time() < limit:
                    time.sleep(0.1)
                exited = cluster.exited.get("lobby0")
                outcome["drain_s"] = round(exited - at, 2) if exited is not None else None
                outcome["exit_code"] = cluster.lobbies[0].popen.poll()
            outcome["critical"] = cluster.log_count("#critical]")
            outcome["tracebacks"] = cluster.log_count("Traceback (most recent call last)")
            if options["records"]:
                for name, log in cluster.logs.items():
                    shutil.copy(log, os.path.join(options["records"], f"{fault.name}-{name}.log"))
            cluster.close()
            return outcome
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(data_dir, ignore_errors=True)


COLUMNS = [
    ("fault", "fault"),
    ("matches_lost", "lost"),
    ("ghost_matches", "ghost"),
    ("unanswered", "unanswered"),
    ("whole_s", "whole s"),
    ("matches", "matches"),
    ("running_at_fault", "running"),
    ("probes_slow", "slow probes"),
    ("critical", "critical log lines"),
]


def table(outcomes: Sequence[dict[str, Any]]) -> str:
    """One row per fault: the player-visible outcome."""

    def cell(outcome: dict[str, Any], key: str) -> str:
        for missing in ("skipped", "error"):
            if missing in outcome:
                return {"fault": outcome["fault"], "matches_lost": missing}.get(key, "")
        value = outcome.get(key)
        if key == "whole_s" and value is None:
            return f"> {outcome['watched_s']:g}"
        return "-" if value is None else str(value)

    rows = [[header for _, header in COLUMNS]]
    rows += [[cell(o, key) for key, _ in COLUMNS] for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    notes = [
        f"  {o['fault']}: {o.get('skipped') or o.get('error')}"
        for o in outcomes
        if "skipped" in o or "error" in o
    ]
    return "\n".join(lines + notes)


def run(options: Options) -> int:
    progress = progress_for(options, "chaos", options.planned_seconds())
    outcomes: list[dict[str, Any]] = []
    build = build_info()
    failed = False
    for fault in options.faults():
        reason = unavailable(fault)
        if reason is not None:
            outcome: dict[str, Any] = {"fault": fault.name, "what": fault.what, "skipped": reason}
            failed = failed or options["fault"] == fault.name
        else:
            try:
                outcome = run_fault(fault, options, progress)
            except BenchError as e:
                first = (str(e) or repr(e)).splitlines()[0]
                sys.stderr.write(f"{fault.name}: {e}\n")
                outcome = {"fault": fault.name, "what": fault.what, "error": first}
                failed = True
        outcomes.append({"scenario": "chaos", **outcome})
    progress.finish()
    title = (f"chaos: 2 lobbies, 2 hosts ({options['host-workers']} worker(s) each), "
             f"{options['steady']} steady players, {options['waiters']} waiters")  # fmt: skip
    if options.show_table:
        sys.stdout.write(f"{title}\n{'-' * len(title)}\n{table(outcomes)}\n")
        sys.stdout.write(f"build: {build['code']}, AEAD {build['aead']}\n")
    for outcome in outcomes:
        sys.stdout.write(json.dumps({**outcome, "build": build}, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 1 if failed else 0
