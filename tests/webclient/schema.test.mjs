// schema.js, the schema snapshots of docs/protocol.md §16.8 (the vectors are read
// in vectors.test.mjs; test_schema.py checks this decoder against Python's on
// random streams): the refusals that make a frame corrupt, exactly as Python's
// vinom/rooms/schema.py refuses them (cut short, bits or bytes left over, a value
// beyond its range, rows out of order, a bad header), the rows that wait (flag 02:
// read, refused when malformed, shown carried on by the receiver; carrying itself
// in carrying.test.mjs), the drop reasons a
// SnapshotReceiver counts, 53-bit fields read exactly, declarations refused, and
// GameSocket reading schema snapshots in its snaps from the first, without asking
// (no `"vs"` nor `"pk"` in its inputs since game protocol 4).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Ext, decode, encode } from "../../vinom/webclient/codec.js";
import { CorruptSnapshot, SnapshotReceiver, UnknownBaseline, checksum } from "../../vinom/webclient/delta.js";
import { GameSocket } from "../../vinom/webclient/game.js";
import { SCHEMA_FORMAT, ViewSchema, decodeSchemaFrame, parseSchemaFrame } from "../../vinom/webclient/schema.js";
import { FILE, bytes, hex } from "./vectors.mjs";

const DECLARATION = FILE.schema.schema; // hp 0..100 (7 bits), score -1000..100000 (17 bits), alive, name, units
const SCHEMA = new ViewSchema(DECLARATION);
// The vectors of §16.8 (their names are the group's own): the full one of tick 1,
// and one against it.
const FULL = FILE.schema.vectors.find((v) => v.baseline === null && v.tick === 1);
const DELTA = FILE.schema.vectors.find((v) => v.baseline === FULL.name);
// The one against DELTA whose rows wait (flags 02).
const WAITS = FILE.schema.vectors.find((v) => v.waiting !== undefined);

// Bits most significant first, as the host writes them (BigInt here: independent
// of the decoder's arithmetic).
class Bits {
  constructor() {
    this.bits = [];
  }

  put(value, count) {
    const v = BigInt(value);
    for (let i = count - 1; i >= 0; i--) this.bits.push(Number((v >> BigInt(i)) & 1n));
    return this;
  }

  uvar(value) {
    let v = BigInt(value);
    while (v > 0x7fn) {
      this.put(0x80n | (v & 0x7fn), 8);
      v >>= 7n;
    }
    return this.put(v, 8);
  }

  bytes(data) {
    for (const byte of data) this.put(byte, 8);
    return this;
  }

  // The body: padded with zero bits to whole bytes (or with `padding` bits).
  finish(padding = 0) {
    const bits = [...this.bits];
    const pad = (8 - (bits.length % 8)) % 8;
    for (let i = 0; i < pad; i++) bits.push((padding >> (pad - 1 - i)) & 1);
    const out = new Uint8Array(bits.length / 8);
    bits.forEach((bit, i) => {
      out[i >> 3] |= bit << (7 - (i & 7));
    });
    return out;
  }
}

function leb(value) {
  const out = [];
  let v = BigInt(value);
  while (v > 0x7fn) {
    out.push(Number(0x80n | (v & 0x7fn)));
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

// A frame: format byte, tick and distance (LEB128), flags (and the CRC), the body;
// `waits`: flag 02, the rows carry wait bits.
function frame(tick, distance, body, sum = null, waits = false) {
  const head = [SCHEMA_FORMAT, ...leb(tick), ...leb(distance)];
  const flags = waits ? 2 : 0;
  if (sum === null) head.push(flags);
  else head.push(flags | 1, sum & 0xff, (sum >>> 8) & 0xff, (sum >>> 16) & 0xff, sum >>> 24);
  return Uint8Array.from([...head, ...body]);
}

// The full body of the vector schema: hp, score, alive, name (msgpack bytes), then
// the units' rows as given: [[id, x steps, y steps], ...] (wire integers).
function fullBody({ hp = 90, score = 10, alive = true, name = encode("ann"), units = [[3, -450, 1], [7, 123, 4]] } = {}) {
  const out = new Bits().put(hp, 7).put(score + 1000, 17).put(alive ? 1 : 0, 1).uvar(name.length).bytes(name);
  out.uvar(units.length);
  for (const [id, x, y] of units) out.put(id, 8).put(x + 50000, 17).put(y, 5);
  return out;
}

const WIRE_1 = decodeSchemaFrame(SCHEMA, frame(1, 0, fullBody().finish()), new Map()).wire;

function refused(data, baselines = new Map([[1, WIRE_1]]), schema = SCHEMA) {
  assert.throws(() => decodeSchemaFrame(schema, data, baselines), CorruptSnapshot, hex(data));
  const receiver = new SnapshotReceiver({ schema });
  for (const [tick, wire] of baselines) receiver.wires.set(tick, wire);
  assert.equal(receiver.receive(data), null);
  assert.equal(receiver.drops.corrupt, 1, hex(data));
}

test("the frame written here is the vector's: the helpers write what the host writes", () => {
  const units = [[3, -450, 1], [7, 123, 4]];
  const body = fullBody({ hp: 90, score: 10, alive: true, name: encode("ann"), units }).finish();
  assert.equal(hex(frame(1, 0, body)), FULL.hex);
  assert.deepEqual(SCHEMA.rebuild(WIRE_1), FULL.decoded);
});

test("a frame cut short anywhere, or with a byte after it, is corrupt", () => {
  const wires = new Map();
  for (const v of FILE.schema.vectors) {
    const data = bytes(v.hex);
    for (let end = 0; end < data.length; end++) {
      assert.throws(() => decodeSchemaFrame(SCHEMA, data.subarray(0, end), wires), CorruptSnapshot, `${v.name} cut at ${end}`);
    }
    for (const extra of [0x00, 0x80, 0xff]) {
      assert.throws(() => decodeSchemaFrame(SCHEMA, Uint8Array.from([...data, extra]), wires), CorruptSnapshot, v.name);
    }
    const got = decodeSchemaFrame(SCHEMA, data, wires);
    wires.set(got.tick, got.wire);
  }
});

test("bits after the body are corrupt: only zero padding may end it", () => {
  // hp 7, score 17, alive 1, name 8 + 8 * 4 ("ann"), units 8 + 2 * 30: 133 bits, three of padding.
  const body = fullBody();
  assert.equal(body.bits.length % 8, 5);
  assert.notEqual(decodeSchemaFrame(SCHEMA, frame(1, 0, body.finish(0)), new Map()), null);
  for (const padding of [1, 2, 4, 7]) refused(frame(1, 0, body.finish(padding)));
  // A delta body of one unchanged field short: the last field's flag missing.
  const unchanged = new Bits().put(0, 5).finish(); // 5 flags, 3 bits of padding
  assert.deepEqual(decodeSchemaFrame(SCHEMA, frame(2, 1, unchanged), new Map([[1, WIRE_1]])).wire, WIRE_1);
  refused(frame(2, 1, new Uint8Array(0)));
  refused(frame(2, 1, new Bits().put(0, 5).finish(1)));
  refused(frame(2, 1, Uint8Array.from([0, 0])));
});

test("a value beyond its field's range is corrupt, whole or as a difference", () => {
  refused(frame(1, 0, fullBody({ hp: 101 }).finish()));
  refused(frame(1, 0, fullBody({ hp: 127 }).finish()));
  assert.notEqual(decodeSchemaFrame(SCHEMA, frame(1, 0, fullBody({ hp: 100 }).finish()), new Map()), null);
  refused(frame(1, 0, fullBody({ score: 100001 }).finish()));
  // x is -50000..50000 steps of 0.01 (17 bits), y 0..20 half units (5 bits).
  refused(frame(1, 0, fullBody({ units: [[3, 50001, 0]] }).finish()));
  refused(frame(1, 0, fullBody({ units: [[3, 0, 21]] }).finish()));
  assert.deepEqual(
    SCHEMA.rebuild(decodeSchemaFrame(SCHEMA, frame(1, 0, fullBody({ units: [[3, 50000, 20], [4, -50000, 0]] }).finish()), new Map()).wire).units,
    [[3, 500, 10], [4, -500, 0]],
  );
  // score at 10: +2 is zig-zag 4 in 7 bits; down by 1011 (zig-zag 2021 in 12 bits) passes -1000.
  const delta = (flagged) => frame(2, 1, new Bits().put(0, 1).put(1, 1).put(flagged[0], flagged[1]).put(0, 3).finish());
  const score = (body) => decodeSchemaFrame(SCHEMA, body, new Map([[1, WIRE_1]])).wire[1];
  assert.equal(score(delta([4, 8])), 12);
  assert.equal(score(delta([(0b10 << 12) | 2019, 14])), 10 - 1010);
  refused(delta([(0b10 << 12) | 2021, 14]));
  // hp is 7 bits wide: a change is its whole value, never a difference.
  const hp = (value) => frame(2, 1, new Bits().put(1, 1).put(value, 7).put(0, 4).finish());
  assert.equal(decodeSchemaFrame(SCHEMA, hp(100), new Map([[1, WIRE_1]])).wire[0], 100);
  refused(hp(101));
});

test("rows out of id order, or twice, or added with an id already there, are corrupt", () => {
  refused(frame(1, 0, fullBody({ units: [[7, 0, 0], [3, 0, 0]] }).finish()));
  refused(frame(1, 0, fullBody({ units: [[3, 0, 0], [3, 0, 0]] }).finish()));
  assert.notEqual(decodeSchemaFrame(SCHEMA, frame(1, 0, fullBody({ units: [[3, 0, 0], [4, 0, 0]] }).finish()), new Map()), null);
  // Against WIRE_1 (units 3 and 7): both kept unchanged (10 10), then the rows added.
  const added = (ids) => {
    const out = new Bits().put(0, 4).put(1, 1).put(0b1010, 4).uvar(ids.length);
    for (const id of ids) out.put(id, 8).put(50000, 17).put(0, 5);
    return frame(2, 1, out.finish());
  };
  const rows = (data) => SCHEMA.rebuild(decodeSchemaFrame(SCHEMA, data, new Map([[1, WIRE_1]])).wire).units.map((r) => r[0]);
  assert.deepEqual(rows(added([1, 5, 9])), [1, 3, 5, 7, 9], "merged in id order");
  refused(added([7]));
  refused(added([9, 5]));
  refused(added([5, 5]));
  // A rows field in a full body of more rows than a snapshot holds.
  refused(frame(1, 0, new Bits().put(90, 7).put(1010, 17).put(1, 1).uvar(1).put(0xc0, 8).uvar(65536).finish()));
});

test("a malformed header is corrupt; a baseline not held is unknown", () => {
  const body = fullBody().finish();
  refused(Uint8Array.from([0x02, ...frame(1, 0, body).subarray(1)])); // not the format byte
  refused(Uint8Array.from([0x01, 1, 0, 2, ...body])); // flags 2: waits in a full snapshot
  refused(Uint8Array.from([0x01, 2, 1, 4, 0])); // flags 4, 8 and 0x80: not flags
  refused(Uint8Array.from([0x01, 2, 1, 8, 0]));
  refused(Uint8Array.from([0x01, 2, 1, 0x82, 0]));
  assert.deepEqual(decodeSchemaFrame(SCHEMA, Uint8Array.from([0x01, 2, 1, 2, 0]), new Map([[1, WIRE_1]])).wire, WIRE_1);
  refused(frame(1, 2, body)); // a baseline before tick 0
  refused(Uint8Array.from([0x01, 1, 0, 1, 0, 0, 0])); // a checksum cut short
  // LEB128 of at most 9 bytes; a tick beyond 2^53 - 1 (which Python would read) has no
  // exact number here, and is refused as delta.js refuses one.
  refused(Uint8Array.from([0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, ...body]));
  assert.equal(parseSchemaFrame(frame(2 ** 53 - 1, 0, body)).tick, 2 ** 53 - 1);
  refused(frame(2n ** 53n, 0, body));
  assert.deepEqual(parseSchemaFrame(frame(300, 0, body, 0xdeadbeef)).checksum, 0xdeadbeef);
  assert.throws(() => decodeSchemaFrame(SCHEMA, frame(9, 3, body), new Map([[1, WIRE_1]])), UnknownBaseline);
});

test("the vector with waits: unit 3 waits in its baseline, unit 12 outside it; malformed waits are corrupt", () => {
  const wire2 = decodeSchemaFrame(SCHEMA, bytes(DELTA.hex), new Map([[1, WIRE_1]])).wire;
  // Against tick 2 (units 3, 7, 9): hp, score, alive, name unchanged; the units
  // written: 3 unchanged and waiting (10 1), 7 unchanged (10 0), 9 changed (11, x
  // +100 steps: 1, 10 and zig-zag 200 in 12 bits; y 0), none added, then 12 waiting.
  const units = (outside, added = []) => {
    const out = new Bits().put(0, 4).put(1, 1).put(0b101, 3).put(0b100, 3).put(0b11, 2)
      .put(1, 1).put(0b10, 2).put(200, 12).put(0, 1).uvar(added.length);
    for (const id of added) out.put(id, 8).put(50000, 17).put(0, 5);
    out.uvar(outside.length);
    for (const id of outside) out.put(id, 8);
    return out.finish();
  };
  assert.equal(hex(frame(4, 2, units([12]), null, true)), WAITS.hex);
  const got = decodeSchemaFrame(SCHEMA, bytes(WAITS.hex), new Map([[2, wire2]]));
  assert.deepEqual(SCHEMA.rebuild(got.wire), WAITS.decoded); // unit 3 as the baseline has it
  assert.deepEqual(got.waiting, new Map([[4, WAITS.waiting.units]]));
  // A delta without waits has none; nor does one with the flag and no row waiting.
  assert.deepEqual(decodeSchemaFrame(SCHEMA, bytes(DELTA.hex), new Map([[1, WIRE_1]])).waiting, new Map());
  const none = new Bits().put(0, 4).put(1, 1).put(0b100, 3).put(0b100, 3).put(0b100, 3).uvar(0).uvar(0).finish();
  const still = decodeSchemaFrame(SCHEMA, frame(4, 2, none, null, true), new Map([[2, wire2]]));
  assert.deepEqual([still.wire, still.waiting], [wire2, new Map()]);
  // Waiting ids ascending, in neither the baseline nor the rows added, at most 65,535.
  const base = new Map([[2, wire2]]);
  assert.deepEqual(decodeSchemaFrame(SCHEMA, frame(4, 2, units([0, 12, 255], [5]), null, true), base).waiting,
    new Map([[4, [3, 0, 12, 255]]]));
  for (const [outside, added] of [[[12, 11], []], [[12, 12], []], [[7], []], [[5], [5]]]) {
    refused(frame(4, 2, units(outside, added), null, true), base);
  }
  refused(frame(4, 2, new Bits().put(0, 4).put(1, 1).put(0b100, 3).put(0b100, 3).put(0b100, 3).uvar(0).uvar(65536).finish(), null, true), base);
  // The same body without the flag is not this snapshot: its bits are left over.
  refused(frame(4, 2, units([12])), base);
});

test("the receiver shows a waiting row carried on, keeps the wire view received, and forgets waits it no longer holds", () => {
  const receiver = new SnapshotReceiver({ schema: SCHEMA, capacity: 3 });
  assert.notEqual(receiver.receive(frame(1, 0, fullBody().finish())), null); // unit 3 at x -450 steps
  // Tick 2: unit 3's x +50 steps (zig-zag 100 in 7 bits), unit 7 unchanged.
  const moved = new Bits().put(0, 4).put(1, 1).put(0b11, 2).put(1, 1).put(0, 1).put(100, 7).put(0, 1).put(0b10, 2).uvar(0).finish();
  assert.deepEqual(receiver.receive(frame(2, 1, moved)).view.units, [[3, -4, 0.5], [7, 1.23, 2]]);
  // Ticks 3 and 4: unit 3 waits (sent as tick 2 has it), carried on along the line
  // of ticks 1 and 2 (tick 3 is no sample: it waited there).
  const waits = new Bits().put(0, 4).put(1, 1).put(0b101, 3).put(0b100, 3).uvar(0).uvar(0).finish();
  assert.deepEqual(receiver.receive(frame(3, 1, waits, null, true)).view.units, [[3, -3.5, 0.5], [7, 1.23, 2]]);
  const fourth = receiver.receive(frame(4, 1, waits, checksum(SCHEMA.rebuild(receiver.wires.get(2))), true));
  assert.deepEqual(fourth.view.units, [[3, -3, 0.5], [7, 1.23, 2]], "the checksum is the wire view's, as received");
  assert.deepEqual(receiver.wires.get(4), receiver.wires.get(2));
  assert.deepEqual(receiver.views.get(4), fourth.view);
  assert.deepEqual([...receiver.waited.keys()], [3, 4]);
  assert.deepEqual(receiver.waited.get(4), new Map([[4, [3]]]));
  // Full snapshots push ticks 3 and 4 out of the capacity of 3: their waits go with
  // them. A full snapshot is kept as null: it lists no waits, so a row it lacks may
  // be waiting rather than gone.
  receiver.receive(frame(5, 0, fullBody().finish()));
  receiver.receive(frame(6, 0, fullBody().finish()));
  assert.deepEqual([...receiver.waited.keys()], [4, 5, 6]);
  receiver.receive(frame(7, 0, fullBody().finish()));
  assert.deepEqual([...receiver.waited], [[5, null], [6, null], [7, null]]);
  assert.deepEqual(Object.values(receiver.drops), [0, 0, 0, 0]);
});

test("an any value that is not one msgpack value with str keys is corrupt", () => {
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0xc1]) }).finish())); // never used
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0x01, 0x02]) }).finish())); // two values
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0x92, 0x01]) }).finish())); // cut short
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0x81, 0x01, 0x02]) }).finish())); // an int key
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0xa2, 0xc3, 0x28]) }).finish())); // not UTF-8
  refused(frame(1, 0, fullBody({ name: new Uint8Array(0) }).finish()));
  // An ext of type -1 is a timestamp to Python's msgpack: 4, 8 or 12 bytes, under 10^9 ns.
  const ns = (n, size) => (size === 8
    ? [Math.floor((n * 4) / 2 ** 24) & 0xff, ...[16, 8, 0].map((s) => ((n * 4) >>> s) & 0xff), 0, 0, 0, 0]
    : [...[24, 16, 8, 0].map((s) => (n >>> s) & 0xff), 0, 0, 0, 0, 0, 0, 0, 0]);
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0xd4, 0xff, 0x00]) }).finish()));
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0xd7, 0xff, ...ns(1e9, 8)]) }).finish()));
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0xc7, 12, 0xff, ...ns(1e9, 12)]) }).finish()));
  refused(frame(1, 0, fullBody({ name: Uint8Array.from([0x91, 0xd4, 0xff, 0x00]) }).finish()));
  const name = (data) => SCHEMA.rebuild(decodeSchemaFrame(SCHEMA, frame(1, 0, fullBody({ name: data }).finish()), new Map()).wire).name;
  assert.deepEqual(name(encode({ a: [1, 2.5, null], b: new Uint8Array([7]) })), { a: [1, 2.5, null], b: new Uint8Array([7]) });
  assert.equal(name(Uint8Array.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0])), 1); // 1.0, a number
  for (const data of [[0xd6, 0xff, 0, 0, 0, 1], [0xd7, 0xff, ...ns(999999999, 8)], [0xc7, 12, 0xff, ...ns(999999999, 12)], [0xd4, 0x05, 0x00]]) {
    assert.ok(name(Uint8Array.from(data)) instanceof Ext, hex(data));
  }
});

test("the receiver counts corrupt, unknown_baseline, checksum and stale, and keeps the wire views", () => {
  const receiver = new SnapshotReceiver({ schema: SCHEMA, capacity: 3 });
  const body = fullBody().finish();
  const sum = checksum(SCHEMA.rebuild(WIRE_1));
  assert.deepEqual(receiver.receive(frame(1, 0, body, sum)).view, SCHEMA.rebuild(WIRE_1));
  assert.equal(receiver.receive(frame(2, 0, body, (sum + 1) >>> 0)), null);
  assert.equal(receiver.receive(frame(1, 0, body)), null); // not newer
  assert.deepEqual(receiver.receive(frame(3, 2, Uint8Array.from([0]))).view, SCHEMA.rebuild(WIRE_1)); // unchanged
  assert.equal(receiver.receive(frame(4, 2, Uint8Array.from([0]))), null); // tick 2 was never applied
  assert.equal(receiver.receive(frame(5, 0, body.subarray(1))), null);
  assert.equal(receiver.receive("not bytes"), null);
  assert.deepEqual(receiver.drops, { corrupt: 2, unknown_baseline: 1, checksum: 1, stale: 1 });
  assert.deepEqual([...receiver.wires.keys()], [1, 3]);
  // A schema snapshot with no schema is what an old client reads: corrupt.
  const old = new SnapshotReceiver();
  assert.equal(old.receive(frame(1, 0, body)), null);
  assert.equal(old.drops.corrupt, 1);
  // Section 16.1's snapshots are still read, beside them; the wire views kept are the last `capacity`.
  assert.deepEqual(receiver.receive(bytes("9406c0c081a16101")).view, { a: 1 });
  for (const tick of [7, 8, 9, 10]) assert.notEqual(receiver.receive(frame(tick, 0, body)), null);
  assert.deepEqual([...receiver.wires.keys()], [8, 9, 10]);
  assert.equal(receiver.newest, 10);
});

test("fields of 53 bits read exactly, negative ranges too", () => {
  const schema = new ViewSchema([
    ["big", ["int", 0, 2 ** 53 - 1]],
    ["wide", ["int", -(2 ** 52), 2 ** 52 - 1]],
    ["fine", ["fixed", -1e12, 1e12, 0.001]],
  ]);
  assert.deepEqual(schema.fields.map(([, f]) => f.bits), [53, 53, 51]);
  const cases = [
    [2 ** 53 - 1, 2 ** 52 - 1, 1e15],
    [2 ** 53 - 2, -(2 ** 52), -1e15],
    [2 ** 52 + 1, 2 ** 52 - 3, 123456789012345],
    [0, 0, 0],
    [0x15555555555555, -0x5555555555555, -0xaaaaaaaaaaa],
  ];
  let base = null;
  let tick = 1;
  for (const [big, wide, fine] of cases) {
    const body = new Bits().put(big, 53).put(BigInt(wide) + 2n ** 52n, 53).put(BigInt(fine) + 10n ** 15n, 51).finish();
    const got = decodeSchemaFrame(schema, frame(tick, 0, body), new Map()).wire;
    assert.deepEqual(got, [big, wide, fine]);
    assert.deepEqual(schema.rebuild(got), { big, wide, fine: fine / (1 / 0.001) });
    // The same as a delta: a small difference (7 bits), a medium one (12), or whole.
    if (base !== null) {
      const d = new Bits();
      for (const [i, width, lo] of [[0, 53, 0n], [1, 53, -(2n ** 52n)], [2, 51, -(10n ** 15n)]]) {
        const value = [big, wide, fine][i];
        const diff = BigInt(value) - BigInt(base[i]);
        const z = diff >= 0n ? 2n * diff : -2n * diff - 1n;
        if (diff === 0n) d.put(0, 1);
        else if (z < 128n) d.put(1, 1).put(0, 1).put(z, 7);
        else if (z < 4096n) d.put(1, 1).put(0b10, 2).put(z, 12);
        else d.put(1, 1).put(0b11, 2).put(BigInt(value) - lo, width);
      }
      assert.deepEqual(decodeSchemaFrame(schema, frame(tick, 1, d.finish()), new Map([[tick - 1, base]])).wire, [big, wide, fine]);
    }
    base = got;
    tick += 1;
  }
  // Differences within 7 and 12 bits of a wide field.
  const small = new Bits().put(1, 1).put(0, 1).put(127, 7).put(1, 1).put(0b10, 2).put(4095, 12).put(0, 1).finish();
  assert.deepEqual(decodeSchemaFrame(schema, frame(2, 1, small), new Map([[1, [2 ** 53 - 1, 0, 0]]])).wire, [2 ** 53 - 1 - 64, -2048, 0]);
  // `fine` spans 2 * 10^15 steps in 51 bits: one more is beyond it.
  const fine = (raw) => frame(1, 0, new Bits().put(0, 53).put(0, 53).put(raw, 51).finish());
  assert.equal(decodeSchemaFrame(schema, fine(2n * 10n ** 15n), new Map()).wire[2], 1e15);
  refused(fine(2n * 10n ** 15n + 1n), new Map(), schema);
});

test("a declaration that is not one is refused with a TypeError", () => {
  const bad = [
    null, 7, [], [["a"]], [[1, ["bool"]]], [["a", ["bool"]], ["a", ["bool"]]],
    [["a", ["int", 2, 1]]], [["a", ["int", 0, 2 ** 53]]], [["a", ["int", 0.5, 3]]], [["a", ["int", 0]]],
    [["a", ["fixed", 0, 1, 0]]], [["a", ["fixed", 1, 0, 0.1]]], [["a", ["fixed", 0, 1, Infinity]]],
    [["a", ["fixed", 0, 2 ** 60, 1]]], [["a", ["fixed", 0.2, 0.3, 1]]], [["a", ["fixed", 0, 1, 5e-324]]],
    [["a", ["bool", 1]]], [["a", ["any", 1]]], [["a", ["float"]]], [["a", "int"]],
    [["a", ["rows", []]]], [["a", ["rows", [["bool"]]]]], [["a", ["rows", [["int", 0, 9], ["rows", [["int", 0, 1]]]]]]],
    [["a", ["rows", Array.from({ length: 33 }, () => ["int", 0, 9])]]],
    Array.from({ length: 65 }, (_, i) => [`f${i}`, ["bool"]]),
  ];
  for (const declaration of bad) assert.throws(() => new ViewSchema(declaration), TypeError, JSON.stringify(declaration));
  // As the welcome brings it (msgpack): a bound of 2^53 is a BigInt, within range.
  const decoded = decode(encode([["a", ["int", 1, 2n ** 53n]], ["b", ["fixed", -1, 1, 0.5]]]));
  assert.deepEqual(new ViewSchema(decoded).fields.map(([, f]) => [f.lo, f.hi, f.bits]), [[1, 2 ** 53, 53], [-2, 2, 3]]);
  assert.deepEqual(new ViewSchema({ a: ["bool"] }).fields.map(([name]) => name), ["a"]);
  assert.equal(new ViewSchema([["a", ["rows", Array.from({ length: 32 }, () => ["int", 0, 9])]]]).fields.length, 1);
});

// A GameSocket on a stand-in connection, and the input messages it sends.
function playing() {
  const sent = [];
  const warnings = [];
  const stand = { send: (data) => sent.push(decode(data)), close() {}, readyState: 1 };
  const socket = new GameSocket("wss://game.test/game", FILE.session.token, {
    open: () => stand, onWarning: (text) => warnings.push(text),
  });
  const deliver = (message) => stand.onmessage({ data: encode(message).slice().buffer });
  // A snap of d (§14: byte c1, five LEB128 numbers, d): v 1, ts 0, r 50 ms, i and
  // ik nil, as a full d's numbers (a delta's are against its baseline's).
  const snap = (d) => stand.onmessage({ data: Uint8Array.of(0xc1, 1, 0, 51, 0, 0, ...d).buffer });
  // Bytes as the host sent them.
  const raw = (data) => stand.onmessage({ data: data.slice().buffer });
  return { socket, sent, warnings, deliver, snap, raw };
}

test("GameSocket never asks for schema snapshots: the welcome's declaration says they come", () => {
  const { socket, sent, warnings, deliver, snap } = playing();
  deliver({ t: "welcome", tick_rate: 20, snapshot_rate: 20, vs: DECLARATION });
  assert.ok(socket.snapshots.schema instanceof ViewSchema);
  socket.input({ up: true });
  assert.deepEqual(Object.keys(sent.at(-1)), ["t", "a", "x"]);
  assert.equal(sent.at(-1).a, null);
  snap(bytes(DELTA.hex)); // against a baseline it does not hold: dropped
  assert.equal(socket.snapTick, null);
  // The first snap's schema snapshot is applied.
  snap(bytes(FULL.hex));
  assert.equal(socket.snapTick, 1);
  assert.ok(socket.snapshots.wires.has(1));
  socket.input({ up: false });
  assert.deepEqual(Object.keys(sent.at(-1)), ["t", "a", "x"]);
  assert.equal(sent.at(-1).a, 1);
  assert.deepEqual(socket.snapshots.drops, { corrupt: 0, unknown_baseline: 1, checksum: 0, stale: 0 });
  // A new session (a reconnection's welcome): nothing held, still nothing asked.
  deliver({ t: "welcome", tick_rate: 20, snapshot_rate: 20, vs: DECLARATION });
  assert.equal(socket.snapFields.size, 0);
  socket.input({ up: true });
  assert.deepEqual(Object.keys(sent.at(-1)), ["t", "a", "x"]);
  assert.equal(sent.at(-1).a, null);
  assert.deepEqual(warnings, []);
});

test("GameSocket without a declaration reads section 16.1 snaps; with one it cannot read, it warns", () => {
  const plain = playing();
  plain.deliver({ t: "welcome", tick_rate: 20, snapshot_rate: 20 });
  plain.socket.input({ up: true });
  assert.deepEqual(Object.keys(plain.sent.at(-1)), ["t", "a", "x"]);
  assert.equal(plain.socket.snapshots.schema, null);
  plain.snap(bytes("9401c0c081a16101"));
  assert.equal(plain.socket.snapTick, 1);
  const odd = playing();
  odd.deliver({ t: "welcome", tick_rate: 20, snapshot_rate: 20, vs: [["a", ["float"]]] });
  odd.socket.input({ up: true });
  assert.deepEqual(Object.keys(odd.sent.at(-1)), ["t", "a", "x"]);
  assert.deepEqual(odd.warnings, ["a welcome whose view schema cannot be read"]);
  // Its snaps carry schema snapshots all the same: corrupt to this client, dropped.
  odd.snap(bytes(FULL.hex));
  assert.equal(odd.socket.snapTick, null);
  assert.equal(odd.socket.snapshots.drops.corrupt, 1);
});

test("relative snaps of schema snapshots give the states of their fields, the delta's against its baseline's", () => {
  const { socket, sent, warnings, deliver, raw } = playing();
  const states = [];
  socket.onMessage = (message) => states.push(message);
  deliver({ t: "welcome", tick_rate: 20, snapshot_rate: 20, vs: DECLARATION });
  socket.input({ up: true });
  assert.deepEqual(Object.keys(sent.at(-1)), ["t", "a", "x"]);
  const chain = FILE.messages.vectors.filter((v) => v.kind === "relative_snap" && v.snap.d.startsWith("01"));
  assert.ok(chain.length >= 2);
  assert.ok(chain.some((v) => v.base !== null));
  for (const v of chain) {
    raw(bytes(v.hex));
    const state = states.at(-1);
    assert.equal(state.t, "state", v.name);
    assert.deepEqual([state.v, state.ts, state.r, state.k, state.i],
      [v.snap.v, v.snap.ts, v.snap.r === null ? null : v.snap.r / 1000, v.d_tick, v.snap.i], v.name);
    // Each ik read against its snap's tick acknowledged the inputs up to it.
    if (v.snap.ik !== null) assert.deepEqual(socket.pending.map(([k]) => k).filter((k) => k <= v.snap.ik), [], v.name);
  }
  assert.deepEqual(warnings, []);
});
