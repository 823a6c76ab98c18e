// msgpack for vinom's game messages (docs/protocol.md, section 14): a small,
// complete encoder and decoder, so the client needs no library from elsewhere.
//
// decode(bytes) -> value: every msgpack type. Maps become plain objects (keys
// as strings), str is UTF-8 checked, bin is a Uint8Array, integers that fit a
// JavaScript number exactly are numbers and wider 64-bit ones are BigInts,
// ext is an Ext. Truncated input and trailing bytes throw a DecodeError.
// decode(bytes, { typed: true }), for the delta snapshots of delta.js: floats
// come as Float32 or Float64 (so an integer is told from an integral float, as
// the snapshot's quantisation needs) and a map key that is not a str throws a
// DecodeError.
//
// encode(value) -> Uint8Array: null/undefined (nil), booleans, numbers
// (integers in their smallest width, other numbers as float 64), BigInt
// (int/uint 64), strings, Uint8Array/ArrayBuffer (bin), arrays, Maps and plain
// objects (a key whose value is undefined is left out, as JSON does), Float32
// (a number to be sent as float 32) and Ext.

export class DecodeError extends Error {}

export class Ext {
  constructor(type, data) {
    this.type = type;
    this.data = data;
  }
}

export class Float32 {
  constructor(value) {
    this.value = value;
  }
}

// A float 64 as `decode(bytes, { typed: true })` gives it; encode writes it as float 64.
export class Float64 {
  constructor(value) {
    this.value = value;
  }
}

const MAX_DEPTH = 256;
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

export function decode(input, { typed = false } = {}) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;

  function need(count) {
    if (offset + count > bytes.length) {
      throw new DecodeError(`truncated: ${count} bytes needed at ${offset}`);
    }
    const at = offset;
    offset += count;
    return at;
  }

  function uint64(at) {
    const value = view.getBigUint64(at);
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  function int64(at) {
    const value = view.getBigInt64(at);
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value;
  }

  function str(length) {
    const at = need(length);
    try {
      return utf8Decoder.decode(bytes.subarray(at, at + length));
    } catch {
      throw new DecodeError(`invalid UTF-8 in a str at ${at}`);
    }
  }

  function bin(length) {
    const at = need(length);
    return bytes.slice(at, at + length);
  }

  function array(length, depth) {
    const out = [];
    for (let n = 0; n < length; n++) out.push(value(depth + 1));
    return out;
  }

  function map(length, depth) {
    const out = {};
    for (let n = 0; n < length; n++) {
      const key = value(depth + 1);
      if (typed && typeof key !== "string") throw new DecodeError("a map key that is not a str");
      const entry = value(depth + 1);
      const name = typeof key === "string" ? key : String(key);
      // Assigning "__proto__" would set the prototype, not a key.
      if (name === "__proto__") {
        Object.defineProperty(out, name, {
          value: entry, enumerable: true, writable: true, configurable: true,
        });
      } else {
        out[name] = entry;
      }
    }
    return out;
  }

  function ext(length) {
    const type = view.getInt8(need(1));
    return new Ext(type, bin(length));
  }

  function value(depth) {
    if (depth > MAX_DEPTH) throw new DecodeError("nested too deeply");
    const byte = bytes[need(1)];
    if (byte <= 0x7f) return byte;
    if (byte <= 0x8f) return map(byte & 0x0f, depth);
    if (byte <= 0x9f) return array(byte & 0x0f, depth);
    if (byte <= 0xbf) return str(byte & 0x1f);
    if (byte >= 0xe0) return byte - 0x100;
    switch (byte) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(view.getUint8(need(1)));
      case 0xc5: return bin(view.getUint16(need(2)));
      case 0xc6: return bin(view.getUint32(need(4)));
      case 0xc7: return ext(view.getUint8(need(1)));
      case 0xc8: return ext(view.getUint16(need(2)));
      case 0xc9: return ext(view.getUint32(need(4)));
      case 0xca: {
        const number = view.getFloat32(need(4));
        return typed ? new Float32(number) : number;
      }
      case 0xcb: {
        const number = view.getFloat64(need(8));
        return typed ? new Float64(number) : number;
      }
      case 0xcc: return view.getUint8(need(1));
      case 0xcd: return view.getUint16(need(2));
      case 0xce: return view.getUint32(need(4));
      case 0xcf: return uint64(need(8));
      case 0xd0: return view.getInt8(need(1));
      case 0xd1: return view.getInt16(need(2));
      case 0xd2: return view.getInt32(need(4));
      case 0xd3: return int64(need(8));
      case 0xd4: return ext(1);
      case 0xd5: return ext(2);
      case 0xd6: return ext(4);
      case 0xd7: return ext(8);
      case 0xd8: return ext(16);
      case 0xd9: return str(view.getUint8(need(1)));
      case 0xda: return str(view.getUint16(need(2)));
      case 0xdb: return str(view.getUint32(need(4)));
      case 0xdc: return array(view.getUint16(need(2)), depth);
      case 0xdd: return array(view.getUint32(need(4)), depth);
      case 0xde: return map(view.getUint16(need(2)), depth);
      case 0xdf: return map(view.getUint32(need(4)), depth);
      default: throw new DecodeError(`0x${byte.toString(16)} is not a msgpack type`);
    }
  }

  const result = value(0);
  if (offset !== bytes.length) {
    throw new DecodeError(`${bytes.length - offset} bytes after the value`);
  }
  return result;
}

class Writer {
  constructor() {
    this.bytes = new Uint8Array(256);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  reserve(count) {
    if (this.length + count <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + count) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  // Writes a type byte and then `count` bytes with `put(view, at)`.
  head(byte, count = 0, put = null) {
    this.reserve(1 + count);
    this.bytes[this.length] = byte;
    if (put !== null) put(this.view, this.length + 1);
    this.length += 1 + count;
  }

  raw(data) {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  result() {
    return this.bytes.slice(0, this.length);
  }
}

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);

function writeInteger(w, n) {
  if (n >= 0) {
    if (n <= 0x7f) w.head(n);
    else if (n <= 0xff) w.head(0xcc, 1, (v, at) => v.setUint8(at, n));
    else if (n <= 0xffff) w.head(0xcd, 2, (v, at) => v.setUint16(at, n));
    else if (n <= 0xffffffff) w.head(0xce, 4, (v, at) => v.setUint32(at, n));
    else w.head(0xcf, 8, (v, at) => v.setBigUint64(at, BigInt(n)));
  } else if (n >= -32) w.head(n + 0x100);
  else if (n >= -0x80) w.head(0xd0, 1, (v, at) => v.setInt8(at, n));
  else if (n >= -0x8000) w.head(0xd1, 2, (v, at) => v.setInt16(at, n));
  else if (n >= -0x80000000) w.head(0xd2, 4, (v, at) => v.setInt32(at, n));
  else w.head(0xd3, 8, (v, at) => v.setBigInt64(at, BigInt(n)));
}

function writeBigInt(w, n) {
  if (n > UINT64_MAX || n < INT64_MIN) throw new RangeError(`${n} does not fit in 64 bits`);
  if (n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER)) {
    writeInteger(w, Number(n));
  } else if (n > 0n) {
    w.head(0xcf, 8, (v, at) => v.setBigUint64(at, n));
  } else {
    w.head(0xd3, 8, (v, at) => v.setBigInt64(at, n));
  }
}

function writeSized(w, length, small, smallBase, codes) {
  // fixstr/fixarray/fixmap below `small`, then the 8 (str only), 16 and 32-bit sizes.
  if (length < small) w.head(smallBase + length);
  else if (codes[0] !== null && length <= 0xff) w.head(codes[0], 1, (v, at) => v.setUint8(at, length));
  else if (length <= 0xffff) w.head(codes[1], 2, (v, at) => v.setUint16(at, length));
  else if (length <= 0xffffffff) w.head(codes[2], 4, (v, at) => v.setUint32(at, length));
  else throw new RangeError("too long for msgpack");
}

function writeBin(w, data) {
  const length = data.length;
  if (length <= 0xff) w.head(0xc4, 1, (v, at) => v.setUint8(at, length));
  else if (length <= 0xffff) w.head(0xc5, 2, (v, at) => v.setUint16(at, length));
  else w.head(0xc6, 4, (v, at) => v.setUint32(at, length));
  w.raw(data);
}

function writeExt(w, ext) {
  const length = ext.data.length;
  const fixed = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }[length];
  if (fixed !== undefined) w.head(fixed);
  else if (length <= 0xff) w.head(0xc7, 1, (v, at) => v.setUint8(at, length));
  else if (length <= 0xffff) w.head(0xc8, 2, (v, at) => v.setUint16(at, length));
  else w.head(0xc9, 4, (v, at) => v.setUint32(at, length));
  w.head(ext.type & 0xff);
  w.raw(ext.data);
}

function writeValue(w, value, depth) {
  if (depth > MAX_DEPTH) throw new RangeError("nested too deeply");
  if (value === null || value === undefined) return w.head(0xc0);
  switch (typeof value) {
    case "boolean":
      return w.head(value ? 0xc3 : 0xc2);
    case "number":
      if (Number.isSafeInteger(value)) return writeInteger(w, value);
      return w.head(0xcb, 8, (v, at) => v.setFloat64(at, value));
    case "bigint":
      return writeBigInt(w, value);
    case "string": {
      const data = utf8Encoder.encode(value);
      writeSized(w, data.length, 32, 0xa0, [0xd9, 0xda, 0xdb]);
      return w.raw(data);
    }
    default:
      break;
  }
  if (value instanceof Float32) return w.head(0xca, 4, (v, at) => v.setFloat32(at, value.value));
  if (value instanceof Float64) return w.head(0xcb, 8, (v, at) => v.setFloat64(at, value.value));
  if (value instanceof Ext) return writeExt(w, value);
  if (value instanceof Uint8Array) return writeBin(w, value);
  if (value instanceof ArrayBuffer) return writeBin(w, new Uint8Array(value));
  if (Array.isArray(value)) {
    writeSized(w, value.length, 16, 0x90, [null, 0xdc, 0xdd]);
    for (const item of value) writeValue(w, item, depth + 1);
    return undefined;
  }
  const entries = value instanceof Map
    ? [...value.entries()]
    : Object.entries(value).filter(([, item]) => item !== undefined);
  writeSized(w, entries.length, 16, 0x80, [null, 0xde, 0xdf]);
  for (const [key, item] of entries) {
    writeValue(w, key, depth + 1);
    writeValue(w, item, depth + 1);
  }
  return undefined;
}

export function encode(value) {
  const w = new Writer();
  writeValue(w, value, 0);
  return w.result();
}
