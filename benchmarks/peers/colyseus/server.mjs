// The Colyseus side of `python -m benchmarks colyseus-play`: the play scenario's duel
// as a Colyseus room, on Colyseus's own WebSocket transport (plain ws://).
//
// `node server.mjs '{"host": "127.0.0.1", "state_interval": 1.0}'` listens on an
// ephemeral port and speaks the harness's JSON lines (benchmarks/harness.py): it
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
import { readFileSync } from "node:fs";
import readline from "node:readline";

const settings = JSON.parse(process.argv[2] || "{}");
const host = settings.host || "127.0.0.1";
const stateIntervalMs = 1000 * Number(settings.state_interval ?? 1.0);
const TIME_LIMIT_MS = 3600 * 1000; // vinom's duel time limit

const counters = { actions_applied: 0, actions_rejected: 0, rooms: 0, joined: 0 };

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

const server = new Server({ transport: new WebSocketTransport(), greet: false });
server.define("duel", DuelRoom);
await server.listen(0, host);
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
