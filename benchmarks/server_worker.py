"""Server worker of the room scenarios: `python -m benchmarks.server_worker <kind> <json>`.

`rooms` (used by play and sessions) builds one real inline game host from
the pieces, without a lobby: `InlineGameHostFactory` starts a
`GameHostProtocol` over a `GameHostCore` (endpoint, seat router, rooms) on one
UDP port, and the worker adds `rooms` two-player matches of the `duel` game
to it, with player ids every bench process derives the same way
(`player_id(room, seat)`). The load process seals the connect tokens for
those players with the key passed to both processes, exactly as the lobby
would. The worker answers `mark` commands with its counters, CPU and RSS.

`server` (used by match and soak) runs the whole vinom server of
`twistd vinom`: `vinom.tap.makeService` with the given options, lobby and
all, and reports the lobby port and dev certificate.
"""

from __future__ import annotations

import gc
import json
import os
import random
import socket
import sys
import time
from collections import Counter
from typing import Any

from benchmarks.worker import cpu_seconds, global_reactor, rss_bytes, run_guarded, start_control

DUEL = "duel"


def player_id(room: int, seat: int) -> str:
    """The id of the player in `seat` of bench room `room`."""
    return f"p-{room:06d}-{seat}"


def match_id(room: int) -> str:
    return f"m-{room:06d}"


def start_rooms(reactor: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The inline host with its matches; returns (ready fields, counters function)."""
    from benchmarks.sessions_server import free_udp_port
    from vinom.games.duel import DuelGame
    from vinom.games.registry import GameRegistry
    from vinom.hosting.inline import InlineGameHostFactory
    from vinom.matchmaking.interfaces import Match, Ticket
    from vinom.protocol.config import ProtocolConfig
    from vinom.rooms.room import RoomConfig

    interface = settings.get("interface", "127.0.0.1")
    registry = GameRegistry([DuelGame()])
    factory = InlineGameHostFactory(
        reactor=reactor,
        games=registry.get,
        protocol_config=ProtocolConfig(token_key=bytes.fromhex(settings["key"])),
        public_host=interface,
        interface=interface,
        room_config=RoomConfig(
            connect_deadline=float(settings.get("connect_deadline", 60.0)),
            state_interval=float(settings.get("state_interval", 1.0)),
        ),
    )
    hosts: list[Any] = []
    factory.start_host(free_udp_port(interface)).addCallback(hosts.append)
    (host,) = hosts
    rss_empty = rss_bytes()
    now = time.time()
    for room in range(int(settings["rooms"])):
        players = tuple(
            Ticket(player_id(room, seat), f"bot{room}.{seat}", DUEL, None, now) for seat in (0, 1)
        )
        host.add_match(Match(match_id(room), DUEL, players, now))
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
        }

    ready = {"port": host.address.port, "rss_empty": rss_empty, "rss_rooms": rss_bytes()}
    return ready, counters


def free_tcp_port(interface: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((interface, 0))
        return int(probe.getsockname()[1])


def ephemeral_ports() -> tuple[int, int]:
    """The range the OS picks client ports from (Linux; a common default elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_udp_range(interface: str, size: int, attempts: int = 200) -> tuple[int, int]:
    """`size` consecutive UDP ports, all free now and outside the ephemeral range.

    Outside it because every client socket of the load (and of anything else on
    the machine) takes an ephemeral port, and a game host must be able to bind
    its port whenever the allocator hands it out.
    """
    rng = random.Random()
    low_ephemeral, high_ephemeral = ephemeral_ports()
    candidates = [(1024, low_ephemeral - size), (high_ephemeral + 1, 65535 - size)]
    candidates = [(a, b) for a, b in candidates if b > a]
    if not candidates:
        raise RuntimeError(f"no room for {size} UDP ports outside the ephemeral range")
    for _ in range(attempts):
        first, last = rng.choice(candidates)
        low = rng.randrange(max(first, 10000) if last > 10000 else first, last)
        probes: list[socket.socket] = []
        try:
            for port in range(low, low + size):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind((interface, port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return low, low + size - 1
    raise RuntimeError(f"no {size} consecutive free UDP ports found")


def start_server(reactor: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The whole vinom server of `twistd vinom` (makeService), on free loopback ports."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from vinom import tap

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
    options = tap.Options()
    options.parseOptions(
        [
            "--lobby", f"ssl:{lobby_port}:interface={interface}{settings.get('lobby_extra', '')}",
            "--udp-ports", f"{low}-{high}",
            "--udp-interface", interface,
            "--public-host", interface,
            "--data-dir", settings["data_dir"],
            # The bench game is offered only when asked for.
            "--games", settings.get("games", "duel,maze,tictactoe,dice,owedrahn"),
            # Several bench servers may run at once: no fixed operations or web port.
            "--ops-port", "none",
            "--websocket", "none",
            # One address for every bench client: lift the per-IP abuse limits.
            "--max-connections-per-ip", "1000000",
            "--max-pending-per-ip", "1000000",
            "--max-matches-per-ip", "1000000",
            "--queue-rate", "1000000",
            "--queue-burst", "1000000",
            "--frame-rate", "1000",
            "--frame-burst", "1000",
            *settings.get("extra_args", []),
        ]
    )  # fmt: skip
    root = tap.makeService(options, reactor)
    rss_empty = rss_bytes()
    root.startService()
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    from vinom.certs import CERT_FILE

    trust = os.path.join(settings["data_dir"], CERT_FILE)
    hosting = root.getServiceNamed("hosting")
    lobby = root.getServiceNamed("lobby")

    def counters() -> dict[str, Any]:
        out = _hosting_counters(hosting)
        store = getattr(lobby, "store", None)
        for name in ("player_count", "placement_count"):
            value = getattr(store, name, None)
            if isinstance(value, int):
                out[f"store_{name}"] = value
        out["lobby_connections"] = lobby.connection_count
        out["lobby_waiting_matches"] = lobby.waiting_matches
        return out

    ready = {"lobby_port": lobby_port, "trust": trust, "udp_ports": [low, high],
             "rss_empty": rss_empty}
    return ready, counters


def start_bare_tls(reactor: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A bare Twisted TLS server with the same kind of certificate as the lobby, answering
    every line with one line: the floor under the lobby's cost per connection."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    from vinom.certs import ensure_dev_certificate

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
    reactor = global_reactor()
    if kind == "rooms":
        ready, counters = start_rooms(reactor, settings)
    elif kind == "server":
        ready, counters = start_server(reactor, settings)
    elif kind == "bare-tls":
        ready, counters = start_bare_tls(reactor, settings)
    else:
        raise ValueError(f"unknown server kind {kind!r}")

    def mark(command: dict[str, Any]) -> dict[str, Any]:
        reply = {"cpu_s": cpu_seconds(), "rss": rss_bytes(), "counters": counters()}
        if command.get("census"):
            reply["census"] = census()
            reply["allocations"] = allocation_growth()
        return reply

    control = start_control(reactor, {"mark": mark})
    control.emit("ready", pid=os.getpid(), **ready)
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
