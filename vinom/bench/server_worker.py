"""Server worker of the room scenarios: `python -m vinom.bench.server_worker <kind> <json>`.

`rooms` (used by play and sessions) builds one real inline game host from
the pieces, without a lobby: `InlineGameHostFactory` starts a
`GameHostProtocol` over a `ServerEndpoint` with a `SessionManager` on one
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

import json
import os
import sys
import time
from typing import Any

from vinom.bench.worker import cpu_seconds, global_reactor, rss_bytes, run_guarded, start_control

DUEL = "duel"


def player_id(room: int, seat: int) -> str:
    """The id of the player in `seat` of bench room `room`."""
    return f"p-{room:06d}-{seat}"


def match_id(room: int) -> str:
    return f"m-{room:06d}"


def start_rooms(reactor: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The inline host with its matches; returns (ready fields, counters function)."""
    from vinom.bench.sessions_server import free_udp_port
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
    manager = host.sessions
    endpoint = host.protocol.endpoint

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
            "host_errors": host.protocol.errors,
        }

    ready = {"port": host.address.port, "rss_empty": rss_empty, "rss_rooms": rss_bytes()}
    return ready, counters


def main() -> None:
    kind, settings = sys.argv[1], json.loads(sys.argv[2])
    reactor = global_reactor()
    if kind == "rooms":
        ready, counters = start_rooms(reactor, settings)
    else:
        raise ValueError(f"unknown server kind {kind!r}")

    def mark(command: dict[str, Any]) -> dict[str, Any]:
        return {"cpu_s": cpu_seconds(), "rss": rss_bytes(), "counters": counters()}

    control = start_control(reactor, {"mark": mark})
    control.emit("ready", pid=os.getpid(), **ready)
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
