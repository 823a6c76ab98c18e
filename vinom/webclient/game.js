// The game session over WebTransport or WebSocket (docs/web.md, "The game
// session over WebSocket" and "... over WebTransport"; transport.js picks): the
// first message is the 1200-byte request packet built from match_found's token,
// then every message both ways is one msgpack room message (docs/protocol.md,
// section 14), except the host's `snap`, packed (snapOfPacked). Inputs go as
// datagrams where the connection has them.
//
// In a room whose game has a tick, while playing, the host sends `snap`s (delta
// snapshots, docs/protocol.md section 16, decoded by delta.js; schema snapshots,
// section 16.8 and schema.js, for a game that declares its view): GameSocket
// rebuilds each view and hands it on as the `state` a board takes, and
// `input(input)` sends tick-stamped real-time inputs, each repeated until a
// snap's `ik` acknowledges it (docs/web.md, "Snapshots and inputs").
//
// Each applied snap also feeds the client-side netcode (netcode.js, docs/web.md
// "Clock, interpolation and prediction"): `serverTick()` / `serverTime()` from
// the clock sync, `interpolate(...)` then `rendered()` for the others,
// `predict(step, own)` then `predicted()` for the player's own state,
// `predictEvents(confirms)` for the events it causes. The round
// trip (`rtt`) is measured from the acknowledgements of inputs and of snaps.

import { SnapshotReceiver } from "./delta.js";
import { decode, encode } from "./codec.js";
import { PredictedEvents, Predictor, ServerClock, SnapshotBuffer } from "./netcode.js";
import { ViewSchema, unzigzag } from "./schema.js";
import { GameConnection } from "./transport.js";

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

// An input's [b, f] (docs/protocol.md §14, `input`) for an input of tick k given
// while its player saw fractional tick `seen`: the whole ticks back from k to
// floor(seen) (0 to min(k, 255)), and the fraction of the next in 256ths,
// rounded down; null when there is nothing to say.
export function drawnFields(k, seen) {
  if (!Number.isFinite(seen)) return null;
  const whole = Math.floor(seen);
  const back = k - whole;
  if (back < 0 || back > Math.min(k, 255)) return null;
  return [back, Math.min(255, Math.floor((seen - whole) * 256))];
}

// A `snap` (docs/protocol.md §14, its one form since game protocol 4): byte 0xC1
// (never a msgpack byte), five unsigned LEB128 numbers, then d to the end. Its
// numbers are relative to d's own header (tick k, and baseline b of a delta, in
// a §16.1 snapshot or a §16.8 schema one alike), so they are read here as sent,
// in `relative` ([v, ts, r, ik]), with i (zigzag(i) + 1, 0: nil), and filled in
// by resolveRelativeSnap once d is rebuilt; null when a number is cut short,
// longer than 8 bytes or not below 2^53.
const PACKED_SNAP = 0xc1;

export function snapOfPacked(bytes) {
  if (bytes[0] !== PACKED_SNAP) return null;
  const numbers = [];
  let at = 1;
  for (let n = 0; n < 5; n++) {
    // By multiplication, not 32-bit bitwise operators: exact below 2^53, and a
    // longer value still reads as at least 2^53.
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length || scale === 2 ** 56) return null;
      const byte = bytes[at++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) break;
    }
    if (value >= 2 ** 53) return null;
    numbers.push(value);
  }
  const [v, ts, r, i, ik] = numbers;
  return { t: "snap", relative: [v, ts, r, ik], i: i === 0 ? null : unzigzag(i - 1), d: bytes.subarray(at) };
}

// A snap's v, ts, r (seconds) and ik filled in, given the tick its d rebuilt and
// `base`, the [v, ts, r in ms] of the snap of its baseline tick (null: d was
// full, its numbers v, ts, r + 1 as they are): §14's `snap`. Returns its own
// [v, ts, r in ms], to keep for the snaps against it.
export function resolveRelativeSnap(snap, tick, base) {
  let [v, ts, r, ik] = snap.relative;
  delete snap.relative;
  let left;
  if (base === null) {
    left = r === 0 ? null : r - 1;
  } else {
    const [vBase, tsBase, leftBase] = base;
    v += vBase;
    ts += tsBase;
    left = r === 0 ? null : unzigzag(r - 1) + tsBase + (leftBase ?? 0) - ts;
  }
  Object.assign(snap, { v, ts, r: left === null ? null : left / 1000, ik: ik === 0 ? null : tick + unzigzag(ik - 1) });
  return [v, ts, left];
}

// The applied snaps whose fields are kept for the snaps against them (more than the host's baselines).
const SNAP_FIELDS_KEPT = 64;

// The client-side netcode a board's `game` object offers (docs/web.md, "Clock,
// interpolation and prediction"), each call passed to `net()`: a live match's
// GameSocket, or a replay's ReplayNetcode (replays.js), read at the call.
export function boardNetcode(net) {
  return {
    tickRate: () => net().tickRate,
    snapshotRate: () => net().snapshotRate,
    serverTick: () => net().serverTick(),
    serverTime: () => net().serverTime(),
    interpolate: (options) => net().interpolate(options),
    rendered: () => net().rendered(),
    predict: (step, own, options) => net().predict(step, own, options),
    predicted: () => net().predicted(),
    predictEvents: (confirms, options, onEvents) => net().predictEvents(confirms, options, onEvents),
  };
}

export class GameSocket {
  // `open` makes the connection: a GameConnection (WebTransport, else WebSocket,
  // made with `WebSocket`, by default the runtime's own), whose `onKind(kind)`
  // says which and `onFallback(why)` why not WebTransport; a test passes a
  // stand-in with send, close and readyState. Nothing is logged: a message
  // dropped as unreadable goes to `onWarning(text, error)`.
  constructor(url, token, {
    onMessage = () => {}, onClose = () => {}, onKind = () => {}, onFallback = () => {},
    onWarning = () => {}, WebSocket = globalThis.WebSocket,
    open = (at) => new GameConnection(at, { onKind, onFallback, WebSocket }),
  } = {}) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.onWarning = onWarning;
    this.nextAction = 1;
    this.closedByUs = false;
    // Real-time play (a game with a tick): the welcome's rates and rules.
    this.tickRate = 0;
    this.snapshotRate = 0;
    this.snapshots = new SnapshotReceiver(); // replaced at each welcome (its `q`)
    this.snapFields = new Map(); // tick -> [v, ts, r ms] of each applied snap, for those against it
    this.snapTick = null; // the newest applied snap's tick: the `a` of each input message
    this.clock = null; // { k, at }: the newest tick heard of and when (performance.now(), ms)
    this.pending = []; // [[k, input], ...]: inputs not yet acknowledged by a snap's `ik`
    this.lastTick = null; // the tick of the newest input stamped
    this.lastInputSent = null; // performance.now() of the last input message
    this.rtt = null; // seconds: measured from acknowledgements both ways (roundTrip())
    this.rttSamples = []; // [at, seconds]: a send to the snap acknowledging it
    this.sentAt = new Map(); // input tick -> performance.now() of its first send
    this.ackSentAt = new Map(); // an input message's `a` -> performance.now() of its first send
    this.newestAck = null; // the newest `a` sent (ackSentAt records each once, in order)
    this.serverClock = null; // a ServerClock from the welcome of a game with a tick
    this.snapshotBuffer = null; // a SnapshotBuffer, once a board asked for it
    this.prediction = null; // a Predictor, once a board asked for it
    this.own = null; // view -> the own state the prediction starts from
    this.events = null; // PredictedEvents, once a board asked for them
    this.onEvents = null; // what a snap settled of them: ({ confirmed, retracted }) => ...
    this.socket = open(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => this.socket.send(requestPacket(token));
    this.socket.onmessage = (event) => {
      if (typeof event.data === "string") return;
      const data = new Uint8Array(event.data);
      let message;
      if (data[0] === PACKED_SNAP) {
        // A bad one is warned of as any message that is not msgpack (0xC1 is not).
        message = snapOfPacked(data);
        if (message === null) {
          this.onWarning("a game message that is not msgpack",
            new RangeError("a packed snap with a number cut short, over 8 bytes or not below 2^53"));
          return;
        }
      } else {
        try {
          message = decode(data);
        } catch (error) {
          this.onWarning("a game message that is not msgpack", error);
          return;
        }
        // A snap travels packed, never as msgpack: a map saying "snap" is not one.
        if (message?.t === "snap") return;
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
      // A state of a ticking match at play feeds the netcode as a snap does: a
      // spectator's every view comes so (docs/protocol.md §14, "Spectators"), a
      // player's after a welcome or a sync.
      if (message.p === "playing" && this.serverClock !== null) {
        this.netcode(message.k, message.ts, message.s);
      }
    }
    this.onMessage(message);
  }

  welcome(message) {
    this.tickRate = typeof message.tick_rate === "number" ? message.tick_rate : 0;
    this.snapshotRate = typeof message.snapshot_rate === "number" ? message.snapshot_rate : 0;
    // A game that declares its view (`vs`) sends schema snapshots (docs/protocol.md
    // §16.8) from its first snap; one whose declaration this client cannot read
    // is warned of, and its snaps are dropped as corrupt.
    let schema = null;
    if (message.vs !== undefined && message.vs !== null) {
      try {
        schema = new ViewSchema(message.vs);
      } catch (error) {
        this.onWarning("a welcome whose view schema cannot be read", error);
      }
    }
    try {
      this.snapshots = new SnapshotReceiver({ rules: message.q ?? null, schema });
    } catch (error) {
      this.onWarning("a welcome whose quantisation rules cannot be read", error);
      this.snapshots = new SnapshotReceiver({ schema });
    }
    // A new session's host holds none of this one's snapshots, snaps or inputs.
    this.snapFields = new Map();
    this.snapTick = null;
    this.pending = [];
    this.lastTick = null;
    this.sentAt.clear();
    this.ackSentAt.clear();
    this.newestAck = null;
    this.serverClock = this.tickRate > 0 ? new ServerClock(this.tickRate) : null;
  }

  // -- client-side netcode (netcode.js) --------------------------------------

  // The server's fractional tick now from the clock sync; null before a snap.
  serverTick(now = performance.now() / 1000) {
    return this.serverClock === null ? null : this.serverClock.tick(now, this.rtt ?? 0);
  }

  // The room's time now in seconds (the clock of a state's ts); null before a snap.
  serverTime(now = performance.now() / 1000) {
    return this.serverClock === null ? null : this.serverClock.time(now, this.rtt ?? 0);
  }

  // The fractional tick an input given now reaches the host at (what predicted() shows).
  predictionTick(now = performance.now() / 1000) {
    const tick = this.serverTick(now);
    return tick === null ? null : tick + ((this.rtt ?? 0) / 2) * this.tickRate;
  }

  // Keep the snaps' views from now on for rendered(): `options` are
  // { interpolation: { fields, keys, wrap }, delay, maxExtrapolation } (SnapshotBuffer).
  interpolate(options = {}) {
    if (this.serverClock === null) throw new Error("interpolate is for a game with a tick, after its welcome");
    this.snapshotBuffer = new SnapshotBuffer(this.snapshotRate || this.tickRate, options);
    return this.snapshotBuffer;
  }

  // The interpolated view to draw now, on the ticks' timeline (tick k at k / tickRate s):
  // the server's time as the fastest snaps show it on arrival (the clock without
  // the half round trip the server ran on meanwhile), minus the buffer's delay.
  rendered(now = performance.now() / 1000) {
    const tick = this.serverClock === null ? null : this.serverClock.tick(now, 0);
    if (this.snapshotBuffer === null || tick === null) return null;
    return this.snapshotBuffer.render(tick / this.tickRate);
  }

  // Predict the own state: own(view) is its part of a view (null: none), step(state,
  // inputs, dt) the game's rules for a tick; `options` { smooth, wrap, smoothing,
  // tolerance, teleport }. A view with no own state (a dead entity) resets the
  // prediction until one has it again.
  predict(step, own, options = {}) {
    if (this.serverClock === null) throw new Error("predict is for a game with a tick, after its welcome");
    this.own = own;
    this.prediction = new Predictor(step, this.tickRate, options);
    return this.prediction;
  }

  // Show the events this player causes (a shot) before the host's word:
  // confirms(view) gives the event ids a view names as happened; `options`
  // { refuses, waitTicks } (netcode.js PredictedEvents). The board calls
  // events.predict(id, tick, event) with the tick input() returned for the input
  // carrying `id`; each applied snap settles them and calls onEvents({ confirmed,
  // retracted }) when it settled any.
  predictEvents(confirms, options = {}, onEvents = null) {
    if (this.serverClock === null) throw new Error("predictEvents is for a game with a tick, after its welcome");
    this.events = new PredictedEvents(confirms, options);
    this.onEvents = onEvents;
    return this.events;
  }

  // The own state to draw now (null before predict() and a snap).
  predicted(now = performance.now() / 1000) {
    const tick = this.predictionTick(now);
    if (this.prediction === null || tick === null) return null;
    return this.prediction.render(tick, now);
  }

  // An applied snap: a clock sample, a view to interpolate, the own state to reconcile.
  netcode(tick, ts, view) {
    const now = performance.now() / 1000;
    this.serverClock?.observe(tick, typeof ts === "number" ? ts : null, now);
    this.snapshotBuffer?.push(tick / this.tickRate, view);
    if (this.prediction !== null && this.own !== null) {
      const own = this.own(view);
      if (own !== null && own !== undefined) this.prediction.reconcile(tick, own, now);
      // The own entity is gone (dead): drive nothing on until it is back.
      else if (this.prediction.base !== null) this.prediction.reset();
    }
    if (this.events !== null) {
      const settled = this.events.settle(tick, view);
      if (settled.confirmed.length > 0 || settled.retracted.length > 0) this.onEvents?.(settled);
    }
  }

  // A snap's `ik` acknowledged the inputs up to it: each one's first send to now is
  // a round trip.
  acknowledged(ik) {
    for (const [k, at] of this.sentAt) {
      if (k > ik) continue;
      this.sentAt.delete(k);
      this.roundTrip(at);
    }
  }

  // A snap against baseline `tick`: the host read the first input message whose
  // `a` acknowledged it, so that message's send to now is a round trip too. Every
  // input message, ack-only ones included, measures one, so the estimate follows
  // the link while the player gives no input.
  baselineHeard(tick) {
    for (const [a, at] of this.ackSentAt) {
      if (a > tick) continue;
      this.ackSentAt.delete(a);
      if (a === tick) this.roundTrip(at);
    }
  }

  // A send at `at` (performance.now()) acknowledged now: a round trip plus the wait
  // for the host's next snap (half a snapshot interval on average, taken off); the
  // least of the last 2 seconds' is the estimate (rtt), as the clock keeps its
  // fastest sample.
  roundTrip(at) {
    const now = performance.now();
    const wait = 0.5 / (this.snapshotRate || this.tickRate || 20);
    this.rttSamples.push([now, Math.max(0, (now - at) / 1000 - wait)]);
    while (this.rttSamples.length > 1 && this.rttSamples[0][0] < now - 2000) this.rttSamples.shift();
    this.rtt = Math.min(...this.rttSamples.map(([, s]) => s));
  }

  heard(k) {
    if (this.clock === null || k >= this.clock.k) this.clock = { k, at: performance.now() };
  }

  // A snap: its view rebuilt as the state a board takes, or null when dropped
  // (late, against a baseline not held, corrupt: counted in this.snapshots.drops).
  snap(message) {
    let state = null;
    // A `d` that is not bin is corrupt too: the receiver counts it so.
    const snapshot = this.snapshots.receive(message.d);
    if (snapshot !== null) {
      // Its numbers against the snap of its baseline tick, kept when it was applied
      // (whichever body kind d is: the receiver read k and b from its header).
      const base = snapshot.baselineTick;
      const fields = this.snapFields;
      if (base !== null && !fields.has(base)) return null; // never: more are kept than the host holds
      fields.set(snapshot.tick, resolveRelativeSnap(message, snapshot.tick, base === null ? null : fields.get(base)));
      if (fields.size > SNAP_FIELDS_KEPT) fields.delete(fields.keys().next().value);
    }
    if (typeof message.ik === "number") {
      this.pending = this.pending.filter(([k]) => k > message.ik);
      this.acknowledged(message.ik);
    }
    if (snapshot !== null) {
      if (snapshot.baselineTick !== null) this.baselineHeard(snapshot.baselineTick);
      this.snapTick = snapshot.tick;
      this.heard(snapshot.tick);
      this.netcode(snapshot.tick, message.ts, snapshot.view);
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
  // a little late is applied at the next tick, up to 8 ticks late); after the previous
  // input's, so each input has a tick of its own.
  // Once the clock is synced: floor(predictionTick()) + 1, the same estimate
  // the prediction shows (so the own state moves on the frame of the input).
  inputTick() {
    let k = 1;
    const ahead = this.predictionTick();
    if (ahead !== null) {
      k = Math.floor(ahead) + 1;
    } else if (this.clock !== null) {
      const elapsed = (performance.now() - this.clock.at) / 1000;
      k = Math.floor(this.clock.k + (elapsed + (this.rtt ?? 0)) * this.tickRate) + 1;
    }
    return this.lastTick === null ? k : Math.max(k, this.lastTick + 1);
  }

  // Sends a real-time input (a map, what the game's action handler takes),
  // stamped with the tick it is meant for, with every input not yet
  // acknowledged (at most 8, oldest first); returns its tick. After rendered(),
  // it says the moment last drawn (docs/protocol.md §14, `input`).
  input(input) {
    const k = this.inputTick();
    this.lastTick = k;
    // What the player saw: the others as last rendered (the game's lag compensation).
    const renderedAt = this.snapshotBuffer?.renderedAt ?? null;
    const drawn = renderedAt === null ? null : drawnFields(k, renderedAt * this.tickRate);
    this.pending.push(drawn === null ? [k, input] : [k, input, ...drawn]);
    this.sentAt.set(k, performance.now());
    while (this.sentAt.size > MAX_PENDING_INPUTS) this.sentAt.delete(this.sentAt.keys().next().value);
    this.prediction?.add(k, input);
    if (this.pending.length > MAX_PENDING_INPUTS) this.pending.splice(0, this.pending.length - MAX_PENDING_INPUTS);
    this.sendInputs();
    return k;
  }

  // Inputs may be lost (each is repeated until acknowledged): a datagram where
  // the connection has them.
  sendInputs() {
    this.lastInputSent = performance.now();
    const a = this.snapTick;
    // Each `a` at its first send: the host encodes against it from when it reads that one.
    if (a !== null && (this.newestAck === null || a > this.newestAck)) {
      this.newestAck = a;
      this.ackSentAt.set(a, this.lastInputSent);
      if (this.ackSentAt.size > MAX_PENDING_INPUTS) this.ackSentAt.delete(this.ackSentAt.keys().next().value);
    }
    // Nothing asks for a snap's form or body kind: there is one form, and the
    // welcome's `vs` says the body (docs/protocol.md §14, §16.8).
    this.send({ t: "input", a: this.snapTick, x: this.pending.slice() }, true);
  }

  send(message, unreliable = false) {
    if (this.socket.readyState !== 1) return; // OPEN
    if (unreliable && typeof this.socket.sendUnreliable === "function") {
      this.socket.sendUnreliable(encode(message));
    } else {
      this.socket.send(encode(message));
    }
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
