// Schema snapshots (docs/protocol.md, section 16.8): the browser's decoder of the
// `d` of a `snap` for a game that declares its view field by field, the same as
// Python's vinom/rooms/schema.py (whose decoder is the reference).
//
// The welcome carries the declaration as `vs`, and the host then sends every
// session of that game frames starting with 0x01 instead of section 16.1's
// msgpack array, from its first snap (game.js reads the snap around them). A frame is bit-packed against the client's acknowledged
// baseline: the decoder keeps each tick's *wire view* (integers, booleans,
// msgpack bytes, rows by id) and rebuilds from it the view a board takes
// (fixed numbers as n / (1 / step), rows as arrays in ascending id order, `any`
// values msgpack-decoded), which is exactly what the host rebuilds, so §16.4's
// checksum (delta.js) holds for it.
//
//   const schema = new ViewSchema(welcome.vs); // throws on a declaration it cannot read
//   const receiver = new SnapshotReceiver({ rules: welcome.q, schema }); // delta.js
//
// decodeSchemaFrame(schema, bytes, baselines) throws only delta.js's
// CorruptSnapshot or UnknownBaseline, whatever the bytes: a frame that breaks
// any rule of 16.8 (a value beyond its range, rows out of order, bits left over)
// is corrupt, as in Python.
//
// Under a game's byte budget a delta says which rows *wait* (flag 02: the host
// sent them as the baseline has them, and holds newer ones): the decoded frame's
// `waiting`. The receiver keeps the wire view as received, the baseline of later
// deltas, but shows each waiting row carried on from its newest samples
// (carryWaiting, 16.8 "Rows that wait"; Python's vinom/rooms/carrying.py).
//
// Wire integers are JavaScript numbers: a field spans at most 2^53 values, and
// bits are read by multiplication, never by 32-bit bitwise operators, so a
// 53-bit read is exact (no BigInt needed).

import { Ext, decode } from "./codec.js";
import { CorruptSnapshot, UnknownBaseline, checksum } from "./delta.js";

// The first byte of a schema snapshot (a section 16.1 snapshot starts with 0x94).
export const SCHEMA_FORMAT = 0x01;
// The frame's flags: a checksum follows; the body's rows carry wait bits (a delta only).
const CHECKSUM = 0x01;
const WAITS = 0x02;
// How far a waiting row is carried on: at most this many times the ticks between
// its newest two samples past the newest (Python's CARRIED_INTERVALS).
export const CARRIED_INTERVALS = 4;

// The limits of a declaration (Python's MAX_BITS, MAX_ROWS, MAX_COLUMNS, MAX_FIELDS).
const MAX_BITS = 53;
const MAX_ROWS = 65535;
const MAX_COLUMNS = 32;
const MAX_FIELDS = 64;
// A changed number's difference: in 7 bits when small, in 12 when medium (16.8).
const SMALL_BITS = 7;
const MEDIUM_BITS = 12;
// The widest integer a double holds exactly, with every integer below it.
const EXACT = 2 ** 53;

const INT = "int";
const FIXED = "fixed";
const BOOL = "bool";
const ANY = "any";
const ROWS = "rows";

function corrupt(why) {
  return new CorruptSnapshot(why);
}

function refuse(why) {
  return new TypeError(`not a view schema: ${why}`);
}

// Sets a key of a plain object, "__proto__" included (assigning it would set the prototype).
function setKey(object, key, value) {
  if (key === "__proto__") {
    Object.defineProperty(object, key, {
      value, enumerable: true, writable: true, configurable: true,
    });
  } else {
    object[key] = value;
  }
}

const show = (value) => {
  try {
    return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v));
  } catch {
    return String(value);
  }
};

// Python's int.bit_length of a non-negative integer (at most a little over 2^53 here).
function bitLength(n) {
  let bits = 0;
  while (bits <= MAX_BITS && n >= 2 ** bits) bits += 1;
  return bits;
}

// An integer of the declaration as an exact number: a msgpack decode gives a
// BigInt beyond 2^53 - 1; a bound beyond 2^53 has no exact neighbours and is refused.
function exactInteger(value) {
  const n = typeof value === "bigint" && value >= -(2n ** 53n) && value <= 2n ** 53n ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && Math.abs(n) <= EXACT ? n : null;
}

// -- the fields (Python's IntField, FixedField, BoolField, AnyField, RowsField) ----

// A bounded integer, or a quantised number (its wire integers n: the view reads
// n / scale, one IEEE division as in Python and section 16.3).
function numberField(kind, lo, hi, scale) {
  const span = hi - lo; // exact below 2^53; at or above, the field is refused anyway
  const bits = bitLength(span);
  if (hi < lo || bits > MAX_BITS) return null;
  return { kind, lo, hi, span, bits, scale };
}

function field(declared) {
  if (!Array.isArray(declared) || declared.length === 0 || typeof declared[0] !== "string") {
    throw refuse(`a field's kind is a list such as ["int", 0, 9], not ${show(declared)}`);
  }
  const [name, ...args] = declared;
  if (name === INT && args.length === 2) {
    const [lo, hi] = args.map(exactInteger);
    const made = lo === null || hi === null ? null : numberField(INT, lo, hi, 0);
    if (made === null) throw refuse(`an int field is ["int", lo, hi], lo <= hi, at most 2^${MAX_BITS} values: ${show(declared)}`);
    return made;
  }
  if (name === FIXED && args.length === 3) {
    const [lo, hi, step] = args.map((v) => (typeof v === "bigint" ? Number(v) : v));
    let made = null;
    if ([lo, hi, step].every((v) => typeof v === "number" && Number.isFinite(v)) && step > 0 && lo <= hi) {
      const scale = 1 / step; // one IEEE division, as Python's 1 / step
      const first = Math.ceil(lo * scale);
      const last = Math.floor(hi * scale);
      // (Python refuses an infinite product too; an integer beyond 2^53 would not be exact here.)
      if (Number.isFinite(scale) && Math.abs(first) <= EXACT && Math.abs(last) <= EXACT) {
        made = numberField(FIXED, first + 0, last + 0, scale); // + 0: -0 as 0
      }
    }
    if (made === null) throw refuse(`a fixed field is ["fixed", lo, hi, step], lo <= hi, step > 0, 1 to 2^${MAX_BITS} steps: ${show(declared)}`);
    return made;
  }
  if (name === BOOL && args.length === 0) return { kind: BOOL, bits: 1 };
  if (name === ANY && args.length === 0) return { kind: ANY, bits: 0 };
  if (name === ROWS && args.length === 1 && Array.isArray(args[0])) {
    const columns = args[0].map(field);
    if (columns.length === 0 || columns[0].kind !== INT) {
      throw refuse('rows are ["rows", [kind, ...]], the first column an int (the id)');
    }
    if (columns.length > MAX_COLUMNS || columns.some((c) => c.kind === ROWS)) {
      throw refuse(`rows have 1 to ${MAX_COLUMNS} columns, none of them rows`);
    }
    return { kind: ROWS, bits: 0, key: columns[0], columns: columns.slice(1) };
  }
  throw refuse(`not a field kind: ${show(declared)}`);
}

// -- bits ----------------------------------------------------------------------

// Bits read most significant first, each byte from its high bit (Python's BitReader).
class BitReader {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 0; // the next bit's index
    this.left = bytes.length * 8;
  }

  // An unsigned integer of `count` bits (at most 53: built by multiplication, exact).
  take(count) {
    if (count > this.left) throw corrupt("the bits run past the end of the snapshot");
    this.left -= count;
    let value = 0;
    while (count > 0) {
      const used = this.at & 7;
      const n = Math.min(8 - used, count);
      const chunk = (this.bytes[this.at >>> 3] >>> (8 - used - n)) & ((1 << n) - 1);
      value = value * (1 << n) + chunk;
      this.at += n;
      count -= n;
    }
    return value;
  }

  // LEB128 in groups of 8 bits, at most 10 groups as Python reads them; a value
  // too large for a number is only compared to limits it exceeds anyway.
  uvar() {
    let value = 0;
    let shift = 0;
    for (;;) {
      const group = this.take(8);
      value += (group & 0x7f) * 2 ** shift;
      if (group < 0x80) return value;
      shift += 7;
      if (shift > 63) throw corrupt("a variable-length integer is longer than 9 groups");
    }
  }

  // Only the zero padding of the last byte may be left.
  done() {
    if (this.left >= 8 || (this.left > 0 && this.take(this.left) !== 0)) {
      throw corrupt("bytes or bits after the snapshot's body");
    }
  }
}

// An unsigned integer as the signed one zigzag made it: 0, 1, 2, 3 ... as 0, -1, 1, -2 ...
export const unzigzag = (z) => (z % 2 === 0 ? z / 2 : -(z + 1) / 2);

// Whether a (typed) decoded `any` value is one Python's msgpack reads too: it
// makes a timestamp of every ext of type -1, and refuses one of another size
// than 4, 8 or 12 bytes, or of 10^9 nanoseconds or more.
function timestampsValid(value) {
  if (value instanceof Ext) {
    if (value.type !== -1) return true;
    const data = value.data;
    const at = (i) => data[i] * 0x1000000 + data[i + 1] * 0x10000 + data[i + 2] * 0x100 + data[i + 3];
    if (data.length === 4) return true;
    if (data.length === 8) return at(0) / 4 < 1e9; // the top 30 of 64 bits
    return data.length === 12 && at(0) < 1e9;
  }
  if (Array.isArray(value)) return value.every(timestampsValid);
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    return Object.values(value).every(timestampsValid);
  }
  return true;
}

// -- values (Python's _take_whole, _take_added, _take_changed) ------------------

function takeWhole(bits, kind) {
  switch (kind.kind) {
    case BOOL:
      return bits.take(1) === 1;
    case ANY: {
      const size = bits.uvar();
      if (size * 8 > bits.left) throw corrupt("a value runs past the end of the snapshot");
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = bits.take(8);
      // One msgpack value, with str keys only (Python's strict_map_key also takes
      // bin keys, which no JavaScript object holds).
      let value;
      try {
        value = decode(data, { typed: true });
      } catch {
        throw corrupt("a value that is not one msgpack value");
      }
      if (!timestampsValid(value)) throw corrupt("a timestamp that is not one");
      return data;
    }
    case ROWS:
      return takeAdded(bits, kind, null, []);
    default: {
      const raw = bits.take(kind.bits);
      if (raw > kind.span) throw corrupt("a number beyond its field's range");
      return raw + kind.lo;
    }
  }
}

// The rows a body adds (ascending ids, none in `base`), merged in id order with
// those kept of the baseline, `kept` ([id, columns] pairs, ascending).
function takeAdded(bits, kind, base, kept) {
  const count = bits.uvar();
  if (count + kept.length > MAX_ROWS) throw corrupt("more rows than a snapshot holds");
  const added = [];
  let previous = -Infinity;
  for (let i = 0; i < count; i++) {
    const key = takeWhole(bits, kind.key);
    if (key <= previous || (base !== null && base.has(key))) {
      throw corrupt("added rows out of id order, or an id already there");
    }
    previous = key;
    added.push([key, kind.columns.map((column) => takeWhole(bits, column))]);
  }
  const rows = new Map();
  let a = 0;
  let b = 0;
  while (a < kept.length || b < added.length) {
    const next = b >= added.length || (a < kept.length && kept[a][0] < added[b][0]) ? kept[a++] : added[b++];
    rows.set(next[0], next[1]);
  }
  return rows;
}

// Rows against `base`. With `waiting` (an array: the frame has waits), each
// unchanged row has its wait bit, and the rows end with the ids that wait outside
// the baseline (ascending, in neither it nor the rows); all are appended to it.
function takeRows(bits, kind, base, waiting = null) {
  const kept = [];
  for (const [key, old] of base) {
    if (!bits.take(1)) continue; // gone
    if (!bits.take(1)) {
      kept.push([key, old]); // unchanged
      if (waiting !== null && bits.take(1)) waiting.push(key);
      continue;
    }
    kept.push([key, kind.columns.map((column, i) => (bits.take(1) ? takeChanged(bits, column, old[i]) : old[i]))]);
  }
  const rows = takeAdded(bits, kind, base, kept);
  if (waiting !== null) {
    const count = bits.uvar();
    if (count > MAX_ROWS) throw corrupt("more rows than a snapshot holds");
    let previous = -Infinity;
    for (let i = 0; i < count; i++) {
      const key = takeWhole(bits, kind.key);
      if (key <= previous || base.has(key) || rows.has(key)) {
        throw corrupt("waiting rows out of id order, or an id in the rows");
      }
      previous = key;
      waiting.push(key);
    }
  }
  return rows;
}

function takeChanged(bits, kind, base) {
  if (kind.kind === ROWS) return takeRows(bits, kind, base);
  if ((kind.kind === INT || kind.kind === FIXED) && kind.bits > SMALL_BITS) {
    let difference;
    if (!bits.take(1)) difference = bits.take(SMALL_BITS);
    else if (kind.bits > MEDIUM_BITS && !bits.take(1)) difference = bits.take(MEDIUM_BITS);
    else return takeWhole(bits, kind);
    const n = base + unzigzag(difference);
    if (n < kind.lo || n > kind.hi) throw corrupt("a number beyond its field's range");
    return n;
  }
  return takeWhole(bits, kind);
}

// -- the schema ----------------------------------------------------------------

// `any` values as the view shows them, decoded once per wire value (a wire view
// shares an unchanged value's bytes with its baseline).
const decodedAny = new WeakMap();

function rebuildValue(kind, wire) {
  switch (kind.kind) {
    case FIXED:
      return wire / kind.scale;
    case ANY: {
      let value = decodedAny.get(wire);
      if (value === undefined) {
        value = decode(wire);
        decodedAny.set(wire, value);
      }
      return value;
    }
    case ROWS: {
      const columns = kind.columns;
      const rows = [];
      for (const [key, row] of wire) {
        const out = [key];
        for (let i = 0; i < columns.length; i++) out.push(rebuildValue(columns[i], row[i]));
        rows.push(out);
      }
      return rows;
    }
    default:
      return wire;
  }
}

// A game's declared view (the welcome's `vs`): [[name, kind], ...] (or an object
// name -> kind), 1 to 64 distinct names. Throws a TypeError for a declaration that
// is not one, or one this client cannot decode exactly: the client then does not
// ask for schema snapshots and keeps section 16.1's.
export class ViewSchema {
  constructor(declaration) {
    let items = declaration;
    if (declaration !== null && typeof declaration === "object" && !Array.isArray(declaration)) {
      items = Object.entries(declaration);
    }
    if (!Array.isArray(items)) throw refuse(`a view schema is [[name, kind], ...], not ${show(declaration)}`);
    const fields = [];
    for (const item of items) {
      if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== "string") {
        throw refuse(`a view schema is [[name, kind], ...], not ${show(item)}`);
      }
      fields.push([item[0], field(item[1])]);
    }
    if (fields.length === 0 || fields.length > MAX_FIELDS || new Set(fields.map(([name]) => name)).size !== fields.length) {
      throw refuse(`a view schema names 1 to ${MAX_FIELDS} distinct fields`);
    }
    this.fields = fields;
  }

  // The wire view of a body (bytes) against the baseline's wire view (null: a
  // full body). With `waiting` (a Map), the frame has waits (flag 02): the rows
  // read their wait bits, and the ids of each rows field's waiting rows are set
  // in it by the field's position. Throws CorruptSnapshot.
  decodeBody(base, body, waiting = null) {
    const bits = new BitReader(body);
    const fields = this.fields;
    const wire = new Array(fields.length);
    for (let i = 0; i < fields.length; i++) {
      const kind = fields[i][1];
      if (base === null) {
        wire[i] = takeWhole(bits, kind);
      } else if (!bits.take(1)) {
        wire[i] = base[i];
      } else if (waiting !== null && kind.kind === ROWS) {
        const ids = [];
        wire[i] = takeRows(bits, kind, base[i], ids);
        if (ids.length > 0) waiting.set(i, ids);
      } else {
        wire[i] = takeChanged(bits, kind, base[i]);
      }
    }
    bits.done();
    return wire;
  }

  // The view a client rebuilds from a wire view: a plain object of the fields.
  rebuild(wire) {
    const view = {};
    const fields = this.fields;
    for (let i = 0; i < fields.length; i++) setKey(view, fields[i][0], rebuildValue(fields[i][1], wire[i]));
    return view;
  }

  // Section 16.4's CRC-32 of the view rebuilt from `wire`.
  checksum(wire) {
    return checksum(this.rebuild(wire));
  }

  // parseSchemaFrame, decodeSchemaFrame and carryWaiting for this schema (what a
  // SnapshotReceiver calls).
  parseFrame(data) {
    return parseSchemaFrame(data);
  }

  decodeFrame(data, baselines) {
    return decodeSchemaFrame(this, data, baselines);
  }

  carryWaiting(tick, wire, waiting, kept) {
    return carryWaiting(this, tick, wire, waiting, kept);
  }
}

// -- frames --------------------------------------------------------------------

// A schema snapshot's header: { tick, distance (0: full), checksum (null: none),
// body, waits (its rows carry wait bits) }. Throws CorruptSnapshot. A tick beyond 2^53 - 1 is refused, as delta.js
// refuses one (it has no exact number).
export function parseSchemaFrame(data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes[0] !== SCHEMA_FORMAT) {
    throw corrupt("not a schema snapshot");
  }
  let at = 1;
  const numbers = [];
  for (let n = 0; n < 2; n++) {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (at >= bytes.length || shift > 56) throw corrupt("a schema snapshot's header is cut short");
      const byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) break;
    }
    numbers.push(value);
  }
  const [tick, distance] = numbers;
  if (at >= bytes.length || distance > tick) throw corrupt("a schema snapshot's header is malformed");
  if (tick > Number.MAX_SAFE_INTEGER) throw corrupt("a tick beyond 2^53 - 1");
  const flags = bytes[at];
  // Unknown flags, and waits in a full snapshot (nothing to wait against), are corrupt.
  if (flags & ~(CHECKSUM | WAITS) || (flags & WAITS && !distance)) {
    throw corrupt("a schema snapshot's flags are malformed");
  }
  let sum = null;
  if (flags & CHECKSUM) {
    if (at + 5 > bytes.length) throw corrupt("a schema snapshot's checksum is cut short");
    // Little-endian; * 2^24 keeps the top byte unsigned (a 32-bit shift would not).
    sum = bytes[at + 1] + bytes[at + 2] * 0x100 + bytes[at + 3] * 0x10000 + bytes[at + 4] * 0x1000000;
    at += 4;
  }
  return { tick, distance, checksum: sum, body: bytes.subarray(at + 1), waits: (flags & WAITS) !== 0 };
}

// Decodes a schema snapshot against the wire views `baselines` holds by tick (a
// Map or an object): { tick, baselineTick (null: full), checksum, wire, waiting
// (a Map: rows field position -> the ids of its rows that wait; empty: none) }.
// Throws UnknownBaseline or CorruptSnapshot, nothing else, whatever the bytes.
export function decodeSchemaFrame(schema, data, baselines) {
  const { tick, distance, checksum: sum, body, waits } = parseSchemaFrame(data);
  let base = null;
  const baselineTick = distance ? tick - distance : null;
  if (baselineTick !== null) {
    base = baselines instanceof Map ? baselines.get(baselineTick) : baselines[baselineTick];
    if (base === undefined) throw new UnknownBaseline(baselineTick);
  }
  let wire;
  const waiting = new Map();
  try {
    wire = schema.decodeBody(base, body, waits ? waiting : null);
  } catch (error) {
    // (Python's ValueError, TypeError and RecursionError: a body this schema cannot hold.)
    if (error instanceof TypeError || error instanceof RangeError) throw corrupt("not a snapshot of this schema");
    throw error;
  }
  return { tick, baselineTick, checksum: sum, wire, waiting };
}

// -- rows that wait (16.8, "Rows that wait"; Python's vinom/rooms/carrying.py) ----

// Python's round of a float: to the nearest integer, a tie to the even one.
function roundHalfEven(x) {
  const floor = Math.floor(x);
  const rest = x - floor; // exact
  if (rest !== 0.5) return rest < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

// A row carried on to `tick` from its newest samples ([tick, columns], newest
// first): through the three (a parabola: a turning entity's curve), or the two (a
// line), or held. Python's _carried, operation for operation.
function carried(kind, tick, samples) {
  const [t1, newest] = samples[0];
  if (samples.length === 1) return newest;
  const [t0, before] = samples[1];
  // Where to evaluate: at most CARRIED_INTERVALS times the last gap past the newest.
  const at = t1 + Math.min(tick - t1, CARRIED_INTERVALS * (t1 - t0));
  let weights;
  if (samples.length === 3) {
    const tb = samples[2][0];
    // Lagrange's weights of the three samples at `at`.
    weights = [
      ((at - t0) * (at - tb)) / ((t1 - t0) * (t1 - tb)),
      ((at - t1) * (at - tb)) / ((t0 - t1) * (t0 - tb)),
      ((at - t1) * (at - t0)) / ((tb - t1) * (tb - t0)),
    ];
  } else {
    weights = [(at - t0) / (t1 - t0), (t1 - at) / (t1 - t0), 0];
  }
  const oldest = samples[samples.length - 1][1];
  const row = newest.slice();
  const columns = kind.columns;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i];
    if (column.kind !== FIXED) continue;
    const values = [newest[i], before[i], oldest[i]];
    // A column that spans more than half its range (a wrap, a respawn) holds.
    if (2 * (Math.max(...values) - Math.min(...values)) <= column.span) {
      // Added left to right, as Python's carrying.py adds them.
      const value = weights[0] * values[0] + weights[1] * values[1] + weights[2] * values[2];
      row[i] = Math.min(column.hi, Math.max(column.lo, roundHalfEven(value)));
    }
  }
  return row;
}

// The wire view a client shows for a schema snapshot of `tick` whose rows
// `waiting` (decodeSchemaFrame's: position -> ids) wait. Each such row is carried
// on from its (at most three) newest samples in `kept` (a Map: tick -> [wire view,
// its waiting Map, null for a full snapshot], the snapshots applied before), the
// snapshots in which it was present and did not wait, back to one that lacks it
// without listing it (gone): its fixed columns extrapolated along the parabola
// through them (through two: the line), at most CARRIED_INTERVALS times the newest
// two's distance past the newest, its other columns the newest sample's. One
// sample: that row; none: the row as received (outside the baseline: not shown).
// `wire` itself is left as it is (the baseline of later deltas); rows in id order.
export function carryWaiting(schema, tick, wire, waiting, kept) {
  const shown = wire.slice();
  const older = [...kept.keys()].filter((t) => t < tick).sort((a, b) => b - a);
  for (const [index, ids] of waiting) {
    const kind = schema.fields[index][1];
    const rows = new Map(wire[index]);
    for (const key of ids) {
      const samples = [];
      for (const t of older) {
        const [seen, waited] = kept.get(t);
        const row = seen[index].get(key);
        // Where it waited says nothing of where it was, nor does a full snapshot
        // without it (it lists no waits); where it is gone (out of sight), older
        // samples are of another run.
        if (waited !== null && (waited.get(index) ?? []).includes(key)) continue;
        if (row === undefined) {
          if (waited === null) continue;
          break;
        }
        samples.push([t, row]);
        if (samples.length === 3) break;
      }
      if (samples.length > 0) rows.set(key, carried(kind, tick, samples));
    }
    shown[index] = new Map([...rows].sort((a, b) => a[0] - b[0]));
  }
  return shown;
}
