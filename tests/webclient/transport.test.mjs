// transport.js under Node's test runner (node --test), with the browser's
// WebTransport, WebSocket and fetch stood in for: which connection carries the
// session, the fallback, the stream's framing and the datagrams.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  FALLBACK_MS, GameConnection, MAX_DATAGRAM, RETRY_AFTER_MS, forgetFailures, webTransportOffer, webUrl,
} from "../../vinom/webclient/transport.js";
import { decode, encode } from "../../vinom/webclient/codec.js";
import { bytes, hex, vectors } from "./vectors.mjs";

const saved = { WebTransport: globalThis.WebTransport, WebSocket: globalThis.WebSocket, fetch: globalThis.fetch };
afterEach(() => {
  Object.assign(globalThis, saved);
  forgetFailures();
});

// A readable side fed by `push`, as a WebTransport stream's or datagrams'.
function feed() {
  let controller;
  const readable = new ReadableStream({ start(c) { controller = c; } });
  return { readable, push: (bytes) => controller.enqueue(Uint8Array.from(bytes)), end: () => controller.close() };
}

// A writable side keeping what is written in `into` (and `into.closed` once ended).
function writable(into) {
  return new WritableStream({
    write(chunk) { into.push(Uint8Array.from(chunk)); },
    close() { into.closed = true; },
  });
}

class FakeWebTransport {
  static made = [];
  static ready = "open"; // "open" | "never" | "refused"
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.streamWritten = [];
    this.datagramsWritten = [];
    this.stream = feed();
    this.datagramFeed = feed();
    this.datagrams = { readable: this.datagramFeed.readable, writable: writable(this.datagramsWritten) };
    this.closed = new Promise((resolve, reject) => { this.end = resolve; this.fail = reject; });
    this.ready = FakeWebTransport.ready === "open" ? Promise.resolve()
      : FakeWebTransport.ready === "refused" ? Promise.reject(new Error("refused")) : new Promise(() => {});
    this.closeCalls = [];
    FakeWebTransport.made.push(this);
  }
  async createBidirectionalStream() {
    return { readable: this.stream.readable, writable: writable(this.streamWritten) };
  }
  close(info) { this.closeCalls.push(info); }
}

class FakeWebSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeWebSocket.made.push(this);
    queueMicrotask(() => { this.readyState = 1; this.onopen?.({}); });
  }
  send(data) { this.sent.push(data); }
  close(code) { this.onclose?.({ code, reason: "" }); }
}

function install({ offer = { port: 7381, certificate_hashes: ["AAEC"] }, ready = "open" } = {}) {
  FakeWebTransport.made = [];
  FakeWebTransport.ready = ready;
  FakeWebSocket.made = [];
  const asked = [];
  globalThis.WebTransport = FakeWebTransport;
  globalThis.WebSocket = FakeWebSocket;
  globalThis.fetch = async (url) => {
    asked.push(url);
    return { ok: true, json: async () => offer };
  };
  return asked;
}

function opened(connection) {
  return new Promise((resolve) => { connection.onopen = () => resolve(connection.kind); });
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("a message on the stream is the stream vector of vectors/protocol.json, both ways", async () => {
  const { stream_sync: vector } = vectors("webtransport");
  install();
  const connection = new GameConnection("wss://127.0.0.1:7380/game");
  assert.equal(await opened(connection), "webtransport");
  const transport = FakeWebTransport.made[0];
  connection.send(encode(vector.message));
  await tick();
  assert.deepEqual(transport.streamWritten.map(hex), [vector.hex]);
  const got = [];
  connection.onmessage = (event) => got.push(decode(new Uint8Array(event.data)));
  transport.stream.push(bytes(vector.hex));
  await tick();
  await tick();
  assert.deepEqual(got, [vector.message]);
});

test("the offer is asked of the game URL's web server, and names the session's URL and hashes", async () => {
  const asked = install();
  assert.equal(webUrl("wss://games.example:7380/game", "/webtransport"), "https://games.example:7380/webtransport");
  const offer = await webTransportOffer("wss://games.example:7380/game");
  assert.deepEqual(asked, ["https://games.example:7380/webtransport"]);
  assert.equal(offer.url, "https://games.example:7381/game");
  assert.deepEqual(offer.hashes, [{ algorithm: "sha-256", value: Uint8Array.from([0, 1, 2]) }]);
  install({ offer: { port: null, certificate_hashes: [] } });
  assert.equal(await webTransportOffer("wss://games.example:7380/game"), null);
});

test("WebTransport carries the session when offered: framed stream messages, datagrams", async () => {
  install();
  const kinds = [];
  const connection = new GameConnection("wss://127.0.0.1:7380/game", { onKind: (k) => kinds.push(k) });
  assert.equal(await opened(connection), "webtransport");
  assert.deepEqual(kinds, ["webtransport"]);
  const transport = FakeWebTransport.made[0];
  assert.equal(transport.url, "https://127.0.0.1:7381/game");
  assert.deepEqual(transport.options, { serverCertificateHashes: [{ algorithm: "sha-256", value: Uint8Array.from([0, 1, 2]) }] });
  const got = [];
  connection.onmessage = (event) => got.push([...new Uint8Array(event.data)]);
  // Two messages split across reads, then a datagram.
  transport.stream.push([0, 0, 0, 2, 0xa1]);
  transport.stream.push([0x61, 0, 0, 0, 1, 0xc0]);
  transport.datagramFeed.push([0x81, 0xa1, 0x74]);
  await tick();
  await tick();
  // The stream's in order; the datagram whenever it came.
  assert.deepEqual(got.filter((m) => m.length !== 3), [[0xa1, 0x61], [0xc0]]);
  assert.deepEqual(got.filter((m) => m.length === 3), [[0x81, 0xa1, 0x74]]);
  connection.send(Uint8Array.from([1, 2, 3]));
  connection.sendUnreliable(Uint8Array.from([9]));
  connection.sendUnreliable(new Uint8Array(MAX_DATAGRAM + 1)); // too long for a datagram: the stream
  await tick();
  assert.deepEqual(transport.streamWritten.map((c) => c.length), [7, 4 + MAX_DATAGRAM + 1]);
  assert.deepEqual([...transport.streamWritten[0]], [0, 0, 0, 3, 1, 2, 3]);
  assert.deepEqual(transport.datagramsWritten.map((c) => [...c]), [[9]]);
  // The server's close capsule: its code and reason, as a WebSocket's close.
  const closed = new Promise((resolve) => { connection.onclose = resolve; });
  transport.end({ closeCode: 4001, reason: "token_reused" });
  assert.deepEqual(await closed, { code: 4001, reason: "token_reused" });
});

test("the server's end of the stream, behind its last message, is answered by the page's", async () => {
  // The server closes the session once the page has read to the end (a browser drops
  // what it has not read when the session closes): the page ends its side to say so.
  install();
  const connection = new GameConnection("wss://127.0.0.1:7380/game");
  await opened(connection);
  const transport = FakeWebTransport.made[0];
  const got = [];
  connection.onmessage = (event) => got.push([...new Uint8Array(event.data)]);
  transport.stream.push([0, 0, 0, 1, 0xc0]);
  await tick();
  assert.notEqual(transport.streamWritten.closed, true);
  transport.stream.end();
  await tick();
  await tick();
  assert.deepEqual(got, [[0xc0]]);
  assert.equal(transport.streamWritten.closed, true);
  const closed = new Promise((resolve) => { connection.onclose = resolve; });
  transport.end({ closeCode: 1000, reason: "session closed" });
  assert.deepEqual(await closed, { code: 1000, reason: "session closed" });
});

test("a lost connection closes as 1006", async () => {
  install();
  const connection = new GameConnection("wss://127.0.0.1:7380/game");
  await opened(connection);
  const closed = new Promise((resolve) => { connection.onclose = resolve; });
  FakeWebTransport.made[0].fail(new Error("gone"));
  assert.deepEqual(await closed, { code: 1006, reason: "" });
});

test("no offer, or no WebTransport in the browser: the WebSocket at once", async () => {
  install({ offer: { port: null, certificate_hashes: [] } });
  const connection = new GameConnection("wss://127.0.0.1:7380/game");
  assert.equal(await opened(connection), "websocket");
  assert.equal(FakeWebTransport.made.length, 0);
  assert.equal(FakeWebSocket.made[0].url, "wss://127.0.0.1:7380/game");
  connection.sendUnreliable(Uint8Array.from([7])); // no datagrams: a message like any other
  assert.deepEqual(FakeWebSocket.made[0].sent.map((d) => [...d]), [[7]]);
  install();
  delete globalThis.WebTransport;
  const plain = new GameConnection("wss://127.0.0.1:7380/game");
  assert.equal(await opened(plain), "websocket");
});

test("a session refused, or not open in time, falls back to the WebSocket", async () => {
  install({ ready: "refused" });
  const refused = new GameConnection("wss://127.0.0.1:7380/game");
  assert.equal(await opened(refused), "websocket");
  forgetFailures();
  install({ ready: "never" });
  const silent = new GameConnection("wss://127.0.0.1:7380/game", { fallbackMs: 50 });
  assert.equal(silent.kind, null); // still trying
  assert.equal(await opened(silent), "websocket");
  assert.equal(FakeWebTransport.made[0].closeCalls.length, 1); // the attempt is given up
  assert.equal(FALLBACK_MS, 1000);
});

test("closed before it opened: nothing is opened after", async () => {
  install({ ready: "never" });
  const connection = new GameConnection("wss://127.0.0.1:7380/game", { fallbackMs: 20 });
  connection.close();
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(FakeWebSocket.made.length, 0);
});

test("after a failed attempt, the next sessions with that server go straight to the WebSocket", async () => {
  install({ ready: "refused" });
  const first = new GameConnection("wss://127.0.0.1:7380/game");
  assert.equal(await opened(first), "websocket");
  assert.equal(FakeWebTransport.made.length, 1);
  const asked = install();
  const next = new GameConnection("wss://127.0.0.1:7380/game");
  assert.equal(await opened(next), "websocket");
  assert.deepEqual(asked, []); // not even the offer is asked for
  assert.equal(FakeWebTransport.made.length, 0);
  // Another game server is tried as before.
  const other = new GameConnection("wss://127.0.0.2:7380/game");
  assert.equal(await opened(other), "webtransport");
  assert.equal(RETRY_AFTER_MS, 300000);
});

// Every console method, recorded instead of printed while `run` runs.
async function consoleDuring(run) {
  const said = [];
  const methods = ["log", "info", "warn", "error", "debug"];
  const saved = Object.fromEntries(methods.map((name) => [name, console[name]]));
  for (const name of methods) console[name] = (...args) => said.push([name, ...args]);
  try {
    await run();
  } finally {
    Object.assign(console, saved);
  }
  return said;
}

test("a fallback is told to onFallback, and nothing is logged", async () => {
  const reasons = [];
  const said = await consoleDuring(async () => {
    install({ ready: "refused" });
    const told = new GameConnection("wss://127.0.0.1:7380/game", { onFallback: (why) => reasons.push(why) });
    assert.equal(await opened(told), "websocket");
    forgetFailures();
    install({ ready: "refused" });
    const quiet = new GameConnection("wss://127.0.0.1:7380/game");
    assert.equal(await opened(quiet), "websocket");
  });
  assert.deepEqual(reasons, ["refused"]);
  assert.deepEqual(said, []);
});

test("the WebSocket is made with the constructor given, where the runtime has none", async () => {
  install({ offer: { port: null, certificate_hashes: [] } });
  delete globalThis.WebSocket;
  delete globalThis.WebTransport;
  const connection = new GameConnection("wss://127.0.0.1:7380/game", { WebSocket: FakeWebSocket });
  assert.equal(await opened(connection), "websocket");
  assert.equal(FakeWebSocket.made[0].url, "wss://127.0.0.1:7380/game");
});
