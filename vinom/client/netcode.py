"""Client-side netcode for real-time games: clock sync, snapshot interpolation,
prediction with reconciliation (docs/client.md, "Clock, interpolation and
prediction"; docs/games.md, "Real-time games").

Sans-I/O: every call takes the caller's clock reading `now` (seconds) and
returns values; no reactor, no sockets. `GameSession` feeds them from its
snaps and inputs; a terminal view or a test may use them alone. The web
client has the same three in JavaScript (vinom/webclient/netcode.js), with
the same rules, defaults and names (in camelCase).

`ServerClock` estimates the server's tick and time. Tick ``k`` falls at
``k / tick_rate`` seconds of play (the room's fixed step), so each snapshot
received at local time ``t`` gives a sample of the offset between the two
clocks, ``k / tick_rate - t``, short by the snapshot's trip here. Jitter and
queueing only ever make a trip longer, so the sample with the largest offset
in the last `window` seconds is the one that travelled fastest (the clock
filter of NTP, and of Quake's and Source's client clocks): that offset, plus
half the round trip for the fastest trip, is the estimate. A lost snapshot
removes one sample of ~40 and changes nothing; a late one is never the
maximum. The window follows a server that stalled (its grid moved on) at
once, and a path that got slower within `window` seconds; an estimate that
must come down (its fastest sample left the window) slews, at `CLOCK_SLEW`,
rather than stepping back, so that what is rendered from it never freezes.

`SnapshotBuffer` keeps the recent views by server time and renders the world
at ``server time - delay``: between the two views around that time, the
numeric fields the game names are interpolated (the shorter way round on a
wrapping world), every other value is the newer view's. Items of a list are
matched between views by a key the game names (an entity id), not by position.
Past the newest view the named fields go on at their last velocity for at most
`max_extrapolation` seconds, then stop: a late snapshot shows as a pause, not
a runaway. The delay defaults to two snapshot intervals (Valve's
``cl_interp_ratio 2``): one lost snapshot still leaves a view on each side.

`Predictor` runs the player's own inputs through the game's rules at once.
It holds the newest authoritative state (the own part of a snapshot, at its
tick) and the inputs for later ticks; `state_at(tick)` replays them from the
snapshot, one fixed step a tick, through the game's `step(state, inputs, dt)`
(the same rules as the server's `apply_action` then `tick`). Each snapshot
rewinds to it and replays the inputs the server had not applied yet (those
stamped after its tick; the rest are forgotten). What the replay changed in
the prediction (the server saw something the client did not: a late input,
a collision) is not snapped: it becomes an offset that decays with a
`smoothing` time constant, and is counted in `corrections`. A change larger
than `teleport` (a respawn, a teleport) is shown at once instead, counted in
`teleports`: sliding there would cross the map. `reset()` forgets the
prediction when the own entity is gone (dead: `GameSession` calls it when a
snapshot's view has no own state, so that nothing dead is driven on), and
`reset(tick, state)` starts it over from a state, shown where it is.

`PredictedEvents` shows an event the player caused (a shot, a spawn) at the
key press, before the host's word, and lets the snapshots settle it, as
Colyseus 0.18's predicted events and Source's predicted weapon effects do. The
input that causes it carries an id the client chose; the host's game names the
ids of the events that happened in its view (a shot's id on its projectile, or
a list of the recent ones) and, if it likes, those it refused. A snapshot that
names an event confirms it: the view's own copy is drawn from then on. One
that refuses it, or any snapshot more than `EVENT_WAIT_TICKS` after its input's
tick (the host has applied or dropped every input by then,
vinom.rooms.inputs.LATE_TICKS), retracts it: the game takes back what it showed.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, Generic, TypeVar

from attrs import define, field, frozen

#: How many seconds of snapshot samples the clock keeps (its filter's window).
CLOCK_WINDOW = 2.0
#: How fast the clock's estimate comes down when its fastest sample leaves the
#: window (seconds per second: it runs 5% slow until it agrees), rather than step back.
CLOCK_SLEW = 0.05
#: The interpolation delay, in snapshot intervals, when the caller gives none.
DELAY_INTERVALS = 2.0
#: The most a view is extrapolated past the newest snapshot, in snapshot intervals.
EXTRAPOLATION_INTERVALS = 1.0
#: The views a SnapshotBuffer keeps at most (older ones go first).
BUFFER_SIZE = 32
#: The time constant (s) with which a prediction's correction fades.
SMOOTHING = 0.1
#: A correction smaller than this (in a field's units) is not counted.
CORRECTION_EPSILON = 1e-6
#: The most ticks a Predictor replays ahead of its snapshot (more: it waits).
MAX_PREDICTED_TICKS = 64
#: The ticks after its input's tick a predicted event waits to be confirmed: by
#: then the host has applied that input or dropped it (vinom.rooms.inputs.LATE_TICKS).
EVENT_WAIT_TICKS = 8

Path = tuple[str, ...]
S = TypeVar("S", bound=Mapping[str, Any])


def _pattern(path: str) -> Path:
    return tuple(path.split(".")) if path else ()


def _matches(pattern: Path, path: Path) -> bool:
    if len(pattern) != len(path):
        return False
    return all(p in ("*", s) for p, s in zip(pattern, path, strict=True))


# -- the clock ---------------------------------------------------------------


@define
class ServerClock:
    """The server's tick and time as estimated from the snapshots' ``k`` and ``ts``
    (module docstring). `observe` each snapshot; ask `tick` and `time`."""

    tick_rate: float
    window: float = CLOCK_WINDOW
    # (received at, k / tick_rate - at, ts - at or None), oldest first.
    samples: deque[tuple[float, float, float | None]] = field(factory=deque)
    # Snapshots observed, and the ones that were older than one observed before.
    observed: int = 0
    reordered: int = 0
    _newest_tick: int = -1
    # The offsets in use (tick clock, ts clock), and when they were last updated.
    _tick_offset: float | None = None
    _time_offset: float | None = None
    _updated_at: float | None = None

    def observe(self, tick: int, server_ms: float | None, now: float) -> None:
        """A snapshot of tick `tick`, built at `server_ms` ms of the room's time
        (its ``ts``, or None), arrived at `now`."""
        self.observed += 1
        if tick < self._newest_tick:
            self.reordered += 1  # it travelled slower than a newer one: a poor sample
        self._newest_tick = max(self._newest_tick, tick)
        offset = tick / self.tick_rate - now
        time_offset = None if server_ms is None else server_ms / 1000.0 - now
        samples = self.samples
        samples.append((now, offset, time_offset))
        while len(samples) > 1 and samples[0][0] < now - self.window:
            samples.popleft()
        best = max(o for _, o, _ in samples)
        times = [o for _, _, o in samples if o is not None]
        elapsed = 0.0 if self._updated_at is None else max(0.0, now - self._updated_at)
        self._tick_offset = _slewed(self._tick_offset, best, elapsed)
        self._time_offset = _slewed(self._time_offset, max(times) if times else None, elapsed)
        self._updated_at = now

    @property
    def synced(self) -> bool:
        """True once a snapshot was observed."""
        return bool(self.samples)

    def tick(self, now: float, rtt: float = 0.0) -> float | None:
        """The server's tick at `now`, fractional (tick ``k`` is due at ``k``), over a
        round trip of `rtt` seconds; None before any snapshot."""
        if self._tick_offset is None:
            return None
        return (self._tick_offset + now + max(0.0, rtt) / 2) * self.tick_rate

    def time(self, now: float, rtt: float = 0.0) -> float | None:
        """The room's time at `now` in seconds (the clock of ``ts``); None before any
        snapshot that carried ``ts``."""
        if self._time_offset is None:
            return None
        return self._time_offset + now + max(0.0, rtt) / 2


def _slewed(current: float | None, best: float | None, elapsed: float) -> float | None:
    """The offset to use: the window's best at once when it is ahead (a faster trip,
    a server that moved on), else down towards it at `CLOCK_SLEW` (never a step back)."""
    if best is None or current is None or best >= current:
        return best
    return max(best, current - CLOCK_SLEW * elapsed)


# -- interpolation -----------------------------------------------------------


@frozen
class Interpolation:
    """What to interpolate in a game's view, by path (``players.*.1``: a dotted path
    of map keys and list indices, ``*`` for any; the syntax of `quantisation`).

    - `fields`: the numeric fields interpolated (every other value is snapped).
    - `keys`: for a list at a path, what identifies its items between views: the
      key or index in each item (``{"players": "0"}``: a seen player is
      ``[index, x, y, ...]``). Without one a list's items are matched by position.
    - `wrap`: a field's period on a wrapping world (interpolated the shorter way
      round, the result taken modulo the period).
    """

    fields: tuple[str, ...] = ()
    keys: Mapping[str, str] = field(factory=dict)
    wrap: Mapping[str, float] = field(factory=dict)

    def compiled(self) -> _Rules:
        return _Rules(
            tuple(_pattern(f) for f in self.fields),
            tuple((_pattern(p), k) for p, k in self.keys.items()),
            tuple((_pattern(p), float(v)) for p, v in self.wrap.items()),
        )


@frozen
class _Rules:
    fields: tuple[Path, ...]
    keys: tuple[tuple[Path, str], ...]
    wrap: tuple[tuple[Path, float], ...]

    def interpolated(self, path: Path) -> bool:
        return any(_matches(p, path) for p in self.fields)

    def key(self, path: Path) -> str | None:
        return next((k for p, k in self.keys if _matches(p, path)), None)

    def period(self, path: Path) -> float | None:
        return next((v for p, v in self.wrap if _matches(p, path)), None)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lerp(a: float, b: float, f: float, period: float | None) -> float:
    if period is None:
        return a + (b - a) * f
    d = (b - a) % period
    if d > period / 2:
        d -= period
    return (a + d * f) % period


def _item_key(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    if isinstance(item, list | tuple) and key.isdigit() and int(key) < len(item):
        return item[int(key)]
    return None


def _blend(a: Any, b: Any, f: float, rules: _Rules, path: Path) -> Any:
    """`b`'s structure, its named numeric fields moved `f` of the way from `a`'s."""
    if isinstance(b, Mapping):
        if not isinstance(a, Mapping):
            return b
        return {k: _blend(a.get(k), v, f, rules, (*path, str(k))) for k, v in b.items()}
    if isinstance(b, list | tuple):
        if not isinstance(a, list | tuple):
            return b
        key = rules.key(path)
        if key is None:
            olds: Sequence[Any] = a
            return [
                _blend(olds[i] if i < len(olds) else None, v, f, rules, (*path, str(i)))
                for i, v in enumerate(b)
            ]
        by_key = {}
        for item in a:
            k = _item_key(item, key)
            if k is not None:
                by_key[k] = item
        return [
            _blend(by_key.get(_item_key(v, key)), v, f, rules, (*path, str(i)))
            for i, v in enumerate(b)
        ]
    if _number(a) and _number(b) and rules.interpolated(path):
        return _lerp(float(a), float(b), f, rules.period(path))
    return b


def blend(a: Any, b: Any, f: float, interpolation: Interpolation) -> Any:
    """The view `f` of the way from view `a` to view `b` (0: `a`'s numbers, 1: `b`'s;
    above 1 extrapolates): `b`'s structure and values, but the numeric fields
    `interpolation` names, moved `f` of the way from their value in `a` (when
    `a` has them: a new item appears where it is)."""
    return _blend(a, b, f, interpolation.compiled(), ())


@define
class SnapshotBuffer:
    """Views by server time, rendered at server time minus `delay` (module docstring).

    `snapshot_rate` sets the defaults: a delay of `DELAY_INTERVALS` and at most
    `EXTRAPOLATION_INTERVALS` of extrapolation, in snapshot intervals.
    """

    snapshot_rate: float
    interpolation: Interpolation = field(factory=Interpolation)
    delay: float | None = None
    max_extrapolation: float | None = None
    # (server time s, view), oldest first.
    views: list[tuple[float, Any]] = field(factory=list)
    # Renders past the newest view (extrapolated, up to the bound), and beyond
    # the bound (held); renders before the oldest view (the newest is too new).
    extrapolated: int = 0
    held: int = 0
    early: int = 0
    _rules: _Rules = field(init=False)
    _last_render: float = -math.inf

    def __attrs_post_init__(self) -> None:
        interval = 1.0 / self.snapshot_rate if self.snapshot_rate > 0 else 0.1
        if self.delay is None:
            self.delay = DELAY_INTERVALS * interval
        if self.max_extrapolation is None:
            self.max_extrapolation = EXTRAPOLATION_INTERVALS * interval
        self._rules = self.interpolation.compiled()

    def push(self, server_time: float, view: Any) -> None:
        """A view the server built at `server_time` (seconds; a state's ``ts / 1000``).
        One at a time already held is ignored."""
        views = self.views
        if any(t == server_time for t, _ in views):
            return
        insort(views, (server_time, view), key=lambda pair: pair[0])
        if len(views) > BUFFER_SIZE:
            del views[0]

    def render_time(self, server_now: float) -> float:
        """Where the render is on the server's timeline: `server_now` minus the delay,
        never earlier than the last render (an estimate that steps back holds)."""
        assert self.delay is not None
        at = max(server_now - self.delay, self._last_render)
        self._last_render = at
        return at

    @property
    def rendered_at(self) -> float | None:
        """The server time (s) of the last render, or None: what the player saw, for
        a lag-compensated action (``floor(rendered_at * tick_rate)`` is its tick)."""
        return None if self._last_render == -math.inf else self._last_render

    def sample(self, at: float) -> Any:
        """The view at server time `at` (None before any view)."""
        views = self.views
        if not views:
            return None
        if at <= views[0][0]:
            self.early += 1 if at < views[0][0] else 0
            return views[0][1]
        rules = self._rules
        for (t0, a), (t1, b) in pairwise(views):
            if at <= t1:
                return _blend(a, b, (at - t0) / (t1 - t0), rules, ())
        t1, newest = views[-1]
        if len(views) < 2:
            return newest
        t0, before = views[-2]
        assert self.max_extrapolation is not None
        over = at - t1
        if over > self.max_extrapolation:
            self.held += 1
            over = self.max_extrapolation
        else:
            self.extrapolated += 1
        return _blend(before, newest, 1.0 + over / (t1 - t0), rules, ())

    def render(self, server_now: float) -> Any:
        """The view to draw now, `server_now` being the clock's server time."""
        return self.sample(self.render_time(server_now))


# -- prediction --------------------------------------------------------------

Step = Callable[[S, Sequence[Mapping[str, Any]], float], S]


@define
class Predictor(Generic[S]):
    """The own player's state predicted from its inputs (module docstring).

    `step(state, inputs, dt)` is the game's rule for one tick: the inputs the
    host applies at that tick (usually none or one), then the tick's own step
    of `dt` = 1 / `tick_rate` seconds. The state is a map; the numeric fields
    named in `smooth` have their corrections smoothed (`wrap`: their period on
    a wrapping world), every other value is taken as predicted. A correction
    up to `tolerance` (the view's rounding) is smoothed but not counted; one
    beyond `teleport` is shown at once (a respawn), counted in `teleports`.
    """

    step: Step[S]
    tick_rate: float
    smooth: tuple[str, ...] = ()
    wrap: Mapping[str, float] = field(factory=dict)
    smoothing: float = SMOOTHING
    # A correction at most this large (in the `smooth` fields' units) is smoothed
    # but not counted: the view's quantisation step, say (the snapshots' rounding).
    tolerance: float = CORRECTION_EPSILON
    # A correction larger than this (in the `smooth` fields' units) is a jump in
    # the game (a respawn, a teleport): shown at once, not smoothed.
    teleport: float = math.inf
    # The newest authoritative state and its tick.
    base: S | None = None
    base_tick: int = -1
    # Inputs stamped after base_tick, by tick, in the order given.
    inputs: dict[int, list[Mapping[str, Any]]] = field(factory=dict)
    # Corrections: snapshots that moved the prediction, and how far in all (the
    # largest field's distance, summed), and the last one.
    corrections: int = 0
    error_total: float = 0.0
    last_error: float = 0.0
    # Corrections beyond `teleport`, shown at once.
    teleports: int = 0
    # The correction still shown, by field, and when it was set.
    _offset: dict[str, float] = field(factory=dict)
    _offset_at: float = 0.0
    # The tick last rendered: where a correction is measured.
    _shown: float | None = None

    def reset(self, tick: int | None = None, state: S | None = None) -> None:
        """Start over. Without a state: the own entity is gone (dead, out of the
        game): nothing is predicted (`render` gives None) and the inputs held are
        forgotten, until a snapshot with an own state, which is then shown where
        it is. With `state`, the own state right after `tick`: predicted from it
        at once, with no correction to smooth (a respawn or a teleport the game
        knows of); the inputs stamped after `tick` are kept."""
        self._offset = {}
        self._shown = None
        if state is None or tick is None:
            self.base, self.base_tick = None, -1
            self.inputs.clear()
            return
        self.base, self.base_tick = state, tick
        for k in [k for k in self.inputs if k <= tick]:
            del self.inputs[k]

    def add(self, tick: int, value: Mapping[str, Any]) -> None:
        """The player gave `value` for `tick` (the tick `send_input` stamped)."""
        if tick > self.base_tick:
            self.inputs.setdefault(tick, []).append(value)

    def state_at(self, tick: int) -> S | None:
        """The predicted state right after `tick` (None before the first snapshot):
        the snapshot's, replayed with the inputs since, one step a tick (at most
        `MAX_PREDICTED_TICKS` past the snapshot)."""
        state = self.base
        if state is None:
            return None
        dt = 1.0 / self.tick_rate
        for k in range(self.base_tick + 1, min(tick, self.base_tick + MAX_PREDICTED_TICKS) + 1):
            state = self.step(state, self.inputs.get(k, ()), dt)
        return state

    def _at(self, tick: float) -> dict[str, Any] | None:
        """The prediction at fractional `tick`, the `smooth` fields blended between
        the ticks around it; no correction."""
        whole = math.floor(tick)
        a, b = self.state_at(whole), self.state_at(whole + 1)
        if a is None or b is None:
            return None
        f = tick - whole
        shown = dict(b)
        for name in self.smooth:
            x, y = a.get(name), b.get(name)
            if isinstance(x, int | float) and isinstance(y, int | float):
                shown[name] = _lerp(float(x), float(y), f, self.wrap.get(name))
        return shown

    def reconcile(self, tick: int, state: S, now: float) -> float:
        """A snapshot says the own state right after `tick` was `state`: rewind to it,
        replay the later inputs, and keep what that changed in what is shown (at
        the tick last rendered) as a fading offset. Returns the correction's size,
        the largest of the `smooth` fields' (0 when the prediction held)."""
        if tick <= self.base_tick:
            return 0.0  # older than the one held: nothing new
        shown_at = tick if self._shown is None else max(self._shown, float(tick))
        before = self._at(shown_at)
        self.base, self.base_tick = state, tick
        for k in [k for k in self.inputs if k <= tick]:
            del self.inputs[k]
        after = self._at(shown_at)
        if before is None or after is None:
            return 0.0
        offset = self.offset(now)
        error = 0.0
        for name in self.smooth:
            a, b = before.get(name), after.get(name)
            if not (isinstance(a, int | float) and isinstance(b, int | float)):
                continue
            d = float(a) - float(b)
            period = self.wrap.get(name)
            if period is not None:
                d = (d + period / 2) % period - period / 2
            error = max(error, abs(d))
            offset[name] = offset.get(name, 0.0) + d
        if error > self.teleport:
            # A jump in the game: shown where it is, nothing slides there.
            self._offset, self._offset_at = {}, now
            self.teleports += 1
            return error
        self._offset, self._offset_at = offset, now
        if error <= max(self.tolerance, CORRECTION_EPSILON):
            return 0.0
        self.corrections += 1
        self.error_total += error
        self.last_error = error
        return error

    def offset(self, now: float) -> dict[str, float]:
        """The correction still shown at `now`, by field (fading to nothing)."""
        if not self._offset:
            return {}
        elapsed = max(0.0, now - self._offset_at)
        fade = math.exp(-elapsed / self.smoothing) if self.smoothing > 0 else 0.0
        return {k: v * fade for k, v in self._offset.items() if abs(v * fade) > CORRECTION_EPSILON}

    def render(self, tick: float, now: float) -> dict[str, Any] | None:
        """The own state to draw at fractional tick `tick` (the tick an input given now
        reaches the host at): the predictions of the ticks around it blended on the
        `smooth` fields, plus the fading correction. None before the first snapshot."""
        shown = self._at(tick)
        if shown is None:
            return None
        self._shown = tick
        for name, d in self.offset(now).items():
            value = shown.get(name)
            if isinstance(value, int | float):
                period = self.wrap.get(name)
                value = value + d
                shown[name] = value % period if period is not None else value
        return shown


@frozen
class EventsSettled:
    """What one snapshot settled of the predicted events: those it confirmed and
    those it retracted, each ``(id, event)``, in the order they were predicted."""

    confirmed: tuple[tuple[Any, Any], ...] = ()
    retracted: tuple[tuple[Any, Any], ...] = ()


@define
class PredictedEvents:
    """The events the player caused, shown before the host's word (module docstring).

    `confirms(view)` gives the event ids a snapshot's view names as having
    happened; `refuses(view)`, if given, those the host refused (retracted at
    once). An event neither confirmed nor refused is retracted by the first
    snapshot more than `wait_ticks` after its input's tick."""

    confirms: Callable[[Any], Iterable[Any]]
    refuses: Callable[[Any], Iterable[Any]] | None = None
    wait_ticks: int = EVENT_WAIT_TICKS
    # Events not settled yet: id -> (the tick of the input that causes it, the event).
    pending: dict[Any, tuple[int, Any]] = field(factory=dict)
    confirmed: int = 0
    retracted: int = 0

    def predict(self, event_id: Any, tick: int, event: Any) -> None:
        """The player caused `event`, named `event_id`, with the input for `tick` (the
        tick `send_input` returned), which carries the id for the host's game."""
        self.pending[event_id] = (tick, event)

    def shown(self) -> list[tuple[Any, Any]]:
        """The events to draw as predicted, ``(id, event)``, oldest first."""
        return [(event_id, event) for event_id, (_, event) in self.pending.items()]

    def settle(self, tick: int, view: Any) -> EventsSettled:
        """A snapshot of `tick` whose view is `view`: the pending events it names are
        confirmed, those it refuses or that waited past `wait_ticks` retracted."""
        if not self.pending:
            return EventsSettled()
        named = set(self.confirms(view))
        refused = set() if self.refuses is None else set(self.refuses(view))
        confirmed: list[tuple[Any, Any]] = []
        retracted: list[tuple[Any, Any]] = []
        for event_id, (k, event) in list(self.pending.items()):
            if event_id in named:
                confirmed.append((event_id, event))
            elif event_id in refused or tick > k + self.wait_ticks:
                retracted.append((event_id, event))
            else:
                continue
            del self.pending[event_id]
        self.confirmed += len(confirmed)
        self.retracted += len(retracted)
        return EventsSettled(tuple(confirmed), tuple(retracted))
