// codec.js: what vinom's messages need of @msgpack/msgpack beyond its options
// (the wire bytes of every type against Python's msgpack are pinned by
// tests/server/test_web_client.py in Chromium): typed floats for delta.js,
// BigInts only where a number cannot hold the value, checked UTF-8,
// "__proto__" as a key, every refusal a DecodeError, Maps and float 32 out.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DecodeError, Ext, Float32, Float64, decode, encode } from "../../vinom/webclient/codec.js";

const bytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (x) => parseInt(x, 16));
const hex = (data) => Buffer.from(data).toString("hex");

test("a typed decode tells float 32, float 64 and integers apart; a plain one gives numbers", () => {
  const data = bytes("93" + "ca3fc00000" + "cb3ff0000000000000" + "01");
  assert.deepEqual(decode(data), [1.5, 1, 1]);
  const [f32, f64, one] = decode(data, { typed: true });
  assert.ok(f32 instanceof Float32 && f32.value === 1.5);
  assert.ok(f64 instanceof Float64 && f64.value === 1);
  assert.equal(one, 1);
  assert.throws(() => decode(bytes("810102"), { typed: true }), DecodeError, "a key that is not a str");
  assert.deepEqual(decode(bytes("810102")), { 1: 2 });
});

test("64-bit integers are numbers when a number holds them exactly, BigInts beyond", () => {
  assert.equal(decode(bytes("cf0000000000000005")), 5);
  assert.equal(decode(bytes("d3fffffffffffffffb")), -5);
  assert.equal(decode(bytes("cf001fffffffffffff")), 2 ** 53 - 1);
  assert.equal(decode(bytes("cf0020000000000000")), 2n ** 53n);
  assert.equal(decode(bytes("d38000000000000000")), -(2n ** 63n));
  // Written in their smallest width, a BigInt as a number where it fits.
  assert.equal(hex(encode(7n)), "07");
  assert.equal(hex(encode(2 ** 32)), "cf0000000100000000");
  assert.equal(hex(encode(-(2 ** 31) - 1)), "d3ffffffff7fffffff");
  assert.equal(hex(encode(2n ** 64n - 1n)), "cfffffffffffffffff");
  assert.throws(() => encode(2n ** 64n), RangeError);
});

test("a key named __proto__ is an ordinary key, in its place", () => {
  const data = encode(new Map([["a", 1], ["__proto__", new Map([["__proto__", [2]]])], ["b", 3]]));
  const value = decode(data);
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepEqual(Object.keys(value), ["a", "__proto__", "b"]);
  const inner = Object.getOwnPropertyDescriptor(value, "__proto__").value;
  assert.deepEqual(Object.getOwnPropertyDescriptor(inner, "__proto__").value, [2]);
  assert.equal(hex(encode(value)), hex(data));
  assert.deepEqual(decode(encode(["__proto__"])), ["__proto__"]);
  // A key that is no str but names it (an array of it) is no prototype either.
  const named = decode(encode(new Map([[["__proto__"], { polluted: true }]])));
  assert.equal(Object.getPrototypeOf(named), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(named, "__proto__").value, { polluted: true });
});

test("what is not one msgpack value is a DecodeError", () => {
  const refused = ["", "c1", "9201", "a2fffe", "81a2fffe01", "0102", "cd01", "db00000005", "91".repeat(300) + "c0"];
  for (const h of refused) assert.throws(() => decode(bytes(h)), DecodeError, h);
  assert.deepEqual(decode(bytes("91".repeat(200) + "c0")).flat(Infinity), [null]);
});

test("every ext is an Ext, the timestamp type too; Ext, Map, Float32 and ArrayBuffer encode", () => {
  const ext = decode(bytes("d6ff00000001"));
  assert.ok(ext instanceof Ext);
  assert.equal(ext.type, -1);
  assert.equal(hex(ext.data), "00000001");
  assert.equal(hex(encode(new Ext(0, new Uint8Array(0)))), "c70000");
  assert.equal(hex(encode(new Map([["z", 1], ["a", new Float32(1.5)]]))), "82a17a01a161ca3fc00000");
  assert.equal(hex(encode(new Float64(1))), "cb3ff0000000000000");
  assert.equal(hex(encode(new Uint8Array([1, 2]).buffer)), "c4020102");
  assert.equal(hex(encode({ a: undefined, b: null })), "81a162c0");
  assert.equal(hex(encode("\ud800")), "a3efbfbd"); // a lone surrogate as U+FFFD, as TextEncoder
});
