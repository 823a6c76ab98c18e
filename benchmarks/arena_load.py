"""Load side of `play --game arena`: eight bots a room sending velocity inputs at 20 Hz.

Each player is a `ClientConnection` (the code game clients use) in a
`room_load.RoomDriver`, with the connect token of one seat of the bench's
arena rooms (vinom.games.arena, hosted by `benchmarks.server_worker`). Once
its room plays, a player sends a velocity input `{"move": [vx, vy], "n": k}`
every 1/`input_rate` seconds on the reliable channel (action id k; the
players of a room are spread over the interval), and counts what it
receives: state messages and the bytes of every datagram from the host.

Two latencies per input, from sending it: `input_to_state`, to the first
state whose view shows a tick applied it (`ack` >= k: its effect is in the
world the player sees), and `echo`, to the first state that names it as the
player's last applied action (`i` >= k), which a game host may send before
any tick has moved anything.

The wire is in one place, a player's `wire` (what it sends for an input, and
what it reads from each message: tick, view, applied input, echoed action),
chosen at the room's welcome (`wire_for`): `SnapWire`, issue #35's inputs on
channel 0 and delta `snap`s, in a ticking room of a build that speaks them;
`StateWire`, reliable actions and full states, on an older build (a baseline
of `compare`).

`loss` and `delay_ms` (play's `--loss P`, `--delay MS`) impair the path in
the load process, both directions, once every player has connected (the
handshake runs clean): `LossyLink` drops a fraction P of the datagrams each
player sends and of those it receives, and holds every one it lets through
for `delay_ms` before sending or delivering it (to within the loop's 2 ms
wait). Each player and direction draws from a `random.Random` seeded with
`loss_seed`, its player id and the direction, so the n-th datagram a player
sends (or receives) is dropped or not whatever the timing.

Per player, in the window: `tick_rates` (how fast the room's tick moved
between the first and the newest state it got), `datagrams_in`
(datagrams from the host that reached the load's socket, before the
simulated drop: what the host sent it),
`datagrams_out` (datagrams the player sent, before the drop), `dropped_in`,
`dropped_out`, and `bytes`: the UDP payload bytes (the whole vinom datagram,
no IP or UDP header) of the datagrams delivered to the player (after the
drop).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import msgpack

from benchmarks.loadgen import DONE, Latencies, Timeline
from benchmarks.room_load import RoomDriver
from benchmarks.server_worker import player_id
from benchmarks.session_load import MAX_DATAGRAM, Client
from vinom.protocol.events import RELIABLE, UNRELIABLE

try:  # the messages a client sends, in a module of their own
    from vinom.rooms import client_messages
except ImportError:  # a build from before vinom.rooms.client_messages (compare's baseline)
    from vinom.rooms import messages as client_messages
encode_action = client_messages.encode_action
try:  # a client's reading of the room's messages, in a module of its own
    from vinom.rooms import message_reading
except ImportError:  # a build from before vinom.rooms.message_reading (compare's baseline)
    from vinom.rooms import messages as message_reading
decode_server_message = message_reading.decode_server_message

try:  # a build with real-time inputs and delta snaps (issue #35): the load speaks them
    from vinom.client.realtime import InputQueue, TickClock
    from vinom.rooms.delta import Quantisation, SnapshotReceiver
    from vinom.rooms.messages import ticking_ack_delays

    encode_input = client_messages.encode_input
except (ImportError, AttributeError):  # an older build: reliable actions and full states
    SnapshotReceiver = None  # type: ignore[assignment,misc]
try:  # a build with schema snapshots (docs/protocol.md §16.8): asked for unless told not to
    from vinom.rooms.schema import ViewSchema
except ImportError:
    ViewSchema = None  # type: ignore[assignment,misc]
try:  # a build whose every snap is the one relative form (§14): nothing to ask for
    from vinom.rooms.messages import SNAP_MARKER  # noqa: F401

    ONE_SNAP_FORM = True
except ImportError:
    ONE_SNAP_FORM = False
try:  # a build with packed snaps (§14), asked for with the schema snapshots
    from vinom.rooms.messages import READS_PACKED
except ImportError:
    READS_PACKED = None  # type: ignore[assignment,misc]
try:  # a build with relative packed snaps (§14, "pk": 2), asked for instead
    from vinom.rooms.messages import READS_RELATIVE
except ImportError:
    READS_RELATIVE = None  # type: ignore[assignment,misc]
resolve_kept = getattr(message_reading, "resolve_kept", None)

_unpackb = msgpack.unpackb
MAX_SPEED = 120.0
# Directions of LossyLink (and its heap's entries).
OUT = 0  # player -> host
IN = 1  # host -> player


class Update(NamedTuple):
    """What the load reads from a state the host sent one player."""

    tick: int
    playing: bool
    view: Mapping[str, Any]
    # The player's newest input number a tick has applied (the view's `ack`).
    applied: int
    # The player's last action id the host names (`i`), 0 for none.
    echoed: int


class StateWire:
    """The room messages of a build before issue #35's wire: each input a reliable
    `action` carrying the input number as its id; every state a full `state` message.
    One per player (`SnapWire` keeps the player's baselines and inputs)."""

    __slots__ = ()

    def input(self, number: int, move: list[float], now: float) -> tuple[int, bytes]:
        """(channel, message) of the player's input `number`."""
        return RELIABLE, encode_action({"move": move, "n": number}, number)

    def update(self, message: Mapping[str, Any], now: float) -> Update | None:
        """The state a message carries (None: not a state)."""
        if message["t"] != "state":
            return None
        view = message["s"]
        return Update(
            int(message.get("k") or 0), message["p"] == "playing", view,
            int(view.get("ack", 0)), message.get("i") or 0,
        )  # fmt: skip

    @property
    def drops(self) -> Mapping[str, int]:
        """Messages the wire could not read, by reason."""
        return {}


#: The round trip an input's tick assumes before the transport measured one (as
#: `GameSession`): none, so the next tick; an input that arrives late is applied at
#: the next tick, one stamped ahead waits (adding latency for nothing).
DEFAULT_RTT_S = 0.0


class SnapWire(StateWire):
    """Issue #35's wire (docs/protocol.md section 14), as `GameSession` speaks it:
    inputs `{"t": "input", "a": ack, "x": [[tick, input], ...]}` on channel 0, stamped
    for the server's tick plus a lead, every unacknowledged one repeated in each
    message; `snap`s rebuilt by a `SnapshotReceiver` (a snap it cannot rebuild is
    dropped and counted in `drops`); the session's acks ride on the inputs and the
    snaps (`set_ack_delays`: a tick, a snapshot interval). Full `state`s (after the
    welcome, other phases) are read as `StateWire` reads them. On a WebSocket or
    WebTransport (`conn` None) there are no session acks, and the inputs' lead
    assumes `DEFAULT_RTT_S` (the bench's players are on loopback: a round trip far
    below a tick)."""

    __slots__ = ("conn", "fields", "inputs", "receiver", "relative", "ticks")

    def __init__(self, welcome: Mapping[str, Any], conn: Any) -> None:
        tick_rate, snapshot_rate = float(welcome["tick_rate"]), float(welcome["snapshot_rate"])
        self.conn = conn
        quantisation = Quantisation(welcome.get("q") or ())
        declared = welcome.get("vs") if ViewSchema is not None else None
        self.receiver = (
            SnapshotReceiver(quantisation, schema=ViewSchema(declared)) if declared
            else SnapshotReceiver(quantisation)
        )  # fmt: skip
        self.ticks = TickClock(tick_rate)
        self.inputs = InputQueue()
        # Relative packed snaps (as GameSession reads them): each applied snap's
        # fields by tick, for those against it.
        self.relative = ONE_SNAP_FORM or (bool(declared) and READS_RELATIVE is not None)
        self.fields: dict[int, Any] = {}
        if conn is not None:
            host, client = ticking_ack_delays(tick_rate, snapshot_rate)
            conn.set_ack_delays(client, host)

    def input(self, number: int, move: list[float], now: float) -> tuple[int, bytes]:
        layer = None if self.conn is None else self.conn.reliability
        rtt = (
            layer.rtt_s if layer is not None and getattr(layer, "rtt_samples", False)
            else DEFAULT_RTT_S
        )  # fmt: skip
        self.inputs.add(self.ticks.input_tick(now, rtt), {"move": move, "n": number})
        receiver = self.receiver
        if not ONE_SNAP_FORM and getattr(receiver, "schema", None) is not None \
                and not receiver.wires:
            # Packed snaps too (docs/protocol.md §14): a build before them asks as it did.
            if READS_PACKED is None:
                return UNRELIABLE, encode_input(receiver.newest, self.inputs.pending, schema=True)
            return UNRELIABLE, encode_input(receiver.newest, self.inputs.pending,
                                            reads=READS_RELATIVE or READS_PACKED)  # fmt: skip
        return UNRELIABLE, encode_input(receiver.newest, self.inputs.pending)

    def update(self, message: Mapping[str, Any], now: float) -> Update | None:
        if message["t"] != "snap":
            return super().update(message, now)
        snapshot = self.receiver.receive(message["d"])
        if snapshot is None:
            return None  # stale, or its baseline lost: counted in the receiver's drops
        if "relative" in message:
            message = dict(message)
            if not resolve_kept(self.fields, message, snapshot.tick, snapshot.baseline_tick):
                return None  # never: every snapshot applied is kept
        self.ticks.observe(snapshot.tick, now)
        if message["ik"] is not None:
            self.inputs.acknowledge(message["ik"])
        view = snapshot.view
        return Update(snapshot.tick, True, view, int(view.get("ack", 0)), message["i"] or 0)

    @property
    def drops(self) -> Mapping[str, int]:
        return {"snap_" + reason: n for reason, n in self.receiver.drops.items()}


def wire_for(welcome: Mapping[str, Any], conn: Any) -> StateWire:
    """The wire a player speaks in the room `welcome` greets it to: `SnapWire` in a
    ticking room of a build that has it (reading schema snapshots when the welcome
    declares a schema), else `StateWire`."""
    if SnapshotReceiver is not None and welcome.get("tick_rate") and welcome.get("snapshot_rate"):
        return SnapWire(welcome, conn)
    return StateWire()


class LossyLink:
    """The load's impairment of the path, both directions (module docstring)."""

    def __init__(self, loss: float, delay_s: float, seed: int) -> None:
        self.loss = loss
        self.delay_s = delay_s
        self.seed = seed
        # (due, order, direction, client, datagram) held for the delay.
        self.held: list[tuple[float, int, int, Any, bytes]] = []
        self._order = 0

    def rngs(self, player_id: str) -> tuple[random.Random, random.Random]:
        """The player's draws for each direction (OUT, IN)."""
        return (
            random.Random(f"{self.seed}/{player_id}/out"),
            random.Random(f"{self.seed}/{player_id}/in"),
        )

    def hold(self, now: float, direction: int, client: Any, data: bytes) -> None:
        self._order += 1
        heapq.heappush(self.held, (now + self.delay_s, self._order, direction, client, data))


class ArenaPlayer:
    """One bot: its inputs in flight and what it received in the window."""

    __slots__ = (
        "bytes", "datagrams_in", "datagrams_out", "draws", "dropped_in", "dropped_out",
        "echo_pending", "first_at", "first_tick", "heading", "inputs", "last_at", "last_tick",
        "me", "next_input", "pending", "playing", "states", "wire",
    )  # fmt: skip

    def __init__(self, me: str, heading: float, link: LossyLink | None = None) -> None:
        self.me = me
        self.heading = heading
        self.wire = StateWire()
        # The loss draws of each direction (OUT, IN); None on a clean path.
        self.draws = None if link is None or not link.loss else link.rngs(me)
        self.playing = False
        self.inputs = 0  # the last input number sent
        self.next_input = math.inf
        # (input number, sent at), oldest first, until a state shows it.
        self.pending: list[tuple[int, float]] = []
        self.echo_pending: list[tuple[int, float]] = []
        self.states = 0
        # The room's tick in the first and the newest state of the window (-1: none).
        self.first_tick = self.last_tick = -1
        self.first_at = self.last_at = 0.0  # when they arrived
        self.bytes = 0
        self.datagrams_in = 0
        self.datagrams_out = 0
        self.dropped_in = 0
        self.dropped_out = 0

    def reset(self) -> None:
        """The window's counts start again."""
        self.states = self.bytes = 0
        self.first_tick = self.last_tick = -1
        self.datagrams_in = self.datagrams_out = self.dropped_in = self.dropped_out = 0


class ArenaBots:
    """The arena's players whatever carries their messages: when each sends an input
    and what, what it reads from the host's messages, the latencies and the error
    counts. The transports (`ArenaDriver` here, on vinom's UDP sessions;
    benchmarks.arena_web_load's WebSocket and WebTransport) move the bytes."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.interval = 1.0 / float(settings.get("input_rate", 20.0))
        self.rng = random.Random(int(settings.get("first_room", 0)))
        self.input_to_state = Latencies()
        self.echo = Latencies()
        self.measuring = False
        self.inputs_sent = 0
        # Messages the players could not read, and the host's errors (by code).
        self.errors = 0
        self.error_codes: dict[str, int] = {}

    def make_player(self, room: int, seat: int, link: LossyLink | None = None) -> ArenaPlayer:
        return ArenaPlayer(player_id(room, seat), self.rng.uniform(0, 2 * math.pi), link)

    def receive(self, player: ArenaPlayer, data: bytes, now: float, conn: Any = None) -> None:
        """One room message from the host; `conn` is the player's `ClientConnection`
        (its round trip and ack delays serve the snap wire), None on a stream."""
        try:
            if data[:1] == b"\xc1":  # a packed snap (docs/protocol.md §14)
                if ONE_SNAP_FORM:
                    message = decode_server_message(data)
                elif getattr(player.wire, "relative", False):
                    message = decode_server_message(data, True)
                else:
                    message = decode_server_message(data)
            else:
                message = _unpackb(data)
                if type(message) is list:  # a snap, [v, ts, r, i, ik, d] (§14)
                    message = {"t": "snap", "i": message[3], "ik": message[4], "d": message[5]}
            update = player.wire.update(message, now)
            if update is not None:
                player.states += 1
                if update.tick > player.last_tick:
                    if player.first_tick < 0:
                        player.first_tick = update.tick
                        player.first_at = now
                    player.last_tick = update.tick
                    player.last_at = now
                if not player.playing and update.playing:
                    player.playing = True
                    # The room's players spread their inputs over the interval.
                    player.next_input = now + self.rng.uniform(0, self.interval)
                self._seen(player.pending, update.applied, now, True)
                self._seen(player.echo_pending, update.echoed, now, False)
            elif message["t"] == "welcome":
                player.wire = wire_for(message, conn)
            elif message["t"] == "error":
                self.errors += 1
                code = str(message.get("code"))
                self.error_codes[code] = self.error_codes.get(code, 0) + 1
        except Exception:
            self.errors += 1

    def _seen(
        self, pending: list[tuple[int, float]], upto: int, now: float, effect: bool
    ) -> None:
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

    def next_input(self, player: ArenaPlayer, now: float) -> tuple[int, bytes] | None:
        """(channel, message) of the player's input if one is due (a new velocity,
        timed from now), else None."""
        if player.next_input > now:
            return None
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
        message = player.wire.input(number, move, now)
        player.pending.append((number, now))
        player.echo_pending.append((number, now))
        if self.measuring:
            self.inputs_sent += 1
        return message

    def start_window(self, players: Iterable[ArenaPlayer]) -> None:
        self.measuring = True
        self.input_to_state.clear()
        self.echo.clear()
        self.errors = 0
        self.inputs_sent = 0
        self.error_codes.clear()
        for player in players:
            player.reset()

    def timeline(self, settings: Mapping[str, Any], players: Iterable[ArenaPlayer]) -> Timeline:
        """The warm-up and the window, at whose start every count starts again."""
        return Timeline(
            float(settings["warmup"]),
            float(settings["duration"]),
            on_measure=lambda: self.start_window(players),
            progress=lambda: {"count": self.inputs_sent},
        )

    def result(
        self, players: list[ArenaPlayer], timeline: Timeline, errors: int,
        drops: Mapping[str, int],
    ) -> dict[str, Any]:  # fmt: skip
        """The load's figures for the window; `errors` besides the bots' own (closed
        sessions), `drops` the messages the transport dropped, by reason."""
        drops = dict(drops)
        for player in players:
            for reason, n in player.wire.drops.items():
                drops[reason] = drops.get(reason, 0) + n
        return {
            "players": len(players),
            "not_playing": sum(1 for p in players if not p.playing),
            "states": [p.states for p in players],
            "bytes": [p.bytes for p in players],
            "tick_rates": [
                (p.last_tick - p.first_tick) / (p.last_at - p.first_at)
                for p in players if p.last_at > p.first_at
            ],
            "datagrams_in": [p.datagrams_in for p in players],
            "datagrams_out": [p.datagrams_out for p in players],
            "dropped_in": sum(p.dropped_in for p in players),
            "dropped_out": sum(p.dropped_out for p in players),
            "inputs": self.inputs_sent,
            "errors": self.errors + errors,
            "error_codes": dict(self.error_codes),
            "window_s": timeline.window_s,
            "load_cpu_s": timeline.load_cpu_s,
            "histogram": self.input_to_state.encoded(),
            "echo_histogram": self.echo.encoded(),
            "client_drops": drops,
        }  # fmt: skip


class ArenaDriver(RoomDriver):
    """Connects the arena players over vinom's UDP sessions, then plays (`run_arena`)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.bots = ArenaBots(settings)
        loss = float(settings.get("loss", 0.0))
        delay_s = float(settings.get("delay_ms", 0.0)) / 1000
        self.link = (
            LossyLink(loss, delay_s, int(settings.get("loss_seed", 0)))
            if loss or delay_s else None
        )  # fmt: skip
        # The link impairs the path once every player has connected (run_arena).
        self.impaired = False

    def make_player(self, room: int, seat: int) -> ArenaPlayer:
        return self.bots.make_player(room, seat, self.link)

    def flush(self, client: Client, now: float) -> None:
        # As Driver.flush, counting each datagram sent and passing it through the link.
        if not self.impaired:
            out = client.conn.datagrams_to_send(now)
            if out:
                player = client.data
                if player is not None:
                    player.datagrams_out += len(out)
                send = client.sock.send
                for datagram, _ in out:
                    try:
                        send(datagram)
                    except OSError:
                        self.send_errors += 1
            self._rearm(client)
            return
        link = self.link
        assert link is not None
        player = client.data
        for datagram, _ in client.conn.datagrams_to_send(now):
            player.datagrams_out += 1
            if player.draws is not None and player.draws[OUT].random() < link.loss:
                player.dropped_out += 1
            elif link.delay_s:
                link.hold(now, OUT, client, datagram)
            else:
                self._send(client, datagram)
        self._rearm(client)

    def _send(self, client: Client, datagram: bytes) -> None:
        try:
            client.sock.send(datagram)
        except OSError:
            self.send_errors += 1

    def _rearm(self, client: Client) -> None:
        when = client.conn.get_timer()
        if when is not None and when < client.wake:
            client.wake = when
            heapq.heappush(self._heap, (when, client.index))

    def _readable(self, client: Client, now: float) -> None:
        # As Driver._readable, counting each datagram and passing it through the link.
        try:
            data = client.sock.recv(MAX_DATAGRAM)
        except OSError:
            return
        player: ArenaPlayer = client.data
        player.datagrams_in += 1
        if self.impaired:
            link = self.link
            assert link is not None
            if player.draws is not None and player.draws[IN].random() < link.loss:
                player.dropped_in += 1
                return
            if link.delay_s:
                link.hold(now, IN, client, data)
                return
        self._deliver(client, data, now)

    def _deliver(self, client: Client, data: bytes, now: float) -> None:
        client.data.bytes += len(data)
        client.conn.receive_datagram(data, client.server, now)
        self._dispatch(client, now)
        self.flush(client, now)

    def release(self, now: float) -> None:
        """Send or deliver the datagrams the link held whose delay is over."""
        link = self.link
        if link is None:
            return
        held = link.held
        while held and held[0][0] <= now:
            _due, _order, direction, client, data = heapq.heappop(held)
            if client.index not in self.clients:
                continue
            if direction == OUT:
                self._send(client, data)
            else:
                self._deliver(client, data, now)

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        self.bots.receive(client.data, data, now, client.conn)

    def send_inputs(self, now: float) -> None:
        """Every player whose input is due sends it (a new velocity)."""
        next_input = self.bots.next_input
        for client in self.clients.values():
            message = next_input(client.data, now)
            if message is not None:
                client.conn.send_message(*message)
                self.flush(client, now)

    def start_window(self) -> None:
        self.errors = 0
        self.bots.start_window(client.data for client in self.clients.values())


def run_arena(settings: dict[str, Any]) -> dict[str, Any]:
    driver = ArenaDriver(settings)
    driver.connect_all(float(settings.get("connect_limit", 30.0)))
    if driver.failed:
        raise RuntimeError(f"{driver.failed} players failed to connect")
    driver.impaired = driver.link is not None
    timeline = Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=driver.start_window,
        progress=lambda: {"count": driver.bots.inputs_sent},
    )
    timeline.start()
    clock = time.perf_counter
    while True:
        # Short waits: inputs go out on their time, to the millisecond.
        driver.step(0.002)
        now = clock()
        driver.release(now)
        driver.send_inputs(now)
        if timeline.check(now) == DONE:
            break
    players = [client.data for client in driver.clients.values()]
    # What the players' connections dropped (by reason), and their sessions' events.
    drops: dict[str, int] = {}
    for client in driver.clients.values():
        for reason, n in getattr(client.conn, "drops", {}).items():
            drops[reason] = drops.get(reason, 0) + n
    closed = driver.events.get("closed_timeout", 0) + driver.events.get("closed_closed", 0)
    result = driver.bots.result(players, timeline, driver.errors + closed, drops)
    result["send_errors"] = driver.send_errors
    result["session_events"] = dict(driver.events)
    driver.close()
    return result
