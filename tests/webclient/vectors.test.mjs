// The test vectors of vectors/protocol.json (docs/protocol.md) that the web client
// implements, under Node's test runner: the request packet it makes of the lobby's
// token (§12), the snap (relative, of either body kind) and input messages through
// GameSocket (§14.1), the delta
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
import { unzigzag } from "../../vinom/webclient/schema.js";
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

// A snap's d is a schema snapshot (§16.8, first byte 0x01) or a §16.1 one (0x94): the
// welcome that makes a GameSocket read it (a game declaring its view has `vs`).
const welcomeFor = (d) => ({
  t: "welcome", tick_rate: 20, snapshot_rate: 20, ...(d[0] === 0x01 ? { vs: FILE.schema.schema } : {}),
});

// The snap vectors (§14.1): since game protocol 4 every one is relative (kind
// "relative_snap"), its d of either body kind; the rest are inputs.
const snapVectors = () => Object.values(vectors("messages")).filter((v) => v.kind !== "input");

test("every snap vector is a relative one, of either body kind, full and delta", () => {
  const snaps = snapVectors();
  assert.deepEqual([...new Set(snaps.map((v) => v.kind))], ["relative_snap"]);
  for (const v of snaps) {
    assert.equal(v.hex.slice(0, 2), "c1", v.name);
    assert.ok(v.hex.endsWith(v.snap.d), v.name);
  }
  // A §16.1 body (0x94) and a §16.8 one (0x01), each full and against a baseline.
  const found = snaps.map((v) => `${v.snap.d.slice(0, 2)} ${v.base === null ? "full" : "delta"}`);
  assert.deepEqual([...new Set(found)].sort(), ["01 delta", "01 full", "94 delta", "94 full"]);
});

test("each relative snap vector reads as its fields against its baseline's", () => {
  const relative = snapVectors();
  assert.equal(relative.length, 4);
  for (const v of relative) {
    const { v: version, ts, r, i, ik, d } = v.snap;
    const base = v.base === null ? null : [v.base.v, v.base.ts, v.base.r];
    const snap = snapOfPacked(bytes(v.hex));
    assert.deepEqual(resolveRelativeSnap(snap, v.d_tick, base), [version, ts, r], v.name);
    assert.deepEqual(snap, { t: "snap", v: version, ts, r: r === null ? null : r / 1000, i, ik, d: bytes(d) }, v.name);
  }
  // Through a GameSocket, by body kind in the file's order (a delta after the
  // snap of its baseline tick): each becomes the state it stands for, its fields
  // kept by tick for the snaps against it.
  for (const kind of [0x01, 0x94]) {
    const chain = relative.filter((v) => bytes(v.snap.d)[0] === kind);
    assert.equal(chain.length, 2);
    const { socket, deliver, states, warnings } = playing();
    deliver(encode(welcomeFor(bytes(chain[0].snap.d))));
    for (const v of chain) {
      if (v.base !== null) assert.deepEqual(socket.snapFields.get(v.base_tick), [v.base.v, v.base.ts, v.base.r], v.name);
      deliver(bytes(v.hex));
      const state = states.at(-1);
      assert.equal(state.t, "state", v.name);
      assert.deepEqual([state.v, state.ts, state.k, state.i], [v.snap.v, v.snap.ts, v.d_tick, v.snap.i], v.name);
      assert.equal(state.r, v.snap.r === null ? null : v.snap.r / 1000, v.name);
      if (v.d_view !== undefined) assert.deepEqual(decode(encode(state.s)), v.d_view, v.name);
      assert.deepEqual(socket.snapFields.get(v.d_tick), [v.snap.v, v.snap.ts, v.snap.r], v.name);
    }
    assert.deepEqual(warnings, []);
  }
});

// LEB128 and zigzag as the host writes them (by multiplication: 2^53 is past
// 32-bit bitwise operators).
const uvar = (n) => {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  return [...out, n];
};
const zigzag = (n) => (n >= 0 ? 2 * n : -2 * n - 1);
// A snap: byte c1, five numbers (each a number, or its bytes as given), then d.
const packed = (numbers, d = [0x94]) =>
  Uint8Array.from([0xc1, ...numbers.flatMap((n) => (Array.isArray(n) ? n : uvar(n))), ...d]);

test("a relative snap of a section 16.1 snapshot, full then delta, gives the states of its fields", () => {
  // The §16.1 vectors (§16.7): the full snapshot of tick 1 and the delta of tick 2 against it.
  const { full, delta } = vectors("delta");
  assert.deepEqual([full.tick, full.baseline, delta.tick, delta.baseline], [1, null, 2, "full"]);
  // Tick 1 full: v 7, ts 1050, r 119950 ms, i nil, ik 0 (one before its tick).
  const first = packed([7, 1050, 119950 + 1, 0, zigzag(0 - 1) + 1], bytes(full.hex));
  // Tick 2 against tick 1: v 9, ts 1100, r 119900 (the same end), i 4, ik 1.
  const second = packed([9 - 7, 1100 - 1050, zigzag(1100 + 119900 - (1050 + 119950)) + 1, zigzag(4) + 1,
    zigzag(1 - 2) + 1], bytes(delta.hex));
  // Tick 3 against tick 2 with no time left (r nil), then tick 4 against tick 3:
  // a nil r_b counts as 0, so r is the phase's end on the room's clock.
  const third = packed([1, 50, 0, 0, 0], bytes("9403" + "01c0" + "80"));
  const fourth = packed([1, 50, zigzag(1200 + 30000 - 1150) + 1, 0, zigzag(3 - 4) + 1], bytes("9404" + "01c0" + "80"));
  const { socket, deliver, states, sent, warnings } = playing();
  deliver(encode(welcomeFor([0x94])));
  socket.pending = [[0, { m: 1 }], [1, { m: 2 }], [2, { m: 3 }], [3, { m: 4 }]];
  deliver(first);
  assert.deepEqual(states.at(-1), { t: "state", v: 7, p: "playing", r: 119.95, k: 1, ts: 1050, s: full.decoded, i: null });
  assert.deepEqual(socket.pending.map(([k]) => k), [1, 2, 3]);
  deliver(second);
  assert.deepEqual(states.at(-1), { t: "state", v: 9, p: "playing", r: 119.9, k: 2, ts: 1100, s: delta.decoded, i: 4 });
  assert.deepEqual(socket.pending.map(([k]) => k), [2, 3]);
  deliver(third);
  assert.deepEqual([states.at(-1).v, states.at(-1).ts, states.at(-1).r, states.at(-1).k], [10, 1150, null, 3]);
  deliver(fourth);
  assert.deepEqual([states.at(-1).v, states.at(-1).ts, states.at(-1).r, states.at(-1).k], [11, 1200, 30, 4]);
  assert.deepEqual(socket.pending, []);
  assert.deepEqual([...socket.snapFields], [[1, [7, 1050, 119950]], [2, [9, 1100, 119900]], [3, [10, 1150, null]], [4, [11, 1200, 30000]]]);
  // Each snap applied is acknowledged: the host encodes the next against it.
  assert.equal(decode(sent.at(-1)).a, 1);
  socket.input({ m: 5 });
  assert.equal(decode(sent.at(-1)).a, 4);
  // A delta against a tick whose snap was never applied is dropped (its numbers
  // cannot be resolved), and so is one whose d is corrupt: no state, counted.
  const before = states.length;
  deliver(packed([1, 50, 0, 0, 0], bytes("9406" + "01c0" + "80")));
  deliver(packed([1, 50, 0, 0, 0], [0x94, 0x07]));
  assert.equal(states.length, before);
  assert.deepEqual(socket.snapshots.drops, { corrupt: 1, unknown_baseline: 1, checksum: 0, stale: 0 });
  assert.deepEqual(warnings, []);
  assert.equal(unzigzag(zigzag(-3)), -3);
});

test("the array snap, the absolute packed one and a msgpack map saying snap are not snaps", () => {
  const { socket, deliver, states, warnings } = playing();
  deliver(encode(welcomeFor([0x94])));
  const d = bytes("9403c0c081a17801");
  deliver(encode([5, 300, null, null, null, d])); // the array of protocol 3
  deliver(encode({ t: "snap", v: 5, ts: 300, r: null, i: null, ik: null, d }));
  assert.deepEqual(states.map((m) => m.t), ["welcome"]);
  assert.equal(socket.snapTick, null);
  assert.deepEqual(warnings, []);
  // An absolute packed snap reads as a relative one (the same bytes): a full d's
  // numbers are the same, but ik is zigzag(ik - k) + 1, no longer ik + 1.
  deliver(packed([5, 300, 0, 0, 4 + 1], d));
  assert.deepEqual([states.at(-1).v, states.at(-1).ts, states.at(-1).k], [5, 300, 3]);
  assert.notEqual(socket.snapFields.get(3), undefined);
});

test("a snap with a number cut short, over 8 bytes or not below 2^53 is not a message", () => {
  const five = [1300, 70000, 180001, 6, 1235];
  // The limits: 2^53 - 1 reads exactly, a number may take 8 bytes (not minimal), d
  // may be empty (the snapshot receiver drops it, not this).
  assert.equal(uvar(2 ** 53 - 1).length, 8);
  assert.deepEqual(snapOfPacked(packed([2 ** 53 - 1, 0, 0, 0, 0])).relative, [2 ** 53 - 1, 0, 0, 0]);
  assert.deepEqual(snapOfPacked(packed([[0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 0, 0, 0, 0])).relative, [5, 0, 0, 0]);
  assert.deepEqual(snapOfPacked(packed([0, 0, 0, 0, 0], [])),
    { t: "snap", relative: [0, 0, 0, 0], i: null, d: new Uint8Array() });
  assert.deepEqual(snapOfPacked(packed(five)), { t: "snap", relative: [1300, 70000, 180001, 1235], i: -3, d: bytes("94") });
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

// The snap vector of a full §16.1 d (tick 3): the first snap a session applies.
const fullSnap = () => snapVectors().find((v) => v.base === null && v.snap.d.startsWith("94"));

test("the input vector is the message GameSocket sends for an input after a snap", () => {
  const { input } = vectors("messages");
  const snap = fullSnap();
  assert.equal(hex(encode(input.message)), input.hex);
  assert.deepEqual(decode(bytes(input.hex)), input.message);
  const { socket, deliver, sent } = playing();
  deliver(encode(welcomeFor(bytes(snap.snap.d))));
  deliver(bytes(snap.hex));
  const [[, pressed]] = input.message.x;
  const k = socket.input(pressed);
  const message = decode(sent.at(-1));
  // The same keys in the same order (nothing asks for a snap form or a schema),
  // acknowledging the snap's tick; only the tick the input is stamped with is the
  // socket's own.
  assert.deepEqual(Object.keys(message), Object.keys(input.message));
  assert.deepEqual(message, { ...input.message, a: snap.d_tick, x: [[k, pressed]] });
  assert.equal(input.message.a, snap.d_tick);
});

test("the drawn input vector: an input given while the others were drawn says when", () => {
  const { input_drawn: drawn } = vectors("messages");
  const snap = fullSnap();
  assert.equal(hex(encode(drawn.message)), drawn.hex);
  const [[k, pressed, b, f]] = drawn.message.x;
  assert.deepEqual(drawnFields(k, drawn.seen[k]), [b, f]);
  assert.equal(k - b + f / 256, drawn.seen[k]);
  assert.deepEqual([drawnFields(9, 10), drawnFields(300, 44.9), drawnFields(9, NaN)], [null, null, null]);
  // A GameSocket that rendered sends the moment it last drew with each input.
  const { socket, deliver, sent } = playing();
  deliver(encode(welcomeFor(bytes(snap.snap.d))));
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
  assert.equal(FILE.schema.vectors.length, 5);
  assert.ok(found.schema_waits.waiting, "a delta with waits");
  const schema = new ViewSchema(FILE.schema.schema);
  // The rows that wait by field name, as a vector's `waiting` names them.
  const named = (waiting) => Object.fromEntries([...waiting].map(([at, ids]) => [schema.fields[at][0], ids]));
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
    assert.deepEqual(named(got.waiting), v.waiting ?? {}, v.name);
  }
  // In tick order through a receiver given the schema: every one applied, none
  // dropped (the waiting unit 3 is carried on from ticks 1 and 2, where it stood).
  const receiver = new SnapshotReceiver({ schema });
  for (const v of Object.values(found).sort((a, b) => a.tick - b.tick)) {
    const snapshot = receiver.receive(bytes(v.hex));
    assert.notEqual(snapshot, null, v.name);
    assert.deepEqual(snapshot.view, v.decoded, v.name);
  }
  // (Full snapshots are kept as null: they list no waits.)
  const listed = [...receiver.waited].filter(([, waiting]) => waiting !== null);
  assert.deepEqual(listed.map(([tick, waiting]) => [tick, named(waiting)]), [[4, found.schema_waits.waiting]]);
  assert.equal(receiver.applied, 5);
  assert.deepEqual(Object.values(receiver.drops), [0, 0, 0, 0]);
});
