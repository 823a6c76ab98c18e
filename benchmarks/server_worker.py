"""Server worker of the room scenarios: `python -m benchmarks.server_worker <kind> <json>`.

`rooms` (used by play and sessions) builds one real inline game host from
the pieces, without a lobby: `InlineGameHostFactory` starts a
`GameHostProtocol` over a `GameHostCore` (endpoint, seat router, rooms) on one
UDP port, and the worker adds `rooms` two-player matches of the `duel` game
to it, with player ids every bench process derives the same way
(`player_id(room, seat)`). The load process seals the connect tokens for
those players with the key passed to both processes, exactly as the lobby
would. The worker answers `mark` commands with its counters, CPU and RSS.
With `websocket` it also serves the game WebSocket (`/game`, TLS) for the
host's matches and reports its `websocket_port`; with `webtransport` as well
the game sessions over WebTransport (vinom.hosting.webtransport, on a UDP port,
admitted by that WebSocket's factory as `twistd vinom --webtransport` admits
them) and reports its `webtransport_port`. With `record` (play's
default; `play --no-record` leaves it out) the host records every match as
`twistd vinom` does by default (vinom.hosting.records, files in a temporary
directory removed when the worker stops); `recording` in its ready message
says whether it did (false on a build from before match records). With
`spectators` N > 0 (play --game arena --spectators N) one match may have N
spectators (at least the default 100).
With `host_workers` N > 0 the rooms run in N game-host worker processes
instead (`vinom.hosting.workers.pool.WorkerPool`, as `--host-workers N` runs
them): once every worker is live the worker starts one host per worker (the
pool's least-loaded placement puts one on each) and adds room r to host
r % N; `ports` in its ready message lists the hosts' ports in that order. A
`mark` then first has every worker heartbeat (`WorkerPool.refresh`), and
reports each worker's CPU seconds and counters as well as the pool's totals.

`server` (used by match and soak) runs the whole vinom server of
`twistd vinom`: `vinom.server.tap.makeService` with the given options, lobby and
all, and reports the lobby port and dev certificate. Its lobby listens with
TLS, or on plain TCP with `lobby_tls` false (behind a gateway that
terminates TLS). Games are hosted in
the server process (`--matches here`, the bench's figures from before
game-host workers) unless `extra_args` say otherwise; with workers or a
child per match (`--matches per-match`) it is ready only once every worker,
or every pre-started child, is, and `mark` reports the workers and, for
`--matches per-match`, every spawn latency observed (`spawn_samples`).
With `role` `lobby` or `host` (match --redis) it runs that subcommand alone
(`twistd vinom lobby`, `host`): a lobby is ready once its Redis matchmaker runs and
it has seen a live game host; a host once
its record is in the Redis registry (`host_id` in its ready message).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults, maybeDeferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from benchmarks.ports import free_tcp_port, free_udp_port, free_udp_range
from benchmarks.worker import (
    cpu_seconds,
    global_reactor,
    reactor_name,
    rss_bytes,
    run_guarded,
    start_control,
)

DUEL = "duel"


def player_id(room: int, seat: int) -> str:
    """The id of the player in `seat` of bench room `room`."""
    return f"p-{room:06d}-{seat}"


def match_id(room: int) -> str:
    return f"m-{room:06d}"


# A server kind's ready fields and the function giving its counters for `mark` (a
# mapping, or a Deferred firing with one); `start_*` returns them now or later.
Ready = tuple[dict[str, Any], Callable[[], Any]]
Started = Ready | Deferred[Ready]

# Seconds the game-host workers (or pre-started children) get to be ready.
WORKERS_READY_S = 60.0


def _room_players(room: int, now: float, game: str = DUEL, seats: int = 2) -> tuple[Any, ...]:
    from vinom.match import Ticket

    return tuple(
        Ticket(player_id(room, seat), f"bot{room}.{seat}", game, None, now) for seat in range(seats)
    )


def bench_recording(reactor: Any, settings: dict[str, Any]) -> Any:
    """The `RecordSettings` of the rooms' host: every match recorded into a temporary
    directory (removed at shutdown) when `settings` ask for `record`; None when they
    do not, or when the installed build has no match records (a baseline from before
    issue #38), whose factory takes no `recording`."""
    if not settings.get("record"):
        return None
    try:
        from vinom.hosting.records import RecordSettings
    except ImportError:
        return None
    directory = tempfile.mkdtemp(prefix="vinom-bench-records-")
    reactor.addSystemEventTrigger("after", "shutdown", shutil.rmtree, directory, True)
    return RecordSettings(directory=directory)


def bench_spectators(settings: dict[str, Any]) -> dict[str, Any]:
    """The factory's `spectators` when `settings` have `spectators` watch (play --game
    arena --spectators N): room for N on one match; nothing otherwise (a build from
    before spectators takes no such argument, and has the defaults)."""
    wanted = int(settings.get("spectators", 0))
    if wanted <= 0:
        return {}
    from vinom.hosting.spectators import DEFAULT_MAX_PER_MATCH, SpectatorSettings

    return {"spectators": SpectatorSettings(max_per_match=max(wanted, DEFAULT_MAX_PER_MATCH))}


def find_gc_settle() -> Callable[[], None] | None:
    """The build's `settle_garbage_collection` (vinom.net.reactor; vinom.server.startup in a
    build before it), or None in a build older still (a baseline being compared), whose
    twistd did not settle the collector either."""
    for module in ("vinom.net.reactor", "vinom.server.startup"):
        try:
            settle: Callable[[], None] | None = getattr(
                importlib.import_module(module), "settle_garbage_collection", None
            )
        except ImportError:
            continue
        if settle is not None:
            return settle
    return None


def start_rooms(reactor: Any, settings: dict[str, Any]) -> Started:
    """The inline host with its matches (or, with `host_workers`, the worker hosts)."""
    if int(settings.get("host_workers", 0)) > 0:
        return ensureDeferred(start_worker_rooms(reactor, settings))
    from vinom.games.duel import DuelGame
    from vinom.games.registry import GameRegistry
    from vinom.hosting.inline import InlineGameHostFactory
    from vinom.match import Match
    from vinom.protocol.config import ProtocolConfig
    from vinom.rooms.room import RoomConfig

    interface = settings.get("interface", "127.0.0.1")
    # `game`: the duel (play), or the arena (play --game arena: `seats` players a
    # room, 8 unless --players says otherwise).
    game_name = settings.get("game", DUEL)
    if game_name == "arena":
        from vinom.games.arena import PLAYERS, ArenaGame

        game: Any = ArenaGame(int(settings.get("seats", PLAYERS)))
    else:
        game = DuelGame()
    registry = GameRegistry([game])
    recording = bench_recording(reactor, settings)
    factory = InlineGameHostFactory(
        reactor=reactor,
        find_game=registry.get,
        protocol_config=ProtocolConfig(token_key=bytes.fromhex(settings["key"])),
        public_host=interface,
        interface=interface,
        room_config=RoomConfig(
            connect_deadline=float(settings.get("connect_deadline", 60.0)),
            state_interval=float(settings.get("state_interval", 1.0)),
            # play --game arena --snapshot-checksums (a build with delta snaps).
            **({"snapshot_checksums": True} if settings.get("snapshot_checksums") else {}),
        ),
        # Only where there is one to give: an older factory takes no `recording`.
        **({"recording": recording} if recording is not None else {}),
        **bench_spectators(settings),
    )
    hosts: list[Any] = []
    factory.start_host(free_udp_port(interface)).addCallback(hosts.append)
    (host,) = hosts
    rss_empty = rss_bytes()
    now = time.time()
    for room in range(int(settings["rooms"])):
        players = _room_players(room, now, game.name, game.match_size)
        host.add_match(Match(match_id(room), game.name, players, now))
    manager = host.core.router
    endpoint = host.core.endpoint

    def counters() -> dict[str, Any]:
        return {
            "actions_applied": manager.counters["actions_applied"],
            "actions_rejected": manager.counters["actions_rejected"],
            "sessions_opened": manager.counters["sessions_opened"],
            "sessions_closed": manager.counters["sessions_closed"],
            "internal_errors": manager.counters["internal_errors"],
            "sessions": endpoint.session_count,
            "datagrams_received": endpoint.datagrams_received,
            "datagrams_sent": endpoint.datagrams_sent,
            "drops": dict(endpoint.drops),
            "manager_drops": dict(manager.drops),
            "host_errors": host.protocol.errors + host.core.errors,
            # Real-time inputs by outcome (applied, late, early, duplicate...): a build
            # with issue #35's inputs; none on an older one.
            "inputs": dict(manager.input_counts()) if hasattr(manager, "input_counts") else {},
        }

    ready = {
        "port": host.address.port,
        "ports": [host.address.port],
        "rss_empty": rss_empty,
        "rss_rooms": rss_bytes(),
        "recording": recording is not None,
    }
    if settings.get("websocket"):
        ready.update(listen_game_socket(
            reactor, host, factory.protocol_config, interface, settings.get("tls", True),
            bool(settings.get("webtransport")), bool(settings.get("proxied")),
        ))  # fmt: skip
    settle = find_gc_settle()
    if settle is not None:
        # As `twistd vinom` and its game-host workers do once their reactor runs; here
        # before the host says it is ready, so that the collector's one full pass (tens
        # of ms) does not stall the players' first handshakes in the warm-up.
        settle()
    return ready, counters


def game_resource(game: Any) -> Any:
    """`/game` for the factory `game`: vinom's `GameSocketResource`, or, on a build from
    before vinom's own WebSocket framing, autobahn's `WebSocketResource` around it."""
    try:
        from vinom.hosting.websocket import GameSocketResource
    except ImportError:
        from autobahn.twisted.resource import WebSocketResource

        return WebSocketResource(game)
    return GameSocketResource(game)


def listen_game_socket(
    reactor: Any, host: Any, protocol: Any, interface: str, tls: bool,
    webtransport: bool = False, proxied: bool = False,
) -> dict[str, int]:  # fmt: skip
    """`/game` (vinom.hosting.websocket) for `host`'s matches, over TLS as `twistd vinom` serves it
    (its `vinom-ssl:` listener, a fresh self-signed certificate), or plain as behind a
    TLS-terminating proxy; its port (`websocket_port`), and with `webtransport` the WebTransport
    listener's (`webtransport_port`), whose sessions that socket's factory admits. With
    `proxied` (plain only) each connection from 127.0.0.1 begins with a PROXY header, as
    `--trusted-proxy 127.0.0.1` reads it behind a proxy that sends one."""
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from vinom.hosting.websocket import GameSocketConfig, GameSocketFactory
    from vinom.net.origins import OriginPolicy

    class OneHost:
        def host_of(self, match_id: str) -> Any:
            return host

    # The players move hundreds of times a second: the per-socket rate limit (which
    # protects the server from a flood) is lifted, as the duel game has no action rate;
    # every player comes from 127.0.0.1, so the per-address cap is lifted too.
    config = GameSocketConfig(
        message_rate=1e9, message_burst=1e9, max_sockets_per_ip=1 << 20, max_sockets=1 << 20
    )
    game = GameSocketFactory(OneHost(), protocol, OriginPolicy(("*",)), reactor=reactor,
                             config=config)  # fmt: skip
    root = Resource()
    root.putChild(b"game", game_resource(game))
    site = Site(root)
    site.noisy = False
    ports = {}
    if webtransport:
        ports["webtransport_port"] = listen_webtransport(reactor, game, interface)
    if not tls and proxied:
        from ipaddress import ip_network

        from twisted.internet.endpoints import TCP4ServerEndpoint

        from vinom.server.proxied import ProxiedEndpoint

        listening: list[Any] = []
        endpoint = ProxiedEndpoint(TCP4ServerEndpoint(reactor, 0, interface=interface),
                                   (ip_network("127.0.0.1/32"),))  # fmt: skip
        endpoint.listen(site).addCallback(listening.append)
        ports["websocket_port"] = int(listening[0].getHost().port)
        return ports
    ports["websocket_port"] = listen_site(reactor, site, interface, tls)
    return ports


def listen_site(reactor: Any, site: Any, interface: str, tls: bool) -> int:
    """`site` on a fresh port of `interface`, plain or over TLS as `--websocket` listens
    (the build's own `vinom-ssl:` listener, a fresh self-signed certificate); the port."""
    if not tls:
        return int(reactor.listenTCP(free_tcp_port(interface), site,
                                     interface=interface).getHost().port)
    from vinom.server.certs import make_self_signed
    from vinom.server.tls import tls_server_endpoint

    directory = tempfile.mkdtemp(prefix="vinom-bench-tls-")
    reactor.addSystemEventTrigger("after", "shutdown", shutil.rmtree, directory, True)
    paths = {"certKey": os.path.join(directory, "cert.pem"),
             "privateKey": os.path.join(directory, "key.pem")}  # fmt: skip
    for name, pem in zip(("certKey", "privateKey"), make_self_signed("localhost"), strict=True):
        with open(paths[name], "wb") as f:
            f.write(pem)
    port = str(free_tcp_port(interface))
    endpoint = tls_server_endpoint(reactor, (port,), {"interface": interface, **paths})
    listening: list[Any] = []
    endpoint.listen(site).addCallback(listening.append)
    return int(listening[0].getHost().port)


def listen_webtransport(reactor: Any, game: Any, interface: str) -> int:
    """vinom's WebTransport listener for the sessions `game` (the `/game` factory) admits,
    with a development certificate as `twistd vinom --webtransport` makes; its UDP port."""
    from vinom.hosting.webtransport import (
        WebTransportConfig,
        WebTransportServer,
        listen_webtransport,
    )
    from vinom.server.certs import RenewingCertificate
    from vinom.server.webtransport import WebTransportCredentials

    credentials = WebTransportCredentials(None, None, RenewingCertificate(time.time))

    # Every player comes from 127.0.0.1: the per-address connection cap is lifted
    # (the /game factory's caps, which count these sessions too, already are).
    config = WebTransportConfig(max_connections=1 << 20, max_connections_per_ip=1 << 20)
    server = WebTransportServer(game, credentials, clock=reactor, config=config)
    # The same port as --webtransport's listener (vinom.server.webtransport).
    port = listen_webtransport(reactor, 0, server, interface)
    return int(port.getHost().port)


async def start_worker_rooms(reactor: Any, settings: dict[str, Any]) -> Ready:
    """`start_rooms` over N game-host worker processes: one host on each, rooms spread."""
    from vinom.hosting.workers.child import WorkerGameHost, WorkerSettings
    from vinom.hosting.workers.pool import WorkerPool
    from vinom.match import Match
    from vinom.protocol.config import ProtocolConfig
    from vinom.rooms.room import RoomConfig

    interface = settings.get("interface", "127.0.0.1")
    count = int(settings["host_workers"])
    recording = bench_recording(reactor, settings)
    pool = WorkerPool(
        WorkerSettings(
            protocol=ProtocolConfig(token_key=bytes.fromhex(settings["key"])),
            public_host=interface,
            interface=interface,
            game_names=(DUEL,),
            room_config=RoomConfig(
                connect_deadline=float(settings.get("connect_deadline", 60.0)),
                state_interval=float(settings.get("state_interval", 1.0)),
            ),
            **({"recording": recording} if recording is not None else {}),
        ),
        count,
        reactor,
    )
    pool.startService()
    reactor.addSystemEventTrigger("before", "shutdown", pool.stopService)
    rss_empty = rss_bytes()
    await workers_live(reactor, pool)
    hosts: list[WorkerGameHost] = []
    for _ in range(count):
        # One at a time: the least-loaded live worker is one without a host yet.
        host = await pool.start_host(free_udp_port(interface))
        assert isinstance(host, WorkerGameHost)
        hosts.append(host)
    pids = [host.worker.pid for host in hosts]
    if len(set(pids)) != count:
        raise RuntimeError(f"{count} hosts landed on workers {pids}, not one on each")
    now = time.time()
    await gatherResults([
        hosts[room % count].add_match(Match(match_id(room), DUEL, _room_players(room, now), now))
        for room in range(int(settings["rooms"]))
    ])  # fmt: skip
    ready = {
        "port": hosts[0].port,
        "ports": [host.port for host in hosts],
        "pids": pids,
        "rss_empty": rss_empty,
        "rss_rooms": rss_bytes(),
        "recording": recording is not None,
    }
    return ready, pool_counters(pool, {pid: i for i, pid in enumerate(pids)})


async def workers_live(reactor: Any, pool: Any) -> None:
    """Wait until every worker of a `WorkerPool` is live."""
    deadline = reactor.seconds() + WORKERS_READY_S
    while not all(status.live for status in pool.workers()):
        if reactor.seconds() > deadline:
            raise RuntimeError(
                f"game-host workers not live after {WORKERS_READY_S:g} s: {pool.workers()}"
            )
        await deferLater(reactor, 0.05, lambda: None)


def pool_counters(
    pool: Any, host_of_pid: dict[int | None, int] | None = None
) -> Callable[[], Deferred[dict[str, Any]]]:
    """Counters of a `WorkerPool` for `mark`: every worker heartbeats first."""

    def current(_: object) -> dict[str, Any]:
        workers = []
        for status in pool.workers():
            entry = {
                "index": status.index,
                "pid": status.pid,
                "live": status.live,
                "hosts": status.hosts,
                "sessions": status.sessions,
                "cpu_seconds": status.cpu_seconds,
                "restarts": status.restarts,
                "counters": dict(status.counters),
            }
            if host_of_pid is not None:
                entry["host_index"] = host_of_pid.get(status.pid)
            workers.append(entry)
        return {"workers": workers, "totals": dict(pool.totals())}

    return lambda: pool.refresh().addCallback(current)


def server_args(
    lobby_port: int,
    udp_ports: tuple[int, int],
    data_dir: str,
    game_names: str,
    lobby_extra: str = "",
    lobby_tls: bool = True,
    role: str | None = None,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """`twistd vinom` arguments of a bench server on loopback (before the scenario's own,
    `extra`): the whole server, or with `role` ('lobby' or 'host') that subcommand and its
    options alone.

    `game_names` is the --games value (comma-separated names). Games run in the
    server process (`--matches here`) unless `extra` says otherwise. The
    lobby listens with TLS, or on plain TCP (`lobby_tls` false: behind a gateway
    that terminates TLS). A build from before the subcommands (compare's baseline)
    is given the spellings it reads (`--role`, `--host-workers 0`).
    """
    interface = "127.0.0.1"
    low, high = udp_ports
    scheme = "ssl" if lobby_tls else "tcp"
    subcommands = _has_subcommands()
    args: list[str] = []
    if role is not None:
        args += [role] if subcommands else ["--role", role]
    if role != "host" or not subcommands:
        args += [
            "--lobby", f"{scheme}:{lobby_port}:interface={interface}{lobby_extra}",
            # One address for every bench client: lift the per-IP abuse limits.
            "--limit", "max-pending-per-ip=1000000",
            "--limit", "max-matches-per-ip=1000000",
            "--limit", "queue-rate=1000000",
            "--limit", "queue-burst=1000000",
            "--limit", "frame-rate=1000",
            "--limit", "frame-burst=1000",
            *(["--limit", "new-accounts-per-hour=1000000"] if _limits_new_accounts() else []),
        ]  # fmt: skip
    if role != "lobby" or not subcommands:
        args += ["--udp-ports", f"{low}-{high}", "--udp-interface", interface]
        if not {"--host-workers", "--matches", "--game-host"} & set(extra):
            args += ["--matches", "here"] if subcommands else ["--host-workers", "0"]
    return [
        *args,
        "--public-host", interface,
        "--data-dir", data_dir,
        "--games", game_names,
        "--limit", "max-connections-per-ip=1000000",
        # Several bench servers may run at once: no fixed operations or web port.
        "--ops-port", "none",
        "--websocket", "none",
    ]  # fmt: skip


def _has_subcommands() -> bool:
    """Whether the vinom this process imports has `twistd vinom lobby|host` (and
    `--matches`), or is a build from before them."""
    from vinom.server import tap

    return bool(getattr(tap.Options, "subCommands", None))


def _limits_new_accounts() -> bool:
    """Whether the vinom this process imports limits new accounts per address (every
    bench client signs in from one), or is a build from before that limit."""
    from vinom.lobby.config import LobbyConfig

    return hasattr(LobbyConfig, "__attrs_attrs__") and any(
        a.name == "new_accounts_per_hour" for a in LobbyConfig.__attrs_attrs__
    )


def start_server(reactor: Any, settings: dict[str, Any]) -> Started:
    """The whole vinom server of `twistd vinom` (makeService), on free loopback ports."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from vinom.server import tap

    settle = find_gc_settle()

    # Warnings and errors to our stderr (kept by the harness), nothing else: the
    # log buffer must not grow with the run (soak measures memory).
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
            )
        ],
        redirectStandardIO=False,
    )
    interface = "127.0.0.1"
    lobby_port = free_tcp_port(interface)
    low, high = free_udp_range(interface, int(settings.get("udp_ports", 256)))
    extra = list(settings.get("extra_args", []))
    args = server_args(
        lobby_port,
        (low, high),
        settings["data_dir"],
        # The bench game is offered only when asked for.
        settings.get("games", "duel,maze,tictactoe,dice,owedrahn"),
        settings.get("lobby_extra", ""),
        bool(settings.get("lobby_tls", True)),
        role=settings.get("role"),
        extra=extra,
    )
    options = tap.Options()
    # A bench server stops when its harness is done or gone: running matches are
    # aborted at once rather than played out (the harness may have been killed).
    options.parseOptions([*args, "--limit", "drain-timeout=0", *extra])
    role = settings.get("role") or "all"
    root = tap.makeService(options, reactor)
    processes = _host_processes(root)
    rss_empty = rss_bytes()
    root.startService()
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    # As `twistd vinom` does once its reactor runs (tap.makeService).
    if settle is not None:
        reactor.callWhenRunning(settle)
    from vinom.server.certs import CERT_FILE

    trust = options["certificate"] or os.path.join(settings["data_dir"], CERT_FILE)
    hosting = root.getServiceNamed("hosting") if role != "lobby" else None
    lobby = root.getServiceNamed("lobby") if role != "host" else None

    def server_counters() -> dict[str, Any]:
        out = _hosting_counters(hosting) if hosting is not None else {}
        if lobby is not None:
            store = getattr(lobby, "store", None)
            for name in ("player_count", "placement_count"):
                value = getattr(store, name, None)
                if isinstance(value, int):
                    out[f"store_{name}"] = value
            out["lobby_connections"] = lobby.connection_count
            out["lobby_waiting_matches"] = lobby.waiting_matches
        return out

    ready: dict[str, Any] = {"role": role, "rss_empty": rss_empty}
    if lobby is not None:
        ready.update(lobby_port=lobby_port, trust=trust)
    if hosting is not None:
        ready["udp_ports"] = [low, high]
    if role == "lobby":
        return ensureDeferred(_lobby_ready(reactor, root, ready, server_counters))
    if role == "host":
        return ensureDeferred(_host_ready(reactor, root, processes, ready, server_counters))
    if processes is None:
        return ready, server_counters
    return ensureDeferred(_processes_ready(reactor, processes, ready, server_counters))


async def _lobby_ready(
    reactor: Any, root: Any, ready: dict[str, Any], server_counters: Callable[[], Any]
) -> Ready:
    """A `twistd vinom lobby` server is ready once its Redis matchmaker runs and it has read
    a live game host from the registry (its placement events wait in its stream
    until it reads them: docs/scaling.md)."""
    matchmaker = root.getServiceNamed("matchmaker")
    placement = root.getServiceNamed("placement")
    deadline = reactor.seconds() + WORKERS_READY_S
    while not (matchmaker.started and placement.live_hosts):
        if reactor.seconds() > deadline:
            raise RuntimeError(
                f"lobby not ready after {WORKERS_READY_S:g} s (matchmaker started: "
                f"{matchmaker.started}, live game hosts: {len(placement.live_hosts)})"
            )
        await deferLater(reactor, 0.05, lambda: None)
    return ready, server_counters


async def _host_ready(
    reactor: Any,
    root: Any,
    processes: Any,
    ready: dict[str, Any],
    server_counters: Callable[[], Any],
) -> Ready:
    """A `twistd vinom host` server is ready once its workers (if any) are live and its
    record is in the Redis host registry, where lobbies look for game hosts."""
    from vinom.cluster.hosts import RedisHostRegistry

    counters = server_counters
    if processes is not None:
        ready, counters = await _processes_ready(reactor, processes, ready, server_counters)
    agent = root.getServiceNamed("host-agent")
    registry = RedisHostRegistry(root.getServiceNamed("redis").redis)
    deadline = reactor.seconds() + WORKERS_READY_S
    while await registry.get(agent.host_id) is None:
        if reactor.seconds() > deadline:
            raise RuntimeError(f"game host not registered after {WORKERS_READY_S:g} s")
        await deferLater(reactor, 0.05, lambda: None)
    return {**ready, "host_id": agent.host_id}, counters


def _host_processes(root: Any) -> Any:
    """The server's game-host processes (a WorkerPool or a ProcessPerMatch), or None."""

    try:
        processes = root.getServiceNamed("game-host-processes")
    except KeyError:
        return None
    return processes


async def _processes_ready(
    reactor: Any, processes: Any, ready: dict[str, Any], server_counters: Callable[[], Any]
) -> Ready:
    """Wait until every worker, or every pre-started child, is ready; add their counters."""
    from vinom.hosting.workers.per_match import ProcessPerMatch

    if isinstance(processes, ProcessPerMatch):
        deadline = reactor.seconds() + WORKERS_READY_S
        # Measured from a full pool, as on a server that ran a while.
        while processes.children_ready < processes.pool_size:
            if reactor.seconds() > deadline:
                raise RuntimeError(
                    f"{processes.pool_size} pre-started children not ready after "
                    f"{WORKERS_READY_S:g} s"
                )
            await deferLater(reactor, 0.05, lambda: None)

        def counters() -> dict[str, Any]:
            histogram = processes.spawn_latency()
            return {
                **server_counters(),
                "spawn_samples": list(histogram.recent),
                "spawn_count": histogram.count,
            }

        return ready, counters
    await workers_live(reactor, processes)
    workers = pool_counters(processes)

    def with_workers() -> Deferred[dict[str, Any]]:
        return workers().addCallback(lambda figures: {**server_counters(), **figures})

    return {**ready, "pids": [s.pid for s in processes.workers()]}, with_workers


def start_bare_tls(reactor: Any, settings: dict[str, Any]) -> Started:
    """A bare Twisted TLS server with the same kind of certificate as the lobby, answering
    every line with one line: the floor under the lobby's cost per connection."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    from vinom.server.certs import ensure_dev_certificate

    paths = ensure_dev_certificate(settings["data_dir"])
    held = [0]

    class Answer(LineOnlyReceiver):
        delimiter = b"\n"

        def connectionMade(self) -> None:
            held[0] += 1

        def connectionLost(self, reason: object = None) -> None:
            held[0] -= 1

        def lineReceived(self, line: bytes) -> None:
            self.sendLine(b'{"type":"welcome"}')

    port = free_tcp_port("127.0.0.1")
    endpoint = serverFromString(
        reactor,
        f"ssl:{port}:interface=127.0.0.1:backlog=1024:privateKey={paths.private_key}"
        f":certKey={paths.certificate}",
    )
    endpoint.listen(Factory.forProtocol(Answer))
    ready = {"lobby_port": port, "trust": str(paths.certificate), "rss_empty": rss_bytes()}
    return ready, lambda: {"lobby_connections": held[0]}


def _hosting_counters(hosting: Any) -> dict[str, Any]:
    """Games the hosting service is running now."""
    running = getattr(hosting, "running_games", None)
    return {"running_games": running if isinstance(running, int) else -1}


def census(top: int = 40) -> dict[str, int]:
    """Live objects by type (the most numerous `top`): where memory growth comes from."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return dict(counts.most_common(top))


def allocation_growth(top: int = 15) -> dict[str, int]:
    """Bytes still allocated, by source line, since the previous call (tracemalloc).

    The first call starts tracing and returns {}; tracing slows the process
    down, which is why only `--census` runs ask for it.
    """
    import tracemalloc

    if not tracemalloc.is_tracing():
        tracemalloc.start(1)
        return {}
    stats = tracemalloc.take_snapshot().statistics("lineno")
    out: dict[str, int] = {}
    for stat in stats[:top]:
        frame = stat.traceback[0]
        name = frame.filename
        for marker in ("/vinom/", "/twisted/", "/site-packages/", "/python3."):
            at = name.rfind(marker)
            if at >= 0:
                name = name[at + 1 :]
                break
        out[f"{name}:{frame.lineno}"] = stat.size
    return out


def main() -> None:
    kind, settings = sys.argv[1], json.loads(sys.argv[2])
    reactor = global_reactor(stock=settings.get("stock_reactor", False))
    from benchmarks.bare_game_socket import start_bare_game_socket

    starters = {
        "rooms": start_rooms,
        "server": start_server,
        "bare-tls": start_bare_tls,
        "bare-game-socket": start_bare_game_socket,
    }
    if kind not in starters:
        raise ValueError(f"unknown server kind {kind!r}")
    started = starters[kind](reactor, settings)
    counters: list[Callable[[], Any]] = []

    def mark(command: dict[str, Any]) -> Deferred[dict[str, Any]]:
        def reply(figures: dict[str, Any]) -> dict[str, Any]:
            answer = {"cpu_s": cpu_seconds(), "rss": rss_bytes(), "counters": figures}
            if command.get("census"):
                answer["census"] = census()
                answer["allocations"] = allocation_growth()
            return answer

        return maybeDeferred(counters[0]).addCallback(reply)

    control = start_control(reactor, {"mark": mark})

    def ready(pair: Ready) -> None:
        fields, counters_now = pair
        counters.append(counters_now)
        control.emit("ready", pid=os.getpid(), reactor=reactor_name(reactor), **fields)

    def failed(failure: Failure) -> None:
        control.emit(
            "error",
            message=f"{type(failure.value).__name__}: {failure.value}",
            traceback=failure.getTraceback(),
        )
        reactor.callLater(0.1, reactor.stop)

    if isinstance(started, Deferred):
        started.addCallbacks(ready, failed)
    else:
        ready(started)
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
