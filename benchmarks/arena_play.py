"""`play --game arena`: real-time rooms of eight players, what each client receives.

R arena rooms (vinom.games.arena: 20 ticks a second, per-player views cut
to a radius) of 8 players each (`--players P`: P, in an arena sized to keep
as many players near each one; 64 measures the interest helper, the cost of
the views of many players in one room), hosted in the server process by one inline
game host (`benchmarks.server_worker`, as `play` hosts its duels); the load
process's bots (benchmarks.arena_load) each send a velocity input 20 times
a second once their room plays. With `--transport ws|websocket|webtransport`
the players are on the browser's transports instead (benchmarks.arena_web_load):
the server process also serves `/game` (plain, or over TLS) and, for
`webtransport`, the WebTransport listener, as `play --transport` does for
the duel; the bots are the same. Figures for the measured window:

- `states_per_s_per_client` and `kbytes_per_s_per_client`: the state
  messages, and the UDP payload bytes (the whole vinom datagram, no IP or
  UDP header) of the datagrams from the host, each client received per
  second: after the simulated loss of `--loss` (mean over the clients, and
  the most any received). On a WebSocket the bytes are the TCP payload (TLS
  records and WebSocket frames), on WebTransport the QUIC packets' UDP payload;
- `ticks_per_s`: how fast the rooms' tick (`k` in the states) moved, as
  the clients saw it (mean over the clients): below the tick rate (20), the
  host was starved of CPU and dropped ticks, and every per-second figure
  is of a slower game;
- `datagrams_host_to_client_per_s_per_player` (`_max`: the most any player
  got) and `datagrams_client_to_host_per_s_per_player`: the datagrams each
  way per player per second, counted by the load before its simulated drop
  (what the host sent each player, what each player sent): on a WebSocket
  its messages each way, on WebTransport its QUIC packets (acks included);
  `host_datagrams_out/in_per_s_per_player` (UDP only) are the same from the host's
  counters (which also count any other session's datagrams);
- `input_outcomes`: on a build with real-time inputs, the host's counts of
  what became of them in the window (applied, held, late, early, duplicate,
  rejected...; the redundant copies are the duplicates);
- `client_drops`: what the players' connections and snapshot decoders
  dropped, by reason (`snap_checksum`: a rebuilt view that did not match the
  host's, with `--snapshot-checksums`; `snap_unknown_baseline`, `snap_stale`);
- `loss`, `delay_ms`, `loss_seed`, and `dropped_to_client` /
  `dropped_to_host`: the datagrams the load dropped each way in the window
  (`observed_loss_to_client` / `_to_host`: as fractions);
- `server_cpu_ms_per_player_s`: the game host's (here the server process's)
  CPU milliseconds per second of play per player (1 ms/s is 0.1% of a core);
- `input_to_state` p50 / p99: from an input to the first state whose view
  shows a tick applied it; `echo` p50 / p99: to the first state naming it as
  the player's last applied action (`i`).

The game uses only vinom's public game API, so any build can host it.
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
    progress_for,
    report_failure,
    spawn_room_loads,
)
from benchmarks.harness import (
    BenchError,
    Harness,
    bottleneck,
    merge_histograms,
    percentile_ms,
    report,
)

#: How the players reach the host, for the report's title (play's --transport).
TRANSPORTS = {
    "udp": "vinom's UDP sessions",
    "websocket": "game WebSocket, TLS",
    "ws": "game WebSocket, plain",
    "webtransport": "WebTransport",
}


def run(options: ScenarioOptions) -> int:
    key = os.urandom(32)
    rooms = int(options["rooms"])
    seats = int(options["players"])  # in each room
    watching = int(options["spectators"])
    players = rooms * seats
    progress = progress_for(options, "play arena", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        progress.update(f"{message.get('count', 0):,} inputs", message.get("elapsed"))

    server_cpu, load_cpus = cpu_plan(options["loads"], options.pin)
    transport = options["transport"]
    webtransport = transport == "webtransport"
    tls = transport in ("websocket", "webtransport")
    web = (
        {"websocket": True, "tls": tls, "webtransport": webtransport}
        if transport != "udp" else {}
    )  # fmt: skip
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["rooms", json.dumps({
                    "key": key.hex(), "rooms": rooms, "game": "arena", "seats": seats,
                    "state_interval": options["state-interval"],
                    "snapshot_checksums": options["snapshot-checksums"],
                    "record": not options["no-record"],
                    "stock_reactor": options["stock-reactor"],
                    **({"spectators": watching} if watching else {}),
                    **web,
                })],
                server_cpu,
            )  # fmt: skip
            ready = harness.wait_for(server, "ready", 60)
            if transport == "udp":
                loads = spawn_room_loads(
                    harness, "arena", ready["port"], key, rooms, options, load_cpus,
                    seats=seats, input_rate=options["input-rate"], loss=options["loss"],
                    delay_ms=options["delay"], loss_seed=options["loss-seed"],
                )  # fmt: skip
            else:
                loads = spawn_room_loads(
                    harness, "arena-webtransport" if webtransport else "arena-websocket",
                    ready["port"], key, rooms, options, load_cpus, seats=seats,
                    input_rate=options["input-rate"], tls=tls,
                    websocket_port=ready.get("websocket_port"),
                    webtransport_port=ready.get("webtransport_port"),
                )  # fmt: skip
            if watching:
                loads.append(harness.spawn(
                    "spectators", "benchmarks.load_worker",
                    ["arena-spectators", json.dumps({
                        "host": "127.0.0.1", "port": ready["port"], "key": key.hex(),
                        "spectators": watching, "warmup": options["warmup"],
                        "duration": options["duration"],
                    })],
                    load_cpus[-1],
                ))  # fmt: skip
            measured = MeasuredRun(harness, server, loads, options, "play", options["duration"])
            results = measured.run(mark_server=True)
            # The spectators' load reports apart from the players' (its CPU counts as load).
            watched = results[-1] if watching else None
            results = results[:-1] if watching else results
    except BenchError as e:
        progress.finish()
        return report_failure("play", e, options)
    progress.finish()
    window = measured.window_s or 1e-9
    before, after = (m["counters"] for m in measured.server_marks)
    states = [n / window for r in results for n in r["states"]]
    kbytes = [n / window / 1000 for r in results for n in r["bytes"]]
    ticks = [rate for r in results for rate in r["tick_rates"]]
    to_client = [n / window for r in results for n in r["datagrams_in"]]
    to_host = [n / window for r in results for n in r["datagrams_out"]]
    dropped_in = sum(int(r["dropped_in"]) for r in results)
    dropped_out = sum(int(r["dropped_out"]) for r in results)
    sent_in = sum(sum(r["datagrams_in"]) for r in results)
    sent_out = sum(sum(r["datagrams_out"]) for r in results)
    effect = merge_histograms(r["histogram"] for r in results)
    echo = merge_histograms(r["echo_histogram"] for r in results)
    not_playing = sum(int(r["not_playing"]) for r in results)
    errors = sum(int(r["errors"]) for r in results) + not_playing
    errors += after["actions_rejected"] - before["actions_rejected"]
    error_codes: dict[str, int] = {}
    for r in results:
        for code, n in r["error_codes"].items():
            error_codes[code] = error_codes.get(code, 0) + int(n)
    # Inputs as reliable actions (a build before issue #35) or real-time inputs (after).
    outcomes = {
        name: n - before.get("inputs", {}).get(name, 0)
        for name, n in after.get("inputs", {}).items()
    }
    inputs = after["actions_applied"] - before["actions_applied"] + outcomes.get("applied", 0)
    errors += outcomes.get("rejected", 0)
    server_cpu_s = measured.server_cpu_s
    load_cores = len(set(load_cpus)) if load_cpus[0] is not None else 1
    summary: dict[str, Any] = {
        "scenario": "play",
        "game": "arena",
        "transport": transport,
        "rooms": rooms,
        "players": players,
        "loads": options["loads"],
        "input_rate": options["input-rate"],
        "loss": options["loss"],
        "delay_ms": options["delay"],
        "loss_seed": options["loss-seed"],
        # Whether the host recorded its matches (play --no-record; benchmarks.play).
        "recording": bool(ready.get("recording")),
        "reactor": ready.get("reactor"),
        "inputs_per_s": round(inputs / window, 1),
        "states_per_s_per_client": round(sum(states) / max(len(states), 1), 1),
        "states_per_s_per_client_max": round(max(states, default=0.0), 1),
        # Ticks the rooms ran per second, as the states' `k` shows them (below the
        # tick rate: the host is starved and the fixed step drops ticks).
        "ticks_per_s": round(sum(ticks) / max(len(ticks), 1), 1),
        "kbytes_per_s_per_client": round(sum(kbytes) / max(len(kbytes), 1), 2),
        "kbytes_per_s_per_client_max": round(max(kbytes, default=0.0), 2),
        "datagrams_host_to_client_per_s_per_player": round(
            sum(to_client) / max(len(to_client), 1), 1
        ),
        "datagrams_host_to_client_per_s_per_player_max": round(max(to_client, default=0.0), 1),
        "datagrams_client_to_host_per_s_per_player": round(
            sum(to_host) / max(len(to_host), 1), 1
        ),
        "dropped_to_client": dropped_in,
        "dropped_to_host": dropped_out,
        "observed_loss_to_client": round(dropped_in / max(sent_in, 1), 4),
        "observed_loss_to_host": round(dropped_out / max(sent_out, 1), 4),
        "input_to_state_p50_ms": percentile_ms(effect, 50),
        "input_to_state_p99_ms": percentile_ms(effect, 99),
        "echo_p50_ms": percentile_ms(echo, 50),
        "echo_p99_ms": percentile_ms(echo, 99),
        "errors": errors,
        **measured.cpu_figures(),
        "server_cpu_ms_per_player_s": round(server_cpu_s * 1000 / window / players, 3),
        "server_cpu_share": round(server_cpu_s / window, 4),
        "bottleneck": bottleneck(server_cpu_s, measured.load_cpu_s, window, load_cores),
    }
    if transport == "udp":
        # Datagrams the host sent and received per second per player (states, and
        # acks of inputs that no state carried; the inputs). The browsers' transports
        # have no vinom datagrams (the load counts their messages or QUIC packets).
        summary["host_datagrams_out_per_s_per_player"] = round(
            (after["datagrams_sent"] - before["datagrams_sent"]) / window / players, 1
        )
        summary["host_datagrams_in_per_s_per_player"] = round(
            (after["datagrams_received"] - before["datagrams_received"]) / window / players, 1
        )
    if watched is not None:
        errors += int(watched["errors"])
        per_spectator = max(len(watched["spectator_messages"]), 1)
        summary.update({
            "spectators": watching,
            "spectator_states_per_s": round(
                sum(watched["spectator_messages"]) / window / per_spectator, 1),
            "spectator_kbytes_per_s": round(
                sum(watched["spectator_bytes"]) / window / 1000 / per_spectator, 2),
            "spectator_datagrams_per_s": round(sum(watched["spectator_datagrams"]) / window, 1),
        })  # fmt: skip
        summary["errors"] = errors
    if error_codes:
        summary["error_codes"] = error_codes
    # What became of the real-time inputs in the window (held, late, early, duplicate...).
    summary["input_outcomes"] = outcomes
    # Datagrams the players' connections dropped, by reason (replayed, decrypt_failed...),
    # and the sessions' events (connected, closed_timeout...): what to look at first
    # when states stop.
    client_drops: dict[str, int] = {}
    events: dict[str, int] = {}
    for r in results:
        for totals, counts in ((client_drops, r.get("client_drops", {})),
                               (events, r.get("session_events", {}))):  # fmt: skip
            for reason, n in counts.items():
                totals[reason] = totals.get(reason, 0) + int(n)
    if client_drops:
        summary["client_drops"] = client_drops
    summary["session_events"] = events
    rows = [
        ("inputs applied / s", summary["inputs_per_s"]),
        ("states / s per client (mean, max)",
         f"{summary['states_per_s_per_client']} / {summary['states_per_s_per_client_max']}"),
        ("room ticks / s (the states' k)", summary["ticks_per_s"]),
        ("KB / s per client (mean, max)",
         f"{summary['kbytes_per_s_per_client']} / {summary['kbytes_per_s_per_client_max']}"),
        ("server CPU ms / s per player", summary["server_cpu_ms_per_player_s"]),
        ("datagrams / s per player, host -> client (max), client -> host",
         f"{summary['datagrams_host_to_client_per_s_per_player']} "
         f"({summary['datagrams_host_to_client_per_s_per_player_max']}) / "
         f"{summary['datagrams_client_to_host_per_s_per_player']}"),
        *([("host datagrams / s per player (out, in)",
            f"{summary['host_datagrams_out_per_s_per_player']} / "
            f"{summary['host_datagrams_in_per_s_per_player']}")]
          if transport == "udp" else []),
        ("input-to-state p50 / p99 ms",
         f"{summary['input_to_state_p50_ms']} / {summary['input_to_state_p99_ms']}"),
        ("echo (state with i) p50 / p99 ms",
         f"{summary['echo_p50_ms']} / {summary['echo_p99_ms']}"),
        *([(f"{watching} spectators: states / s, KB / s each; datagrams / s in all",
            f"{summary['spectator_states_per_s']}, {summary['spectator_kbytes_per_s']}; "
            f"{summary['spectator_datagrams_per_s']}")] if watched is not None else []),
        ("errors", errors),
        *([(f"simulated loss {options['loss']:g}, delay {options['delay']:g} ms: dropped "
            "to client / to host",
            f"{dropped_in} ({summary['observed_loss_to_client']:.3f}) / "
            f"{dropped_out} ({summary['observed_loss_to_host']:.3f})")]
          if options["loss"] or options["delay"] else []),
        cpu_row(server_cpu_s, measured.load_cpu_s, window, summary["bottleneck"]),
    ]  # fmt: skip
    report(
        f"play --game arena: {rooms} room(s) x {seats} players "
        f"({TRANSPORTS[transport]}), inputs at "
        f"{options['input-rate']:g} Hz, {options['duration']:g} s measured, "
        + ("recording" if summary["recording"] else "not recording")
        + (f", loss {options['loss']:g} and {options['delay']:g} ms added each way"
           if options["loss"] or options["delay"] else ""),
        rows, summary, table=options.show_table,
    )  # fmt: skip
    return 0 if errors == 0 else 1
