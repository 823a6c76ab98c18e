// vinom's game messages as MessagePack (docs/protocol.md, section 14):
// @msgpack/msgpack, set up for them. The library is the copy vendored in
// vendor/msgpack/, imported by its relative path: the page, Node and a
// bundler all load the very version this module's overrides are written for,
// with no import map and nothing to install (docs/web.md, "The MessagePack library").
//
// decode(bytes) -> value: every msgpack type. Maps become plain objects (keys
// as strings, "__proto__" an ordinary key), str is UTF-8 checked, bin is a
// Uint8Array (a view of the bytes given), integers that fit a JavaScript
// number exactly are numbers and wider 64-bit ones are BigInts, ext (the
// timestamp type -1 too) is an Ext. Anything that is not one msgpack value,
// truncated input and trailing bytes included, throws a DecodeError, and so
// does nesting deeper than 256.
// decode(bytes, { typed: true }), for the delta snapshots of delta.js: floats
// come as Float32 or Float64 (so an integer is told from an integral float, as
// the snapshot's quantisation needs) and a map key that is not a str throws a
// DecodeError.
//
// encode(value) -> Uint8Array: null/undefined (nil), booleans, numbers
// (integers in their smallest width, other numbers as float 64), BigInt
// (int/uint 64 when it does not fit a number), strings (UTF-8, a lone
// surrogate as U+FFFD), Uint8Array/ArrayBuffer (bin), arrays, Maps (in their
// order) and plain objects (a key whose value is undefined is left out, as JSON
// does), Float32 (a number to be sent as float 32) and Ext.
//
// The library offers no typed floats, no BigInt only where a number cannot
// hold the value, no UTF-8 check, no "__proto__" key, no Map, no float 32 of
// one value: VinomDecoder and VinomEncoder below override the few methods of
// its Decoder and Encoder that read or write those (methods of version 3.1.3,
// not its documented API: the vendored version is pinned, and the tests of
// this module run on every upgrade, docs/web.md).

import { DecodeError, Decoder, Encoder, ExtData, ExtensionCodec } from "./vendor/msgpack/index.mjs";

export { DecodeError, ExtData as Ext };

// A number to be encoded as float 32.
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
const PROTO = "__proto__";
// What a "__proto__" key is while decoding (the library refuses that key): no
// checked UTF-8 decodes to a lone surrogate, so no real key can be this.
const PROTO_STAND_IN = "\ud800__proto__";
const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

// Every ext is an Ext: the timestamp type (-1) too, which the library would make a Date.
const extensions = new ExtensionCodec();
extensions.register({ type: -1, encode: () => null, decode: (data, type) => new ExtData(type, data) });

// The property name of a decoded map key (a str, or in a plain decode anything,
// as String(key) names it); "__proto__", however it came, as the stand-in.
function keyName(key, typed, seen) {
  if (typed && typeof key !== "string") throw new DecodeError("a map key that is not a str");
  const name = typeof key === "string" ? key : String(key);
  if (name !== PROTO) return name;
  seen.proto = true;
  return PROTO_STAND_IN;
}

class VinomDecoder extends Decoder {
  constructor(typed) {
    const seen = { proto: false };
    super({
      useBigInt64: true,
      extensionCodec: extensions,
      mapKeyConverter: (key) => keyName(key, typed, seen),
    });
    this.typed = typed;
    this.seen = seen;
  }

  decodeUtf8String(byteLength, headerOffset) {
    const at = this.pos + headerOffset;
    const end = at + byteLength;
    if (end > this.bytes.byteLength) throw new DecodeError(`truncated: a str of ${byteLength} bytes`);
    let ascii = true;
    for (let i = at; i < end && ascii; i++) ascii = this.bytes[i] < 0x80;
    let text;
    if (ascii) {
      // ASCII is UTF-8: the library's own (fast, its keys cached) decoding.
      text = super.decodeUtf8String(byteLength, headerOffset);
    } else {
      try {
        text = utf8Decoder.decode(this.bytes.subarray(at, end));
      } catch {
        throw new DecodeError(`invalid UTF-8 in a str at ${at}`);
      }
      this.pos += headerOffset + byteLength;
    }
    // The library refuses a "__proto__" key before its mapKeyConverter sees it.
    if (text === PROTO && this.stateIsMapKey()) {
      this.seen.proto = true;
      return PROTO_STAND_IN;
    }
    return text;
  }

  readF32() {
    const value = super.readF32();
    return this.typed ? new Float32(value) : value;
  }

  readF64() {
    const value = super.readF64();
    return this.typed ? new Float64(value) : value;
  }

  readU64AsBigInt() {
    return narrowed(super.readU64AsBigInt());
  }

  readI64AsBigInt() {
    return narrowed(super.readI64AsBigInt());
  }

  pushArrayState(size) {
    if (this.stack.length >= MAX_DEPTH) throw new DecodeError("nested too deeply");
    super.pushArrayState(size);
  }

  pushMapState(size) {
    if (this.stack.length >= MAX_DEPTH) throw new DecodeError("nested too deeply");
    super.pushMapState(size);
  }
}

function narrowed(value) {
  return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : value;
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}

// The decoded value with each stand-in key made an own "__proto__" key, in its place.
function withProtoKeys(value) {
  if (Array.isArray(value)) return value.map(withProtoKeys);
  if (!isPlainObject(value)) return value;
  const out = {};
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key === PROTO_STAND_IN ? PROTO : key, {
      value: withProtoKeys(value[key]), enumerable: true, writable: true, configurable: true,
    });
  }
  return out;
}

const decoders = { plain: new VinomDecoder(false), typed: new VinomDecoder(true) };

export function decode(input, { typed = false } = {}) {
  const decoder = typed ? decoders.typed : decoders.plain;
  decoder.seen.proto = false;
  let value;
  try {
    value = decoder.decode(input);
  } catch (error) {
    // Truncated input and bytes after the value are RangeErrors in the library.
    if (error instanceof RangeError) throw new DecodeError(error.message);
    throw error;
  }
  return decoder.seen.proto ? withProtoKeys(value) : value;
}

class VinomEncoder extends Encoder {
  constructor() {
    super({ useBigInt64: true, ignoreUndefined: true, extensionCodec: extensions, maxDepth: MAX_DEPTH });
  }

  encodeNumber(value) {
    // With BigInts on, the library writes a safe integer beyond 32 bits as float 64.
    if (Number.isSafeInteger(value) && (value > 0xffffffff || value < -0x80000000)) {
      this.encodeBigInt64(BigInt(value));
    } else {
      super.encodeNumber(value);
    }
  }

  encodeBigInt64(value) {
    if (value <= 0xffffffffn && value >= -0x80000000n) {
      super.encodeNumber(Number(value));
    } else if (value > UINT64_MAX || value < INT64_MIN) {
      throw new RangeError(`${value} does not fit in 64 bits`);
    } else {
      super.encodeBigInt64(value);
    }
  }

  encodeString(value) {
    // The library writes a lone surrogate as three bytes that are not UTF-8.
    if (typeof value.isWellFormed !== "function") {
      const data = utf8Encoder.encode(value);
      this.writeStringHeader(data.length);
      this.writeU8a(data);
    } else {
      super.encodeString(value.isWellFormed() ? value : value.toWellFormed());
    }
  }

  encodeObject(value, depth) {
    if (value instanceof Float32) {
      this.writeU8(0xca);
      this.writeF32(value.value);
    } else if (value instanceof Float64) {
      this.writeU8(0xcb);
      this.writeF64(value.value);
    } else if (value instanceof ArrayBuffer) {
      super.encodeObject(new Uint8Array(value), depth);
    } else if (value instanceof Map) {
      this.encodeMapEntries(value, depth);
    } else {
      super.encodeObject(value, depth);
    }
  }

  encodeMapEntries(map, depth) {
    const size = map.size;
    if (size < 16) {
      this.writeU8(0x80 + size);
    } else if (size < 0x10000) {
      this.writeU8(0xde);
      this.writeU16(size);
    } else {
      this.writeU8(0xdf);
      this.writeU32(size);
    }
    for (const [key, item] of map) {
      this.doEncode(key, depth + 1);
      this.doEncode(item, depth + 1);
    }
  }
}

const encoder = new VinomEncoder();

export function encode(value) {
  return encoder.encode(value);
}
