"""The game client: one player's session in a running match, over the UDP session protocol.

Typical use::

    session = await connect_game(reactor, match_found)   # a MatchFound from the lobby
    session.on_state = lambda s: draw(s["s"])           # newest state only
    session.send_action({"move": "N", "from": [0, 0]})
    result = await session.finished                      # the final `phase` message

States arrive on the unreliable channel and may be lost, duplicated or
reordered: the session keeps only a state whose version is newer than the one
it holds and drops the rest (`stale_states`). Each state carries the server's
tick number and time (`tick`, `server_time`), for a client that interpolates
between states of a real-time game. Events, errors and phase changes
arrive on the reliable channel, in order. The message schema is in
`vinom.rooms.messages` and docs/client.md.

A real-time game (one with a tick) sends its states while playing as
``snap`` messages: delta snapshots against the newest one this session
acknowledged (docs/protocol.md §14, §16). The session rebuilds each with a
`SnapshotReceiver` and presents it as the same ``state`` dict, so game code
does not change; a snap it cannot rebuild is dropped (`snap_drops`). Its
inputs go with `send_input`: stamped with a tick, repeated until the host
has them (`vinom.client.realtime`), on the unreliable channel; each carries
the newest snapshot tick applied, the host's delta baseline.

Each snap also feeds the client-side netcode (`vinom.client.netcode`,
docs/client.md "Clock, interpolation and prediction"): `server_clock`
estimates the server's tick and time (`server_tick_now`,
`server_time_now`); `interpolate(...)` keeps a `SnapshotBuffer` of the views
for `rendered()`; `predict(step, own)` runs the player's inputs through the
game's rules at once (`predicted()`), reconciled with every snap; the events it
causes are shown before the host's word (`predict_events`), settled by every snap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import count
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorUDP

from vinom.client.lobby import MatchFound
from vinom.client.netcode import (
    CORRECTION_EPSILON,
    EVENT_WAIT_TICKS,
    SMOOTHING,
    EventsSettled,
    Interpolation,
    PredictedEvents,
    Predictor,
    ServerClock,
    SnapshotBuffer,
    Step,
)
from vinom.client.realtime import InputQueue, TickClock
from vinom.client.udp import GameClientProtocol, connect_game_client
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.client_messages import encode_action, encode_input, encode_leave, encode_sync
from vinom.rooms.delta import Quantisation, SnapshotReceiver
from vinom.rooms.message_reading import decode_server_message, resolve_kept, state_of_snap
from vinom.rooms.messages import SnapFields, ticking_ack_delays
from vinom.rooms.schema import ViewSchema

MessageHandler = Callable[[dict[str, Any]], object]
# The shortest quiet before an ack-only input (docs/protocol.md section 14, `input`).
ACK_ONLY_FLOOR = 0.1
ENDED_PHASES = ("finished", "aborted")
#: Before the transport has measured a round trip, an input's tick assumes this one:
#: none, so the next tick. An input that arrives late is applied at the next tick
#: (up to 8 ticks late); one stamped ahead waits, adding latency for nothing.
DEFAULT_RTT = 0.0


class GameSession:
    """A connected player's view of a match (see module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` (seconds) times the tick estimate of `send_input` and the acks."""
        self._clock = clock
        self.protocol: GameClientProtocol | None = None
        self.welcome: dict[str, Any] | None = None
        self.state: dict[str, Any] | None = None
        self.version = -1
        self.phase = "waiting"
        self.result: dict[str, Any] | None = None
        self.finished: Deferred[dict[str, Any]] = Deferred()
        self.on_state: MessageHandler | None = None
        self.on_event: MessageHandler | None = None
        self.on_error: MessageHandler | None = None
        self.on_phase: MessageHandler | None = None
        self.on_presence: MessageHandler | None = None
        self.on_welcome: MessageHandler | None = None
        # Called with {"reason": ...} when the UDP session ends (see session_closed).
        self.on_closed: MessageHandler | None = None
        self.close_reason: str | None = None
        self.stale_states = 0
        self.undecodable = 0
        self._action_ids = count(1)
        # A ticking room: its snapshots' decoder, the server's tick, the inputs
        # not acknowledged yet, and when the last input message went.
        self.snapshots: SnapshotReceiver | None = None
        self._snap_fields: dict[int, SnapFields] | None = None
        self.ticks: TickClock | None = None
        self.inputs = InputQueue()
        self._input_sent_at = -float("inf")
        # Client-side netcode (vinom.client.netcode): the server's clock from the
        # snaps; the views for interpolation and the own prediction, when asked for.
        self.server_clock: ServerClock | None = None
        self.snapshot_buffer: SnapshotBuffer | None = None
        self.prediction: Predictor[Any] | None = None
        self._own: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None = None
        # The events this player causes, shown before the host's word, when asked for;
        # what each snap settled of them goes to `on_events`.
        self.events: PredictedEvents | None = None
        self.on_events: Callable[[EventsSettled], object] | None = None

    @property
    def player_id(self) -> str | None:
        return self.protocol.session.player_id if self.protocol and self.protocol.session else None

    @property
    def seat(self) -> int | None:
        return None if self.welcome is None else int(self.welcome["seat"])

    @property
    def view(self) -> Mapping[str, Any] | None:
        """The game's view of the newest state (what the game shows this player)."""
        return None if self.state is None else self.state["s"]

    @property
    def tick(self) -> int | None:
        """The server's tick number when the newest state was built (`k`; 0 for a
        game without a tick), or None before the first state (or from a server
        that does not send it)."""
        return None if self.state is None else self.state.get("k")

    @property
    def tick_rate(self) -> float | None:
        """The game's ticks per second from the welcome (0: no tick), or None before
        the welcome or from a server that does not send it. A tick is exactly
        ``1 / tick_rate`` seconds and tick `k` falls at the start of play plus
        ``k / tick_rate``: the step a predicting client uses."""
        return _number(self.welcome, "tick_rate")

    @property
    def snapshot_rate(self) -> float | None:
        """The states per second this player gets while playing, from the welcome
        (0: one after every change, a game without a tick), or None before the
        welcome or from a server that does not send it."""
        return _number(self.welcome, "snapshot_rate")

    @property
    def server_time(self) -> float | None:
        """The newest state's server time in seconds since the room opened (from
        its ``ts`` milliseconds), or None: what a client interpolating between
        states places them on."""
        ts = None if self.state is None else self.state.get("ts")
        return None if ts is None else ts / 1000.0

    # -- client-side netcode (vinom.client.netcode) -------------------------

    @property
    def round_trip_time(self) -> float:
        """The transport's round-trip estimate in seconds (0 before it measured one)."""
        return self._rtt()

    @property
    def server_tick_now(self) -> float | None:
        """The server's tick now, fractional, from the clock sync (`ServerClock`):
        None before the first snap of a ticking room."""
        clock = self.server_clock
        return None if clock is None else clock.tick(self._clock(), self._rtt())

    @property
    def server_time_now(self) -> float | None:
        """The room's time now in seconds (the clock of a state's ``ts``), from the
        clock sync; None before the first snap of a ticking room."""
        clock = self.server_clock
        return None if clock is None else clock.time(self._clock(), self._rtt())

    def interpolate(
        self,
        interpolation: Interpolation | None = None,
        *,
        delay: float | None = None,
        max_extrapolation: float | None = None,
    ) -> SnapshotBuffer:
        """Keep the views of the snaps from now on in a `SnapshotBuffer` (the numeric
        fields `interpolation` names interpolated), rendered by `rendered()` at the
        server's time minus `delay` (default: two snapshot intervals). Call it once
        the welcome came (ValueError before, or in a game without a tick)."""
        rate = self.snapshot_rate
        if not rate or self.server_clock is None:
            raise ValueError("interpolate is for a game with a tick, after its welcome")
        self.snapshot_buffer = SnapshotBuffer(
            rate, interpolation or Interpolation(), delay, max_extrapolation
        )
        return self.snapshot_buffer

    def rendered(self) -> Any:
        """The interpolated view to draw now (None before `interpolate` and a snap),
        placed on the ticks' timeline (tick ``k`` at ``k / tick_rate`` seconds):
        the server's time as the fastest snaps show it on arrival (the clock
        without the half round trip the server ran on meanwhile), minus the
        buffer's delay."""
        buffer, clock, rate = self.snapshot_buffer, self.server_clock, self.tick_rate
        tick = None if clock is None else clock.tick(self._clock())
        return None if buffer is None or tick is None or not rate else buffer.render(tick / rate)

    def predict(
        self,
        step: Step[Any],
        own: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
        *,
        smooth: tuple[str, ...] = (),
        wrap: Mapping[str, float] | None = None,
        smoothing: float = SMOOTHING,
        tolerance: float = CORRECTION_EPSILON,
        teleport: float = math.inf,
    ) -> Predictor[Any]:
        """Predict this player's own state: `own(view)` is its part of a snap's view (a
        map; None when the view has none), `step(state, inputs, dt)` the game's rules
        for one tick; `send_input` feeds it, each snap reconciles it; `predicted()`
        is what to draw (`Predictor`). A snap whose view has no own state (the
        entity is dead) resets the prediction: nothing is predicted until one
        has it again, shown where it is; a correction beyond `teleport` is shown
        at once. After the welcome of a game with a tick."""
        rate = self.tick_rate
        if not rate or self.server_clock is None:
            raise ValueError("predict is for a game with a tick, after its welcome")
        self._own = own
        self.prediction = Predictor(
            step, rate, smooth, dict(wrap or {}), smoothing, tolerance, teleport
        )
        return self.prediction

    def predict_events(
        self,
        confirms: Callable[[Any], Iterable[Any]],
        *,
        refuses: Callable[[Any], Iterable[Any]] | None = None,
        wait_ticks: int = EVENT_WAIT_TICKS,
    ) -> PredictedEvents:
        """Show the events this player causes (a shot) before the host's word:
        `confirms(view)` gives the event ids a snap's view names as happened,
        `refuses(view)` those the host refused (`PredictedEvents`). The game calls
        `events.predict(id, tick, event)` with the tick `send_input` returned for the
        input carrying `id`; each applied snap settles them and calls `on_events`
        with what it settled, when it settled any. After the welcome of a game with
        a tick."""
        if not self.tick_rate or self.server_clock is None:
            raise ValueError("predict_events is for a game with a tick, after its welcome")
        self.events = PredictedEvents(confirms, refuses, wait_ticks)
        return self.events

    @property
    def prediction_tick(self) -> float | None:
        """The fractional tick an input given now reaches the host at: the server's
        tick now plus half a round trip (what `predicted()` shows)."""
        tick, rate = self.server_tick_now, self.tick_rate
        if tick is None or not rate:
            return None
        return tick + self._rtt() / 2 * rate

    def predicted(self) -> Mapping[str, Any] | None:
        """The own state to draw now (None before `predict` and a snap with it)."""
        prediction, tick = self.prediction, self.prediction_tick
        if prediction is None or tick is None:
            return None
        return prediction.render(tick, self._clock())

    # -- sending ----------------------------------------------------------

    def send_action(self, action: Mapping[str, Any]) -> int:
        """Send a game action on the reliable channel; returns its id (echoed in replies)."""
        action_id = next(self._action_ids)
        self._send(encode_action(action, action_id))
        return action_id

    def send_input(self, value: Mapping[str, Any]) -> int:
        """Send a real-time input (a map, what the game's action handler takes) for
        the tick it should reach the host by; returns that tick.

        Unreliable, repeated in every input message until the host has it (at
        most 8 waiting; the oldest go first). After `rendered()`, it says the
        moment last drawn, for the game's lag compensation. Only in a game with a tick, once
        its welcome came (ValueError otherwise)."""
        ticks = self.ticks
        if ticks is None:
            raise ValueError("send_input is for a game with a tick, after its welcome")
        # The first tick the host runs after the input arrives: the synced clock's
        # tick now plus half a round trip (what `predicted()` shows), else the
        # newest snap's tick run on (before any snap: tick 1).
        ahead = self.prediction_tick
        if ahead is None:
            at = ticks.input_tick(self._clock(), self._rtt())
        else:
            at = math.floor(ahead) + 1
        # What the player saw: the others as last rendered (lag compensation).
        buffer, seen = self.snapshot_buffer, None
        if buffer is not None and buffer.rendered_at is not None:
            seen = buffer.rendered_at * ticks.tick_rate
        tick = self.inputs.add(at, value, seen)
        if self.prediction is not None:
            self.prediction.add(tick, value)
        self._send_inputs()
        return tick

    @property
    def snap_drops(self) -> Mapping[str, int]:
        """Snaps dropped by reason (`vinom.rooms.delta.DROP_REASONS`): ``stale``
        (late or duplicated: harmless), ``unknown_baseline`` (its baseline was
        lost; the next ack brings a full one), ``corrupt``, ``checksum`` (bugs)."""
        return {} if self.snapshots is None else dict(self.snapshots.drops)

    @property
    def snapshot_format(self) -> str | None:
        """How this session's snaps come: ``"schema"`` once one came bit-packed by the
        game's view schema (docs/protocol.md §16.8), ``"msgpack"`` before that or in a
        game without one; None outside a ticking room."""
        snapshots = self.snapshots
        if snapshots is None:
            return None
        return "schema" if snapshots.wires else "msgpack"

    def _send_inputs(self) -> None:
        if self.protocol is None:
            raise ValueError("not connected")
        snapshots = self.snapshots
        ack = None if snapshots is None else snapshots.newest
        self._input_sent_at = self._clock()
        inputs = self.inputs
        self.protocol.send(UNRELIABLE, encode_input(ack, inputs.pending, inputs.drawn))

    def _rtt(self) -> float:
        rtt = None if self.protocol is None else self.protocol.round_trip_time
        return DEFAULT_RTT if rtt is None else rtt

    def tune_ack_delays(self, own_s: float, peer_s: float) -> None:
        """The welcome of a ticking room came: this side's acks should ride on its
        inputs (held up to `own_s`, a tick) and the host's on its snaps (`peer_s`,
        a snapshot interval), with no ack-only datagrams."""
        if self.protocol is not None:
            self.protocol.set_ack_delays(own_s, peer_s)

    def sync(self) -> None:
        """Ask for the current state on the reliable channel."""
        self._send(encode_sync())

    def leave(self) -> Deferred[None]:
        """Leave the match for good and close the session."""
        self._send(encode_leave())
        return self.disconnect()

    def disconnect(self) -> Deferred[None]:
        """Close the UDP session (the seat is kept for the reconnection window)."""
        if self.protocol is None:
            return succeed(None)
        return self.protocol.disconnect()

    def _send(self, data: bytes) -> None:
        if self.protocol is None:
            raise ValueError("not connected")
        self.protocol.send(RELIABLE, data)

    @property
    def connected(self) -> bool:
        """True while the UDP session is up (False before it, and after it closed)."""
        return self.protocol is not None and not self.protocol.closed.called

    def session_closed(self, reason: str, protocol: GameClientProtocol) -> str:
        """The UDP session ended. `finished` stays pending unless the match ended:
        after a lost session the player may reconnect through the lobby."""
        if protocol is self.protocol:
            self.close_reason = reason
            _call(self.on_closed, {"reason": reason})
        return reason

    # -- receiving --------------------------------------------------------

    def message_received(self, channel: int, data: bytes) -> None:
        message = decode_server_message(data)
        if message is None:
            self.undecodable += 1
            return
        kind = message["t"]
        if kind == "state":
            if message["v"] <= self.version:
                self.stale_states += 1
                return
            self.version = message["v"]
            self.state = message
            self.phase = message["p"]
            _call(self.on_state, message)
        elif kind == "snap":
            self._snap_received(message)
        elif kind == "welcome":
            self.welcome = message
            self._ticking(message)
            if message["reconnected"] and self.version >= 0:
                # A new session after a reconnection: the state that follows is the
                # current one even if its version equals the one we hold; an older
                # one (the room's version never goes back) is still dropped.
                self.version -= 1
            _call(self.on_welcome, message)
        elif kind == "phase":
            self.phase = message["p"]
            _call(self.on_phase, message)
            if self.phase in ENDED_PHASES and not self.finished.called:
                self.result = message.get("result")
                self.finished.callback(message)
        elif kind == "event":
            _call(self.on_event, message)
        elif kind == "error":
            _call(self.on_error, message)
        elif kind == "presence":
            _call(self.on_presence, message)

    def _ticking(self, welcome: Mapping[str, Any]) -> None:
        """A welcome: a ticking room's session gets a snapshot decoder (a new one:
        the host keeps none of the last session's baselines) and a tick clock."""
        tick_rate, snapshot_rate = self.tick_rate, self.snapshot_rate
        if not tick_rate or not snapshot_rate:
            self.snapshots = self.ticks = self.server_clock = self._snap_fields = None
            return
        try:
            quantisation = Quantisation(welcome.get("q") or ())
        except (TypeError, ValueError):
            self.undecodable += 1  # rules this client cannot read: every snap would fail
            quantisation = Quantisation()
        try:
            schema = None if welcome.get("vs") is None else ViewSchema(welcome["vs"])
        except (TypeError, ValueError):
            self.undecodable += 1  # a schema it cannot read: snaps stay schema-less
            schema = None
        self.snapshots = SnapshotReceiver(quantisation, schema=schema)
        # Each applied snap's numbers, by tick, for the snaps against it
        # (docs/protocol.md §14).
        self._snap_fields = {}
        self.ticks = TickClock(tick_rate)
        # A new session's snaps start afresh; a reconnection's clock starts over too.
        self.server_clock = ServerClock(tick_rate)
        host, client = ticking_ack_delays(tick_rate, snapshot_rate)
        self.tune_ack_delays(client, host)

    def _snap_received(self, message: dict[str, Any]) -> None:
        snapshots, ticks = self.snapshots, self.ticks
        if snapshots is None or ticks is None:
            self.undecodable += 1  # a snap outside a ticking room
            return
        snapshot = snapshots.receive(message["d"])
        if snapshot is None:
            return  # counted by reason in snap_drops
        known = self._snap_fields
        if known is None or not resolve_kept(known, message, snapshot.tick,
                                             snapshot.baseline_tick):  # fmt: skip
            self.undecodable += 1  # never: every snapshot applied is kept
            return
        now = self._clock()
        ticks.observe(snapshot.tick, now)
        self._netcode(snapshot.tick, message.get("ts"), snapshot.view, now)
        input_tick = message["ik"]
        if input_tick is not None:
            self.inputs.acknowledge(input_tick)
        # Acks ride on inputs: with none sent for two snapshot intervals (and
        # 100 ms: at most 10 a second, however fast the snaps), an input message
        # (carrying any still unacknowledged) says what we hold.
        rate = self.snapshot_rate or 0.0
        quiet = max(2.0 / rate, ACK_ONLY_FLOOR) if rate else 0.0
        if rate and now - self._input_sent_at >= quiet and self.protocol is not None:
            self._send_inputs()
        if message["v"] <= self.version:
            self.stale_states += 1
            return
        state = state_of_snap(message, snapshot.tick, snapshot.view)
        self.version = state["v"]
        self.state = state
        self.phase = "playing"
        _call(self.on_state, state)

    def _netcode(self, tick: int, ts: object, view: Any, now: float) -> None:
        """An applied snap of `tick`: a sample for the clock, a view for the
        interpolation, the authoritative own state for the prediction."""
        server_ms = float(ts) if isinstance(ts, int | float) else None
        if self.server_clock is not None:
            self.server_clock.observe(tick, server_ms, now)
        if self.snapshot_buffer is not None and self.tick_rate:
            # On the tick's timeline (the fixed step: tick k at k / tick_rate s of play).
            self.snapshot_buffer.push(tick / self.tick_rate, view)
        if self.prediction is not None and self._own is not None and isinstance(view, Mapping):
            own = self._own(view)
            if own is not None:
                self.prediction.reconcile(tick, own, now)
            elif self.prediction.base is not None:
                # The own entity is gone (dead): drive nothing on until it is back.
                self.prediction.reset()
        if self.events is not None:
            settled = self.events.settle(tick, view)
            if (settled.confirmed or settled.retracted) and self.on_events is not None:
                self.on_events(settled)


def _number(message: Mapping[str, Any] | None, key: str) -> float | None:
    value = None if message is None else message.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _call(handler: MessageHandler | None, message: dict[str, Any]) -> None:
    if handler is not None:
        handler(message)


def connect_game(
    reactor: IReactorUDP,
    found: MatchFound | Mapping[str, Any],
    *,
    session: GameSession | None = None,
) -> Deferred[GameSession]:
    """Connect to the game host of a `match_found` (or the token mapping inside it);
    through its UDP relay when the `match_found` names one.

    To resume after a reconnection, pass the old `session`: its callbacks,
    newest version and `finished` Deferred carry over to the new UDP session.
    """
    token = found.token if isinstance(found, MatchFound) else found
    relay = found.relay if isinstance(found, MatchFound) else None
    game = session or GameSession()

    def connected(protocol: GameClientProtocol) -> GameSession:
        game.protocol = protocol
        protocol.closed.addCallback(game.session_closed, protocol)
        return game

    d = connect_game_client(reactor, token, on_message=game.message_received, relay=relay)
    return d.addCallback(connected)
