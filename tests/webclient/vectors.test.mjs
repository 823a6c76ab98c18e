// The test vectors of vectors/protocol.json (docs/protocol.md) that the web client
// implements, under Node's test runner: the request packet it makes of the lobby's
// token (§12), the snap and input messages through GameSocket (§14.1), the delta
// snapshots through delta.js (§16.7), the schema snapshots through schema.js
// (§16.8; their refusals in schema.test.mjs); the stream framing of §17 is checked by
// transport.test.mjs. The rest is not the web client's: it has no UDP session
// (the sealed packets of §12, the reliability bodies of §13.14), opens no route
// token (§15.1: the relay's), sends no close capsule (§17: the server's; the
// browser's WebTransport reads it), and reads no record file nor hashes a state
// (§18: the server replays records; the browser gets a replay's views, docs/web.md
// "Replays").
import assert from "node:assert/strict";
import { test } from "node:test";

import { decode, encode } from "../../vinom/webclient/codec.js";
import { Quantisation, SnapshotReceiver, checksum, decodeSnapshot } from "../../vinom/webclient/delta.js";
import { GameSocket, drawnFields, requestPacket, resolveRelativeSnap, snapOfPacked } from "../../vinom/webclient/game.js";
import { ViewSchema, decodeSchemaFrame } from "../../vinom/webclient/schema.js";
import { FILE, bytes, hex, vectors } from "./vectors.mjs";

// A GameSocket on a stand-in connection: what it sends, the states it hands on,
// and its warnings.
function playing() {
  const sent = [];
  const states = [];
  const warnings = [];
  const stand = { send: (data) => sent.push(new Uint8Array(data)), close() {}, readyState: 1 };
  const socket = new GameSocket("wss://game.test/game", FILE.session.token, {
    open: () => stand, onMessage: (message) => states.push(message), onWarning: (text) => warnings.push(text),
  });
  const deliver = (data) => stand.onmessage({ data: Uint8Array.from(data).buffer });
  return { socket, stand, sent, states, warnings, deliver };
}

test("the request packet made of the token vector is the request vector", () => {
  const { request } = vectors("session");
  assert.equal(hex(requestPacket(FILE.session.token)), request.hex);
  // And what a GameSocket sends first on opening its connection.
  const { stand, sent } = playing();
  stand.onopen();
  assert.deepEqual(sent.map(hex), [request.hex]);
});

test("each snap vector reads as its fields and becomes the state of its view", () => {
  const snaps = Object.values(vectors("messages")).filter((v) => v.kind === "snap");
  assert.equal(snaps.length, 2);
  for (const v of snaps) {
    const fields = decode(bytes(v.hex));
    assert.deepEqual(fields.slice(0, 5), ["v", "ts", "r", "i", "ik"].map((k) => v.snap[k]), v.name);
    assert.equal(hex(fields[5]), v.snap.d);
    assert.equal(hex(encode(fields)), v.hex, "codec.js writes the same bytes");
    const { deliver, states } = playing();
    deliver(encode({ t: "welcome", tick_rate: 20, snapshot_rate: 20 }));
    deliver(bytes(v.hex));
    const state = states.at(-1);
    assert.equal(state.t, "state", v.name);
    assert.deepEqual([state.v, state.ts, state.k, state.i], [v.snap.v, v.snap.ts, v.d_tick, v.snap.i]);
    assert.equal(state.r, v.snap.r === null ? null : v.snap.r / 1000);
    assert.deepEqual(decode(encode(state.s)), v.d_view);
  }
});

test("each packed snap vector reads as its fields and becomes the state of its view", () => {
  const packed = Object.values(vectors("messages")).filter((v) => v.kind === "packed_snap");
  assert.equal(packed.length, 2);
  for (const v of packed) {
    const { r, d, ...rest } = v.snap;
    const snap = snapOfPacked(bytes(v.hex));
    assert.deepEqual(snap, { t: "snap", ...rest, r: r === null ? null : r / 1000, d: bytes(d) }, v.name);
    const { deliver, states, warnings } = playing();
    deliver(encode({ t: "welcome", tick_rate: 20, snapshot_rate: 20 }));
    deliver(bytes(v.hex));
    const state = states.at(-1);
    assert.equal(state.t, "state", v.name);
    assert.deepEqual([state.v, state.ts, state.k, state.i], [v.snap.v, v.snap.ts, v.d_tick, v.snap.i]);
    assert.equal(state.r, r === null ? null : r / 1000);
    assert.deepEqual(decode(encode(state.s)), v.d_view);
    assert.deepEqual(warnings, []);
  }
});

test("each relative packed snap vector reads as its fields against its baseline's (pk 2)", () => {
  const relative = Object.values(vectors("messages")).filter((v) => v.kind === "relative_snap");
  assert.equal(relative.length, 2);
  for (const v of relative) {
    const { v: version, ts, r, i, ik, d } = v.snap;
    const base = v.base === null ? null : [v.base.v, v.base.ts, v.base.r];
    const snap = snapOfPacked(bytes(v.hex), true);
    assert.deepEqual(resolveRelativeSnap(snap, v.d_tick, base), [version, ts, r], v.name);
    assert.deepEqual(snap, { t: "snap", v: version, ts, r: r / 1000, i, ik, d: bytes(d) }, v.name);
  }
});

test("a packed snap with a number cut short, over 8 bytes or not below 2^53 is not a message", () => {
  // LEB128 by multiplication (2^53 is past 32-bit bitwise operators).
  const uvar = (n) => {
    const out = [];
    for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
    return [...out, n];
  };
  // Five numbers (each a number, or its bytes as given), then d.
  const packed = (numbers, d = [0x94]) =>
    Uint8Array.from([0xc1, ...numbers.flatMap((n) => (Array.isArray(n) ? n : uvar(n))), ...d]);
  const { packed_snap_numbers: vector } = vectors("messages");
  const five = [1300, 70000, 180001, 6, 1235];
  assert.equal(hex(packed(five, bytes(vector.snap.d))), vector.hex);
  // The limits: 2^53 - 1 reads exactly, a number may take 8 bytes (not minimal), d
  // may be empty (the snapshot receiver drops it, not this).
  assert.equal(uvar(2 ** 53 - 1).length, 8);
  assert.equal(snapOfPacked(packed([2 ** 53 - 1, 0, 0, 0, 0])).v, 2 ** 53 - 1);
  assert.equal(snapOfPacked(packed([[0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 0, 0, 0, 0])).v, 5);
  assert.deepEqual(snapOfPacked(packed([0, 0, 0, 0, 0], [])),
    { t: "snap", v: 0, ts: 0, r: null, i: null, ik: null, d: new Uint8Array() });
  const bad = [];
  for (let at = 0; at < 5; at++) {
    const before = five.slice(0, at);
    bad.push(packed(before, [])); // ends before the number
    bad.push(packed([...before, [...uvar(five[at]).slice(0, -1), 0x80]], [])); // ends inside it
    const nine = [...five];
    nine[at] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    bad.push(packed(nine));
    const huge = [...five];
    huge[at] = 2 ** 53;
    bad.push(packed(huge));
  }
  for (const message of bad) assert.equal(snapOfPacked(message), null, hex(message));
  // Delivered, each is dropped with a warning, as a message that is not msgpack is.
  const { deliver, states, warnings } = playing();
  deliver(encode({ t: "welcome", tick_rate: 20, snapshot_rate: 20 }));
  const before = states.length;
  for (const message of bad) deliver(message);
  assert.equal(states.length, before);
  assert.deepEqual(warnings, bad.map(() => "a game message that is not msgpack"));
});

test("the input vector is the message GameSocket sends for an input after a snap", () => {
  const { input, snap_full: snap } = vectors("messages");
  assert.equal(hex(encode(input.message)), input.hex);
  assert.deepEqual(decode(bytes(input.hex)), input.message);
  const { socket, deliver, sent } = playing();
  deliver(encode({ t: "welcome", tick_rate: 20, snapshot_rate: 20 }));
  deliver(bytes(snap.hex));
  const [[, pressed]] = input.message.x;
  const k = socket.input(pressed);
  const message = decode(sent.at(-1));
  // The same keys in the same order, acknowledging the snap's tick; only the tick
  // the input is stamped with is the socket's own.
  assert.deepEqual(Object.keys(message), Object.keys(input.message));
  assert.deepEqual(message, { ...input.message, a: snap.d_tick, x: [[k, pressed]] });
  assert.equal(input.message.a, snap.d_tick);
});

test("the drawn input vector: an input given while the others were drawn says when", () => {
  const { input_drawn: drawn, snap_full: snap } = vectors("messages");
  assert.equal(hex(encode(drawn.message)), drawn.hex);
  const [[k, pressed, b, f]] = drawn.message.x;
  assert.deepEqual(drawnFields(k, drawn.seen[k]), [b, f]);
  assert.equal(k - b + f / 256, drawn.seen[k]);
  assert.deepEqual([drawnFields(9, 10), drawnFields(300, 44.9), drawnFields(9, NaN)], [null, null, null]);
  // A GameSocket that rendered sends the moment it last drew with each input.
  const { socket, deliver, sent } = playing();
  deliver(encode({ t: "welcome", tick_rate: 20, snapshot_rate: 20 }));
  socket.interpolate();
  deliver(bytes(snap.hex));
  assert.notEqual(socket.rendered(), null);
  const seen = socket.snapshotBuffer.renderedAt * 20;
  const tick = socket.input(pressed);
  assert.deepEqual(decode(sent.at(-1)).x, [[tick, pressed, ...drawnFields(tick, seen)]]);
});

test("every delta snapshot decodes to its view, against its baseline, checksums verified", () => {
  const found = vectors("delta");
  assert.equal(Object.keys(found).length, 5);
  for (const v of Object.values(found)) {
    const rules = new Quantisation(v.rules);
    const baselines = new Map();
    if (v.baseline !== null) {
      const base = decodeSnapshot(bytes(found[v.baseline].hex), new Map(), rules);
      baselines.set(base.tick, base.view);
    }
    const got = decodeSnapshot(bytes(v.hex), baselines, rules);
    assert.equal(got.tick, v.tick, v.name);
    assert.equal(got.baselineTick, v.baseline === null ? null : found[v.baseline].tick, v.name);
    assert.equal(got.checksum !== null, v.checksum, v.name);
    assert.deepEqual(decode(encode(got.view)), v.decoded, v.name);
    assert.ok(hex(bytes(v.hex)).endsWith(v.body), v.name);
  }
});

test("every schema snapshot decodes to its view, against its baseline, checksums verified", () => {
  const found = vectors("schema"); // by name within the group (a baseline names one of it)
  assert.equal(Object.keys(found).length, FILE.schema.vectors.length);
  assert.equal(FILE.schema.vectors.length, 4);
  const schema = new ViewSchema(FILE.schema.schema);
  // A vector's baseline is the wire view its `baseline` vector decodes to (against its own).
  const wireOf = (name) => {
    const v = found[name];
    const baselines = new Map();
    if (v.baseline !== null) baselines.set(found[v.baseline].tick, wireOf(v.baseline));
    return decodeSchemaFrame(schema, bytes(v.hex), baselines).wire;
  };
  for (const v of Object.values(found)) {
    const baselines = new Map();
    if (v.baseline !== null) baselines.set(found[v.baseline].tick, wireOf(v.baseline));
    const got = decodeSchemaFrame(schema, bytes(v.hex), baselines);
    assert.equal(got.tick, v.tick, v.name);
    assert.equal(got.baselineTick, v.baseline === null ? null : found[v.baseline].tick, v.name);
    assert.equal(got.checksum !== null, v.checksum, v.name);
    const view = schema.rebuild(got.wire);
    assert.deepEqual(view, v.decoded, v.name);
    if (got.checksum !== null) assert.equal(got.checksum, checksum(view), v.name);
    assert.equal(schema.checksum(got.wire), checksum(v.decoded), v.name);
  }
  // In order through a receiver given the schema: every one applied, none dropped.
  const receiver = new SnapshotReceiver({ schema });
  for (const v of Object.values(found)) {
    const snapshot = receiver.receive(bytes(v.hex));
    assert.notEqual(snapshot, null, v.name);
    assert.deepEqual(snapshot.view, v.decoded, v.name);
  }
  assert.equal(receiver.applied, 4);
  assert.deepEqual(Object.values(receiver.drops), [0, 0, 0, 0]);
});
