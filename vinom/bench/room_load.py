"""Load side of the room scenarios (play, sessions): lean duel players over vinom sessions.

Each player is a `ClientConnection` in a `session_load.Driver` with the
connect token of one seat of the bench's duel rooms (see
`vinom.bench.server_worker`). Messages are the rooms' msgpack schema
(vinom/rooms/messages.py): actions go on the reliable channel, states come
on the unreliable one.

play: a player sends `{"seq": n}` as soon as it sees a state in which its
own counter is n - 1 (so exactly one move in flight per player), and times
each move from sending it to the first state that includes it.

sessions: players connect and then stay idle; only keepalives flow.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack

from vinom.bench.loadgen import DONE, Latencies, Timeline
from vinom.bench.server_worker import match_id, player_id
from vinom.bench.session_load import Client, Driver, host_of, make_issuer, raise_fd_limit
from vinom.bench.worker import emit
from vinom.hosting.interfaces import HostAddress
from vinom.protocol.events import RELIABLE
from vinom.rooms.messages import encode_action

_unpackb = msgpack.unpackb


class Player:
    """What one duel player knows: its id, its last move and when it left."""

    __slots__ = ("me", "sent", "sent_at")

    def __init__(self, me: str) -> None:
        self.me = me
        self.sent = 0  # the last seq sent; confirmed once a state shows it
        self.sent_at = 0.0


class RoomDriver(Driver):
    """Connects both players of each bench room in `rooms`."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(host_of(settings))
        self.issuer = make_issuer(bytes.fromhex(settings["key"]))
        self.hosts = (HostAddress(*self.server),)
        self.rooms = range(int(settings["first_room"]), int(settings["last_room"]))
        self.connected = 0
        self.failed = 0
        self.errors = 0
        self.messages = 0
        self.error_codes: dict[str, int] = {}

    def connect_all(self, limit: float, in_flight: int = 256) -> None:
        """Handshake every player, at most `in_flight` at a time."""
        raise_fd_limit(2 * len(self.rooms) + 64)
        wanted = [(room, seat) for room in self.rooms for seat in (0, 1)]
        deadline = time.perf_counter() + limit
        next_progress = 0.0
        started = 0
        while self.connected + self.failed < len(wanted):
            now = time.perf_counter()
            while started < len(wanted) and started - self.connected - self.failed < in_flight:
                room, seat = wanted[started]
                token = self.issuer.issue_token(
                    player_id=player_id(room, seat), match_id=match_id(room), hosts=self.hosts,
                    now=time.time(),
                )
                client = self.add(token, now)
                client.data = Player(player_id(room, seat))
                started += 1
            self.step(0.01)
            if now >= next_progress:
                next_progress = now + 0.5
                emit("progress", phase="connect", count=self.connected, elapsed=0.0)
            if now > deadline:
                raise RuntimeError(
                    f"only {self.connected} of {len(wanted)} players connected in {limit:g} s"
                )

    def on_connected(self, client: Client, now: float) -> None:
        self.connected += 1

    def on_closed(self, client: Client, reason: str, now: float) -> None:
        self.failed += 1
        self.errors += 1
        self.error_codes["closed_" + reason] = self.error_codes.get("closed_" + reason, 0) + 1


class PlayDriver(RoomDriver):
    """Duel players with one move in flight each."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.latencies = Latencies()
        self.measuring = False
        self.moves = 0

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        self.messages += 1
        try:
            message = _unpackb(data)
            kind = message["t"]
        except Exception:
            self.errors += 1
            return
        if kind == "state":
            if message["p"] != "playing":
                return
            player: Player = client.data
            mine = message["s"]["seq"][player.me]
            if mine >= player.sent:
                if player.sent and self.measuring:
                    self.moves += 1
                    self.latencies.record(int((now - player.sent_at) * 1e6))
                player.sent = mine + 1
                player.sent_at = now
                client.conn.send_message(RELIABLE, encode_action({"seq": player.sent}))
        elif kind == "error":
            self.errors += 1
            code = str(message.get("code"))
            self.error_codes[code] = self.error_codes.get(code, 0) + 1


def run_play(settings: dict[str, Any]) -> dict[str, Any]:
    driver = PlayDriver(settings)
    driver.connect_all(float(settings.get("connect_limit", 30.0)))

    def on_measure() -> None:
        driver.measuring = True
        driver.latencies.clear()
        driver.moves = 0
        driver.messages = 0
        driver.errors = 0
        driver.error_codes.clear()

    timeline = Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=on_measure,
        progress=lambda: {"count": driver.moves},
    )
    timeline.start()
    while timeline.check(driver.step()) != DONE:
        pass
    result = {
        "moves": driver.moves,
        "messages": driver.messages,
        "errors": driver.errors,
        "error_codes": dict(driver.error_codes),
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "histogram": driver.latencies.encoded(),
        "send_errors": driver.send_errors,
    }
    driver.close()
    return result


class IdleDriver(RoomDriver):
    """Players that connect and then only keep their sessions alive."""

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        self.messages += 1


def run_sessions(settings: dict[str, Any]) -> dict[str, Any]:
    driver = IdleDriver(settings)
    started = time.perf_counter()
    driver.connect_all(float(settings.get("connect_limit", 120.0)))
    connect_s = time.perf_counter() - started
    connect_failures = driver.failed

    def on_measure() -> None:
        driver.messages = 0
        driver.errors = 0
        driver.error_codes.clear()

    timeline = Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=on_measure,
        progress=lambda: {"count": driver.connected - driver.failed},
    )
    timeline.start()
    while timeline.check(driver.step(0.1)) != DONE:
        pass
    result = {
        "sessions": driver.connected - driver.failed,
        "connect_s": connect_s,
        "failed_to_connect": connect_failures,
        "events": dict(driver.events),
        "messages": driver.messages,
        "errors": driver.errors,
        "error_codes": dict(driver.error_codes),
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "send_errors": driver.send_errors,
    }
    driver.close()
    return result
