"""The play scenario: R rooms x 2 duel players, one move in flight per player.

Each player sends move `{seq: n}` (reliable channel); the room accepts it
only if n is the sender's previous seq + 1, and then broadcasts a state of
about 60 bytes (both counters, the version, tick and time) to both players on the
unreliable channel. A player sends its next move as soon as it sees a
state that includes its last one. After a warm-up the window is measured:
`moves_per_s` counts the moves the server applied (its seat router's
counter), `msgs_delivered_per_s` the messages the players received, and
the latency of a move runs from sending it to the first state showing it.

The server is one real inline game host (GameHostProtocol over a
GameHostCore: endpoint, seat router, rooms, the duel game) built directly from the pieces with
all R matches added, without a lobby; the load process seals the players'
connect tokens with the key it shares with the server.

`--host-workers N` (N > 0) hosts the rooms in N game-host worker processes
instead, as `twistd vinom --host-workers N` does (`WorkerPool`): one host on
each worker, room r on host r % N, the players of each room sent to its
host's port. The server process is then only the lobby side (the pool's
supervisor: heartbeats), and the figures per worker are its CPU seconds in
the window (from its heartbeats, refreshed at both ends of the window)
divided by the moves its rooms made (counted by the players: each player's
moves sent in the window, as the workers do not count moves). The workers
inherit the server process's core: on two cores the load keeps the other.
`server_cpu_us_per_move` is then every server process's CPU (lobby and
workers) per move, `worker_cpu_us_per_move` the workers' CPU per move and
`lobby_cpu_share` the lobby process's part of the server's CPU; with N = 0
`server_cpu_us_per_move` is the in-process figure to compare them with.

`--transport websocket` seats the players on the game WebSocket instead of
UDP (what a browser does): the server process also serves `/game`
(vinom.hosting.websocket, over TLS as `twistd vinom` does) for its inline host, and
each player opens `wss://127.0.0.1:PORT/game`, sends the same connect token
and plays the same moves (benchmarks.websocket_load). The per-socket
message rate limit is lifted (each player moves hundreds of times a
second); everything else is the server's default path. `--transport ws` is
the same over plain HTTP (`ws://`): vinom behind a reverse proxy that
terminates TLS (docs/web.md), which shows what TLS costs the server.
`--transport webtransport` seats them on WebTransport instead, as a browser
with WebTransport plays (docs/protocol.md section 17): the server process
also listens as `--webtransport` does (vinom.hosting.webtransport, over
aioquic, its sessions admitted by the `/game` factory above, a development
certificate), and each player is an aioquic client sending its token and
moves on the session's stream and receiving its states as datagrams
(benchmarks.webtransport_load); a move no state has shown within 0.25 s is
followed by a `sync` (counted in `resends`: a state datagram lost, or
late behind a saturated server).
`--tls-proxy haproxy` (with `ws`) puts Debian's haproxy in front of that
plain port, terminating TLS (benchmarks.tls_proxy: `mode tcp`, one thread,
pinned to the server's core, a PROXY v2 header first on each connection,
read as `--trusted-proxy` reads it), and the players connect to it over TLS:
`wss://` served with no TLS in the Python process. Its CPU counts in `server_cpu_*`
(`proxy_cpu_us_per_move` is its part).
`--bare` (with `websocket` or `ws`) serves `/game` with the bare Twisted
server of benchmarks.bare_game_socket instead of vinom: the same sockets,
TLS, framing (vinom.net.websocket) and messages with none of vinom's work
between them, the floor that Twisted sets under vinom's game socket.

`--game arena` plays the real-time arena instead (benchmarks.arena_play):
`--rooms` arena rooms (default 1) of `--players` players (default 8; 64
measures the interest helper's views, vinom.games.interest) sending velocity
inputs at `--input-rate` Hz, with what each client receives per second, the server's
CPU per player and the input-to-state latency; with `--transport
ws|websocket|webtransport` the players are on a browser's transport
(benchmarks.arena_web_load). `--loss P` and `--delay MS` (UDP only)
impair the path in the load process (both directions, once every player has
connected): a fraction P of the datagrams dropped (seeded by `--loss-seed`),
MS milliseconds added each way.

The host records every match as `twistd vinom` does by default (match
records, vinom.hosting.records: files in a temporary directory); `--no-record`
records none, as `twistd vinom --no-record` (`recording` in the JSON line says
which; a build from before match records never records). Alternate the two on
one build (`compare --baseline-args --no-record play`) for recording's cost.

`--spectators N` (arena) has N spectators watch the first room's match over
UDP, as `spectate` seats them (docs/lobby.md): one more load process
(benchmarks.spectator_load) on the load core. The JSON adds what they got
(`spectator_states_per_s`, `spectator_kbytes_per_s`: mean per spectator;
`spectator_datagrams_per_s`: all of them). What they cost the players and
the host is B/A of `compare --baseline-args "--spectators 0" play --game arena
--spectators N`: `input_to_state_p99_ms` and `server_cpu_ms_per_player_s`.

`--relay` (UDP) puts vinom's UDP relay (docs/gateway.md, "UDP relay") between
the players and the game host: a relay process (benchmarks.relay_worker) on
the server's core, each player sending to it behind a route token of its own.
The relay's CPU is not in `server_cpu_*`: `relay_cpu_us_per_datagram` is its
CPU in the window over the datagrams it forwarded (both ways), and
`relay_cpu_us_per_move` the same over the moves. Compare its `p50_ms` and
`p99_ms` with a run without `--relay` (alternate them) for the latency it adds.
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
    non_negative_int,
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

# What game-host workers' rooms use (module docstring).


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        [
            "game",
            None,
            "duel",
            "duel (the figures above), or arena (real-time: 8 players a "
            "room, 20 Hz ticks; benchmarks.arena_play).",
        ],
        [
            "rooms",
            None,
            None,
            "Rooms: duel rooms of two players (default 100), or arena rooms of eight (default 1).",
        ],
        ["input-rate", None, "20", "--game arena: inputs per second each player sends."],
        ["players", None, "8", "--game arena: players in each room (the arena grows with them)."],
        [
            "loss",
            None,
            "0",
            "--game arena: the fraction of datagrams (0 <= P < 1) the load drops of those "
            "each player sends and of those it receives, once every player has connected.",
        ],
        [
            "delay",
            None,
            "0",
            "--game arena: milliseconds the load holds every datagram each player sends "
            "and receives (one-way delay added in each direction).",
        ],
        ["loss-seed", None, "35", "--game arena: the seed of --loss's draws."],
        [
            "spectators",
            None,
            "0",
            "--game arena: spectators watching the first room's match over UDP (a load "
            "process of their own on the load core); compare with --spectators 0.",
        ],
        ["loads", None, "1", "Load processes sharing the players (all on the load core)."],
        ["warmup", None, "2", "Seconds of warm-up after every player connected."],
        ["duration", None, "10", "Seconds measured."],
        ["state-interval", None, "1.0", "Rooms' periodic state interval (the server default)."],
        [
            "host-workers",
            None,
            "0",
            "Game-host worker processes hosting the rooms (0: the rooms "
            "are in the server process).",
        ],
        [
            "transport",
            None,
            "udp",
            "How the players connect: udp, websocket (the game "
            "WebSocket, /game over TLS), ws (/game over plain HTTP, "
            "as behind a TLS-terminating proxy), or webtransport (HTTP/3 "
            "over QUIC, as --webtransport serves browsers).",
        ],
        [
            "tls-proxy",
            None,
            None,
            "With --transport ws: haproxy terminating TLS in front of /game "
            "(benchmarks.tls_proxy); the players connect to it over TLS.",
        ],
    ]

    optFlags = [
        *ScenarioOptions.optFlags,
        [
            "bare",
            None,
            "With --transport websocket or ws: a bare Twisted /game server "
            "(benchmarks.bare_game_socket), the floor under vinom's.",
        ],
        [
            "snapshot-checksums",
            None,
            "--game arena: the host adds a checksum to each snap and the load checks it "
            "(client_drops.snap_checksum counts mismatches); costs the host CPU.",
        ],
        [
            "no-record",
            None,
            "The host records no match (by default it records every match, as "
            "`twistd vinom` does).",
        ],
        [
            "stock-reactor",
            None,
            "The server process runs on Twisted's default reactor, not vinom's "
            "(vinom.net.reactor), as `twistd --reactor epoll vinom` does; JSON `reactor`.",
        ],
        [
            "relay",
            None,
            "Players send through vinom's UDP relay (a process of its own on "
            "the server's core), each behind a route token.",
        ],
    ]

    def postOptions(self) -> None:
        if self["game"] not in ("duel", "arena"):
            raise usage.UsageError("--game is duel or arena")
        if self["rooms"] is None:
            self["rooms"] = "100" if self["game"] == "duel" else "1"
        self["rooms"] = positive_int(self, "rooms")
        non_negative_floats(self, "input-rate")
        self["loads"] = positive_int(self, "loads")
        if self["loads"] > self["rooms"]:
            raise usage.UsageError("--loads cannot exceed --rooms")
        non_negative_floats(self, "warmup", "duration", "state-interval")
        self["host-workers"] = non_negative_int(self, "host-workers")
        if self["host-workers"] > self["rooms"]:
            raise usage.UsageError("--host-workers cannot exceed --rooms")
        if self["transport"] not in ("udp", "websocket", "ws", "webtransport"):
            raise usage.UsageError("--transport is udp, websocket, ws or webtransport")
        if self["tls-proxy"] is not None:
            from benchmarks.tls_proxy import PROXIES

            if self["tls-proxy"] not in PROXIES:
                raise usage.UsageError("--tls-proxy is " + " or ".join(PROXIES))
            if self["transport"] != "ws" or self["game"] != "duel" or self["bare"]:
                raise usage.UsageError(
                    "--tls-proxy terminates TLS in front of vinom's plain /game: "
                    "--transport ws, the duel"
                )
        if self["relay"] and self["transport"] != "udp":
            raise usage.UsageError("--relay relays UDP: the browsers' transports are not relayed")
        if self["bare"] and self["transport"] not in ("websocket", "ws"):
            raise usage.UsageError("--bare measures the game WebSocket: --transport websocket|ws")
        if self["transport"] != "udp" and self["host-workers"]:
            raise usage.UsageError(
                f"--transport {self['transport']} hosts the rooms in the server process"
            )
        if self["game"] == "arena" and self["host-workers"]:
            raise usage.UsageError(
                "--game arena hosts its rooms in the server process (no --host-workers)"
            )
        if self["game"] == "arena" and self["bare"]:
            raise usage.UsageError("--bare measures the duel's game WebSocket (not --game arena)")
        if self["game"] == "arena" and self["relay"]:
            raise usage.UsageError("--relay plays the duel rooms (not --game arena)")
        self["players"] = positive_int(self, "players")
        if self["game"] == "arena" and self["players"] < 2:
            raise usage.UsageError("--players: an arena room seats 2 players or more")
        if self["game"] != "arena" and self["players"] != 8:
            raise usage.UsageError("--players sets the players of an arena room (--game arena)")
        if self["game"] == "arena" and not self["input-rate"] > 0:
            raise usage.UsageError("--input-rate must be above 0")
        non_negative_floats(self, "loss", "delay")
        self["loss-seed"] = non_negative_int(self, "loss-seed")
        self["spectators"] = non_negative_int(self, "spectators")
        if self["spectators"] and self["game"] != "arena":
            raise usage.UsageError("--spectators watch an arena match (--game arena)")
        if not self["loss"] < 1:
            raise usage.UsageError("--loss is a fraction: 0 <= P < 1")
        arena_only = self["loss"] or self["delay"] or self["snapshot-checksums"]
        if self["game"] != "arena" and arena_only:
            raise usage.UsageError("--loss, --delay and --snapshot-checksums are --game arena's")
        if (self["loss"] or self["delay"]) and self["transport"] != "udp":
            raise usage.UsageError(
                "--loss and --delay impair the UDP path (--transport udp): a browser's "
                "transports are not impaired"
            )


def run(options: Options) -> int:
    if options["game"] == "arena":
        from benchmarks import arena_play

        return arena_play.run(options)
    key = os.urandom(32)
    progress = progress_for(options, "play", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        progress.update(f"{message.get('count', 0):,} moves", message.get("elapsed"))

    server_cpu, load_cpus = cpu_plan(options["loads"], options.pin)
    websocket = options["transport"] != "udp"
    webtransport = options["transport"] == "webtransport"
    tls = options["transport"] in ("websocket", "webtransport")
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            server = harness.spawn(
                "server", "benchmarks.server_worker",
                ["bare-game-socket", json.dumps({"key": key.hex(), "tls": tls,
                                                 "stock_reactor": options["stock-reactor"]})]
                if options["bare"] else
                ["rooms", json.dumps({
                    "key": key.hex(),
                    "rooms": options["rooms"],
                    "state_interval": options["state-interval"],
                    "host_workers": options["host-workers"],
                    "websocket": websocket,
                    "tls": tls,
                    "record": not options["no-record"],
                    "webtransport": webtransport,
                    # Behind --tls-proxy: a PROXY header first, as --trusted-proxy reads it.
                    "proxied": options["tls-proxy"] is not None,
                    "stock_reactor": options["stock-reactor"],
                })],
                server_cpu,
            )  # fmt: skip
            ready = harness.wait_for(server, "ready", 60)
            relay = relay_settings = None
            if options["relay"]:
                relay = harness.spawn("relay", "benchmarks.relay_worker", ["--key", key.hex()],
                                      server_cpu)  # fmt: skip
                relay_settings = {"port": harness.wait_for(relay, "ready", 30)["port"],
                                  "key": key.hex()}  # fmt: skip
            proxy = None
            websocket_port = ready.get("websocket_port")
            if options["tls-proxy"] is not None:
                from benchmarks.tls_proxy import start_proxy

                proxy, websocket_port = start_proxy(
                    harness, options["tls-proxy"], int(ready["websocket_port"]), server_cpu
                )
            loads = spawn_room_loads(
                harness,
                "play-webtransport" if webtransport else
                "play-websocket" if websocket else "play",
                ready["port"],
                key,
                options["rooms"],
                options,
                load_cpus,
                ports=ready["ports"],
                websocket_port=websocket_port,
                webtransport_port=ready.get("webtransport_port"),
                tls=tls or proxy is not None,
                relay=relay_settings,
            )
            measured = MeasuredRun(harness, server, loads, options, "play", options["duration"],
                                   more_servers=[proxy] if proxy else ())  # fmt: skip
            results = measured.run(mark_server=True, mark=[relay] if relay else ())
    except BenchError as e:
        progress.finish()
        return report_failure("play", e, options)
    progress.finish()
    window = measured.window_s or 1e-9
    before, after = (m["counters"] for m in measured.server_marks)
    histogram = merge_histograms(r["histogram"] for r in results)
    errors = sum(int(r["errors"]) for r in results)
    error_codes: dict[str, int] = {}
    for r in results:
        for code, n in r["error_codes"].items():
            error_codes[code] = error_codes.get(code, 0) + int(n)
    load_cores = len({c for c in load_cpus}) if load_cpus[0] is not None else 1
    moves_by_host = [
        sum(hosts) for hosts in zip(*(r["moves_by_host"] for r in results), strict=True)
    ]
    summary: dict[str, Any] = {
        "scenario": "play",
        "rooms": options["rooms"],
        "players": 2 * options["rooms"],
        "loads": options["loads"],
        "host_workers": options["host-workers"],
        "transport": options["transport"],
        # What served the run, as it says itself (the bare server names itself).
        "server": ready.get("server", "vinom"),
        # Whether the host recorded its matches (false with --no-record, or on a build
        # from before match records).
        "recording": bool(ready.get("recording")),
        # The server process's reactor, as it names it.
        "reactor": ready.get("reactor"),
    }
    rows: list[tuple[str, Any]] = []
    if options["host-workers"]:
        moves, server_cpu_s, figures, worker_rows, worker_errors = worker_figures(
            before, after, moves_by_host, measured.server_cpu_s
        )
        errors += worker_errors
    else:
        moves = after["actions_applied"] - before["actions_applied"]
        errors += after["actions_rejected"] - before["actions_rejected"]
        server_cpu_s = measured.server_cpu_s
        figures, worker_rows = {}, []
    summary.update(move_figures(measured, results, histogram, moves, errors, server_cpu_s,
                                load_cores))  # fmt: skip
    summary.update({
        # Moves sent again after RESEND_S without a state showing them (lost datagrams).
        "resends": sum(int(r.get("resends", 0)) for r in results),
        "server_cpu_s": round(server_cpu_s, 3),
        **figures,
    })  # fmt: skip
    if proxy is not None:
        proxy_cpu_s = measured.server_cpu_by_process[proxy.name]
        summary.update({
            "tls_proxy": options["tls-proxy"],
            "proxy_cpu_s": round(proxy_cpu_s, 3),
            "proxy_cpu_us_per_move": round(proxy_cpu_s * 1e6 / max(moves, 1), 2),
        })  # fmt: skip
    if relay is not None:
        start, end = measured.marks[relay.name]
        forwarded = end["counters"]["forwarded"] - start["counters"]["forwarded"]
        relay_cpu_s = end["cpu_s"] - start["cpu_s"]
        summary.update({
            "relay_cpu_s": round(relay_cpu_s, 3),
            "relay_forwarded_per_s": round(forwarded / window, 1),
            "relay_dropped": end["counters"]["dropped"] - start["counters"]["dropped"],
            "relay_cpu_us_per_datagram": round(relay_cpu_s * 1e6 / max(forwarded, 1), 2),
            "relay_cpu_us_per_move": round(relay_cpu_s * 1e6 / max(moves, 1), 2),
        })  # fmt: skip
    if error_codes:
        summary["error_codes"] = error_codes
    rows += move_rows(summary, measured, server_cpu_s, worker_rows)
    if relay is not None:
        rows.append(("relay CPU us / datagram (/ move)",
                     f"{summary['relay_cpu_us_per_datagram']} "
                     f"({summary['relay_cpu_us_per_move']})"))  # fmt: skip
    where = (
        f"{options['host-workers']} game-host worker(s)"
        if options["host-workers"]
        else "in the server process"
    )
    if webtransport:
        where += ", players on WebTransport"
    elif websocket:
        where += ", players on the game WebSocket" + (
            "" if tls else f" (TLS in {options['tls-proxy']})" if proxy else " (plain, no TLS)"
        )
        if options["bare"]:
            where += ", bare Twisted server"
    if options["relay"]:
        where += ", through the UDP relay"
    where += ", recording" if summary["recording"] else ", not recording"
    report(
        f"play: {options['rooms']} duel rooms x 2 players ({where}), {options['loads']} load "
        f"process(es), {options['duration']:g} s measured",
        rows,
        summary,
        table=options.show_table,
    )
    return 0 if errors == 0 else 1


def move_figures(
    measured: MeasuredRun, results: list[dict[str, Any]], histogram: Any, moves: int,
    errors: int, server_cpu_s: float, load_cores: int,
) -> dict[str, Any]:  # fmt: skip
    """The figures of a duel's measured window, as play and colyseus-play report them:
    moves and messages a second, a move's latency, errors, CPU a move and the
    bottleneck (`server_cpu_s`: the server's share of the window)."""
    window = measured.window_s or 1e-9
    return {
        "moves_per_s": round(moves / window, 1),
        "msgs_delivered_per_s": round(sum(int(r["messages"]) for r in results) / window, 1),
        **latency_ms(histogram),
        "errors": errors,
        **measured.cpu_figures(),
        "server_cpu_us_per_move": round(server_cpu_s * 1e6 / max(moves, 1), 2),
        "load_cpu_us_per_move": round(measured.load_cpu_s * 1e6 / max(moves, 1), 2),
        "bottleneck": bottleneck(server_cpu_s, measured.load_cpu_s, window, load_cores),
    }


def move_rows(
    summary: dict[str, Any], measured: MeasuredRun, server_cpu_s: float,
    server_rows: list[tuple[str, Any]],
) -> list[tuple[str, Any]]:  # fmt: skip
    """The table's rows of `move_figures` (`server_rows` after the server's CPU)."""
    return [
        ("moves applied / s", summary["moves_per_s"]),
        ("messages delivered / s", summary["msgs_delivered_per_s"]),
        ("move latency p50 / p99 ms", f"{summary['p50_ms']} / {summary['p99_ms']}"),
        ("server CPU us / move", summary["server_cpu_us_per_move"]),
        *server_rows,
        ("load CPU us / move", summary["load_cpu_us_per_move"]),
        ("errors", summary["errors"]),
        cpu_row(server_cpu_s, measured.load_cpu_s, measured.window_s or 1e-9,
                summary["bottleneck"]),
    ]  # fmt: skip


def worker_figures(
    before: dict[str, Any], after: dict[str, Any], moves_by_host: list[int], lobby_cpu_s: float
) -> tuple[int, float, dict[str, Any], list[tuple[str, Any]], int]:
    """With --host-workers: (moves, server CPU s, JSON figures, table rows, errors).

    `before` and `after` are the server's marks at both ends of the window; each
    worker's CPU seconds there are from a heartbeat it answered for that mark.
    """
    start = {w["index"]: w for w in before["workers"]}
    workers: list[dict[str, Any]] = []
    for w in after["workers"]:
        first = start[w["index"]]
        if w["restarts"] != first["restarts"] or w["pid"] != first["pid"]:
            raise BenchError(f"game-host worker {w['index']} was restarted during the window")
        host = w["host_index"]
        moves = moves_by_host[host] if host is not None else 0
        cpu_s = float(w["cpu_seconds"]) - float(first["cpu_seconds"])
        workers.append({
            "index": w["index"], "pid": w["pid"], "moves": moves, "cpu_s": round(cpu_s, 3),
            "cpu_us_per_move": round(cpu_s * 1e6 / max(moves, 1), 2),
        })  # fmt: skip
    moves = sum(moves_by_host)
    worker_cpu_s = sum(w["cpu_s"] for w in workers)
    server_cpu_s = lobby_cpu_s + worker_cpu_s
    per_move = [w["cpu_us_per_move"] for w in workers]
    errors = int(after["totals"].get("errors", 0)) - int(before["totals"].get("errors", 0))
    figures = {
        "workers": workers,
        "worker_cpu_s": round(worker_cpu_s, 3),
        # Every worker's CPU over every move (the per-worker figures are in `workers`).
        "worker_cpu_us_per_move": round(worker_cpu_s * 1e6 / max(moves, 1), 2),
        "lobby_cpu_s": round(lobby_cpu_s, 3),
        "lobby_cpu_us_per_move": round(lobby_cpu_s * 1e6 / max(moves, 1), 2),
        "lobby_cpu_share": round(lobby_cpu_s / server_cpu_s, 4) if server_cpu_s else 0.0,
    }
    rows: list[tuple[str, Any]] = [
        (
            "  worker CPU us / move",
            f"{figures['worker_cpu_us_per_move']} (each: "
            + ", ".join(f"{x:g}" for x in per_move)
            + ")",
        ),
        (
            "  lobby CPU us / move (share)",
            f"{figures['lobby_cpu_us_per_move']} "
            f"({figures['lobby_cpu_share'] * 100:.1f}% of the server's CPU)",
        ),
    ]
    return moves, server_cpu_s, figures, rows, errors
