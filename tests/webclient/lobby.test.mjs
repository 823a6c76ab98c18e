// lobby.js and game.js under Node's test runner, with the WebSocket stood in for:
// the socket is made with the constructor given (Node before 22 has no WebSocket
// of its own), a runtime without one and none given is one clear error, and
// nothing of the package writes to the console.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LobbyConnection, PROTOCOL } from "../../vinom/webclient/lobby.js";
import { GameSocket } from "../../vinom/webclient/game.js";

// A lobby that answers each request with `welcome`, as the server's text frames.
class FakeLobbySocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeLobbySocket.made.push(this);
    queueMicrotask(() => { this.readyState = 1; this.onopen?.({}); });
  }
  send(text) {
    const frame = JSON.parse(text);
    this.sent.push(frame);
    queueMicrotask(() => this.onmessage?.({ data: JSON.stringify({ type: "welcome", id: frame.id }) }));
  }
  close(code) { this.readyState = 3; this.onclose?.({ code, reason: "" }); }
}

test("the lobby's socket is made with the WebSocket constructor given", async () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    const lobby = await new LobbyConnection("wss://games.example/lobby", { WebSocket: FakeLobbySocket }).open();
    const reply = await lobby.request({ type: "hello", name: "Ann", protocol: PROTOCOL });
    assert.deepEqual(reply, { type: "welcome", id: 1 });
    assert.equal(FakeLobbySocket.made[0].url, "wss://games.example/lobby");
    lobby.close();
  } finally {
    if (saved !== undefined) globalThis.WebSocket = saved;
  }
});

test("no WebSocket in the runtime and none given: one error that says what to pass", () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    assert.throws(() => new LobbyConnection("wss://games.example/lobby"), {
      name: "TypeError",
      message: /LobbyConnection needs a WebSocket: .* pass one as \{ WebSocket \}/,
    });
  } finally {
    if (saved !== undefined) globalThis.WebSocket = saved;
  }
});

test("a game message that cannot be read goes to onWarning, not to the console", async () => {
  const warnings = [];
  const said = [];
  const saved = { ...console };
  for (const name of ["log", "info", "warn", "error", "debug"]) console[name] = (...args) => said.push(args);
  try {
    const told = { readyState: 1, send() {}, close() {} };
    const quiet = { readyState: 1, send() {}, close() {} };
    new GameSocket("wss://games.example/game", {}, { open: () => told, onWarning: (text) => warnings.push(text) });
    new GameSocket("wss://games.example/game", {}, { open: () => quiet });
    for (const socket of [told, quiet]) {
      socket.onmessage({ data: Uint8Array.from([0xc1]).buffer }); // 0xc1: never used in msgpack
    }
  } finally {
    Object.assign(console, saved);
  }
  assert.deepEqual(warnings, ["a game message that is not msgpack"]);
  assert.deepEqual(said, []);
});
