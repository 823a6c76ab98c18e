"""The web client's netcode helpers (vinom/webclient/netcode.js) against Python's
(vinom.client.netcode), in real headless Chromium on the page the real server serves.

One seeded scenario, run by both: a clock fed a jittery, lossy, reordered stream
of snapshots and asked for the server's tick and time; an interpolation buffer
(list items matched by key, a wrapping field, a snapped one) sampled between,
before and past its views; a predictor with a one-dimensional mover's rules,
inputs added and snapshots reconciled (some disagreeing), rendered with its
fading correction; predicted events confirmed, refused and waited out. Every
number the page gives equals Python's (to 1e-9), and no console error.
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import random
from typing import Any

import msgpack
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import start_web_server, wait_for_screen
from tests.server.test_web_delta import snap_of
from tests.support.browser import Browser, open_browser
from vinom.client import netcode
from vinom.client.netcode import (
    Interpolation,
    PredictedEvents,
    Predictor,
    ServerClock,
    SnapshotBuffer,
)
from vinom.rooms.delta import SnapshotHistory
from vinom.rooms.messages import SnapFields

RATE = 20.0
SIZE = 100.0
DEFAULTS = ("CLOCK_WINDOW", "CLOCK_SLEW", "DELAY_INTERVALS", "EXTRAPOLATION_INTERVALS",
            "BUFFER_SIZE", "SMOOTHING", "CORRECTION_EPSILON", "MAX_PREDICTED_TICKS",
            "EVENT_WAIT_TICKS")
RULES = {
    "fields": ["p.*.1", "p.*.2"],
    "keys": {"p": "0"},
    "wrap": {"p.*.1": SIZE},
}


def scenario(seed: int) -> list[list[Any]]:
    """The operations, as data both languages run."""
    rng = random.Random(seed)
    ops: list[list[Any]] = []
    for k in range(60):
        if rng.random() < 0.1:
            continue
        arrived = k / RATE + 0.08 + rng.uniform(0, 0.04)
        ops.append(["observe", k, k * 50.0 + rng.uniform(0, 3), arrived])
        if rng.random() < 0.5:
            ops.append(["clock", k / RATE + 0.1, rng.uniform(0.1, 0.3)])
    for k in range(12):
        seen = [[i, rng.uniform(0, SIZE), rng.uniform(0, 10), rng.choice("ab")]
                for i in rng.sample(range(6), 4)]  # fmt: skip
        ops.append(["push", k / RATE, {"p": seen, "n": k}])
    ops.extend([["sample", -0.1], ["sample", 0.57], ["sample", 0.9]])
    for _ in range(20):
        ops.append(["sample", rng.uniform(-0.05, 0.75)])
    ops.append(["reconcile", 3, {"x": 10.0, "v": 0.0}, 0.0])
    for k in range(4, 30):
        if rng.random() < 0.4:
            ops.append(["add", k + 3, {"v": rng.choice([-20.0, 0.0, 20.0])}])
        ops.append(["render", k + 2.5, k / RATE])
        if rng.random() < 0.6:
            ops.append(["reconcile", k, {"x": rng.uniform(0, 40), "v": 5.0}, k / RATE])
    # Predicted events: some confirmed by a later view, some refused, some waited out.
    predicted: list[str] = []
    for k in range(40):
        if rng.random() < 0.5:
            predicted.append(f"e{k}")
            ops.append(["event", f"e{k}", k + 2, {"x": rng.uniform(0, SIZE)}])
        view = {"shots": [e for e in predicted if rng.random() < 0.2],
                "no": [e for e in predicted if rng.random() < 0.05]}  # fmt: skip
        ops.append(["settle", k, view])
        if rng.random() < 0.3:
            ops.append(["shown"])
    return ops


def mover(state: dict[str, float], inputs: Any, dt: float) -> dict[str, float]:
    v = state["v"]
    for value in inputs:
        v = value["v"]
    return {"x": state["x"] + v * dt, "v": v}


def run_python(ops: list[list[Any]]) -> list[Any]:
    clock = ServerClock(RATE)
    interpolation = Interpolation(("p.*.1", "p.*.2"), {"p": "0"}, {"p.*.1": SIZE})
    buffer = SnapshotBuffer(RATE, interpolation)
    predictor: Predictor[Any] = Predictor(mover, RATE, ("x",))
    events = PredictedEvents(lambda view: view["shots"], lambda view: view["no"])
    out: list[Any] = []
    for op, *args in ops:
        if op == "observe":
            clock.observe(*args)
        elif op == "clock":
            out.append([clock.tick(*args), clock.time(*args)])
        elif op == "push":
            buffer.push(*args)
        elif op == "sample":
            out.append(buffer.sample(*args))
        elif op == "reconcile":
            out.append(predictor.reconcile(*args))
        elif op == "add":
            predictor.add(*args)
        elif op == "render":
            out.append(predictor.render(*args))
        elif op == "event":
            events.predict(*args)
        elif op == "settle":
            settled = events.settle(*args)
            out.append([settled.confirmed, settled.retracted])
        elif op == "shown":
            out.append(events.shown())
    out.append([buffer.extrapolated, buffer.held, buffer.early, predictor.corrections,
                events.confirmed, events.retracted])  # fmt: skip
    # The defaults, one set for both languages.
    out.append({name: getattr(netcode, name) for name in DEFAULTS})
    return out


RUN_SCRIPT = """
const [ops, rules, rate] = [arguments[0], arguments[1], arguments[2]];
const done = arguments[arguments.length - 1];
import('./netcode.js').then((n) => {
  const clock = new n.ServerClock(rate);
  const buffer = new n.SnapshotBuffer(rate, { interpolation: rules });
  const mover = (state, inputs, dt) => {
    let v = state.v;
    for (const value of inputs) v = value.v;
    return { x: state.x + v * dt, v };
  };
  const predictor = new n.Predictor(mover, rate, { smooth: ['x'] });
  const events = new n.PredictedEvents((view) => view.shots, { refuses: (view) => view.no });
  const out = [];
  for (const [op, ...args] of ops) {
    if (op === 'observe') clock.observe(...args);
    else if (op === 'clock') out.push([clock.tick(...args), clock.time(...args)]);
    else if (op === 'push') buffer.push(...args);
    else if (op === 'sample') out.push(buffer.sample(...args));
    else if (op === 'reconcile') out.push(predictor.reconcile(...args));
    else if (op === 'add') predictor.add(...args);
    else if (op === 'render') out.push(predictor.render(...args));
    else if (op === 'event') events.predict(...args);
    else if (op === 'settle') {
      const settled = events.settle(...args);
      out.push([settled.confirmed, settled.retracted]);
    } else if (op === 'shown') out.push(events.shown());
  }
  out.push([buffer.extrapolated, buffer.held, buffer.early, predictor.corrections,
    events.confirmed, events.retracted]);
  out.push(Object.fromEntries(['CLOCK_WINDOW', 'CLOCK_SLEW', 'DELAY_INTERVALS',
    'EXTRAPOLATION_INTERVALS', 'BUFFER_SIZE', 'SMOOTHING', 'CORRECTION_EPSILON',
    'MAX_PREDICTED_TICKS', 'EVENT_WAIT_TICKS'].map((name) => [name, n[name]])));
  done(out);
}, (e) => done({ error: String(e) }));
"""


def close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class NetcodeTwinTests(TestCase):
    """netcode.js does what vinom.client.netcode does."""

    timeout = 120

    async def test_the_page_computes_what_python_computes(self) -> None:
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await browser.get(url)
        await wait_for_screen(browser, "name")
        for seed in range(3):
            ops = scenario(seed)
            expected = run_python(ops)
            got = await browser.run(
                lambda d, ops=ops: d.execute_async_script(RUN_SCRIPT, ops, RULES, RATE)
            )
            self.assertIsInstance(got, list, got)
            self.assertEqual(len(got), len(expected))
            for n, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
                self.assertTrue(close(mine, theirs), (seed, n, mine, theirs))
            # The scenario reached every branch: corrections, extrapolation, holds.
            self.assertTrue(all(expected[-2]), expected[-2])
        await browser.check()


# How a script driving a GameSocket starts and ends: the welcome and snaps given (hex
# msgpack) and `done`; the page's clock (performance.now, from 10 s) in the script's
# hands until `out` is handed back.
SCRIPT_START = """
const [welcome, snaps, done] = arguments;
Promise.all([import('./game.js'), import('./codec.js')]).then(([g, m]) => {
  const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
  let now = 10000;
  const realNow = performance.now.bind(performance);
  performance.now = () => now;
"""
SCRIPT_END = """
  } finally {
    performance.now = realNow;
  }
  done(out);
}, (e) => done({ error: String(e) + (e.stack ?? '') }));
"""


async def run_in_page(case: TestCase, script: str, snaps: Any) -> tuple[Browser, Any]:
    """The page (a real web server's) and what `script` (SCRIPT_START ... SCRIPT_END)
    handed back, given the welcome of a 20 Hz game and `snaps`."""
    welcome = msgpack.packb(
        {"t": "welcome", "match": "m", "game": "arena", "seat": 0, "players": [],
         "tick_rate": 20, "snapshot_rate": 20}
    ).hex()  # fmt: skip
    _server, url = await start_web_server(case, ports=1)
    browser = await open_browser(case)
    await browser.get(url)
    await wait_for_screen(browser, "name")
    out = await browser.run(lambda d: d.execute_async_script(script, welcome, snaps))
    case.assertNotIn("error", out, out.get("error"))
    return browser, out


# A GameSocket on a stand-in WebSocket: its clock, prediction, interpolation and
# predicted events over a welcome and two snaps, an input between them.
SESSION_SCRIPT = SCRIPT_START + """
  const out = {};
  try {
    const fake = { readyState: 1, send() {}, close() {} };
    const socket = new g.GameSocket('wss://unused.invalid/game', {}, { open: () => fake });
    const deliver = (h) => fake.onmessage({ data: bytes(h).buffer });
    out.before = socket.serverTick();
    try { socket.interpolate(); out.interpolateBefore = 'no error'; }
    catch (e) { out.interpolateBefore = 'refused'; }
    deliver(welcome);
    const mover = (state, inputs, dt) => {
      let vx = state.vx;
      for (const value of inputs) vx = value.move;
      return { x: state.x + vx * dt, vx };
    };
    socket.predict(mover, (view) => view.me, { smooth: ['x'] });
    socket.interpolate({ interpolation: { fields: ['me.x', 'other'] } });
    deliver(snaps[0]);                       // tick 40 at 10 s
    out.tick = socket.serverTick();
    out.rttBefore = socket.rtt;
    now = 10010;
    out.stamped = socket.input({ move: 100, shot: 9 });
    const settled = [];
    const events = socket.predictEvents((view) => view.shots ?? [], {}, (s) => settled.push(s));
    events.predict(9, out.stamped, 'shot 9');  // the shot this input fires
    events.predict(8, out.stamped - 11, 'shot 8');  // one whose input went long ago
    out.shownAtKey = events.shown();
    now = 10030;
    out.predicted = socket.predicted().x;    // moved at once
    now = 10150;
    deliver(snaps[1]);                       // tick 43 at 10.15 s, acknowledging the input
    out.rtt = socket.rtt;
    out.tickAfter = socket.serverTick();
    out.rendered = socket.rendered().other;
    out.corrections = socket.prediction.corrections;
    out.settled = settled;
    out.shownAfter = events.shown();
    deliver(welcome);                         // a new session: a new clock
    out.afterWelcome = socket.serverTick();
""" + SCRIPT_END


class GameSocketNetcodeTests(TestCase):
    """game.js feeds netcode.js from its snaps, and measures the round trip."""

    timeout = 120

    async def test_clock_round_trip_prediction_and_interpolation(self) -> None:
        history = SnapshotHistory()
        views = {40: {"me": {"x": 10.0, "vx": 0.0}, "other": 0.0},
                 43: {"me": {"x": 25.0, "vx": 100.0}, "other": 30.0, "shots": [9]}}  # fmt: skip
        iks = {40: None, 43: 41}
        # A snap as the host sends it (docs/protocol.md §14), of a full snapshot each.
        kept: dict[int, SnapFields] = {}
        snaps = [
            snap_of((tick, tick * 50, None), None, iks[tick], history.encode_for(tick, view),
                    kept).hex()
            for tick, view in views.items()
        ]  # fmt: skip
        browser, out = await run_in_page(self, SESSION_SCRIPT, snaps)
        self.assertEqual((out["before"], out["interpolateBefore"]), (None, "refused"))
        # Tick 40 just came; no round trip known yet (no input acknowledged).
        self.assertEqual((out["tick"], out["rttBefore"]), (40, None))
        # 10 ms on: tick 40.2, and the input is for the next tick the host runs.
        self.assertEqual(out["stamped"], 41)
        # 30 ms on (tick 40.6): drawn 0.6 of the way through tick 41 at 100 a second.
        self.assertAlmostEqual(out["predicted"], 13.0)
        # Sent at 10.01 s, acknowledged at 10.15 s: 140 ms, less half a snapshot
        # interval (the host's wait for its next snap).
        self.assertAlmostEqual(out["rtt"], 0.115)
        # The clock's fastest sample stays tick 40's; half the round trip is added.
        self.assertAlmostEqual(out["tickAfter"], 43.0 + 0.115 / 2 * 20)
        # Rendered two intervals behind the arrivals' timeline: tick 41, a third of
        # the way from tick 40's `other` (0) to tick 43's (30).
        self.assertAlmostEqual(out["rendered"], 10.0)
        # The server moved the input's three ticks (41 to 43) as predicted.
        self.assertEqual(out["corrections"], 0)
        # The shot was drawn at the key; tick 43's view names it (confirmed), and the
        # one whose input was for tick 30 was named by none 8 ticks on (retracted).
        self.assertEqual(out["shownAtKey"], [[9, "shot 9"], [8, "shot 8"]])
        self.assertEqual(out["settled"], [{"confirmed": [[9, "shot 9"]],
                                           "retracted": [[8, "shot 8"]]}])  # fmt: skip
        self.assertEqual(out["shownAfter"], [])
        self.assertIsNone(out["afterWelcome"])
        await browser.check()


# A GameSocket fed snaps at the times given ([ms, hex]), no input given: what it
# sends, and its round trip after each snap.
ACK_SCRIPT = SCRIPT_START + """
  const out = { sent: [], rtt: [] };
  try {
    const fake = { readyState: 1, close() {},
                   send(data) { out.sent.push([now, m.decode(new Uint8Array(data))]); } };
    const socket = new g.GameSocket('wss://unused.invalid/game', {}, { open: () => fake });
    const deliver = (h) => fake.onmessage({ data: bytes(h).buffer });
    deliver(welcome);
    for (const [at, snap] of snaps) {
      now = at;
      deliver(snap);
      out.rtt.push(socket.rtt);
    }
""" + SCRIPT_END


class GameSocketAckRoundTripTests(TestCase):
    """A player who gives no input still measures the round trip: each input message's
    `a` comes back as the baseline of the host's next snaps."""

    timeout = 120

    async def test_the_round_trip_from_a_snap_against_the_baseline_acknowledged(self) -> None:
        history = SnapshotHistory()
        view = {"me": {"x": 1.0}}
        # tick: (arrives at, the ack the host read before encoding it)
        plan = {40: (10000, None), 41: (10050, None), 42: (10120, 40), 43: (10130, 40),
                44: (10400, 42)}  # fmt: skip
        kept: dict[int, SnapFields] = {}
        snaps = [[at, snap_of((tick, tick * 50, None), None, None,
                              history.encode_for(tick, view, ack), kept).hex()]
                 for tick, (at, ack) in plan.items()]  # fmt: skip
        browser, out = await run_in_page(self, ACK_SCRIPT, snaps)
        # An ack-only input message after a snap, at most every 100 ms: `a` the
        # newest snap applied, no inputs.
        self.assertEqual([(at, m["t"], m["a"], m["x"]) for at, m in out["sent"]],
                         [(10000, "input", 40, []), (10120, "input", 42, []),
                          (10400, "input", 44, [])])  # fmt: skip
        # Full snaps acknowledge nothing; tick 42, against 40, came 120 ms after the
        # message acknowledging 40 left: a round trip less half a snapshot interval
        # (the host's wait for its next snap). Tick 43, against 40 again, is not a
        # second trip of that message; tick 44, against 42, is 280 ms after its
        # message, longer than the least of the last 2 s, which stays.
        rtts = [None if r is None else round(r, 6) for r in out["rtt"]]
        self.assertEqual(rtts, [None, None, 0.095, 0.095, 0.095])
        await browser.check()
