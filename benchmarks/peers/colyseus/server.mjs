// The Colyseus side of `python -m benchmarks colyseus-play`: the play scenario's duel
// and the arena (`--game arena`) as Colyseus rooms, on Colyseus's own WebSocket
// transport (plain ws://).
//
// `node server.mjs '{"host": "127.0.0.1", "port": P, "state_interval": 1.0}'` listens on P (an
// ephemeral port without one) and speaks the harness's JSON lines (benchmarks/harness.py): it
// writes {"type": "ready", "port": P} once listening and answers every
// {"type": "mark"} line on its standard input with its counters; it exits when its
// standard input closes.
//
// The work per move matches vinom's duel room (vinom/games/duel.py): a room of two
// seats, each player's counter starting at 0; a move {seq: n} is applied only if n
// is the mover's counter plus one (anything else is rejected with an error message
// to the mover), and an applied move broadcasts the room's state (both counters by
// player id, the version, phase, time left, tick and server time: the fields of
// vinom's `state`) to both players, msgpack-encoded by Colyseus's broadcast. As
// vinom's rooms do, every room also broadcasts its state every `state_interval`
// seconds. There is no schema state: the state is sent whole on every move, as
// vinom sends it, rather than patched at Colyseus's 20 Hz patch rate (which would
// hold each move up to 50 ms).

import { Server, Room } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { schema, t, StateView } from "@colyseus/schema";
import { readFileSync } from "node:fs";
import readline from "node:readline";

const settings = JSON.parse(process.argv[2] || "{}");
const host = settings.host || "127.0.0.1";
const stateIntervalMs = 1000 * Number(settings.state_interval ?? 1.0);
const TIME_LIMIT_MS = 3600 * 1000; // vinom's duel time limit

const counters = {
  actions_applied: 0, actions_rejected: 0, rooms: 0, joined: 0, inputs: 0, ticks: 0,
};

function emit(type, fields = {}) {
  process.stdout.write(JSON.stringify({ type, ...fields }) + "\n");
}

class DuelRoom extends Room {
  maxClients = 2;
  // The state is broadcast by the room on every move (no schema patches).
  patchRate = null;
  autoDispose = true;

  onCreate() {
    this.players = [null, null];
    this.seqs = [0, 0];
    this.version = 0;
    this.tick = 0;
    this.opened = Date.now();
    counters.rooms += 1;
    this.onMessage("move", (client, message) => this.move(client, message));
    if (stateIntervalMs > 0) {
      this.clock.setInterval(() => {
        this.tick += 1;
        if (this.players[1] !== null) this.broadcastState();
      }, stateIntervalMs);
    }
  }

  onJoin(client, options) {
    const seat = this.players[0] === null ? 0 : 1;
    this.players[seat] = String(options?.player ?? client.sessionId);
    client.userData = { seat };
    counters.joined += 1;
  }

  onLeave(client) {
    counters.joined -= 1;
  }

  move(client, message) {
    const seat = client.userData?.seat;
    const seq = message?.seq;
    if (seat === undefined || !Number.isSafeInteger(seq) || seq !== this.seqs[seat] + 1
        || this.players[1] === null) {
      counters.actions_rejected += 1;
      client.send("error", { code: "stale", seq: this.seqs[seat ?? 0] });
      return;
    }
    this.seqs[seat] = seq;
    this.version += 1;
    counters.actions_applied += 1;
    this.broadcastState();
  }

  broadcastState() {
    const now = Date.now() - this.opened;
    this.broadcast("state", {
      v: this.version,
      p: "playing",
      r: (TIME_LIMIT_MS - now) / 1000,
      k: this.tick,
      ts: now,
      s: { seq: { [this.players[0]]: this.seqs[0], [this.players[1]]: this.seqs[1] } },
      i: null,
    });
  }
}

// The arena (vinom/games/arena.py) as a Colyseus game would write it: a schema state
// whose players are seen through each client's StateView (those within RADIUS of the
// client's own, itself included), ticked 20 times a second by the room's simulation
// interval and patched at the default patch rate (20 a second). A position is a
// 16-bit quantised field over the arena's side (wrapping), a velocity one over
// [-MAX_SPEED, MAX_SPEED] (vinom's arena sends them to 0.01 and 0.1); `ack`, the
// newest input a tick applied, is the owner's alone (a view tag), as `ack` is in
// vinom's view. An input is a message `input` {move: [vx, vy], n}, applied at the
// next tick.
const ARENA = { size: 600, players: 8, radius: 300, maxSpeed: 120, tickRate: 20 };
const OWNER = 1;
const arenaClasses = new Map();

// The schema of an arena of side `size` (the quantisation range follows the side).
function arenaSchema(size) {
  if (!arenaClasses.has(size)) {
    const speed = { min: -ARENA.maxSpeed, max: ARENA.maxSpeed };
    const key = String(Math.round(size));
    const Player = schema({
      x: t.quantized({ min: 0, max: size, mode: "wrap" }),
      y: t.quantized({ min: 0, max: size, mode: "wrap" }),
      vx: t.quantized(speed),
      vy: t.quantized(speed),
      ack: t.uint32().view(OWNER),
    }, `ArenaPlayer${key}`);
    const State = schema({ ticks: t.uint32(), players: t.map(Player).view() }, `Arena${key}`);
    arenaClasses.set(size, { Player, State });
  }
  return arenaClasses.get(size);
}

class ArenaRoom extends Room {
  autoDispose = true;

  onCreate(options) {
    const players = Number(options?.players ?? ARENA.players);
    this.maxClients = players;
    this.size = ARENA.size * Math.sqrt(players / ARENA.players);
    this.classes = arenaSchema(this.size);
    this.state = new this.classes.State();
    this.state.ticks = 0;
    this.bodies = new Map(); // sessionId -> { x, y, vx, vy, received, entity, client, seen }
    counters.rooms += 1;
    this.onMessage("input", (client, message) => this.input(client, message));
    this.setSimulationInterval(() => this.step(), 1000 / ARENA.tickRate);
  }

  onJoin(client) {
    const body = {
      x: Math.random() * this.size, y: Math.random() * this.size, vx: 0, vy: 0,
      received: 0, client, seen: new Set(),
      entity: new this.classes.Player(),
    };
    Object.assign(body.entity, { x: body.x, y: body.y, vx: 0, vy: 0, ack: 0 });
    this.state.players.set(client.sessionId, body.entity);
    client.view = new StateView();
    client.view.add(body.entity);
    client.view.add(body.entity, OWNER);
    body.seen.add(body);
    this.bodies.set(client.sessionId, body);
    counters.joined += 1;
  }

  onLeave(client) {
    const gone = this.bodies.get(client.sessionId);
    this.bodies.delete(client.sessionId);
    for (const body of this.bodies.values()) {
      if (body.seen.delete(gone)) body.client.view.remove(gone.entity);
    }
    this.state.players.delete(client.sessionId);
    counters.joined -= 1;
  }

  input(client, message) {
    const body = this.bodies.get(client.sessionId);
    const move = message?.move;
    const n = message?.n;
    if (body === undefined || !Array.isArray(move) || move.length !== 2
        || !move.every(Number.isFinite) || !Number.isSafeInteger(n)) {
      counters.actions_rejected += 1;
      client.send("error", { code: "bad_action" });
      return;
    }
    let [vx, vy] = move;
    const speed = Math.hypot(vx, vy);
    if (speed > ARENA.maxSpeed) {
      vx = (vx * ARENA.maxSpeed) / speed;
      vy = (vy * ARENA.maxSpeed) / speed;
    }
    body.vx = vx;
    body.vy = vy;
    body.received = Math.max(body.received, n);
    counters.inputs += 1;
  }

  // One tick: every player moves by its velocity (a fixed step, as vinom's), then each
  // client's view gains the players that came within RADIUS and loses those gone out.
  step() {
    const dt = 1 / ARENA.tickRate;
    const size = this.size;
    const bodies = [...this.bodies.values()];
    for (const b of bodies) {
      b.x = (((b.x + b.vx * dt) % size) + size) % size;
      b.y = (((b.y + b.vy * dt) % size) + size) % size;
      const e = b.entity;
      e.x = b.x;
      e.y = b.y;
      e.vx = b.vx;
      e.vy = b.vy;
      e.ack = b.received;
    }
    const r2 = ARENA.radius * ARENA.radius;
    for (const me of bodies) {
      for (const other of bodies) {
        if (other === me) continue;
        let dx = Math.abs(other.x - me.x);
        let dy = Math.abs(other.y - me.y);
        dx = Math.min(dx, size - dx);
        dy = Math.min(dy, size - dy);
        const near = dx * dx + dy * dy <= r2;
        if (near && !me.seen.has(other)) {
          me.seen.add(other);
          me.client.view.add(other.entity);
        } else if (!near && me.seen.has(other)) {
          me.seen.delete(other);
          me.client.view.remove(other.entity);
        }
      }
    }
    this.state.ticks += 1;
    counters.ticks += 1;
  }
}

const server = new Server({ transport: new WebSocketTransport(), greet: false });
server.define("duel", DuelRoom);
server.define("arena", ArenaRoom);
await server.listen(settings.port ?? 0, host);
const address = server.transport.server.address();
emit("ready", { port: address.port, colyseus: colyseusVersion() });

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch (e) {
    emit("error", { message: `bad command: ${line}` });
    return;
  }
  if (command.type === "mark") {
    emit("mark", { counters: { ...counters }, rss_bytes: process.memoryUsage().rss });
  }
});
lines.on("close", () => process.exit(0));

function colyseusVersion() {
  try {
    const manifest = new URL("./node_modules/@colyseus/core/package.json", import.meta.url);
    return JSON.parse(readFileSync(manifest, "utf8")).version;
  } catch {
    return "unknown";
  }
}
