// The game session over WebSocket (docs/web.md, "The game session over
// WebSocket"): the first message is the 1200-byte request packet built from
// match_found's token, then every message both ways is one msgpack room
// message (docs/protocol.md, section 14).
//
// In a room whose game has a tick, while playing, the host sends `snap`s (delta
// snapshots, docs/protocol.md section 16, decoded by delta.js): GameSocket
// rebuilds each view and hands it on as the `state` a board takes, and
// `input(input)` sends tick-stamped real-time inputs, each repeated until a
// snap's `ik` acknowledges it (docs/web.md, "Snapshots and inputs").

import { SnapshotReceiver } from "./delta.js";
import { decode, encode } from "./msgpack.js";

// The unacknowledged inputs an `input` message repeats, at most.
export const MAX_PENDING_INPUTS = 8;
// With no input sent for this many snapshot intervals, a snap is acknowledged
// by an input message of no new input; never sooner than this many ms after the
// last (at most 10 a second, within the session's message rate at any snapshot rate).
export const ACK_ONLY_INTERVALS = 2;
export const ACK_ONLY_FLOOR_MS = 100;

// What each close code of /game means for the player (docs/web.md, "Limits and close codes").
export const CLOSE_REASONS = {
  1000: "The game session ended.",
  1006: "The connection to the game was lost.",
  1009: "The game server refused a message that was too large.",
  1011: "The game server failed while opening the match.",
  4002: "The game server got no connect token in time.",
  4003: "The game server refused a text message.",
  4008: "Too many messages were sent too fast.",
};

// The reasons of close 4001: the token opens no session.
export const TOKEN_REFUSALS = {
  request_size: "the connect request had the wrong size",
  wrong_version: "this client speaks another protocol version",
  wrong_application: "the token is for another application",
  token_expired: "the connect token expired",
  token_invalid: "the connect token is not valid here",
  token_malformed: "the connect token is damaged",
  not_hosted: "the match is no longer running",
  wrong_host: "the match runs on another server",
  token_reused: "the connect token was already used",
  already_connected: "you are already connected to this match from another client",
  not_admitted: "the match did not admit you",
  match_full: "the match is full",
  host_full: "the game server is full",
  spectators_full: "the match has as many spectators as it may have",
};

export function closeText(code, reason) {
  if (code === 4001) {
    return `The game refused the connection: ${TOKEN_REFUSALS[reason] ?? reason ?? "no reason given"}.`;
  }
  return CLOSE_REASONS[code] ?? `The game connection closed (code ${code}${reason ? `: ${reason}` : ""}).`;
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// The request packet of docs/protocol.md, 5.2, little-endian, zero-padded to 1200 bytes.
export function requestPacket(token) {
  const packet = new Uint8Array(1200);
  const view = new DataView(packet.buffer);
  view.setUint8(0, 0);
  view.setUint32(1, token.version, true);
  view.setBigUint64(5, BigInt(token.application_id), true);
  view.setBigUint64(13, BigInt(token.expires_at), true);
  packet.set(fromBase64(token.nonce), 21);
  packet.set(fromBase64(token.token), 33);
  return packet;
}

// Where to play a match: the URL match_found names, or /game on this page's host.
export function gameUrl(found, location) {
  if (typeof found.game_url === "string" && found.game_url !== "") return found.game_url;
  const scheme = location.protocol === "http:" ? "ws:" : "wss:";
  return `${scheme}//${location.host}/game`;
}

export class GameSocket {
  // `open` makes the WebSocket (a test passes a stand-in with send, close and readyState).
  constructor(url, token, { onMessage = () => {}, onClose = () => {}, open = (at) => new WebSocket(at) } = {}) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.nextAction = 1;
    this.closedByUs = false;
    // Real-time play (a game with a tick): the welcome's rates and rules.
    this.tickRate = 0;
    this.snapshotRate = 0;
    this.snapshots = new SnapshotReceiver(); // replaced at each welcome (its `q`)
    this.snapTick = null; // the newest applied snap's tick: the `a` of each input message
    this.clock = null; // { k, at }: the newest tick heard of and when (performance.now(), ms)
    this.pending = []; // [[k, input], ...]: inputs not yet acknowledged by a snap's `ik`
    this.lastTick = null; // the tick of the newest input stamped
    this.lastInputSent = null; // performance.now() of the last input message
    this.rtt = null; // seconds, when the page knows it: input() leads by half of it
    this.socket = open(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => this.socket.send(requestPacket(token));
    this.socket.onmessage = (event) => {
      if (typeof event.data === "string") return;
      let message;
      try {
        message = decode(new Uint8Array(event.data));
      } catch (error) {
        console.warn("a game message that is not msgpack", error);
        return;
      }
      if (message !== null && typeof message === "object" && typeof message.t === "string") {
        this.receive(message);
      }
    };
    this.socket.onclose = (event) => this.onClose(event, this.closedByUs);
  }

  receive(message) {
    if (message.t === "welcome") {
      this.welcome(message);
    } else if (message.t === "snap") {
      const state = this.snap(message);
      if (state !== null) this.onMessage(state);
      return;
    } else if (message.t === "state" && typeof message.k === "number") {
      this.heard(message.k);
    }
    this.onMessage(message);
  }

  welcome(message) {
    this.tickRate = typeof message.tick_rate === "number" ? message.tick_rate : 0;
    this.snapshotRate = typeof message.snapshot_rate === "number" ? message.snapshot_rate : 0;
    try {
      this.snapshots = new SnapshotReceiver({ rules: message.q ?? null });
    } catch (error) {
      console.warn("a welcome whose quantisation rules cannot be read", error);
      this.snapshots = new SnapshotReceiver();
    }
    // A new session's host holds none of this one's snapshots or inputs.
    this.snapTick = null;
    this.pending = [];
    this.lastTick = null;
  }

  heard(k) {
    if (this.clock === null || k >= this.clock.k) this.clock = { k, at: performance.now() };
  }

  // A snap: its view rebuilt as the state a board takes, or null when dropped
  // (late, against a baseline not held, corrupt: counted in this.snapshots.drops).
  snap(message) {
    if (typeof message.ik === "number") {
      this.pending = this.pending.filter(([k]) => k > message.ik);
    }
    let state = null;
    // A `d` that is not bin is corrupt too: the receiver counts it so.
    const snapshot = this.snapshots.receive(message.d);
    if (snapshot !== null) {
      this.snapTick = snapshot.tick;
      this.heard(snapshot.tick);
      state = {
        t: "state", v: message.v, p: "playing", r: message.r ?? null, k: snapshot.tick,
        ts: message.ts, s: snapshot.view, i: message.i ?? null,
      };
    }
    const interval = this.snapshotRate > 0 ? 1000 / this.snapshotRate : 1000 / (this.tickRate || 1);
    const quiet = Math.max(ACK_ONLY_INTERVALS * interval, ACK_ONLY_FLOOR_MS);
    if (this.lastInputSent === null || performance.now() - this.lastInputSent >= quiet) {
      this.sendInputs();
    }
    return state;
  }

  // The tick an input made now is meant for: the first tick the host runs after
  // it arrives, floor(k + (elapsed + rtt) * tick_rate) + 1 from the newest tick
  // heard of (docs/client.md; rtt 0 while the page does not know it: an input
  // a little late is applied at the next tick, never lost); after the previous
  // input's, so each input has a tick of its own.
  inputTick() {
    let k = 1;
    if (this.clock !== null) {
      const elapsed = (performance.now() - this.clock.at) / 1000;
      k = Math.floor(this.clock.k + (elapsed + (this.rtt ?? 0)) * this.tickRate) + 1;
    }
    return this.lastTick === null ? k : Math.max(k, this.lastTick + 1);
  }

  // Sends a real-time input (a map, what the game's action handler takes),
  // stamped with the tick it is meant for, with every input not yet
  // acknowledged (at most 8, oldest first); returns its tick.
  input(input) {
    const k = this.inputTick();
    this.lastTick = k;
    this.pending.push([k, input]);
    if (this.pending.length > MAX_PENDING_INPUTS) this.pending.splice(0, this.pending.length - MAX_PENDING_INPUTS);
    this.sendInputs();
    return k;
  }

  sendInputs() {
    this.lastInputSent = performance.now();
    this.send({ t: "input", a: this.snapTick, x: this.pending.slice() });
  }

  send(message) {
    if (this.socket.readyState === 1) this.socket.send(encode(message)); // OPEN
  }

  // Sends a game action; returns its id (echoed in an error and in my state's `i`).
  act(action) {
    const id = this.nextAction++;
    this.send({ t: "action", a: action, i: id });
    return id;
  }

  sync() {
    this.send({ t: "sync" });
  }

  leave() {
    this.send({ t: "leave" });
  }

  close() {
    this.closedByUs = true;
    this.socket.close(1000);
  }
}
