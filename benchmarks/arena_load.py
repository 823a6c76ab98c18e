"""Load side of `play --game arena`: eight bots a room sending velocity inputs at 20 Hz.

Each player is a `ClientConnection` (the code game clients use) in a
`room_load.RoomDriver`, with the connect token of one seat of the bench's
arena rooms (benchmarks.arena, hosted by `benchmarks.server_worker`). Once
its room plays, a player sends a velocity input `{"move": [vx, vy], "n": k}`
every 1/`input_rate` seconds on the reliable channel (action id k; the
players of a room are spread over the interval), and counts what it
receives: state messages and the bytes of every datagram from the host.

Two latencies per input, from sending it: `input_to_state`, to the first
state whose view shows a tick applied it (`ack` >= k: its effect is in the
world the player sees), and `echo`, to the first state that names it as the
player's last applied action (`i` >= k), which a game host may send before
any tick has moved anything.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import msgpack

from benchmarks.loadgen import DONE, Latencies, Timeline
from benchmarks.room_load import RoomDriver
from benchmarks.server_worker import player_id
from benchmarks.session_load import MAX_DATAGRAM, Client
from vinom.protocol.events import RELIABLE
from vinom.rooms.messages import encode_action

_unpackb = msgpack.unpackb
MAX_SPEED = 120.0


class ArenaPlayer:
    """One bot: its inputs in flight and what it received in the window."""

    __slots__ = (
        "bytes", "echo_pending", "heading", "inputs", "me", "next_input", "pending", "playing",
        "states",
    )  # fmt: skip

    def __init__(self, me: str, heading: float) -> None:
        self.me = me
        self.heading = heading
        self.playing = False
        self.inputs = 0  # the last input number sent
        self.next_input = math.inf
        # (input number, sent at), oldest first, until a state shows it.
        self.pending: list[tuple[int, float]] = []
        self.echo_pending: list[tuple[int, float]] = []
        self.states = 0
        self.bytes = 0


class ArenaDriver(RoomDriver):
    """Connects the arena players, then plays (`run_arena`)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.interval = 1.0 / float(settings.get("input_rate", 20.0))
        self.rng = random.Random(int(settings.get("first_room", 0)))
        self.input_to_state = Latencies()
        self.echo = Latencies()
        self.measuring = False
        self.inputs_sent = 0
        self.error_codes: dict[str, int] = {}

    def make_player(self, room: int, seat: int) -> ArenaPlayer:
        return ArenaPlayer(player_id(room, seat), self.rng.uniform(0, 2 * math.pi))

    def _readable(self, client: Client, now: float) -> None:
        # As Driver._readable, counting the bytes of each datagram received.
        try:
            data = client.sock.recv(MAX_DATAGRAM)
        except OSError:
            return
        client.data.bytes += len(data)
        client.conn.receive_datagram(data, client.server, now)
        self._dispatch(client, now)
        self.flush(client, now)

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        player: ArenaPlayer = client.data
        try:
            message = _unpackb(data)
            kind = message["t"]
            if kind == "state":
                player.states += 1
                if not player.playing and message["p"] == "playing":
                    player.playing = True
                    # The room's players spread their inputs over the interval.
                    player.next_input = now + self.rng.uniform(0, self.interval)
                self._seen(player, player.pending, message["s"].get("ack", 0), now, True)
                self._seen(player, player.echo_pending, message.get("i") or 0, now, False)
            elif kind == "error":
                self.errors += 1
                code = str(message.get("code"))
                self.error_codes[code] = self.error_codes.get(code, 0) + 1
        except Exception:
            self.errors += 1

    def _seen(
        self, player: ArenaPlayer, pending: list[tuple[int, float]], upto: int, now: float,
        effect: bool,
    ) -> None:  # fmt: skip
        if not pending or pending[0][0] > upto:
            return
        record = (self.input_to_state if effect else self.echo).record
        done = 0
        for number, sent_at in pending:
            if number > upto:
                break
            if self.measuring:
                record(int((now - sent_at) * 1e6))
            done += 1
        del pending[:done]

    def send_inputs(self, now: float) -> None:
        """Every player whose input is due sends it (a new velocity)."""
        for client in self.clients.values():
            player: ArenaPlayer = client.data
            if player.next_input > now:
                continue
            player.next_input += self.interval
            if player.next_input <= now:  # fell behind: keep the rate, not the backlog
                player.next_input = now + self.interval
            player.heading += self.rng.uniform(-0.6, 0.6)
            speed = MAX_SPEED * 0.8
            move = [
                round(speed * math.cos(player.heading), 1),
                round(speed * math.sin(player.heading), 1),
            ]
            player.inputs += 1
            number = player.inputs
            client.conn.send_message(RELIABLE, encode_action({"move": move, "n": number}, number))
            self.flush(client, now)
            player.pending.append((number, now))
            player.echo_pending.append((number, now))
            if self.measuring:
                self.inputs_sent += 1

    def start_window(self) -> None:
        self.measuring = True
        self.input_to_state.clear()
        self.echo.clear()
        self.errors = 0
        self.inputs_sent = 0
        self.error_codes.clear()
        for client in self.clients.values():
            player: ArenaPlayer = client.data
            player.states = 0
            player.bytes = 0


def run_arena(settings: dict[str, Any]) -> dict[str, Any]:
    driver = ArenaDriver(settings)
    driver.connect_all(float(settings.get("connect_limit", 30.0)))
    if driver.failed:
        raise RuntimeError(f"{driver.failed} players failed to connect")
    timeline = Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=driver.start_window,
        progress=lambda: {"count": driver.inputs_sent},
    )
    timeline.start()
    clock = time.perf_counter
    while True:
        # Short waits: inputs go out on their time, to the millisecond.
        driver.step(0.002)
        now = clock()
        driver.send_inputs(now)
        if timeline.check(now) == DONE:
            break
    players = [client.data for client in driver.clients.values()]
    closed = driver.events.get("closed_timeout", 0) + driver.events.get("closed_closed", 0)
    result = {
        "players": len(players),
        "not_playing": sum(1 for p in players if not p.playing),
        "states": [p.states for p in players],
        "bytes": [p.bytes for p in players],
        "inputs": driver.inputs_sent,
        "errors": driver.errors + closed,
        "error_codes": dict(driver.error_codes),
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "histogram": driver.input_to_state.encoded(),
        "echo_histogram": driver.echo.encoded(),
        "send_errors": driver.send_errors,
    }
    driver.close()
    return result
