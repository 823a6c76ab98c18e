// Signing in with lobby.js (docs/lobby.md, "Authentication"; docs/web.md,
// "Signing in"): the device identity made with crypto.getRandomValues and kept
// in the storage given, reused next time, replaced when what is kept is not
// one; `hello` and `reconnect` carry the connection's `auth` (an object, or a
// callback asked anew at each sign-in); an `auth_failed` rejects with a
// LobbyError saying why; leaderboard and history are requests by id.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEVICE_KEY, GUEST, LobbyConnection, LobbyError, PROTOCOL, authorizationHeader, deviceAuth, deviceIdentity,
  jwtAuth, signedAuth,
} from "../../vinom/webclient/lobby.js";

// A Web Storage in memory (what a page's localStorage does).
class MemoryStorage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  setItem(key, value) { this.items.set(key, String(value)); }
}

test("a device identity is made once, kept in the storage and reused", () => {
  const storage = new MemoryStorage();
  const first = deviceAuth({ storage });
  assert.equal(first.kind, "device");
  // The lobby's rules (docs/accounts.md): 10-128 and 22-128 printable ASCII, no space.
  assert.match(first.device_id, /^d-[0-9a-f]{32}$/);
  assert.match(first.secret, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(JSON.parse(storage.getItem(DEVICE_KEY)), { device_id: first.device_id, secret: first.secret });
  assert.deepEqual(deviceAuth({ storage }), first, "the next visit signs in as the same device");
  const other = deviceAuth({ storage: new MemoryStorage() });
  assert.notEqual(other.device_id, first.device_id);
  assert.notEqual(other.secret, first.secret);
});

test("the random bytes come from crypto.getRandomValues, the key may be the page's", () => {
  const asked = [];
  const crypto = {
    getRandomValues(array) {
      asked.push(array.length);
      return array.fill(0xab);
    },
  };
  const storage = new MemoryStorage();
  const made = deviceIdentity({ storage, crypto, key: "studio.device" });
  assert.deepEqual(asked, [16, 32]);
  assert.equal(made.device_id, `d-${"ab".repeat(16)}`);
  assert.equal(made.secret, Buffer.alloc(32, 0xab).toString("base64url"));
  assert.equal(storage.getItem(DEVICE_KEY), null);
  assert.deepEqual(JSON.parse(storage.getItem("studio.device")), made);
});

test("what is kept but is not a device identity is replaced by a new one", () => {
  for (const kept of ["not json", "null", "[]", '{"device_id": "short", "secret": "x"}',
    JSON.stringify({ device_id: "d-0123456789", secret: "has a space in it, not allowed here" })]) {
    const storage = new MemoryStorage();
    storage.setItem(DEVICE_KEY, kept);
    const made = deviceIdentity({ storage });
    assert.match(made.device_id, /^d-[0-9a-f]{32}$/, kept);
    assert.deepEqual(JSON.parse(storage.getItem(DEVICE_KEY)), made, kept);
  }
});

test("no storage (Node has no localStorage) and none given: one error that says what to pass", () => {
  assert.throws(() => deviceAuth({ storage: null }), {
    name: "TypeError",
    message: /needs a storage .* pass one as \{ storage \}/,
  });
});

test("the other kinds' credentials", () => {
  assert.deepEqual(GUEST, { kind: "guest" });
  assert.deepEqual(jwtAuth("a.b.c"), { kind: "jwt", token: "a.b.c" });
  assert.deepEqual(signedAuth("t"), { kind: "signed", token: "t" });
});

// A lobby that answers each frame as `answer` says, and keeps what it was sent.
class ScriptedLobby {
  static answer = (frame) => ({ type: "welcome", id: frame.id });
  static last = null;
  constructor() {
    this.readyState = 0;
    this.sent = [];
    ScriptedLobby.last = this;
    queueMicrotask(() => { this.readyState = 1; this.onopen?.({}); });
  }
  send(text) {
    const frame = JSON.parse(text);
    this.sent.push(frame);
    if (frame.type === "ping") return;
    queueMicrotask(() => this.onmessage?.({ data: JSON.stringify(ScriptedLobby.answer(frame)) }));
  }
  close(code) { this.readyState = 3; this.onclose?.({ code, reason: "" }); }
}

async function connect(auth) {
  return new LobbyConnection("wss://games.example/lobby", { WebSocket: ScriptedLobby, auth }).open();
}

test("hello and reconnect carry the connection's auth; without one, none", async () => {
  const storage = new MemoryStorage();
  const auth = deviceAuth({ storage });
  const lobby = await connect(auth);
  await lobby.hello("Ann");
  await lobby.hello("Ann", { previous: { player_id: "a-1", secret: "s", name: "Ann" } });
  await lobby.reconnect("a-1", "s");
  const sent = ScriptedLobby.last.sent;
  assert.deepEqual(sent[0], { type: "hello", name: "Ann", protocol: PROTOCOL, auth, id: 1 });
  assert.deepEqual(sent[1].previous, { player_id: "a-1", secret: "s" });
  assert.deepEqual(sent[2], { type: "reconnect", player_id: "a-1", secret: "s", protocol: PROTOCOL, auth, id: 3 });
  lobby.close();
  const guest = await connect(null);
  await guest.hello("Bob");
  assert.deepEqual(ScriptedLobby.last.sent[0], { type: "hello", name: "Bob", protocol: PROTOCOL, id: 1 });
  guest.close();
});

test("a callback gives the auth anew at each sign-in (a fresh JWT each time)", async () => {
  let made = 0;
  const lobby = await connect(async () => jwtAuth(`token-${++made}`));
  await lobby.hello("Ann");
  await lobby.reconnect("a-1", "s");
  assert.deepEqual(ScriptedLobby.last.sent.map((f) => f.auth), [jwtAuth("token-1"), jwtAuth("token-2")]);
  lobby.close();
});

test("a refused sign-in rejects with a LobbyError saying why; banned says so", async () => {
  const lobby = await connect(jwtAuth("old"));
  ScriptedLobby.answer = (frame) => ({
    type: "error", code: "auth_failed", reason: "expired", message: "the token has expired", id: frame.id,
  });
  try {
    const refused = await lobby.hello("Ann").catch((error) => error);
    assert.ok(refused instanceof LobbyError);
    assert.equal(refused.code, "auth_failed");
    assert.equal(refused.frame.reason, "expired");
    assert.equal(refused.message, "Your sign-in has expired: sign in again.");
    ScriptedLobby.answer = (frame) => ({
      type: "error", code: "auth_failed", reason: "a_plugin_reason", message: "m", id: frame.id,
    });
    assert.equal((await lobby.hello("Ann").catch((e) => e)).message, "Signing in failed; sign in again.");
    ScriptedLobby.answer = (frame) => ({
      type: "error", code: "banned", reason: "cheating", until: null, message: "m", id: frame.id,
    });
    const banned = await lobby.hello("Ann").catch((error) => error);
    assert.equal(banned.code, "banned");
    assert.equal(banned.message, "This account is banned. Reason: cheating. The ban does not end.");
    // Its end, in UTC; a reason ending a sentence; what is not a time or a reason, left out.
    for (const [reason, until, said] of [
      ["Spamming the chat!", 1718600000.0, "This account is banned. Reason: Spamming the chat! The ban ends 2024-06-17 04:53 UTC."],
      [" ", 1e300, "This account is banned."],
      [42, "soon", "This account is banned."],
    ]) {
      ScriptedLobby.answer = (frame) => ({ type: "error", code: "banned", reason, until, message: "m", id: frame.id });
      assert.equal((await lobby.hello("Ann").catch((e) => e)).message, said);
    }
  } finally {
    ScriptedLobby.answer = (frame) => ({ type: "welcome", id: frame.id });
    lobby.close();
  }
});

test("leaderboard and history are requests with the spec's defaults", async () => {
  const lobby = await connect(null);
  await lobby.leaderboard("tictactoe");
  await lobby.leaderboard("tictactoe", { around: true, limit: 5, queue: "ranked" });
  await lobby.history();
  await lobby.history({ limit: 3 });
  assert.deepEqual(ScriptedLobby.last.sent, [
    { type: "leaderboard", game: "tictactoe", queue: "ranked", limit: 10, around: false, id: 1 },
    { type: "leaderboard", game: "tictactoe", queue: "ranked", limit: 5, around: true, id: 2 },
    { type: "history", limit: 10, id: 3 },
    { type: "history", limit: 3, id: 4 },
  ]);
  lobby.close();
});

test("a request's Authorization carries the auth as the web server reads it", () => {
  const auth = deviceAuth({ storage: new MemoryStorage() });
  const header = authorizationHeader(auth);
  assert.match(header, /^Vinom [A-Za-z0-9_-]+$/);
  assert.deepEqual(JSON.parse(Buffer.from(header.slice("Vinom ".length), "base64url").toString()), auth);
});
