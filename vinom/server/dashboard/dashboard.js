// The operations dashboard: polls ../status every second and redraws the page.
// Everything a player chose (names) goes in with textContent, never as HTML.

const POLL_MS = 1000;
const STATUS_URL = new URL("../status", document.baseURI);

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function cell(value, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (value instanceof Node) td.append(value);
  else td.textContent = value;
  return td;
}

function tag(label, kind) {
  const span = document.createElement("span");
  span.className = `tag ${kind}`;
  span.textContent = label;
  return span;
}

// Replace a table's rows; `empty` is shown in one row when there are none.
function fill(sectionId, rows, empty) {
  const section = document.getElementById(sectionId);
  const body = section.querySelector("tbody");
  const columns = section.querySelectorAll("thead th").length;
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(empty, "empty");
    td.colSpan = columns;
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...rows);
}

function row(cells, data = {}) {
  const tr = document.createElement("tr");
  for (const [key, value] of Object.entries(data)) tr.dataset[key] = value;
  tr.append(...cells);
  return tr;
}

function duration(seconds) {
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function milliseconds(seconds) {
  return seconds === null ? "–" : `${(seconds * 1000).toFixed(1)} ms`;
}

function size(bytes) {
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)} KB`
    : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function names(players) {
  return players.map((p) => (p.bot ? `${p.name} (bot)` : p.name)).join(", ");
}

function render(status) {
  document.getElementById("draining").hidden = !status.draining;
  const trouble = document.getElementById("trouble");
  trouble.hidden = status.trouble === null;
  trouble.textContent = status.trouble ?? "";

  text("lobby-connections", status.lobby.connections);
  text("running-count", status.matches.running);
  text("waiting-for-port", status.matches.waiting_for_port);
  text("free-ports", status.free_ports);
  text("sessions", status.sessions);
  text("spectators", status.spectators);
  text("handshakes", status.handshakes_completed);
  text("matches-formed", status.matches.formed);
  // Browsers' game sessions (/game); null without a web server.
  const refusals = Object.entries(status.lobby.game_sockets_refused)
    .sort(([a], [b]) => a.localeCompare(b));
  const refused = refusals.reduce((sum, [, count]) => sum + count, 0);
  text("game-sockets-opened", status.lobby.game_sockets_opened ?? "–");
  text("game-sockets-refused", status.lobby.game_sockets_opened === null
    ? "no web server"
    : `${refused} refused` + (refused
      ? ` (${refusals.map(([reason, count]) => `${reason} ${count}`).join(", ")})`
      : ""));
  // Browsers' game sessions over WebTransport: the card only with --webtransport.
  const webtransport = status.lobby.webtransport_sessions_opened ?? null;
  document.getElementById("webtransport-card").hidden = webtransport === null;
  if (webtransport !== null) {
    const wtRefusals = Object.entries(status.lobby.webtransport_sessions_refused ?? {})
      .sort(([a], [b]) => a.localeCompare(b));
    const wtRefused = wtRefusals.reduce((sum, [, count]) => sum + count, 0);
    text("webtransport-opened", webtransport);
    text("webtransport-refused", `${wtRefused} refused` + (wtRefused
      ? ` (${wtRefusals.map(([reason, count]) => `${reason} ${count}`).join(", ")})`
      : ""));
  }
  // The record files on this server's disk (--record-dir); null when it records none.
  text("record-files", status.records === null ? "–" : status.records.files);
  text("record-bytes", status.records === null
    ? "not recording here"
    : `${size(status.records.bytes)} on disk`);
  text("rtt-median", milliseconds(status.rtt.median));
  text("rtt-detail", status.rtt.sessions === 0
    ? "no sessions"
    : `median; p90 ${milliseconds(status.rtt.p90)}, max ${milliseconds(status.rtt.max)}`);
  text("datagrams-in", status.datagrams.in);
  text("datagrams-out", status.datagrams.out);
  text("rooms-started", status.rooms.started);

  fill("queues", status.queues.map((q) => row(
    [cell(q.game), cell(q.waiting, "num waiting"), cell(q.match_size, "num")],
    { game: q.game },
  )), "no games");

  fill("rooms", status.rooms.open.map((r) => row(
    [cell(r.game), cell(r.public, "num"), cell(r.private, "num"), cell(r.seated, "num")],
    { game: r.game },
  )), "no open rooms");

  fill("running", status.running.map((m) => row(
    [cell(m.match_id, "id"), cell(m.game), cell(names(m.players)), cell(m.host, "id"),
     cell(duration(m.running_for), "num")],
    { matchId: m.match_id },
  )), "no match is running");

  fill("workers", status.workers.map((w) => row(
    [cell(`#${w.index}${w.pid === null ? "" : ` (pid ${w.pid})`}`),
     cell(w.live ? tag("live", "live") : tag("down", "down")),
     cell(w.running_matches, "num"), cell(w.sessions, "num"),
     cell(w.cpu_seconds.toFixed(1), "num"), cell(w.restarts, "num")],
    { worker: w.index },
  )), "game hosts run in the lobby process");

  const drops = [
    ...Object.entries(status.drops).map(([reason, count]) => ["datagram", reason, count]),
    ...Object.entries(status.message_drops).map(([reason, count]) => ["message", reason, count]),
  ];
  fill("drops", drops.map(([what, reason, count]) => row(
    [cell(what), cell(reason), cell(count, "num")],
  )), "nothing dropped");

  fill("recent", status.recent.map((m) => row(
    [cell(`${duration(Math.max(0, status.now - m.ended_at))} ago`),
     cell(m.match_id, "id"), cell(m.game),
     cell(tag(m.reason ? `${m.phase}: ${m.reason}` : m.phase, m.phase)),
     cell(m.winners.map((w) => w.name).join(", ") || "–"),
     cell(names(m.players))],
    { matchId: m.match_id },
  )), "no match has ended yet");
}

// With --ops-token-file the server asks for a bearer token: asked for once,
// kept for this tab only (sessionStorage), sent with every poll.
const TOKEN_KEY = "vinom-ops-token";

function askForToken(message) {
  const connection = document.getElementById("connection");
  connection.dataset.state = "stale";
  connection.textContent = "the server asks for its operations token";
  const form = document.getElementById("token-form");
  document.getElementById("token-message").textContent = message;
  form.hidden = false;
  document.getElementById("token").focus();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  event.target.hidden = true;
  poll();
});

async function poll() {
  const connection = document.getElementById("connection");
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  try {
    const response = await fetch(STATUS_URL, { cache: "no-store", headers });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(token ? "That token was refused; try again." : "Operations token:");
      return; // polling resumes when a token is given
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    connection.dataset.state = "live";
    connection.textContent = `live, updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    connection.dataset.state = "stale";
    connection.textContent = `no answer from the server (${error.message}); retrying`;
  }
  setTimeout(poll, POLL_MS);
}

// Ask before the first poll when the server needs a token this tab does not hold.
async function start() {
  try {
    const response = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
    const config = await response.json();
    if (config.token_required && !sessionStorage.getItem(TOKEN_KEY)) {
      askForToken("Operations token:");
      return;
    }
  } catch {
    // No configuration to read: poll, and ask if the server answers 401.
  }
  poll();
}

start();
