// netcode.js's Predictor and GameSocket's use of it under Node's test runner: a dead
// own entity is not driven on, and a respawn or a teleport is shown where it is,
// not slid there (the twin of tests/client/test_netcode.py's tests of the same);
// and SnapshotBuffer's renders past the newest view, which the next one corrects.
import assert from "node:assert/strict";
import { test } from "node:test";

import { GameSocket, boardNetcode } from "../../vinom/webclient/game.js";
import { Predictor, ServerClock, SnapshotBuffer } from "../../vinom/webclient/netcode.js";
import { ReplayNetcode } from "../../vinom/webclient/replays.js";

const RATE = 20;

// One tick of a dot: its inputs' velocity, then the move (a game's step).
function step(state, inputs, dt) {
  let { vx } = state;
  for (const input of inputs) vx = input.vx;
  return { ...state, vx, x: state.x + vx * dt };
}

test("reset() forgets the prediction; reset(tick, state) starts over from a state", () => {
  const predictor = new Predictor(step, RATE, { smooth: ["x"] });
  predictor.reconcile(10, { x: 0, vx: 10 }, 0);
  predictor.add(12, { vx: 20 });
  predictor.reset();
  assert.equal(predictor.stateAt(20), null);
  assert.equal(predictor.render(20, 0), null);
  assert.equal(predictor.inputs.size, 0);
  predictor.add(12, { vx: 20 });
  predictor.add(14, { vx: 40 });
  predictor.reset(12, { x: 200, vx: 0 });
  assert.deepEqual([...predictor.inputs.keys()], [14]);
  assert.equal(predictor.render(14, 0).x, 202);
  assert.equal(predictor.corrections, 0);
});

test("a correction beyond `teleport` is shown at once; below it, smoothed", () => {
  assert.equal(new Predictor(step, RATE).teleport, Infinity);
  const predictor = new Predictor(step, RATE, { smooth: ["x"], teleport: 50 });
  predictor.reconcile(10, { x: 100, vx: 0 }, 0);
  assert.equal(predictor.render(12, 0).x, 100);
  predictor.reconcile(11, { x: 110, vx: 0 }, 1); // 10 off: smoothed
  assert.ok(Math.abs(predictor.render(12, 1).x - 100) < 1e-9);
  assert.deepEqual([predictor.corrections, predictor.teleports], [1, 0]);
  predictor.reconcile(12, { x: 900, vx: 0 }, 2); // respawned: shown there
  assert.equal(predictor.render(12, 2).x, 900);
  assert.deepEqual([predictor.corrections, predictor.teleports], [1, 1]);
});

// The `game` object a board gets (app.js spreads boardNetcode into it): predictEvents
// as docs/web.md lists it, settled by the live socket's snaps; none in a replay.
test("boardNetcode: a board predicts events through its game object", () => {
  const stand = { send() {}, close() {}, readyState: 0 };
  const socket = new GameSocket("wss://game.test/game", {}, { open: () => stand });
  socket.tickRate = RATE;
  socket.serverClock = new ServerClock(RATE);
  const game = boardNetcode(() => socket);
  const settled = [];
  const events = game.predictEvents((view) => view.hits, {}, (s) => settled.push(s));
  assert.equal(socket.events, events);
  events.predict("shot-1", 41, { at: 3 });
  assert.deepEqual(events.shown(), [["shot-1", { at: 3 }]]);
  socket.netcode(41, 2050, { hits: ["shot-1"] });
  assert.deepEqual(settled, [{ confirmed: [["shot-1", { at: 3 }]], retracted: [] }]);
  assert.deepEqual(events.shown(), []);
  const replay = boardNetcode(() => new ReplayNetcode({ frames: [], tick_rate: RATE }, () => 0));
  assert.equal(replay.predictEvents((view) => view.hits), null);
  assert.equal(replay.predicted(), null);
});

test("GameSocket: a view without the own entity resets the prediction", () => {
  const stand = { send() {}, close() {}, readyState: 0 };
  const socket = new GameSocket("wss://game.test/game", {}, { open: () => stand });
  socket.tickRate = RATE;
  socket.serverClock = new ServerClock(RATE);
  const own = (view) => view.dots[view.me] ?? null;
  const prediction = socket.predict(step, own, { smooth: ["x"] });
  socket.netcode(40, 2000, { me: 0, dots: [{ x: 10, vx: 100 }] });
  assert.equal(prediction.stateAt(42).x, 20);
  socket.netcode(41, 2050, { me: 0, dots: [] }); // killed
  assert.equal(prediction.stateAt(60), null);
  socket.netcode(51, 2550, { me: 0, dots: [{ x: 250, vx: 0 }] }); // respawned far away
  assert.equal(prediction.render(52, 100).x, 250);
  assert.equal(prediction.corrections, 0);
});

// What tests/server/test_web_arena.py's bound on a frame's travel rests on: a render
// past the newest view extrapolates (at most an interval, then holds), and once the
// next views come, the render is the view at its time, so a dot that started moving
// meanwhile is drawn where it is: the frame covers its travel since the newest view
// the last frame had, not since that frame's render time.
test("SnapshotBuffer: a render past the newest view, then the next views: the view at its time", () => {
  const buffer = new SnapshotBuffer(RATE, { interpolation: { fields: ["x"] } });
  const at = (tick, x) => buffer.push(tick / RATE, { x });
  for (let tick = 0; tick <= 10; tick++) at(tick, 100); // at rest up to tick 10
  assert.equal(buffer.render(10.6 / RATE + buffer.delay).x, 100); // 30 ms past: extrapolated
  assert.deepEqual([buffer.extrapolated, buffer.held], [1, 0]);
  assert.equal(buffer.render(11.2 / RATE + buffer.delay).x, 100); // 60 ms past: held
  assert.deepEqual([buffer.extrapolated, buffer.held], [1, 1]);
  const before = buffer.renderedAt;
  at(11, 105); // moving at 100 a second from tick 10 on
  at(12, 110);
  at(13, 115);
  const x = buffer.render(12.6 / RATE + buffer.delay).x;
  assert.ok(Math.abs(x - (100 + 100 * (12.6 - 10) / RATE)) < 1e-9, x);
  // 13 units in a frame whose render time advanced 70 ms: 100 a second since the
  // newest view the last frame had (tick 10), 186 since that frame's render time.
  assert.ok(x - 100 > 100 * (buffer.renderedAt - before) + 5);
  assert.ok(x - 100 <= 100 * (buffer.renderedAt - 10 / RATE) + 1e-9);
});
