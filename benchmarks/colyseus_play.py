"""The colyseus-play scenario: play's duel (or its arena) on the peer framework, Colyseus,
for side-by-side runs.

The same work as `play` (benchmarks/play.py): R rooms x 2 duel players, one
move in flight per player. Each player sends move `{seq: n}`; the room applies
it only if n is the sender's previous seq + 1 and then broadcasts its state
(both counters by player id, the version, phase, time left, tick and server
time, msgpack-encoded) to both players; a player sends its next move as soon
as it sees a state that includes its last one, and each room also broadcasts
its state every `--state-interval` seconds. The server is a Colyseus room
(`@colyseus/core` on `@colyseus/ws-transport`, plain `ws://`, as Colyseus
serves by default) in one Node.js process; the players are `@colyseus/sdk`
clients in one Node.js load process (or `--loads` of them), pinned as every
scenario pins them. Both are in benchmarks/peers/colyseus/ (package.json,
package-lock.json, server.mjs, load.mjs).

The figures are play's: `moves_per_s` counts the moves the room applied (the
server's own counter, read at both ends of the window), `server_cpu_us_per_move`
is the server process's own CPU time in the window (psutil: every thread of the
Node.js process, its garbage collector's included) over those moves, and the
latency of a move runs from sending it to the first state showing it. Run it
alternately with `play --transport ws` (the same plain WebSocket), `websocket`
and `webtransport` in one session for ratios: figures of different sessions do
not compare.

With `--game arena` the rooms are play's arena (vinom/games/arena.py) as a
Colyseus game writes it (server.mjs, `ArenaRoom`): `--players` players a room,
a schema state whose players each client sees through its `StateView` (those
within the arena's radius of its own), ticked and patched 20 times a second;
each player sends an input `{move: [vx, vy], n}` `--input-rate` times a second.
The figures are `play --game arena`'s where they mean the same:
`server_cpu_ms_per_player_s`, `states_per_s_per_client` (WebSocket messages),
`kbytes_per_s_per_client` (the WebSocket frames: payload and frame header, as
vinom's WebSocket figure counts the TCP payload; `payload_kbytes_per_s_per_client`
without the headers), `ticks_per_s` (the state's `ticks` as the clients saw
it) and `input_to_state` p50 / p99 (an input to the first patch whose own
`ack` reached it).

The first run installs the peer with `npm ci` (the lockfile's exact versions)
into `--install-dir` (default: `$XDG_CACHE_HOME/vinom-bench/`, a directory
named for the peer's files, so that a changed lockfile installs afresh); later
runs reuse it. It needs `node` (20 or later) and `npm` on `PATH` and, for that
first run, the npm registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
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
    slices,
)
from benchmarks.harness import (
    BenchError,
    Harness,
    bottleneck,
    new_histogram,
    percentile_ms,
    report,
)
from benchmarks.play import move_figures, move_rows
from benchmarks.ports import free_tcp_port

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers", "colyseus")
# What a run needs of the peer's directory (node_modules is installed from the lockfile).
PEER_FILES = ("package.json", "package-lock.json", "server.mjs", "load.mjs")


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["game", None, "duel", "duel, or arena: play --game arena's rooms."],
        ["rooms", None, None, "Rooms (default: 100 duels, 1 arena)."],
        ["players", None, "8", "Players in each arena room."],
        ["input-rate", None, "20", "Inputs per second per arena player."],
        ["loads", None, "1", "Load processes sharing the players (all on the load core)."],
        ["warmup", None, "2", "Seconds of warm-up after every player is seated."],
        ["duration", None, "10", "Seconds measured."],
        ["state-interval", None, "1.0", "Rooms' periodic state interval (as play's)."],
        [
            "install-dir",
            None,
            None,
            "Where the peer is installed with npm ci (default: under $XDG_CACHE_HOME/vinom-bench).",
        ],
    ]

    # Seating the players through Colyseus's matchmaker (an HTTP request and a
    # WebSocket each) takes a while: more on a busy machine (`hard_limit`).
    slack = 120.0

    def hard_limit(self) -> float:
        if self["timeout"] is not None:
            return float(self["timeout"])
        return self.planned_seconds() + self.slack + 0.15 * self.players()

    def players(self) -> int:
        return int(self["rooms"]) * (int(self["players"]) if self["game"] == "arena" else 2)

    def postOptions(self) -> None:
        if self["game"] not in ("duel", "arena"):
            raise usage.UsageError("--game is duel or arena")
        if self["rooms"] is None:
            self["rooms"] = "1" if self["game"] == "arena" else "100"
        self["rooms"] = positive_int(self, "rooms")
        self["players"] = positive_int(self, "players")
        if self["game"] == "arena" and self["players"] < 2:
            raise usage.UsageError("--players must be at least 2")
        self["loads"] = positive_int(self, "loads")
        if self["loads"] > self["rooms"]:
            raise usage.UsageError("--loads cannot exceed --rooms")
        non_negative_floats(self, "warmup", "duration", "state-interval", "input-rate")
        if self["profile"] is not None:
            raise usage.UsageError("--profile samples Python with py-spy: the peer is Node.js")


def install_dir(options: Mapping[str, Any]) -> str:
    """The directory the peer runs from: its files, and node_modules from `npm ci`."""
    if options["install-dir"] is not None:
        return str(options["install-dir"])
    digest = hashlib.sha256()
    for name in PEER_FILES:
        with open(os.path.join(PEER, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "vinom-bench", f"colyseus-{digest.hexdigest()[:16]}")


def ensure_installed(directory: str) -> None:
    """The peer's files in `directory`, and its packages installed there by `npm ci`.

    The install happens in a directory of its own that is then renamed into
    place, so that two runs at once never see half an install.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise BenchError(f"colyseus-play needs {tool} (Node.js 20 or later) on PATH")
    if os.path.isdir(os.path.join(directory, "node_modules")):
        for name in PEER_FILES:  # --install-dir given: keep its scripts current
            shutil.copyfile(os.path.join(PEER, name), os.path.join(directory, name))
        return
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    building = tempfile.mkdtemp(prefix=".colyseus-install-", dir=parent)
    try:
        for name in PEER_FILES:
            shutil.copyfile(os.path.join(PEER, name), os.path.join(building, name))
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=building, capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BenchError(
                f"npm ci of the Colyseus peer failed (exit {done.returncode}):\n"
                + done.stderr.decode("utf-8", "replace")[-4000:]
            )
        if os.path.isdir(directory):
            # Given as --install-dir but empty of packages, or another run's install
            # landed meanwhile: fill it. Renamed, not moved: a node_modules already
            # there stays whole (shutil.move would nest this one inside it).
            for name in os.listdir(building):
                try:
                    os.replace(os.path.join(building, name), os.path.join(directory, name))
                except OSError:
                    if not os.path.isdir(os.path.join(directory, "node_modules")):
                        raise
        else:
            try:
                os.rename(building, directory)
            except OSError:
                if not os.path.isdir(os.path.join(directory, "node_modules")):
                    raise
                # Another run installed it first.
    finally:
        shutil.rmtree(building, ignore_errors=True)


def latency_histogram(results: Iterable[Mapping[str, Any]]) -> Any:
    """One histogram of every load's {microseconds: count} latencies."""
    histogram = new_histogram()
    highest = histogram.highest_trackable_value
    for result in results:
        for value, count in result["latencies_us"].items():
            histogram.record_value(min(max(int(float(value)), 1), highest), int(count))
    return histogram


def window_errors(
    results: Iterable[Mapping[str, Any]], before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[int, dict[str, int]]:
    """The window's errors (the loads' and the rooms' rejections) and the loads' by code."""
    errors = after["actions_rejected"] - before["actions_rejected"]
    codes: dict[str, int] = {}
    for r in results:
        errors += int(r["errors"])
        for code, n in r["error_codes"].items():
            codes[code] = codes.get(code, 0) + int(n)
    return errors, codes


def run(options: Options) -> int:
    try:
        directory = install_dir(options)
        ensure_installed(directory)
    except (BenchError, OSError, subprocess.SubprocessError) as e:
        return report_failure("colyseus-play", e, options)
    progress = progress_for(options, "colyseus-play", options.planned_seconds())

    arena = options["game"] == "arena"

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        what = "inputs" if arena else "moves"
        progress.update(f"{message.get('count', 0):,} {what}", message.get("elapsed"))

    server_cpu, load_cpus = cpu_plan(options["loads"], options.pin)
    node = shutil.which("node") or "node"
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn_command(
                "server",
                [node, os.path.join(directory, "server.mjs"), json.dumps({
                    "host": "127.0.0.1", "port": free_tcp_port("127.0.0.1"),
                    "state_interval": options["state-interval"],
                })],
                server_cpu,
            )  # fmt: skip
            ready = harness.wait_for(server, "ready", 60)
            loads = []
            for index, (first, last) in enumerate(slices(options["rooms"], options["loads"])):
                settings = {
                    "host": "127.0.0.1", "port": ready["port"], "first_room": first,
                    "last_room": last, "warmup": options["warmup"],
                    "duration": options["duration"], "game": options["game"],
                    "players": options["players"], "input_rate": options["input-rate"],
                }  # fmt: skip
                loads.append(harness.spawn_command(
                    f"load{index}",
                    [node, os.path.join(directory, "load.mjs"), json.dumps(settings)],
                    load_cpus[index],
                ))  # fmt: skip
            measured = MeasuredRun(
                harness, server, loads, options, "colyseus-play", options["duration"]
            )
            results = measured.run(mark_server=True)
    except BenchError as e:
        progress.finish()
        return report_failure("colyseus-play", e, options)
    progress.finish()
    # What both games report of the peer.
    peer = {
        "scenario": "colyseus-play",
        "transport": "ws",
        "server": "colyseus",
        "colyseus": ready.get("colyseus", "unknown"),
        "node": subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    load_cores = len(set(load_cpus)) if load_cpus[0] is not None else 1
    if arena:
        return arena_report(options, measured, results, peer, load_cores)
    before, after = (m["counters"] for m in measured.server_marks)
    moves = after["actions_applied"] - before["actions_applied"]
    errors, error_codes = window_errors(results, before, after)
    server_cpu_s = measured.server_cpu_s
    summary: dict[str, Any] = {
        **peer,
        "rooms": options["rooms"],
        "players": 2 * options["rooms"],
        "loads": options["loads"],
        **move_figures(measured, results, latency_histogram(results), moves, errors,
                       server_cpu_s, load_cores),
        "server_rss_bytes": int(measured.server_marks[-1].get("rss_bytes", 0)),
    }  # fmt: skip
    if error_codes:
        summary["error_codes"] = error_codes
    rows = move_rows(summary, measured, server_cpu_s, [])
    report(
        f"colyseus-play: {options['rooms']} duel rooms x 2 players on Colyseus "
        f"{summary['colyseus']} ({summary['node']}, plain WebSocket), {options['loads']} "
        f"load process(es), {options['duration']:g} s measured",
        rows,
        summary,
        table=options.show_table,
    )
    return 0 if errors == 0 else 1


def arena_report(
    options: Options,
    measured: MeasuredRun,
    results: list[dict[str, Any]],
    peer: Mapping[str, Any],
    load_cores: int,
) -> int:
    """`--game arena`'s figures, as `play --game arena` names them (module docstring)."""
    window = measured.window_s or 1e-9
    before, after = (m["counters"] for m in measured.server_marks)
    players = options.players()
    states = [n / window for r in results for n in r["states"]]
    kbytes = [n / window / 1000 for r in results for n in r["bytes"]]
    payload = [n / window / 1000 for r in results for n in r["payload_bytes"]]
    ticks = [rate for r in results for rate in r["tick_rates"]]
    effect = latency_histogram(results)
    errors, error_codes = window_errors(results, before, after)
    server_cpu_s = measured.server_cpu_s

    def mean(values: list[float]) -> float:
        return sum(values) / max(len(values), 1)

    summary: dict[str, Any] = {
        **peer,
        "game": "arena",
        "rooms": options["rooms"],
        "players": players,
        "loads": options["loads"],
        "input_rate": options["input-rate"],
        "inputs_per_s": round((after["inputs"] - before["inputs"]) / window, 1),
        "states_per_s_per_client": round(mean(states), 1),
        "states_per_s_per_client_max": round(max(states, default=0.0), 1),
        "ticks_per_s": round(mean(ticks), 1),
        "kbytes_per_s_per_client": round(mean(kbytes), 2),
        "kbytes_per_s_per_client_max": round(max(kbytes, default=0.0), 2),
        "payload_kbytes_per_s_per_client": round(mean(payload), 2),
        "input_to_state_p50_ms": percentile_ms(effect, 50),
        "input_to_state_p99_ms": percentile_ms(effect, 99),
        "errors": errors,
        **measured.cpu_figures(),
        "server_cpu_ms_per_player_s": round(server_cpu_s * 1000 / window / players, 3),
        "server_cpu_share": round(server_cpu_s / window, 4),
        "bottleneck": bottleneck(server_cpu_s, measured.load_cpu_s, window, load_cores),
        "server_rss_bytes": int(measured.server_marks[-1].get("rss_bytes", 0)),
    }
    if error_codes:
        summary["error_codes"] = error_codes
    rows = [
        ("inputs applied / s", summary["inputs_per_s"]),
        ("states / s per client (mean, max)",
         f"{summary['states_per_s_per_client']} / {summary['states_per_s_per_client_max']}"),
        ("room ticks / s (the state's ticks)", summary["ticks_per_s"]),
        ("KB / s per client, frames (mean, max); payload",
         f"{summary['kbytes_per_s_per_client']} / {summary['kbytes_per_s_per_client_max']}; "
         f"{summary['payload_kbytes_per_s_per_client']}"),
        ("server CPU ms / s per player", summary["server_cpu_ms_per_player_s"]),
        ("input-to-state p50 / p99 ms",
         f"{summary['input_to_state_p50_ms']} / {summary['input_to_state_p99_ms']}"),
        ("errors", errors),
        cpu_row(server_cpu_s, measured.load_cpu_s, window, summary["bottleneck"]),
    ]  # fmt: skip
    report(
        f"colyseus-play --game arena: {options['rooms']} room(s) x {options['players']} players "
        f"on Colyseus {summary['colyseus']} ({summary['node']}, plain WebSocket), inputs at "
        f"{options['input-rate']:g} Hz, {options['duration']:g} s measured",
        rows,
        summary,
        table=options.show_table,
    )
    return 0 if errors == 0 else 1
