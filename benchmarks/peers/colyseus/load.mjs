// The load side of `python -m benchmarks colyseus-play`: the duel (or arena) players
// of a slice of rooms, each a Colyseus client (@colyseus/sdk, as a game's Node or browser client
// is), playing exactly as vinom's play loads do (benchmarks/websocket_load.py).
//
// `node load.mjs '{"host": ..., "port": ..., "first_room": 0, "last_room": 100,
// "warmup": 2, "duration": 10}'`: seat 0 of room r creates a `duel` room, seat 1
// joins it by id; once every player is seated, each sends move {seq: 1} and then
// {seq: n} as soon as a state shows its n - 1 (one move in flight), each move timed
// from sending it to the first state showing it. It speaks the harness's JSON lines
// (benchmarks/loadgen.py's timeline): `progress`, `measuring` at the start of the
// window, `window_end` at its end, then `result` with the window's tallies, its own
// CPU seconds and the latencies as {microseconds: count}; it exits when its
// standard input closes.
//
// With "game": "arena" and "players": P, seat 0 of room r creates an `arena` room of P
// and the others join it by id; each player then sends an input {move: [vx, vy], n}
// `input_rate` times a second (a bot's heading turning a little each time, as
// vinom/games/arena.py's bots turn), and counts, per player, the messages and bytes
// its WebSocket received in the window (the payload, and with each frame's header:
// 2 bytes under 126, 4 under 65,536, else 10), the room's ticks as its state shows
// them, and each input's time to the first patch whose own `ack` reached it.

import { Client } from "@colyseus/sdk";
import readline from "node:readline";
import { performance } from "node:perf_hooks";

const settings = JSON.parse(process.argv[2]);
const endpoint = `ws://${settings.host}:${settings.port}`;
const firstRoom = Number(settings.first_room);
const lastRoom = Number(settings.last_room);
const warmupMs = 1000 * Number(settings.warmup);
const game = settings.game ?? "duel";
const seats = Number(settings.players ?? 2);
const inputRate = Number(settings.input_rate ?? 20);
const durationMs = 1000 * Number(settings.duration);
// Rooms joined at once while seating the players.
const JOIN_BATCH = 50;

function emit(type, fields = {}) {
  process.stdout.write(JSON.stringify({ type, ...fields }) + "\n");
}

function cpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

// The ids vinom's bench gives the players and matches (benchmarks/server_worker.py).
const playerId = (room, seat) => `p-${String(room).padStart(6, "0")}-${seat}`;

const tallies = { moves: 0, messages: 0, errors: 0, closed: 0, errorCodes: {} };
let latencies = new Map();
let measuring = false;
const players = [];

function countError(code) {
  tallies.errors += 1;
  tallies.errorCodes[code] = (tallies.errorCodes[code] || 0) + 1;
}

// Microseconds to 3 significant digits, as the harness's histograms keep them.
function bucket(us) {
  if (us < 1000) return Math.max(1, Math.round(us));
  const scale = 10 ** (Math.floor(Math.log10(us)) - 2);
  return Math.round(us / scale) * scale;
}

class Player {
  constructor(me, room) {
    this.me = me;
    this.room = room;
    this.sent = 0;
    this.sentAt = 0;
    this.sentBefore = 0;
    room.onMessage("state", (state) => this.onState(state));
    room.onMessage("error", (error) => countError(String(error?.code)));
    room.onLeave(() => {
      tallies.closed += 1;
      countError("closed");
    });
  }

  onState(state) {
    tallies.messages += 1;
    const mine = state.s.seq[this.me];
    if (mine >= this.sent) {
      const now = performance.now();
      if (this.sent && measuring) {
        tallies.moves += 1;
        const us = bucket((now - this.sentAt) * 1000);
        latencies.set(us, (latencies.get(us) || 0) + 1);
      }
      this.move(mine + 1, now);
    }
  }

  move(seq, now) {
    this.sent = seq;
    this.sentAt = now;
    this.room.send("move", { seq });
  }
}

// The arena's bot: mostly straight on, sometimes a turn (vinom/games/arena.py, velocity).
class ArenaPlayer {
  constructor(room) {
    this.room = room;
    this.heading = Math.random() * 2 * Math.PI;
    this.n = 0;
    this.sentAt = new Map(); // input n -> performance.now() of its send
    this.messages = 0;
    this.bytes = 0;
    this.payload = 0;
    this.ticksAt = null; // [state.ticks, performance.now()] at the window's start
    this.tickRate = 0;
    room.onMessage("error", (error) => countError(String(error?.code)));
    room.onLeave(() => {
      tallies.closed += 1;
      if (!this.leaving) countError("closed");
    });
    room.connection.transport.ws.addEventListener("message", (event) => {
      if (!measuring) return;
      const length = event.data.byteLength ?? event.data.length;
      this.messages += 1;
      this.payload += length;
      this.bytes += length + (length < 126 ? 2 : length < 65536 ? 4 : 10);
    });
    room.onStateChange(() => this.onPatch());
  }

  onPatch() {
    const own = this.room.state.players?.get(this.room.sessionId);
    if (own === undefined) return;
    const now = performance.now();
    for (const [n, at] of this.sentAt) {
      if (n > own.ack) break;
      this.sentAt.delete(n);
      if (measuring) {
        tallies.moves += 1;
        const us = bucket((now - at) * 1000);
        latencies.set(us, (latencies.get(us) || 0) + 1);
      }
    }
  }

  input(now) {
    this.heading += (Math.random() - 0.5) * 1.2;
    const speed = 120 * 0.8;
    const move = [Math.round(10 * speed * Math.cos(this.heading)) / 10,
                  Math.round(10 * speed * Math.sin(this.heading)) / 10];
    this.n += 1;
    this.sentAt.set(this.n, now);
    this.room.send("input", { move, n: this.n });
  }

  windowStarts(now) {
    this.messages = this.bytes = this.payload = 0;
    this.ticksAt = [this.room.state.ticks ?? 0, now];
  }

  windowEnds(now) {
    const [ticks, at] = this.ticksAt;
    this.tickRate = ((this.room.state.ticks ?? 0) - ticks) / ((now - at) / 1000);
  }
}

async function seatArena(client, room) {
  const first = await client.create("arena", { players: seats });
  const joined = [first];
  const rest = [];
  for (let s = 1; s < seats; s++) rest.push(client.joinById(first.roomId, {}));
  joined.push(...(await Promise.all(rest)));
  return joined.map((r) => new ArenaPlayer(r));
}

async function seat(client, room) {
  if (game === "arena") return seatArena(client, room);
  // Each player listens as soon as it is in the room: the room's periodic state may
  // come before the second player is seated.
  const first = await client.create("duel", { player: playerId(room, 0) });
  const one = new Player(playerId(room, 0), first);
  const second = await client.joinById(first.roomId, { player: playerId(room, 1) });
  return [one, new Player(playerId(room, 1), second)];
}

async function seatAll() {
  const client = new Client(endpoint);
  const step = game === "arena" ? Math.max(1, Math.floor(JOIN_BATCH / seats)) : JOIN_BATCH;
  for (let room = firstRoom; room < lastRoom; room += step) {
    const batch = [];
    for (let r = room; r < Math.min(room + step, lastRoom); r++) batch.push(seat(client, r));
    for (const pair of await Promise.all(batch)) players.push(...pair);
    emit("progress", { phase: "connect", count: players.length, elapsed: 0.0 });
  }
}

// The warm-up, then the measured window: `begin(now)` as it opens (the tallies are
// zeroed), `end(now)` as it closes, then the `result`: `fields()` with the window's
// errors, length, CPU and latencies; `count()` is what the progress lines show.
function measure({ begin, end, fields, count }) {
  const started = performance.now();
  let windowStart = 0;
  let cpuAtStart = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    if (!measuring && windowStart === 0 && now - started >= warmupMs) {
      tallies.moves = tallies.messages = tallies.errors = 0;
      tallies.errorCodes = {};
      latencies = new Map();
      begin(now);
      measuring = true;
      windowStart = now;
      cpuAtStart = cpuSeconds();
      emit("measuring");
    } else if (measuring && now - windowStart >= durationMs) {
      measuring = false;
      const cpu = cpuSeconds() - cpuAtStart;
      const windowS = (now - windowStart) / 1000;
      clearInterval(timer);
      end(now);
      emit("window_end", { elapsed: windowS });
      emit("result", {
        ...fields(),
        errors: tallies.errors,
        error_codes: tallies.errorCodes,
        window_s: windowS,
        load_cpu_s: cpu,
        latencies_us: Object.fromEntries(latencies),
      });
      for (const player of players) {
        player.leaving = true;
        player.room.leave();
      }
      return;
    }
    emit("progress", { elapsed: (now - started) / 1000, count: count() });
  }, 100);
}

function run() {
  const kickoff = performance.now();
  for (const player of players) player.move(1, kickoff);
  measure({
    begin() {
      for (const player of players) player.sentBefore = player.sent;
    },
    end() {},
    fields: () => ({
      moves: tallies.moves,
      moves_sent: players.reduce((n, p) => n + p.sent - p.sentBefore, 0),
      messages: tallies.messages,
    }),
    count: () => tallies.moves,
  });
}

function runArena() {
  let sent = 0;
  let sentBefore = 0;
  const period = 1000 / inputRate;
  for (const player of players) {
    setTimeout(() => {
      player.timer = setInterval(() => {
        player.input(performance.now());
        sent += 1;
      }, period);
    }, Math.random() * period);
  }
  measure({
    begin(now) {
      for (const player of players) player.windowStarts(now);
      sentBefore = sent;
    },
    end(now) {
      for (const player of players) {
        clearInterval(player.timer);
        player.windowEnds(now);
      }
    },
    fields: () => ({
      inputs_acked: tallies.moves,
      inputs_sent: sent - sentBefore,
      states: players.map((p) => p.messages),
      bytes: players.map((p) => p.bytes),
      payload_bytes: players.map((p) => p.payload),
      tick_rates: players.map((p) => p.tickRate),
    }),
    count: () => sent,
  });
}

readline.createInterface({ input: process.stdin }).on("close", () => process.exit(0));
try {
  await seatAll();
} catch (e) {
  emit("error", { message: `seating the players failed: ${e?.message ?? e}` });
  process.exit(1);
}
if (game === "arena") runArena();
else run();
