// The load side of `python -m benchmarks colyseus-play`: the duel players of a slice
// of rooms, each a Colyseus client (@colyseus/sdk, as a game's Node or browser client
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

import { Client } from "@colyseus/sdk";
import readline from "node:readline";
import { performance } from "node:perf_hooks";

const settings = JSON.parse(process.argv[2]);
const endpoint = `ws://${settings.host}:${settings.port}`;
const firstRoom = Number(settings.first_room);
const lastRoom = Number(settings.last_room);
const warmupMs = 1000 * Number(settings.warmup);
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

async function seat(client, room) {
  // Each player listens as soon as it is in the room: the room's periodic state may
  // come before the second player is seated.
  const first = await client.create("duel", { player: playerId(room, 0) });
  const one = new Player(playerId(room, 0), first);
  const second = await client.joinById(first.roomId, { player: playerId(room, 1) });
  return [one, new Player(playerId(room, 1), second)];
}

async function seatAll() {
  const client = new Client(endpoint);
  for (let room = firstRoom; room < lastRoom; room += JOIN_BATCH) {
    const batch = [];
    for (let r = room; r < Math.min(room + JOIN_BATCH, lastRoom); r++) batch.push(seat(client, r));
    for (const pair of await Promise.all(batch)) players.push(...pair);
    emit("progress", { phase: "connect", count: players.length, elapsed: 0.0 });
  }
}

function run() {
  const started = performance.now();
  let windowStart = 0;
  let cpuAtStart = 0;
  const kickoff = performance.now();
  for (const player of players) player.move(1, kickoff);
  const timer = setInterval(() => {
    const now = performance.now();
    if (!measuring && windowStart === 0 && now - started >= warmupMs) {
      for (const player of players) player.sentBefore = player.sent;
      tallies.moves = tallies.messages = tallies.errors = 0;
      tallies.errorCodes = {};
      latencies = new Map();
      measuring = true;
      windowStart = now;
      cpuAtStart = cpuSeconds();
      emit("measuring");
    } else if (measuring && now - windowStart >= durationMs) {
      measuring = false;
      const cpu = cpuSeconds() - cpuAtStart;
      const windowS = (now - windowStart) / 1000;
      clearInterval(timer);
      emit("window_end", { elapsed: windowS });
      emit("result", {
        moves: tallies.moves,
        moves_sent: players.reduce((n, p) => n + p.sent - p.sentBefore, 0),
        messages: tallies.messages,
        errors: tallies.errors,
        error_codes: tallies.errorCodes,
        window_s: windowS,
        load_cpu_s: cpu,
        latencies_us: Object.fromEntries(latencies),
      });
      for (const player of players) player.room.leave();
      return;
    }
    emit("progress", { elapsed: (now - started) / 1000, count: tallies.moves });
  }, 100);
}

readline.createInterface({ input: process.stdin }).on("close", () => process.exit(0));
try {
  await seatAll();
} catch (e) {
  emit("error", { message: `seating the players failed: ${e?.message ?? e}` });
  process.exit(1);
}
run();
