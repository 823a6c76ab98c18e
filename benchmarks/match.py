"""The match scenario: C clients from a lobby connection (TLS or plain) to a full room.

Each client connects to the lobby over TLS (verifying the server's
certificate), says `hello`, queues for the 2-player `duel` game, receives
`match_found`, completes the UDP handshake with its game host and waits for
the first state (or phase) of its full room; that time, from starting its
connection, is its latency. It then leaves the match, so the room ends and
its port returns to the pool. At most `in_flight` clients run at once; a
new one starts as soon as one is done. The server is the whole vinom
server of `twistd vinom` (`vinom.server.tap.makeService`: lobby, FIFO matchmaker,
port allocator, inline game hosts) with the per-IP abuse limits lifted
(every bench client comes from 127.0.0.1). The window is the whole run:
`wall_s` from the first client's start to the last client's end.

`--returning` makes the clients `--in-flight` players who play again
(client i is player i % in-flight): each offers the TLS session of its last
connection, as the client library does, and the server resumes it
(`tls_resumed` in the JSON). Without it every client is a new player with a
full TLS handshake.

The load's clients are lean by default (`benchmarks.match_load`: one
plain poll loop, pyOpenSSL on the sockets, the sans-I/O UDP client): the
same conversation with the server as the vinom client library's (TLS
handshake, frames, datagrams), for less of the load's CPU; `tls` in the
JSON names the protocol, cipher and key exchange they negotiated.
`--client twisted` runs the client library itself on the reactor
(`benchmarks.lobby_load.match_client`), for comparison. `--client native`
keeps the lean clients' lobby half and hands each token to one process of
the native core's load client (`benchmarks.native_load`, vinom_load), which
plays every UDP session from one thread: `native_cpu_us_per_session` in the
JSON, and `load_cpu_*` counts both processes.

`--lobby-tls off` runs the lobby on plain TCP (`--lobby
tcp:PORT:interface=127.0.0.1`), as behind a load balancer that terminates
TLS, and the lean clients speak plain TCP to it: the transport the peers'
plain-WebSocket clients get (Colyseus's `ws://`), for comparing on equal
transport. The UDP game sessions are the same either way (sealed by the
connect token's keys). Builds back to c0bedc0 take `--lobby tcp:...`, so
`compare` runs it on them too. Not with `--returning` (no TLS session to
resume) nor `--gateway` (`--gateway-tls terminate` is that lobby behind a
gateway).

The game host records every match, as `twistd vinom` does by default;
`--no-record` passes `--no-record` to the server, so that `compare
--baseline-args --no-record match` measures recording's cost per match on
one build. JSON: `records`, the match records the server wrote (matches in its
record files; 0 with `--no-record`).

`--host-workers N` (N > 0) hosts the games in N game-host worker processes,
as `twistd vinom --host-workers N` does (the default, 0, hosts them in the
server process); the run starts once every worker is live. The workers
inherit the server process's core, and `server_cpu_s` counts the lobby
process only; `worker_cpu_s` is the workers' CPU over the window (from
their heartbeats).

`--redis` runs the server as a deployment on Redis does (docs/scaling.md):
a redis-server of the scenario's own, `--lobbies` N processes of `twistd
vinom lobby` and one of `twistd vinom host` (its games in process or in
`--host-workers` workers), all sharing a token key file, the lobbies one
fresh dev certificate. The run starts once the host is in the registry and
every lobby runs its matchmaker and has seen the host. Client i connects to
lobby i % N, so the two players of a match are often on different lobbies
(`matches_across_lobbies`). Every server process (lobbies, host and its
workers, redis-server) runs on the server's core; `server_cpu_s` is their
sum and `server_cpu_by_process` each one's.

`--gateway` puts a `twistd vinom gateway` process (docs/gateway.md;
`benchmarks.gateway_worker`) in front of the lobby or lobbies: every client
connects to it, and it sends each connection on to the lobbies (round
robin) behind a PROXY protocol v2 header, which the lobbies trust
(`--trusted-proxy 127.0.0.1`). `--gateway-tls` says what it does with the
clients' TLS: `passthrough` (the default) copies it to the lobbies, which
listen with TLS and whose certificate the clients verify; `terminate` has
the gateway's rule set terminate it (a `tls` route with `"terminate":
true`): the gateway does the TLS handshake with its own dev certificate,
which the clients verify, and the lobbies listen on plain TCP (`--lobby
tcp:...`) and read plain lobby frames behind the PROXY header. When pinned
the gateway has a core apart from the server's (shared with the load on a
2-core machine: `cores` says which); its CPU is counted in `server_cpu_s`
and reported apart as `gateway_cpu_ms_per_client`. `--gateway-floor` runs, in
the gateway's place, the floor it is measured against: bare Twisted
(`twisted.protocols.portforward`) sending each connection on to the lobby
behind a PROXY protocol v2 header, TLS passed through, with no sniffing,
routing, timers nor counts (`gateway_floor` in the JSON).

`--auth KIND` (`guest`, the default, `jwt`, `signed` or `device`) runs the
server with that authenticator and its account database (SQLite in the run's
directory) and has every client sign in with its `hello` (benchmarks.auth:
tokens made by the load before its window, an RS256 JWT checked against a key
file, a device made on first use), so that `compare --baseline-args "--auth
guest" match --auth jwt` measures what signing in costs the server per client (`auth` in
the JSON; `accounts`, the accounts its database holds afterwards: one per
player). The lean clients in one server process only (not `--redis`, whose
lobbies would need a shared PostgreSQL).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sys
import tempfile
from typing import Any

import msgpack
from twisted.python import usage

from benchmarks import native_load
from benchmarks.auth import KINDS as AUTH_KINDS
from benchmarks.auth import prepare as prepare_auth
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
    Worker,
    bottleneck,
    merge_histograms,
    report,
)
from benchmarks.redis_process import start_redis

# --client -> the load worker's kind.
CLIENT_KINDS = {"lean": "match", "twisted": "match-twisted", "native": "match"}
# --gateway-tls: what the gateway does with the clients' TLS.
GATEWAY_TLS = ("passthrough", "terminate")
# --lobby-tls: whether the clients speak TLS to the lobby.
LOBBY_TLS = {"on": True, "off": False}


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["clients", "c", "1000", "Clients (an even number: the game seats two)."],
        ["in-flight", None, "200", "Clients in progress at once."],
        ["udp-ports", None, "256", "Size of the server's UDP port pool (concurrent games)."],
        ["backlog", None, None, "The lobby's listen backlog (default: the server's own, "
                                "Twisted's 50)."],
        ["client", None, "lean", "The load's clients: 'lean' (plain poll loop), 'twisted' "
                                 "(the vinom client library on the reactor) or 'native' "
                                 "(lean lobby clients, the UDP sessions in vinom_load)."],
        ["native-load", None, None, "With --client native: the vinom_load program (default: "
                                    "built from clients/cpp with CMake)."],
        ["host-workers", None, "0", "Game-host worker processes (0: games in the server "
                                    "process)."],
        ["lobbies", None, "1", "Lobby processes (twistd vinom lobby) on one Redis (needs --redis "
                               "when more than 1); clients spread over them in turn."],
        ["gateway-tls", None, "passthrough", "With --gateway: 'passthrough' (TLS copied to "
                                             "the lobbies) or 'terminate' (the gateway does "
                                             "the TLS; the lobbies listen on plain TCP)."],
        ["lobby-tls", None, "on", "'on': the clients speak TLS to the lobby; 'off': the "
                                  "lobby listens on plain TCP (--lobby tcp:PORT, as behind a "
                                  "TLS-terminating load balancer) and the clients speak "
                                  "plain TCP."],
        ["auth", None, "guest", "How the clients sign in: 'guest' (anonymous), 'jwt' (an "
                                "RS256 JWT), 'signed' (a token signed with a shared key) "
                                "or 'device' (a device id and secret)."],
    ]
    optFlags = [
        ["gateway", None, "Clients connect through a twistd vinom gateway process in front of the "
                          "lobbies (PROXY protocol v2; TLS as --gateway-tls says)."],
        ["redis", None, "Run lobbies and a game host as separate processes on a redis-server "
                        "of the scenario's own (docs/scaling.md)."],
        ["returning", None, "The clients are --in-flight players who play again: each offers "
                            "its last TLS session to the lobby (lean clients)."],
        ["gateway-floor", None, "With --gateway: the floor, bare Twisted "
                                "(twisted.protocols.portforward) forwarding each connection "
                                "to the lobby behind a PROXY v2 header, in place of the "
                                "gateway (TLS passed through)."],
        ["no-record", None, "The game host records no match (twistd vinom --no-record; by "
                            "default it records every one, as twistd vinom does)."],
    ]

    def postOptions(self) -> None:
        for name in ("clients", "in-flight", "udp-ports", "lobbies"):
            self[name] = positive_int(self, name)
        if self["lobbies"] > 1 and not self["redis"]:
            raise usage.UsageError(
                "--lobbies more than 1 needs --redis: separate lobby processes share the "
                "queue and the game hosts through Redis"
            )
        if self["returning"] and self["client"] == "twisted":
            raise usage.UsageError("--returning runs the lean clients only")
        if self["redis"] and self["client"] == "twisted":
            raise usage.UsageError("--redis runs the lean clients only (not --client twisted)")
        if self["backlog"] is not None:
            self["backlog"] = positive_int(self, "backlog")
        self["host-workers"] = non_negative_int(self, "host-workers")
        if self["native-load"] is not None and self["client"] != "native":
            raise usage.UsageError("--native-load goes with --client native")
        if self["client"] not in CLIENT_KINDS:
            raise usage.UsageError(f"--client must be one of {', '.join(CLIENT_KINDS)}")
        if self["clients"] % 2:
            raise usage.UsageError("--clients must be even (two players per match)")
        if self["gateway-tls"] not in GATEWAY_TLS:
            raise usage.UsageError(f"--gateway-tls must be one of {', '.join(GATEWAY_TLS)}")
        if self["gateway-tls"] != "passthrough" and not self["gateway"]:
            raise usage.UsageError(f"--gateway-tls {self['gateway-tls']} needs --gateway")
        if self["gateway-floor"]:
            if not self["gateway"] or self["gateway-tls"] != "passthrough":
                raise usage.UsageError("--gateway-floor needs --gateway, passing TLS through")
            if self["lobbies"] > 1:
                raise usage.UsageError("--gateway-floor forwards to one lobby (not --lobbies)")
        if self["lobby-tls"] not in LOBBY_TLS:
            raise usage.UsageError(f"--lobby-tls must be one of {', '.join(LOBBY_TLS)}")
        self["lobby-tls"] = LOBBY_TLS[self["lobby-tls"]]
        if self["auth"] not in AUTH_KINDS:
            raise usage.UsageError(f"--auth must be one of {', '.join(AUTH_KINDS)}")
        if self["auth"] != "guest":
            if self["redis"]:
                raise usage.UsageError(f"--auth {self['auth']} runs one server process (not "
                                       "--redis: its lobbies would need a shared PostgreSQL)")
            if self["client"] == "twisted":
                raise usage.UsageError(f"--auth {self['auth']} runs the lean clients only")
        if not self["lobby-tls"]:
            for flag, why in (("gateway", "--gateway-tls terminate is the plain lobby "
                                          "behind a gateway"),
                              ("returning", "there is no TLS session to resume")):
                if self[flag]:
                    raise usage.UsageError(f"--lobby-tls off and --{flag} do not go "
                                           f"together: {why}")
            if self["client"] == "twisted":
                raise usage.UsageError("--lobby-tls off runs the lean clients only")

    @property
    def terminating(self) -> bool:
        """Whether the gateway terminates TLS (and the lobbies listen on plain TCP)."""
        return bool(self["gateway"]) and self["gateway-tls"] == "terminate"

    @property
    def lobby_tls(self) -> bool:
        """Whether the lobbies listen with TLS (not behind a terminating gateway, nor off)."""
        return bool(self["lobby-tls"]) and not self.terminating

    def planned_seconds(self) -> float:
        return self["clients"] / 100.0


def start_single(
    harness: Harness, options: Options, data_dir: str, cpu: int | None,
    auth_args: list[str] | None = None,
) -> tuple[Worker, list[int], str]:
    """The whole server of `twistd vinom` in one process; (worker, [lobby port], trust)."""
    server = harness.spawn(
        "server", "benchmarks.server_worker",
        ["server", json.dumps({
            "data_dir": data_dir,
            "udp_ports": options["udp-ports"],
            "lobby_extra": lobby_extra(options),
            "lobby_tls": options.lobby_tls,
            "extra_args": [*host_workers(options), *trust_gateway(options),
                           *record_args(options), *(auth_args or [])],
        })],
        cpu,
    )
    ready = harness.wait_for(server, "ready", 60)
    return server, [int(ready["lobby_port"])], str(ready["trust"])


def count_records(data_dir: str) -> int:
    """The match records the run's servers wrote under `data_dir` (0 with --no-record):
    a version 1 file (`*.vrec.gz`) holds one, a record file (`*.vrec`, docs/protocol.md
    "Match records") the matches its frames name. Read here with msgpack alone, so that
    a side's build from before record files counts too."""
    count = 0
    for folder, _, names in os.walk(data_dir):
        for name in names:
            if name.endswith(".vrec.gz"):
                count += 1
            elif name.endswith(".vrec"):
                with open(os.path.join(folder, name), "rb") as f:
                    data = f.read()
                unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(1, len(data)))
                unpacker.feed(data)
                matches = {frame[0] for frame in itertools.islice(unpacker, 1, None)}
                count += len(matches)
    return count


def count_accounts(data_dir: str) -> int:
    """The accounts in the server's account database (its default SQLite file): one
    per player who signed in."""
    import sqlite3

    path = os.path.join(data_dir, "accounts.sqlite3")
    if not os.path.exists(path):
        return 0
    with contextlib.closing(sqlite3.connect(path)) as database:
        (count,) = database.execute("SELECT COUNT(*) FROM accounts").fetchone()
    return int(count)


def host_workers(options: Options) -> list[str]:
    """The server's options for --host-workers N (none for 0: the bench server hosts its
    games in its own process by default)."""
    workers = options["host-workers"]
    return ["--host-workers", str(workers)] if workers else []


def record_args(options: Options) -> list[str]:
    """The server's options for `--no-record` (none otherwise: it records, by default)."""
    return ["--no-record"] if options["no-record"] else []


def trust_gateway(options: Options) -> list[str]:
    """The lobbies' options for a gateway in front: PROXY headers from loopback."""
    return ["--trusted-proxy", "127.0.0.1"] if options["gateway"] else []


def start_gateway(
    harness: Harness, options: Options, ports: list[int], data_dir: str, cpu: int | None
) -> tuple[Worker, int, str | None]:
    """A `twistd vinom gateway` process in front of the lobbies' `ports`.

    Returns the worker, its port and, when it terminates TLS, the certificate the
    clients verify (its own).
    """
    gateway = harness.spawn(
        "gateway", "benchmarks.gateway_worker",
        [json.dumps({"lobby_ports": ports, "data_dir": os.path.join(data_dir, "gateway"),
                     "terminate": options.terminating,
                     "floor": bool(options["gateway-floor"])})],
        cpu,
    )  # fmt: skip
    ready = harness.wait_for(gateway, "ready", 60)
    return gateway, int(ready["gateway_port"]), ready.get("trust")


def lobby_extra(options: Options) -> str:
    return f":backlog={options['backlog']}" if options["backlog"] else ""


def start_cluster(
    harness: Harness, options: Options, data_dir: str, cpu: int | None
) -> tuple[list[Worker], Worker, Worker, list[int], str]:
    """Redis, one `twistd vinom host` and N `twistd vinom lobby` processes, all on core `cpu`.

    Returns the lobby workers, the host's and redis-server's, the lobbies'
    ports and the certificate they share. Ready once the host is registered and every lobby
    has seen it (server_worker's `_lobby_ready`).
    """
    from vinom.server.certs import ensure_dev_certificate

    key_file = os.path.join(data_dir, "token.key")
    with open(key_file, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(key_file, 0o600)
    certificate = ensure_dev_certificate(os.path.join(data_dir, "certificate"))
    redis_dir = os.path.join(data_dir, "redis")
    os.makedirs(redis_dir)
    redis, redis_port = start_redis(harness, redis_dir, cpu)
    shared = ["--redis", f"redis://127.0.0.1:{redis_port}/0", "--token-key-file", key_file]

    def spawn(name: str, role: str, extra: list[str]) -> Worker:
        return harness.spawn(
            name, "benchmarks.server_worker",
            ["server", json.dumps({
                "data_dir": os.path.join(data_dir, name),
                "udp_ports": options["udp-ports"],
                "lobby_extra": lobby_extra(options),
                "lobby_tls": options.lobby_tls,
                "role": role,
                "extra_args": [*shared, *extra],
            })],
            cpu,
        )  # fmt: skip

    host = spawn("host", "host", [*host_workers(options), *record_args(options)])
    harness.wait_for(host, "ready", 90)
    lobbies = [
        spawn(f"lobby{i}", "lobby", ["--certificate", str(certificate.certificate),
                                     "--private-key", str(certificate.private_key),
                                     *trust_gateway(options)])
        for i in range(options["lobbies"])
    ]  # fmt: skip
    ports = [int(harness.wait_for(lobby, "ready", 90)["lobby_port"]) for lobby in lobbies]
    return lobbies, host, redis, ports, str(certificate.certificate)


def run(options: Options) -> int:
    progress = progress_for(options, "match", options.planned_seconds())

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        done = int(message.get("count", 0))
        progress.update(
            f"{done:,} of {options['clients']:,} clients",
            options.planned_seconds() * done / options["clients"],
        )

    native = None
    if options["client"] == "native":
        try:
            native = native_load.program(options["native-load"])
        except native_load.NativeBuildError as e:
            progress.finish()
            print(f"match: {e}", file=sys.stderr)
            return 1
    data_dir = tempfile.mkdtemp(prefix="vinom-bench-match-")
    # With a gateway: the load on the first core after the server's, the gateway on the next.
    server_cpu, load_cpus = cpu_plan(2 if options["gateway"] else 1, options.pin)
    workers = options["host-workers"] > 0
    auth_args, auth_settings = prepare_auth(options["auth"], os.path.join(data_dir, "auth"))
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            more: list[Worker] = []
            marked: list[Worker] = []
            if options["redis"]:
                lobbies, host, redis, ports, trust = start_cluster(
                    harness, options, data_dir, server_cpu
                )
                server, more = lobbies[0], [*lobbies[1:], host, redis]
                marked = [host] if workers else []
            else:
                server, ports, trust = start_single(harness, options, data_dir, server_cpu,
                                                    auth_args)  # fmt: skip
            if options["gateway"]:
                gateway, gateway_port, gateway_trust = start_gateway(
                    harness, options, ports, data_dir, load_cpus[1]
                )
                more = [*more, gateway]
                marked = [*marked, gateway]
                ports = [gateway_port]
                # Terminated at the gateway, TLS is the gateway's: its certificate is verified.
                trust = gateway_trust or trust
            settings = {
                "host": "127.0.0.1",
                "port": ports[0],
                "more_ports": ports[1:],
                "trust": trust,
                "clients": options["clients"],
                "in_flight": options["in-flight"],
                "game": "duel",
                "returning": bool(options["returning"]),
                # Through a terminating gateway the clients still speak TLS (to it).
                "tls": bool(options["lobby-tls"]),
                "auth": auth_settings,
                "native": native,
            }
            load = harness.spawn(
                "load", "benchmarks.lobby_worker",
                [CLIENT_KINDS[options["client"]], json.dumps(settings)],
                load_cpus[0],
            )
            measured = MeasuredRun(
                harness, server, [load], options, "match", options.planned_seconds(),
                more_servers=more,
            )
            (result,) = measured.run(mark_server=workers and not options["redis"], mark=marked)
        # The servers have stopped: every record is closed.
        records = count_records(data_dir)
        accounts = count_accounts(data_dir) if options["auth"] != "guest" else None
    except BenchError as e:
        progress.finish()
        return report_failure("match", e, options)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    progress.finish()
    wall = float(result["window_s"]) or 1e-9
    histogram = merge_histograms([result["histogram"]])
    clients = int(result["clients"])

    def per_client(seconds: float) -> float:
        return round(seconds * 1e3 / max(clients, 1), 3)

    # --client native: the load is the lobby clients' process and vinom_load.
    lobby_load_cpu_s = measured.load_cpu_s
    native_result = result.get("native") or {}
    native_cpu_s = float(native_result.get("cpu_user_s", 0)) + float(
        native_result.get("cpu_system_s", 0)
    )
    load_cpu_s = lobby_load_cpu_s + native_cpu_s

    worker_cpu_s: float | None = None
    worker_marks = measured.marks.get("host" if options["redis"] else "server")
    if workers and worker_marks:
        before, after = (m["counters"]["workers"] for m in worker_marks)
        worker_cpu_s = sum(float(w["cpu_seconds"]) for w in after) - sum(
            float(w["cpu_seconds"]) for w in before
        )
    by_process = dict(measured.server_cpu_by_process)
    server_cpu_s = measured.server_cpu_s
    if options["redis"] and worker_cpu_s is not None:
        # On Redis, the server is every process of the deployment, workers included.
        by_process["host-workers"] = worker_cpu_s
        server_cpu_s += worker_cpu_s
    summary: dict[str, Any] = {
        "scenario": "match",
        "clients": clients,
        "in_flight": options["in-flight"],
        "client": options["client"],
        "host_workers": options["host-workers"],
        "lobbies": options["lobbies"],
        "redis": bool(options["redis"]),
        "gateway": bool(options["gateway"]),
        "returning": bool(options["returning"]),
        "lobby_tls": bool(options["lobby-tls"]),
        "auth": options["auth"],
        "records": records,
        "cores": {"server": server_cpu, "load": load_cpus[0],
                  **({"gateway": load_cpus[1]} if options["gateway"] else {})},
        "wall_s": round(wall, 3),
        "clients_per_s": round(int(result["completed"]) / wall, 1),
        **latency_ms(histogram),
        "errors": int(result["errors"]),
        "server_cpu_s": round(server_cpu_s, 3),
        "load_cpu_s": round(load_cpu_s, 3),
        "server_cpu_ms_per_client": per_client(server_cpu_s),
        "load_cpu_ms_per_client": per_client(load_cpu_s),
        "bottleneck": bottleneck(server_cpu_s, load_cpu_s, wall),
    }
    if native is not None:
        summary["lobby_load_cpu_ms_per_client"] = per_client(lobby_load_cpu_s)
        summary["native_cpu_s"] = round(native_cpu_s, 3)
        summary["native_cpu_us_per_session"] = round(
            native_cpu_s * 1e6 / max(int(native_result.get("sessions", 0)), 1), 1
        )
        summary["native_sessions"] = int(native_result.get("sessions", 0))
    if options["gateway"]:
        summary["gateway_tls"] = options["gateway-tls"]
        summary["gateway_floor"] = bool(options["gateway-floor"])
        summary["gateway_cpu_ms_per_client"] = per_client(by_process["gateway"])
        # The gateway's count since it started: only the load connects to it.
        summary["gateway_tls_terminated"] = int(
            measured.marks["gateway"][-1]["counters"]["terminated"]
        )
    if worker_cpu_s is not None:
        summary["worker_cpu_s"] = round(worker_cpu_s, 3)
        summary["worker_cpu_ms_per_client"] = per_client(worker_cpu_s)
    # Through a gateway the load sees one address: which lobby served whom is the gateway's.
    if options["redis"] and not options["gateway"]:
        summary["lobby_clients"] = [int(n) for n in result["completed_by_lobby"]]
        summary["matches_across_lobbies"] = int(result["matches_across_lobbies"])
    if options["redis"]:
        summary["server_cpu_by_process"] = {k: round(v, 3) for k, v in by_process.items()}
        summary["server_cpu_ms_per_client_by_process"] = {
            k: per_client(v) for k, v in by_process.items()
        }
    if result.get("tls"):
        summary["tls"] = result["tls"]
    if options["returning"]:
        summary["tls_resumed"] = int(result.get("resumed", 0))
    if accounts is not None:
        summary["accounts"] = accounts
    if result["error_kinds"]:
        summary["error_kinds"] = result["error_kinds"]
    process_rows = [
        (f"  {name} CPU ms / client", value)
        for name, value in summary.get("server_cpu_ms_per_client_by_process", {}).items()
    ]
    rows: list[tuple[str, Any]] = [
        ("clients matched and in a full room / s", summary["clients_per_s"]),
        ("wall time s", summary["wall_s"]),
        ("latency p50 / p99 ms", f"{summary['p50_ms']} / {summary['p99_ms']}"),
        *([("clients per lobby", " / ".join(f"{n:,}" for n in summary["lobby_clients"])),
           ("matches across lobbies", summary["matches_across_lobbies"])]
          if "lobby_clients" in summary else []),
        ("server CPU ms / client", summary["server_cpu_ms_per_client"]),
        *process_rows,
        *([("  gateway CPU ms / client", summary["gateway_cpu_ms_per_client"])]
          if options["gateway"] and not options["redis"] else []),
        *([("TLS at the gateway", f"{options['gateway-tls']} "
            f"({summary['gateway_tls_terminated']:,} terminated)")]
          if options["gateway"] else []),
        *([("gateway", "the floor: bare Twisted portforward")]
          if options["gateway-floor"] else []),
        *([("  game-host workers' CPU ms / client", summary["worker_cpu_ms_per_client"])]
          if "worker_cpu_ms_per_client" in summary and not options["redis"] else []),
        ("load CPU ms / client", summary["load_cpu_ms_per_client"]),
        *([("TLS sessions resumed", summary["tls_resumed"])] if options["returning"] else []),
        ("errors", summary["errors"]),
        ("cores: server processes / load", "not pinned" if server_cpu is None
         else f"{server_cpu} / {load_cpus[0]}"
         + (f" (gateway: {load_cpus[1]})" if options["gateway"] else "")),
        cpu_row(server_cpu_s, measured.load_cpu_s, wall, summary["bottleneck"]),
    ]  # fmt: skip
    title = f"match: {clients:,} clients, {options['in-flight']} in flight"
    if options["redis"]:
        title += f", {options['lobbies']} lobby process(es) and a game host on Redis"
    if options["host-workers"]:
        title += f", {options['host-workers']} game-host worker(s)"
    if options["gateway"]:
        title += f", through a gateway (TLS {options['gateway-tls']})"
    if not options["lobby-tls"]:
        title += ", plain TCP lobby"
    if options["auth"] != "guest":
        title += f", clients signed in ({options['auth']})"
    report(title, rows, summary, table=options.show_table)
    return 0 if summary["errors"] == 0 else 1
