// Delta snapshots (docs/protocol.md, section 16): the browser's decoder of the
// `d` of a `snap` message, the same as Python's vinom/rooms/delta.py.
//
// A snapshot is [tick, distance, checksum, body]: the view of `tick`, in full
// (distance nil) or as a patch against the view of tick - distance, which the
// client rebuilt before. Quantised numbers (the welcome's `q`) are rebuilt with
// the same IEEE operations as in Python (an integer n at a path of step s is
// n / (1 / s)), so the view equals the server's exactly, and the optional
// checksum (CRC-32 of the view's canonical msgpack encoding, 16.4) proves it.
//
//   const receiver = new SnapshotReceiver({ rules: welcome.q });
//   const snapshot = receiver.receive(message.d); // null: dropped, counted in receiver.drops
//   if (snapshot !== null) show(snapshot.tick, snapshot.view);
//
// decodeSnapshot(bytes, baselines, quantisation) throws only DeltaError
// (CorruptSnapshot, UnknownBaseline, ChecksumMismatch); SnapshotReceiver never
// throws on bytes.
//
// A game that declares its view field by field (the welcome's `vs`) sends
// schema snapshots instead (16.8, schema.js): a receiver given that schema
// (`new SnapshotReceiver({ rules, schema: new ViewSchema(welcome.vs) })`) reads
// both formats, told apart by their first byte. A schema snapshot's rows that
// wait (a byte budget held them back) are shown carried on (schema.js's
// carryWaiting); the wire view kept for later deltas is the one received.

import { DecodeError, Ext, Float32, Float64, decode, encode } from "./codec.js";

// The views a receiver keeps by tick (the host keeps 32 it sent: any baseline
// it picks, one this client acknowledged, is still here).
export const RECEIVER_HISTORY = 64;
// Deepest nesting of a view (as in Python).
export const MAX_DEPTH = 64;
// The drop reasons of a SnapshotReceiver (Python's DROP_REASONS).
export const DROP_REASONS = ["corrupt", "unknown_baseline", "checksum", "stale"];

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export class DeltaError extends Error {}
export class CorruptSnapshot extends DeltaError {}
export class UnknownBaseline extends DeltaError {
  constructor(tick) {
    super(`no view of tick ${tick} to decode against`);
    this.tick = tick;
  }
}
export class ChecksumMismatch extends DeltaError {}

function corrupt(why) {
  return new CorruptSnapshot(why);
}

const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

function isMap(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
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

// -- quantisation (16.3) -------------------------------------------------------

class RuleNode {
  constructor() {
    this.children = new Map();
    this.wildcard = null;
    this.scale = 0; // 1 / step for a stepped number here; 0: none
    this.f32 = false;
  }
}

function child(node, key) {
  if (node === null) return null;
  const found = node.children.get(key);
  return found === undefined ? node.wildcard : found;
}

// A node matching what both match; the literal's own rule wins over the wildcard's.
function merge(literal, wildcard) {
  const merged = new RuleNode();
  const source = literal.scale || literal.f32 ? literal : wildcard;
  merged.scale = source.scale;
  merged.f32 = source.f32;
  for (const key of new Set([...literal.children.keys(), ...wildcard.children.keys()])) {
    const a = literal.children.get(key);
    const b = wildcard.children.get(key);
    merged.children.set(key, a !== undefined && b !== undefined ? merge(a, b) : a ?? b);
  }
  if (literal.wildcard === null || wildcard.wildcard === null) {
    merged.wildcard = literal.wildcard ?? wildcard.wildcard;
  } else {
    merged.wildcard = merge(literal.wildcard, wildcard.wildcard);
  }
  return merged;
}

// Folds each wildcard into its literal siblings, so a walk follows one node only.
function resolve(node) {
  if (node.wildcard !== null) {
    for (const [key, sub] of node.children) node.children.set(key, merge(sub, node.wildcard));
    resolve(node.wildcard);
  }
  for (const sub of node.children.values()) resolve(sub);
}

// The game's quantisation rules, as the welcome's `q` carries them: an array of
// [pattern, step or "f32"] pairs (or an object pattern -> rule). A pattern is
// dot-separated segments: a map key, an array index in decimal, or "*".
export class Quantisation {
  constructor(rules = null) {
    const pairs = rules === null || rules === undefined
      ? []
      : Array.isArray(rules) ? rules : Object.entries(rules);
    this.rules = pairs;
    this.root = null;
    if (pairs.length === 0) return;
    const root = new RuleNode();
    for (const pair of pairs) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string") {
        throw new TypeError(`a quantisation rule is [pattern, step or "f32"], not ${pair}`);
      }
      const [pattern, rule] = pair;
      let node = root;
      for (const segment of pattern.split(".")) {
        if (segment === "") throw new TypeError(`empty segment in quantisation path ${pattern}`);
        if (segment === "*") {
          node.wildcard ??= new RuleNode();
          node = node.wildcard;
        } else {
          if (!node.children.has(segment)) node.children.set(segment, new RuleNode());
          node = node.children.get(segment);
        }
      }
      const step = rule instanceof Float32 || rule instanceof Float64 ? rule.value : rule;
      if (step === "f32") {
        node.f32 = true;
      } else if (typeof step === "number" && step > 0 && Number.isFinite(1 / step)) {
        node.scale = 1 / step; // one IEEE division, as Python's 1.0 / step
      } else {
        throw new TypeError(`quantisation rule ${rule}: a positive step or "f32"`);
      }
    }
    resolve(root);
    this.root = root;
  }
}

export const NO_QUANTISATION = new Quantisation();

// -- checksum (16.4) -------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

// CRC-32 of bytes: zlib's (polynomial 0xEDB88320 reflected, initial and final xor 0xFFFFFFFF).
export function crc32(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// Unicode code point order (Python's str order; JavaScript's < compares UTF-16 units).
function byCodePoint(a, b) {
  const end = Math.min(a.length, b.length);
  let i = 0;
  while (i < end) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
  }
  return a.length - b.length;
}

// The view with every map as a Map of its keys in code point order: what encode
// writes canonically (numbers in their smallest form, -0 as 0, floats that are
// not safe integers as float 64).
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (isMap(value)) {
    const out = new Map();
    for (const key of Object.keys(value).sort(byCodePoint)) out.set(key, canonical(value[key]));
    return out;
  }
  return value;
}

// The canonical msgpack encoding of a decoded view (16.4).
export function canonicalEncoding(view) {
  return encode(canonical(view));
}

// The checksum of a decoded view: CRC-32 of its canonical encoding.
export function checksum(view) {
  return crc32(canonicalEncoding(view));
}

// -- decoding (16.1, 16.2) ------------------------------------------------------

// A value sent whole, checked: what msgpack can give that no view holds is corrupt.
function full(value, node, depth) {
  switch (typeof value) {
    case "number": // an integer: floats come as Float32/Float64 from a typed decode
      return node !== null && node.scale ? value / node.scale : value;
    case "bigint":
      return node !== null && node.scale ? Number(value) / node.scale : value;
    case "string":
    case "boolean":
      return value;
    default:
      break;
  }
  if (value === null || value instanceof Uint8Array) return value;
  if (value instanceof Float32 || value instanceof Float64) return value.value;
  if (value instanceof Ext) throw corrupt("an ext in a view");
  if (depth >= MAX_DEPTH) throw corrupt("nested too deep");
  if (Array.isArray(value)) return value.map((item, i) => full(item, child(node, String(i)), depth + 1));
  if (isMap(value)) {
    const out = {};
    for (const key of Object.keys(value)) setKey(out, key, full(value[key], child(node, key), depth + 1));
    return out;
  }
  throw corrupt("a value no view holds");
}

const HOLE = Symbol("hole");

// `base` (a decoded view) with `patch` applied. Unchanged subtrees are shared.
function apply(base, patch, node, depth) {
  if (isMap(base) && isMap(patch)) {
    if (depth >= MAX_DEPTH) throw corrupt("nested too deep");
    const out = {};
    for (const key of Object.keys(base)) setKey(out, key, base[key]);
    for (const key of Object.keys(patch)) {
      const sub = patch[key];
      if (sub instanceof Ext) {
        if (sub.type !== 0 || sub.data.length !== 0 || !hasOwn(out, key)) {
          throw corrupt("an ext that is not the delete marker of a present key");
        }
        delete out[key];
        continue;
      }
      const next = child(node, key);
      setKey(out, key, hasOwn(base, key) ? apply(base[key], sub, next, depth + 1) : full(sub, next, depth + 1));
    }
    return out;
  }
  if (Array.isArray(base) && Array.isArray(patch)) {
    if (depth >= MAX_DEPTH) throw corrupt("nested too deep");
    if (patch.length % 2 !== 1) throw corrupt("a list patch is [length, index, patch, ...]");
    const length = patch[0];
    const old = base.length;
    if (typeof length !== "number" || length < 0 || length > old + (patch.length - 1) / 2) {
      throw corrupt("a list patch's length does not fit");
    }
    const items = base.slice(0, length);
    while (items.length < length) items.push(HOLE);
    for (let at = 1; at < patch.length; at += 2) {
      const i = patch[at];
      if (typeof i !== "number" || i < 0 || i >= length) throw corrupt("a list patch's index out of range");
      const next = child(node, String(i));
      items[i] = i < old ? apply(base[i], patch[at + 1], next, depth + 1) : full(patch[at + 1], next, depth + 1);
    }
    for (let i = old; i < length; i++) {
      if (items[i] === HOLE) throw corrupt("a list patch leaves an added element out");
    }
    return items;
  }
  if (patch instanceof Ext) throw corrupt("a delete marker outside a map patch");
  return full(patch, node, depth);
}

// A snapshot's frame: { tick, baselineTick, checksum, body }.
function parse(bytes) {
  let frame;
  try {
    frame = decode(bytes, { typed: true });
  } catch (error) {
    if (error instanceof DecodeError || error instanceof RangeError) throw corrupt(`not msgpack: ${error.message}`);
    throw error;
  }
  if (!Array.isArray(frame) || frame.length !== 4) throw corrupt("a snapshot is [tick, distance, checksum, body]");
  const [tick, distance, sum, body] = frame;
  // Integers are numbers here (a float is a Float32/Float64); a tick beyond 2^53 is refused.
  if (typeof tick !== "number" || tick < 0) throw corrupt("a tick is a non-negative integer");
  if (distance !== null && (typeof distance !== "number" || distance <= 0 || distance > tick)) {
    throw corrupt("a baseline distance is a positive integer, at most the tick");
  }
  if (sum !== null && (typeof sum !== "number" || sum < 0 || sum > 0xffffffff)) {
    throw corrupt("a checksum is an unsigned 32-bit integer");
  }
  return { tick, baselineTick: distance === null ? null : tick - distance, checksum: sum, body };
}

function rebuild(frame, baselines, quantisation, verify) {
  const { tick, baselineTick, checksum: sum, body } = frame;
  const root = quantisation.root;
  let view;
  if (baselineTick === null) {
    view = full(body, root, 0);
  } else {
    const has = baselines instanceof Map ? baselines.has(baselineTick) : hasOwn(baselines, baselineTick);
    if (!has) throw new UnknownBaseline(baselineTick);
    const base = baselines instanceof Map ? baselines.get(baselineTick) : baselines[baselineTick];
    view = apply(base, body, root, 0);
  }
  if (verify && sum !== null && sum !== checksum(view)) {
    throw new ChecksumMismatch(`tick ${tick}: the rebuilt view is not the server's`);
  }
  return { tick, baselineTick, checksum: sum, view };
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw corrupt("a snapshot is bin");
}

// Decodes a snapshot against the decoded views `baselines` holds by tick (a Map
// or an object): { tick, baselineTick, checksum, view }. Throws UnknownBaseline,
// CorruptSnapshot or (when `verify` and the snapshot carries a checksum)
// ChecksumMismatch; nothing else, whatever the bytes.
export function decodeSnapshot(data, baselines, quantisation = NO_QUANTISATION, { verify = true } = {}) {
  return rebuild(parse(asBytes(data)), baselines, quantisation, verify);
}

// No rows waited in a snapshot (a `waited` entry's default).
const NO_WAITS = new Map();

// The first byte of a schema snapshot (schema.js's SCHEMA_FORMAT; a snapshot of
// 16.1 starts with 0x94, a msgpack array of 4).
const SCHEMA_FRAME = 0x01;

// The client's side: the views it rebuilt by tick, the newest applied tick (the
// one to acknowledge), and what it dropped, by reason (Python's SnapshotReceiver).
// With `schema` (a ViewSchema of schema.js, from the welcome's `vs`), schema
// snapshots are read too, their wire views kept by tick in `wires`, and the rows
// that waited in those that had any in `waited` (tick -> decodeSchemaFrame's
// `waiting`).
export class SnapshotReceiver {
  constructor({ rules = null, quantisation = null, capacity = RECEIVER_HISTORY, schema = null } = {}) {
    this.quantisation = quantisation ?? new Quantisation(rules);
    this.capacity = capacity;
    this.views = new Map(); // tick -> view, oldest first
    this.newest = null;
    this.drops = Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0]));
    this.applied = 0;
    this.schema = schema;
    this.wires = new Map(); // tick -> wire view of a schema snapshot, oldest first
    // tick (one of `wires`) -> its waiting rows, when it had any; null for a full one,
    // which lists none (a row it lacks may be waiting).
    this.waited = new Map();
  }

  // Applies a snapshot newer than the newest applied one and returns it
  // ({ tick, baselineTick, checksum, view }); anything else is dropped,
  // counted in `drops`, and gives null. Never throws on bytes.
  receive(data) {
    let snapshot;
    try {
      const bytes = asBytes(data);
      if (this.schema !== null && bytes[0] === SCHEMA_FRAME) return this.receiveSchema(bytes);
      const frame = parse(bytes);
      if (this.newest !== null && frame.tick <= this.newest) {
        this.drops.stale += 1;
        return null;
      }
      snapshot = rebuild(frame, this.views, this.quantisation, true);
    } catch (error) {
      return this.dropped(error);
    }
    return this.applies(snapshot);
  }

  // A schema snapshot (16.8), against the wire views of the schema snapshots applied.
  receiveSchema(bytes) {
    let snapshot;
    let wire;
    let waiting;
    try {
      const schema = this.schema;
      if (this.newest !== null && schema.parseFrame(bytes).tick <= this.newest) {
        this.drops.stale += 1;
        return null;
      }
      const frame = schema.decodeFrame(bytes, this.wires);
      wire = frame.wire;
      waiting = frame.waiting;
      let view = schema.rebuild(wire);
      if (frame.checksum !== null && frame.checksum !== checksum(view)) {
        throw new ChecksumMismatch(`tick ${frame.tick}: the rebuilt view is not the server's`);
      }
      if (waiting.size > 0) {
        // Rows a byte budget held back: the baseline's values, older than what the
        // snaps since showed; shown carried on instead (16.8, "Rows that wait").
        const kept = new Map();
        for (const [t, w] of this.wires) {
          const waits = this.waited.get(t);
          kept.set(t, [w, waits === undefined ? NO_WAITS : waits]);
        }
        view = schema.rebuild(schema.carryWaiting(frame.tick, wire, waiting, kept));
      }
      snapshot = { tick: frame.tick, baselineTick: frame.baselineTick, checksum: frame.checksum, view };
      if (waiting.size === 0 && frame.baselineTick === null) waiting = null;
    } catch (error) {
      return this.dropped(error);
    }
    const wires = this.wires;
    wires.set(snapshot.tick, wire);
    while (wires.size > this.capacity) wires.delete(wires.keys().next().value);
    const waited = this.waited;
    if (waiting === null || waiting.size > 0) waited.set(snapshot.tick, waiting);
    // The waits of the ticks `wires` let go, the oldest (both are in tick order).
    for (const tick of waited.keys()) {
      if (wires.has(tick)) break;
      waited.delete(tick);
    }
    return this.applies(snapshot);
  }

  // Counts a snapshot dropped for `error` (a DeltaError; anything else is a bug, thrown).
  dropped(error) {
    if (error instanceof UnknownBaseline) this.drops.unknown_baseline += 1;
    else if (error instanceof ChecksumMismatch) this.drops.checksum += 1;
    else if (error instanceof DeltaError) this.drops.corrupt += 1;
    else throw error;
    return null;
  }

  applies(snapshot) {
    this.newest = snapshot.tick;
    this.applied += 1;
    this.views.set(snapshot.tick, snapshot.view);
    while (this.views.size > this.capacity) this.views.delete(this.views.keys().next().value);
    return snapshot;
  }
}
