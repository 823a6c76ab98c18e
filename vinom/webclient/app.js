// The shell of the web client: name, lobby (queue, rooms, join codes), the
// room, the match (players, phase, time, turn, the board, presence, the
// result), and reconnection after a page reload (docs/web.md, "The web client").
//
// State that must outlive a reload lives in sessionStorage (one tab's worth):
// the player's id and secret and the match they are in. On load, a stored
// match is resumed with the lobby's `reconnect` and a fresh /game session.
//
// Signing in (docs/web.md, "Signing in"): /settings.js names the server's
// authenticator. With `device` the page signs in as the device identity the
// browser keeps in localStorage (lobby.js's deviceAuth): made at the first
// visit, when the player picks a name, and used at once on every later one.
// With a token (`jwt`, `signed`) it signs in with the token a studio's page
// hands it: in the URL's fragment, or by postMessage from the page that opened it.
// A signed-in player has a "Ranked" queue, the rating change after a ranked
// match (the lobby's `rating` push, or the history if it came first), a
// leaderboard and their match history, each match with its replay.

import {
  DEVICE_KEY, LobbyConnection, LobbyError, authorizationHeader, deviceAuth, errorFrameText, jwtAuth,
} from "./lobby.js";
import { GameSocket, boardNetcode, closeText, gameUrl } from "./game.js";
import { fallbackBoard } from "./fallback.js";
import { loadBoard as loadBoardModule } from "./loader.js";
import { decode } from "./codec.js";
import { ReplayNetcode, fetchReplay } from "./replays.js";

const $ = (id) => document.getElementById(id);
const STORE_MATCH = "vinom.match";
const STORE_NAME = "vinom.name";
// The token a studio's page handed this tab (docs/web.md, "Signing in with a token").
const STORE_TOKEN = "vinom.token";
// The page that opened this one has this long (ms) to answer an ask for a token; a
// token it handed that recently is used without asking again.
const TOKEN_WAIT_MS = 10000;

const PHASES = {
  waiting: "Waiting for players",
  countdown: "Starting",
  playing: "Playing",
  finished: "Finished",
  aborted: "Aborted",
};

// Why a finished match ended, as one sentence true from this player's seat:
// `mine` is whether I am among the winners, `names` the winners' names, `others`
// how many other players the match had. A game's own reason (a plugin game's)
// that is not here is shown in words ("bank_broken": "The game ended: bank
// broken."); `won` says no more than the headline, so it adds nothing.
const END_REASONS = {
  won: () => "",
  opponent_left: ({ mine, others }) => (mine
    ? (others === 1 ? "Your opponent left." : "Everyone else left.")
    : "A player left."),
  opponents_left: ({ mine, others }) => (mine
    ? (others === 1 ? "Your opponent left." : "Everyone else left.")
    : "The other players left."),
  idle: ({ mine, others }) => (mine
    ? (others === 1 ? "Your opponent stopped playing and was removed."
      : "The last other player stopped playing and was removed.")
    : "A player stopped playing and was removed."),
  completed: () => "The match is complete.",
  target: ({ mine, names }) => (mine ? "You reached the target score." : `${names} reached the target score.`),
  last_alive: ({ mine, names }) => (mine
    ? "You are the last player with lives left."
    : `${names} ${names.includes(" and ") ? "are the last players" : "is the last player"} with lives left.`),
  all_collected: () => "Every reward was collected.",
  time_up: () => "Time ran out.",
  abandoned: () => "Everyone left.",
  error: () => "The game failed, so the match was stopped.",
};

// A reason code in words: "bank_broken" -> "bank broken".
function reasonWords(reason) {
  return String(reason).replace(/[_-]+/g, " ").trim();
}

function endReasonText(game, result, winners) {
  // Removed for idling: whatever ended the match later, that is what happened to me.
  if (game.removedIdle) return "You were removed from the match for not playing in time.";
  const reason = result.reason;
  if (reason === undefined || reason === null || reason === "") return "";
  const mine = winners.includes(game.me);
  const names = winners.map((id) => playerName(game, id)).join(" and ");
  const others = game.players.filter((p) => p.id !== game.me).length;
  const known = Object.hasOwn(END_REASONS, reason) ? END_REASONS[reason] : null;
  if (known !== null) return known({ mine, names, others });
  const words = reasonWords(reason);
  return words === "" ? "" : `The game ended: ${words}.`;
}

const ABORT_REASONS = {
  players_missing: "Not every player connected in time.",
  player_left: "A player left.",
  abandoned: "Everyone left the match.",
  shutdown: "The server is shutting down.",
  closed: "The match was closed.",
};

const PRESENCE = {
  disconnected: "lost the connection",
  left: "left the match",
  idle: "stopped playing",
};

const app = {
  lobby: null,
  lobbyError: null, // the last error frame the lobby sent, for its close
  welcome: null, // the lobby's welcome: player_id, name, secret, games
  games: {},
  roomFilter: null,
  room: null,
  queued: null,
  match: null, // {found, player_id, secret, name}
  game: null, // the running game view: see startGame
  replayAsked: null, // the replay being asked for (openReplay)
  settings: { replays: false, auth: "guest" }, // /settings.js: what this server offers
  queueKind: "normal", // the queue of the last `queue`: "ranked" or "normal"
  board: { game: null, around: false }, // what the leaderboard panel shows
  tokenHandedAt: -Infinity, // when the opener last handed a token (performance.now())
};

// ---------- small helpers ----------

function show(screen) {
  for (const section of document.querySelectorAll("main > .screen")) {
    section.hidden = section.id !== `screen-${screen}`;
  }
  document.body.dataset.screen = screen;
}

function notify(text, kind = "error") {
  const box = $("notice");
  $("notice-text").textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
}

// The badge at the top right: online, connecting, or offline and why (the
// connection that closed and the reason it gave, or "the match is over").
function setConnection(state, text, why = "") {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.textContent = why ? `${text}: ${why}` : text;
  badge.title = why;
}

// A game's name as people read it: its display name from the lobby's welcome
// (`titles`) or the match's welcome (`title`), else (a server that sends
// neither) the registry name in words, each word capitalised ("tic_tac_toe" ->
// "Tic Tac Toe").
const gameTitles = {};

function gameTitle(name) {
  if (typeof gameTitles[name] === "string") return gameTitles[name];
  return String(name).split(/[_\s-]+/).filter(Boolean)
    .map((word) => word[0].toUpperCase() + word.slice(1)).join(" ");
}

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function lobbyUrl() {
  const scheme = location.protocol === "http:" ? "ws:" : "wss:";
  return `${scheme}//${location.host}/lobby`;
}

function storedMatch() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_MATCH) ?? "null");
  } catch {
    return null;
  }
}

function storeMatch(match) {
  if (match === null) sessionStorage.removeItem(STORE_MATCH);
  else sessionStorage.setItem(STORE_MATCH, JSON.stringify(match));
}

function errorText(error) {
  return error instanceof LobbyError ? error.message : String(error.message ?? error);
}

// ---------- the lobby connection ----------

async function connectLobby() {
  if (app.lobby !== null) app.lobby.close();
  setConnection("connecting", "connecting…");
  const lobby = new LobbyConnection(lobbyUrl(), {
    onPush: (frame) => lobbyPush(lobby, frame),
    onClose: (event, byUs) => lobbyClosed(lobby, event, byUs),
    auth: signInAuth,
  });
  app.lobby = lobby;
  app.lobbyError = null;
  try {
    await lobby.open();
  } catch (error) {
    if (lobby === app.lobby) {
      app.lobby = null;
      setConnection("offline", "offline", "could not reach the lobby");
    }
    throw error;
  }
  setConnection("online", "online");
  return lobby;
}

// Why the lobby closed, in words: the error it sent just before (timeout,
// server_draining, session_replaced, ...), or the WebSocket close code.
function lobbyCloseText(event) {
  if (app.lobbyError !== null) return errorFrameText(app.lobbyError);
  if (event.code === 1006) return "the connection to the lobby was lost";
  return `the lobby closed the connection (code ${event.code})`;
}

function lobbyClosed(lobby, event, byUs) {
  if (lobby !== app.lobby) return;
  app.lobby = null;
  // The lobby closes after match_found: expected, the game goes on at /game.
  if (byUs || app.match !== null) return;
  const why = lobbyCloseText(event);
  const banned = app.lobbyError?.code === "banned";
  if (app.game === null) setConnection("offline", "offline", banned ? "banned" : why);
  app.queued = null;
  app.room = null;
  // A ban is said as it is: a reload would only be refused.
  notify(banned ? why : `The lobby connection closed: ${why.replace(/\.$/, "")}. Reload the page to come back.`);
  renderQueue();
}

function lobbyPush(lobby, frame) {
  if (lobby !== app.lobby) return;
  switch (frame.type) {
    case "match_found":
      matchFound(frame);
      break;
    case "room_update":
      app.room = frame.room;
      renderRoom();
      break;
    case "queued":
      app.queued = frame;
      renderQueue();
      break;
    case "cancelled":
      app.queued = null;
      renderQueue();
      break;
    case "rating":
      showRating(frame);
      run(refreshPanels);
      break;
    case "error":
      app.lobbyError = frame;
      if (frame.code === "match_failed" || frame.code === "server_draining") {
        app.queued = null;
        app.room = null;
        renderQueue();
        if (app.game === null) show("lobby");
      }
      notify(errorFrameText(frame));
      break;
    default:
      break;
  }
}

// ---------- signing in ----------

// The `auth` of this page's hello and reconnect: the kept device identity on a
// `--auth device` server (made now if this browser has none); on a server of
// tokens a token asked for anew from the page that opened this one (tokens
// expire), else the one handed to this tab; none for a guest.
async function signInAuth() {
  const kind = app.settings.auth;
  if (kind === "device") return deviceAuth();
  if (!tokenSignIn()) return null;
  const fresh = performance.now() - app.tokenHandedAt < TOKEN_WAIT_MS;
  const token = (fresh ? null : await askOpener()) ?? keptToken();
  return token === null ? null : { kind, token };
}

// Whether this server signs players in with a token (`--auth jwt`, `signed`, a plugin's).
function tokenSignIn() {
  return app.settings.auth !== "guest" && app.settings.auth !== "device";
}

function keptToken() {
  return sessionStorage.getItem(STORE_TOKEN);
}

// The `#token=` of the URL a studio's page opened this one at: kept for this tab,
// and taken out of the address bar (and so out of the history, a bookmark and a
// link copied from it). The fragment never reaches a server.
function takeFragmentToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token === null) return;
  fragment.delete("token");
  const rest = fragment.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest === "" ? "" : `#${rest}`}`);
  if (token !== "") sessionStorage.setItem(STORE_TOKEN, token);
}

// The name a JWT vouches for, as the lobby reads it (`name`, else
// `preferred_username`); null if none. Read, not verified: the lobby verifies it.
function tokenName(token) {
  let claims = null;
  try {
    claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return null;
  }
  const name = claims?.name || claims?.preferred_username;
  return typeof name === "string" && name.trim() !== "" ? name : null;
}

// Those waiting for the opener's `vinom.token`.
const tokenWaiters = new Set();

// A fresh token from the page that opened this one (window.open): asked with
// {"type": "vinom.token_wanted"}, answered with {"type": "vinom.token", "token"};
// null when no page opened this one or it did not answer in TOKEN_WAIT_MS.
function askOpener() {
  const opener = window.opener;
  if (opener === null || opener.closed) return Promise.resolve(null);
  return new Promise((resolve) => {
    const answered = (token) => {
      clearTimeout(timer);
      tokenWaiters.delete(answered);
      resolve(token);
    };
    const timer = setTimeout(() => answered(null), TOKEN_WAIT_MS);
    tokenWaiters.add(answered);
    // Nothing secret is said: any origin may hear it.
    opener.postMessage({ type: "vinom.token_wanted" }, "*");
  });
}

// A token from the opener, asked for or not, is kept for the next sign-in. Only
// the opener is heard: another window's message is ignored.
function tokenMessage(event) {
  const data = event.data;
  if (event.source === null || event.source !== window.opener) return;
  if (data === null || typeof data !== "object" || data.type !== "vinom.token") return;
  if (typeof data.token !== "string" || data.token === "") return;
  sessionStorage.setItem(STORE_TOKEN, data.token);
  app.tokenHandedAt = performance.now();
  for (const waiter of [...tokenWaiters]) waiter(data.token);
}

// Whether this browser has a device identity already: then the page signs in at once.
function deviceKept() {
  try {
    return localStorage.getItem(DEVICE_KEY) !== null;
  } catch {
    return false;
  }
}

function signedIn() {
  return typeof app.welcome?.auth === "string";
}

// Says hello (signed in as signInAuth says) and keeps the welcome, without
// changing the screen: after a ranked match the result stays in view.
async function signIn(name) {
  const lobby = await connectLobby();
  let welcome;
  try {
    welcome = await lobby.hello(name);
  } catch (error) {
    lobby.close();
    // Not online: the lobby is left, and the notice says why.
    setConnection("offline", "offline", "sign-in refused");
    // A refused token is not sent again: the page says where to get another.
    const passing = ["unavailable", "rate_limited"].includes(error.frame?.reason);
    if (error instanceof LobbyError && error.code === "auth_failed" && !passing && tokenSignIn()) {
      sessionStorage.removeItem(STORE_TOKEN);
    }
    throw error;
  }
  app.welcome = welcome;
  app.games = welcome.games ?? {};
  for (const [name, title] of Object.entries(welcome.titles ?? {})) {
    if (typeof title === "string" && title !== "") gameTitles[name] = title;
  }
  localStorage.setItem(STORE_NAME, welcome.name);
  renderAccount();
  app.queued = null;
  app.room = null;
  renderGames();
  renderQueue();
  return welcome;
}

async function enterLobby(name) {
  clearNotice();
  await signIn(name);
  show("lobby");
  // The panels' own failure is told, and leaves the player in the lobby.
  await Promise.all([refreshRooms(), run(refreshPanels)]);
}

// The top bar: the player's name, and a signed-in player's account and how.
function renderAccount() {
  const welcome = app.welcome;
  $("me").textContent = welcome?.name ?? "";
  const account = $("account");
  account.hidden = !signedIn();
  if (signedIn()) {
    account.textContent = `${welcome.player_id} · ${welcome.auth}`;
    account.dataset.playerId = welcome.player_id;
    account.title = `Signed in (${welcome.auth}) as account ${welcome.player_id}`;
  }
}

// ---------- ratings, the leaderboard and the match history ----------

// A rating as shown: the server's shown rating (docs/accounts.md, "Ratings": 1000
// for a new player) in whole points; a change with its sign.
function ratingText(value) {
  // `|| 0`: a value that rounds to -0 reads 0, not -0.
  return String(Math.round(Number(value)) || 0);
}

function changeText(change) {
  const rounded = Math.round(Number(change)) || 0;
  return rounded < 0 ? String(rounded) : `+${rounded}`;
}

// The rating change of a ranked match (the `rating` push, or its history entry),
// shown under the result while that match is on screen.
function showRating(rating) {
  const game = app.game;
  if (game === null || game.matchId !== rating.match_id) return;
  const line = $("result-rating");
  line.textContent = `Rating ${ratingText(rating.rating)} (${changeText(rating.change)})`;
  line.dataset.change = String(rating.change);
  line.dataset.match = rating.match_id;
  line.hidden = false;
}

// How long the page waits for a ranked match's rating before saying it is not there.
const UNRATED_AFTER_MS = 15000;

// After a ranked match the lobby connection is closed (it closes at
// match_found): sign in again, and find the match's rating change in the
// history; if it is not there yet, the `rating` push brings it.
async function afterRanked(game) {
  const line = $("result-rating");
  line.textContent = "Rating: waiting for the result…";
  delete line.dataset.match;
  line.hidden = false;
  if (app.lobby === null) await signIn(app.welcome.name);
  const history = await app.lobby.history();
  const entry = history.matches.find((m) => m.match_id === game.matchId);
  if (entry !== undefined && entry.change !== null) {
    showRating({ match_id: entry.match_id, rating: entry.rating, change: entry.change });
    return;
  }
  // A match the server does not rate (everyone left, a bot's seat) never gets a
  // `rating`: after a while, say where the change will be if it comes.
  setTimeout(() => {
    if (app.game === game && line.dataset.match !== game.matchId) {
      line.textContent = "Rating: not changed yet (your matches in the lobby show it once rated).";
    }
  }, UNRATED_AFTER_MS);
}

// The leaderboard and history panels, for a signed-in player (a guest has
// neither); a server without an account store (`no_accounts`) hides them.
async function refreshPanels() {
  const visible = signedIn() && app.lobby !== null;
  $("leaderboard-panel").hidden = !visible;
  $("history-panel").hidden = !visible;
  if (!visible) return;
  try {
    await Promise.all([refreshLeaderboard(), refreshHistory()]);
  } catch (error) {
    if (error instanceof LobbyError && error.code === "no_accounts") {
      $("leaderboard-panel").hidden = true;
      $("history-panel").hidden = true;
      return;
    }
    throw error;
  }
}

function renderLeaderboardChoice() {
  const games = Object.keys(app.games);
  if (app.board.game === null || !games.includes(app.board.game)) app.board.game = games[0] ?? null;
  const select = $("leaderboard-game");
  select.replaceChildren(...games.map((game) => element("option", { value: game }, gameTitle(game))));
  if (app.board.game !== null) select.value = app.board.game;
  $("leaderboard-top").classList.toggle("active", !app.board.around);
  $("leaderboard-around").classList.toggle("active", app.board.around);
}

async function refreshLeaderboard() {
  renderLeaderboardChoice();
  const list = $("leaderboard-list");
  if (app.board.game === null || app.lobby === null) return;
  const board = await app.lobby.leaderboard(app.board.game, { around: app.board.around, limit: 10 });
  list.replaceChildren();
  list.dataset.game = board.game;
  list.dataset.around = String(app.board.around);
  if (board.entries.length === 0) {
    list.append(element("li", { className: "empty muted" }, "No ranked matches yet."));
  }
  for (const entry of board.entries) {
    const mine = entry.player_id === app.welcome?.player_id;
    list.append(element(
      "li",
      { className: mine ? "entry me" : "entry", dataset: { playerId: entry.player_id, rank: String(entry.rank) } },
      element("span", { className: "rank" }, `${entry.rank}.`),
      element("span", { className: "entry-name" }, mine ? `${entry.name} (you)` : entry.name),
      element("span", { className: "entry-rating", title: `mu ${ratingText(entry.mu)}, sigma ${ratingText(entry.sigma)}` },
        ratingText(entry.rating)),
      element("span", { className: "muted small" }, ` · ${entry.matches} ${entry.matches === 1 ? "match" : "matches"}`),
    ));
  }
}

const RESULTS = { win: "Won", loss: "Lost", draw: "Draw" };

async function refreshHistory() {
  if (app.lobby === null) return;
  const history = await app.lobby.history({ limit: 10 });
  const list = $("history-list");
  list.replaceChildren();
  if (history.matches.length === 0) {
    list.append(element("li", { className: "empty muted" }, "No matches yet: play a ranked one!"));
  }
  for (const match of history.matches) {
    const opponents = match.opponents.map((o) => o.name).join(", ") || "nobody";
    const place = match.placement !== undefined ? ` (place ${match.placement})` : "";
    const rating = match.change === null || match.change === undefined
      ? "unrated"
      : `${changeText(match.change)} (rating ${ratingText(match.rating)})`;
    list.append(element(
      "li",
      { className: "match", dataset: { matchId: match.match_id, result: match.result } },
      element("div", {},
        element("strong", { className: "match-result" }, `${RESULTS[match.result] ?? match.result}${place}`),
        element("span", {}, ` vs ${opponents}`),
        element("div", { className: "muted small" },
          `${gameTitle(match.game)} · ${new Date(match.ended * 1000).toLocaleString()} · `,
          element("span", { className: "match-change" }, rating))),
      app.settings.replays === true
        ? element("button", {
          type: "button", className: "ghost", dataset: { action: "replay", matchId: match.match_id },
          onclick: () => run(() => openReplay(match.match_id)),
        }, "Replay")
        : null,
    ));
  }
}

// ---------- the lobby screen ----------

function renderGames() {
  const list = $("games");
  list.replaceChildren();
  for (const [game, size] of Object.entries(app.games)) {
    list.append(element(
      "li",
      { className: "game", dataset: { game } },
      element("div", {},
        element("span", { className: "game-name" }, gameTitle(game)),
        element("span", { className: "muted small" }, ` · ${size} players`)),
      element("div", { className: "game-actions" },
        element("button", {
          type: "button", className: "primary", dataset: { action: "queue", game },
          onclick: () => run(() => queue(game)),
        }, "Quick match"),
        signedIn()
          ? element("button", {
            type: "button", dataset: { action: "queue-ranked", game },
            onclick: () => run(() => queue(game, "ranked")),
          }, "Ranked")
          : null,
        element("button", {
          type: "button", dataset: { action: "create-room", game },
          onclick: () => run(() => createRoom(game, false)),
        }, "New room"),
        element("button", {
          type: "button", className: "ghost", dataset: { action: "create-private", game },
          onclick: () => run(() => createRoom(game, true)),
        }, "Private room")),
    ));
  }
  const filter = $("room-filter");
  filter.replaceChildren();
  for (const game of [null, ...Object.keys(app.games)]) {
    filter.append(element("button", {
      type: "button",
      role: "tab",
      className: app.roomFilter === game ? "tab active" : "tab",
      dataset: { game: game ?? "" },
      onclick: () => {
        app.roomFilter = game;
        renderGames();
        run(refreshRooms);
      },
    }, game === null ? "All" : gameTitle(game)));
  }
}

function renderQueue() {
  const panel = $("queue-panel");
  const queued = app.queued;
  panel.hidden = queued === null;
  if (queued === null) return;
  const waiting = queued.status === "waiting_for_server";
  const ranked = queued.queue === "ranked" ? "ranked " : "";
  $("queue-text").textContent = waiting
    ? `Match found for ${gameTitle(queued.game)}: waiting for a free game server…`
    : `Looking for a ${ranked}${gameTitle(queued.game)} match…`;
  $("queue-detail").textContent = `Position ${queued.position} in the queue`;
  panel.dataset.position = String(queued.position);
  $("queue-cancel").hidden = waiting;
}

async function refreshRooms() {
  if (app.lobby === null) return;
  const frame = { type: "get_room_list" };
  if (app.roomFilter !== null) frame.game = app.roomFilter;
  const reply = await app.lobby.request(frame);
  const list = $("room-list");
  list.replaceChildren();
  if (reply.rooms.length === 0) {
    list.append(element("li", { className: "empty muted" }, "No open rooms. Start one!"));
  }
  for (const room of reply.rooms) {
    list.append(element(
      "li",
      { className: "room", dataset: { roomId: room.room_id, game: room.game } },
      element("div", {},
        element("strong", {}, gameTitle(room.game)),
        element("div", { className: "muted small" }, `${room.owner}'s room · ${room.taken}/${room.seats} seated`)),
      element("button", {
        type: "button", className: "primary", dataset: { action: "join-room" },
        onclick: () => run(() => joinRoom({ room_id: room.room_id })),
      }, "Join"),
    ));
  }
}

async function queue(game, kind = "normal") {
  clearNotice();
  const frame = { type: "queue", game };
  if (kind !== "normal") frame.queue = kind;
  app.queued = await app.lobby.request(frame);
  app.queueKind = kind;
  renderQueue();
}

async function cancelQueue() {
  await app.lobby.request({ type: "cancel" });
  app.queued = null;
  renderQueue();
}

async function createRoom(game, isPrivate) {
  clearNotice();
  app.queueKind = "normal";
  const reply = await app.lobby.request({ type: "create_room", game, private: isPrivate });
  app.room = reply.room;
  renderRoom();
}

async function joinRoom(target) {
  clearNotice();
  app.queueKind = "normal";
  const reply = await app.lobby.request({ type: "join_room", ...target });
  // match_found may already have come (the last seat): then the game is shown.
  if (app.match === null) {
    app.room = reply.room;
    renderRoom();
  }
}

// ---------- the room screen ----------

function renderRoom() {
  const room = app.room;
  if (room === null) return;
  show("room");
  $("room-game").textContent = gameTitle(room.game);
  $("room-kind").textContent = room.private ? "private" : "public";
  $("room-seats").textContent = `${room.taken} of ${room.seats} seats taken`;
  $("room-code").textContent = room.code ?? "";
  $("room-id").textContent = room.room_id;
  const players = $("room-players");
  players.replaceChildren();
  for (let seat = 0; seat < room.seats; seat++) {
    const player = room.players[seat];
    players.append(player === undefined
      ? element("li", { className: "seat free" }, "Free seat")
      : element("li", { className: "seat", dataset: { bot: String(player.bot) } },
        element("span", { className: "avatar" }, player.bot ? "🤖" : player.name.slice(0, 1).toUpperCase()),
        element("span", {}, player.name),
        player.owner ? element("span", { className: "pill" }, "owner") : null));
  }
  const me = app.welcome?.name;
  const owner = room.players.find((p) => p.owner);
  const isOwner = owner !== undefined && owner.name === me && room.owner === me;
  $("room-add-bot").hidden = !isOwner || room.taken >= room.seats;
}

async function copyCode() {
  const code = $("room-code").textContent;
  try {
    await navigator.clipboard.writeText(code);
    notify(`Copied ${code}`, "info");
  } catch {
    // No clipboard (an insecure context, a denied permission): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($("room-code"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
}

// ---------- the match ----------

function matchFound(found) {
  app.queued = null;
  app.room = null;
  renderQueue();
  app.match = {
    found,
    player_id: app.welcome.player_id,
    secret: app.welcome.secret,
    name: app.welcome.name,
    auth: app.welcome.auth,
    queue: app.queueKind,
  };
  storeMatch(app.match);
  startGame(app.match, false);
}

// ---------- replaying a finished match (/replays/<id>: docs/web.md) ----------

async function openReplay(matchId) {
  // The replay last asked for; a newer one, or a match started meanwhile, replaces it.
  const asked = {};
  app.replayAsked = asked;
  let waiting = null; // the notice shown while the server is busy (replays.js)
  // Signed in: as the player, whose own matches always replay (a private room's too).
  const auth = signedIn() ? await signInAuth() : null;
  const response = await fetchReplay(`/replays/${encodeURIComponent(matchId)}`, {
    headers: auth === null ? {} : { Authorization: authorizationHeader(auth) },
    wanted: () => app.replayAsked === asked,
    onWait: (seconds) => {
      waiting = `Waiting for the server, which is making other replays: asking again in ${seconds} s…`;
      notify(waiting, "info");
    },
  });
  if (waiting !== null && $("notice-text").textContent === waiting) clearNotice();
  if (response === null) return;
  app.replayAsked = null;
  if (!response.ok) {
    const why = (await response.text()).trim();
    throw new Error(response.status === 404 ? "There is no record of that match." : why);
  }
  const doc = decode(new Uint8Array(await response.arrayBuffer()));
  startReplay(doc);
}

function startReplay(doc) {
  stopGame();
  const game = {
    name: doc.game, me: null, seat: -1, players: [], presence: {}, phase: "playing",
    remaining: null, remainingAt: 0, version: -1, latest: null, board: null,
    boardLoading: false, ended: false, removedIdle: false, result: null,
    timer: setInterval(replayTick, 100), socket: null, resumed: false, spectator: true,
    replay: { doc, at: 0, shown: -1, playing: true, speed: 1, last: performance.now() },
  };
  // What a real-time board draws from: the frames at the replay's time.
  game.replay.netcode = new ReplayNetcode(doc, () => replayTime(game.replay));
  app.game = game;
  $("board").replaceChildren();
  $("result-panel").hidden = true;
  $("game-leave").hidden = true;
  // A replay ends with its own "Back", and goes over no link to a game server.
  $("play-again").hidden = true;
  $("game-transport").textContent = "–";
  delete $("game-transport").dataset.kind;
  $("replay-bar").hidden = false;
  const frames = doc.frames;
  const seek = $("replay-seek");
  seek.max = String(frames.length ? frames[frames.length - 1][0] : 0);
  seek.value = "0";
  $("replay-pause").textContent = "Pause";
  $("game-title").textContent = doc.title || gameTitle(doc.game);
  $("game-status").textContent = doc.error ? `This record does not replay exactly: ${doc.error}` : "Replay";
  $("game-turn").textContent = "–";
  $("game-players").replaceChildren();
  $("screen-game").dataset.spectator = "true";
  $("screen-game").dataset.replay = "true";
  show("game");
  gameMessage(game, { t: "welcome", match: doc.match_id, players: doc.players, seat: -1, reconnected: false });
  setConnection("online", "replay");
  replayShow(game, 0);
}

// Show the last frame at or before `ms` of match time (from the start when going back).
function replayShow(game, ms) {
  const replay = game.replay;
  const frames = replay.doc.frames;
  replay.at = ms;
  let index = -1;
  while (index + 1 < frames.length && frames[index + 1][0] <= ms) index += 1;
  if (index === replay.shown || index < 0) return;
  if (index < replay.shown) {
    game.version = -1;
    if (game.ended) {
      game.ended = false;
      $("result-panel").hidden = true;
    }
  }
  replay.shown = index;
  const [, phase, view] = frames[index];
  gameMessage(game, { t: "state", v: index + 1, p: phase, r: null, k: 0, ts: frames[index][0], s: view, i: null });
  $("replay-seek").value = String(frames[index][0]);
  const end = replay.doc.end;
  if (index === frames.length - 1 && end !== null && !game.ended) {
    gameMessage(game, { t: "phase", p: end.phase, v: index + 2, r: null, result: end.result ?? {}, reason: end.result?.reason });
  }
}

// The replay's time now (ms of match time): where the last tick left it, and
// the time played since, so that a board drawing every animation frame moves
// smoothly between the 100 ms ticks.
function replayTime(replay) {
  if (!replay.playing) return replay.at;
  return replay.at + (performance.now() - replay.last) * replay.speed;
}

function replayTick() {
  const game = app.game;
  if (game === null || !game.replay) return;
  const replay = game.replay;
  const now = performance.now();
  const elapsed = now - replay.last;
  replay.last = now;
  if (!replay.playing) return;
  replayShow(game, replay.at + elapsed * replay.speed);
}

function closeReplay() {
  stopGame();
  $("replay-bar").hidden = true;
  delete $("screen-game").dataset.replay;
  show(app.welcome ? "lobby" : "name");
}

// ---------- watching a match (spectate: docs/lobby.md) ----------

// A match id ("m-...") or a private room's join code.
async function watch(what) {
  const ask = what.startsWith("m-") ? { match_id: what } : { code: what.toUpperCase() };
  let frame;
  try {
    frame = await app.lobby.request({ type: "spectate", ...ask });
  } catch (error) {
    // The lobby's one answer for a match it will not show (docs/lobby.md, "spectate").
    if (error instanceof LobbyError && error.code === "no_active_match") {
      throw new Error(ask.code === undefined
        ? `No running match has the id ${what}: it may have ended.`
        : `No running match may be watched with the code ${ask.code}.`);
    }
    throw error;
  }
  startGame({ found: { ...frame, seat: -1 }, player_id: null, spectator: true }, false);
  $("screen-game").dataset.spectator = "true";
  $("game-status").textContent = "Watching the match…";
}

function startGame(match, resumed) {
  stopGame();
  app.replayAsked = null; // a replay still waited for is not shown over the match
  const found = match.found;
  const game = {
    name: found.game,
    me: match.player_id,
    seat: found.seat,
    players: [],
    presence: {},
    phase: "waiting",
    remaining: null,
    remainingAt: 0,
    version: -1,
    latest: null,
    board: null,
    boardLoading: false,
    ended: false,
    removedIdle: false,
    result: null,
    timer: setInterval(renderTimer, 250),
    socket: null,
    resumed,
    spectator: match.spectator === true,
    matchId: found.game_id,
    ranked: match.queue === "ranked",
  };
  app.game = game;
  // The leaderboard shows the game last played ranked (a resumed match's too).
  if (game.ranked) app.board.game = found.game;
  $("board").replaceChildren();
  $("result-panel").hidden = true;
  $("result-rating").hidden = true;
  $("play-again").hidden = false;
  $("game-leave").hidden = false;
  $("game-status").textContent = resumed ? "Reconnecting to your match…" : "Connecting to the game…";
  $("game-title").textContent = gameTitle(found.game);
  $("game-phase").textContent = "connecting";
  $("game-turn").textContent = "–";
  $("game-players").replaceChildren();
  show("game");
  setConnection("connecting", "joining the game…");
  $("game-transport").textContent = "–";
  delete $("game-transport").dataset.kind;
  delete $("screen-game").dataset.spectator;
  delete $("screen-game").dataset.replay;
  $("replay-bar").hidden = true;
  game.socket = new GameSocket(gameUrl(found, location), found.token, {
    onMessage: (message) => gameMessage(game, message),
    onClose: (event, byUs) => gameClosed(game, event, byUs),
    onKind: (kind) => {
      if (app.game !== game) return;
      const shown = $("game-transport");
      shown.textContent = kind === "webtransport" ? "WebTransport" : "WebSocket";
      shown.dataset.kind = kind;
    },
    // The package logs nothing; the page tells its console, for a developer.
    onFallback: (why) => console.info(`WebTransport not used (${why}): the game runs over WebSocket`),
    onWarning: (text, error) => console.warn(text, error),
  });
}

function stopGame() {
  const game = app.game;
  if (game === null) return;
  clearInterval(game.timer);
  if (game.board !== null) {
    try {
      game.board.destroy();
    } catch (error) {
      console.error(error);
    }
  }
  game.socket?.close();
  app.game = null;
}

// The status line under the title: what is true now. It is emptied when the
// match ends (the result says it all) and when what it said stops being true
// (a player who lost the connection is back); `about` names a player the line
// is about.
// `game.statusAbout` for the status line of a refused action.
const REFUSED = Symbol("refused");

function say(game, text, about = null) {
  if (game !== app.game || (game.ended && text !== "")) return;
  $("game-status").textContent = text;
  game.statusAbout = about;
}

function playerName(game, id) {
  if (id === game.me) return "You";
  return game.players.find((p) => p.id === id)?.name ?? id;
}

// `text` with every player id in it written as the player's name.
function withNames(game, text) {
  let named = String(text);
  for (const p of game.players) named = named.split(p.id).join(playerName(game, p.id));
  return named;
}

async function loadBoard(game) {
  game.boardLoading = true;
  // A live match's netcode is its GameSocket's; a replay's, its frames'.
  const net = () => game.replay?.netcode ?? game.socket;
  const watching = game.spectator === true;
  const api = {
    seat: game.seat,
    players: game.players,
    me: game.me,
    // Watching a match or a replay: nothing the board does is sent (a spectator's
    // messages are dropped unread), and the board shows no way to play.
    spectator: watching,
    replay: Boolean(game.replay),
    // The board's own module did not load (an error in it): the generic board says so.
    boardFailed: false,
    act: (action) => {
      if (watching) return null;
      // A refused action's error stays until the player acts again: then it is
      // no longer what is true now.
      if (game.statusAbout === REFUSED) say(game, "");
      return game.socket.act(action);
    },
    // A real-time input (a game with a tick): stamped with its tick and repeated
    // until acknowledged (game.js, GameSocket.input); returns its tick.
    input: (input) => (watching ? null : game.socket.input(input)),
    // Client-side netcode: the synced server clock, the views interpolated for
    // drawing, the own state and events predicted from the inputs.
    ...boardNetcode(net),
    say: (text) => say(game, text),
  };
  let module = null;
  try {
    module = await loadBoardModule(game.name);
  } catch (error) {
    api.boardFailed = true;
    console.warn(`the ${game.name} board did not load; using the generic one`, error);
  }
  if (game !== app.game) return;
  const root = $("board");
  root.replaceChildren();
  const holder = element("div", { className: "board-holder", dataset: { board: module ? game.name : "generic" } });
  root.append(holder);
  game.board = (module ?? fallbackBoard).create(holder, api);
  if (game.latest !== null) game.board.update(game.latest);
  if (game.ended) endBoard(game); // the match ended while the board was loading
}

function gameMessage(game, message) {
  if (game !== app.game) return;
  switch (message.t) {
    case "welcome":
      game.players = message.players ?? [];
      game.seat = message.seat;
      // Each /game session starts with version -1 (startGame); the room's version
      // never goes back, so a welcome resets nothing: a state older than the one
      // held is ignored (the "state" case).
      $("screen-game").dataset.match = message.match;
      $("screen-game").dataset.seat = String(message.seat);
      $("screen-game").dataset.reconnected = String(Boolean(message.reconnected));
      for (const p of game.players) game.presence[p.id] ??= "connected";
      if (typeof message.title === "string" && message.title !== "") {
        gameTitles[game.name] = message.title;
        $("game-title").textContent = message.title;
      }
      setConnection("online", game.spectator ? "watching" : "in game");
      say(game, message.reconnected ? "Reconnected: back in your match."
        : game.spectator ? "Watching: you see what every player may see." : "");
      if (game.board === null && !game.boardLoading) loadBoard(game);
      renderPlayers(game);
      break;
    case "state":
      if (message.v <= game.version) return;
      game.version = message.v;
      game.latest = message;
      setPhase(game, message.p, message.r);
      renderTurn(game, message.s);
      // The whole message: a board that interpolates reads the tick (k) and the
      // server time in ms (ts); the others ignore them.
      if (game.board !== null) game.board.update(message);
      break;
    case "phase":
      setPhase(game, message.p, message.r);
      if (message.p === "finished") finish(game, message.result ?? {});
      if (message.p === "aborted") abort(game, message.reason);
      break;
    case "event":
      game.board?.event?.(message.e, message.d ?? {});
      break;
    case "error":
      say(game, withNames(game, message.message ?? message.code));
      game.board?.error?.(message.code, message.message ?? "");
      // Whatever the board wrote of it, the line is about the refused action.
      game.statusAbout = REFUSED;
      break;
    case "presence":
      game.presence[message.id] = message.status;
      renderPlayers(game);
      // The room idled me out: my actions are refused from now on, and the
      // result must not say that the others left (endReasonText).
      if (message.id === game.me && message.status === "idle") game.removedIdle = true;
      if (message.status !== "connected") {
        const what = PRESENCE[message.status] ?? message.status;
        say(game, `${playerName(game, message.id)} ${what}.`, message.id);
      } else if (game.statusAbout === message.id) {
        say(game, ""); // back: "lost the connection" is no longer true
      }
      break;
    default:
      break;
  }
}

function setPhase(game, phase, remaining) {
  game.phase = phase;
  game.remaining = remaining ?? null;
  game.remainingAt = performance.now();
  const label = $("game-phase");
  label.textContent = PHASES[phase] ?? phase;
  label.dataset.phase = phase;
  renderTimer();
}

function renderTimer() {
  const game = app.game;
  if (game === null) return;
  const timer = $("game-timer");
  if (game.remaining === null || game.ended) {
    timer.textContent = "–";
    return;
  }
  const left = Math.max(0, game.remaining - (performance.now() - game.remainingAt) / 1000);
  const whole = Math.ceil(left);
  timer.textContent = `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function renderTurn(game, view) {
  const turn = $("game-turn");
  const id = view !== null && typeof view === "object" ? view.turn : undefined;
  for (const row of document.querySelectorAll("#game-players li")) {
    row.classList.toggle("active", !game.ended && row.dataset.playerId === id);
  }
  if (typeof id !== "string" || game.ended) {
    turn.textContent = "–";
    turn.dataset.mine = "false";
    return;
  }
  turn.textContent = id === game.me ? "Your turn" : `${playerName(game, id)}`;
  turn.dataset.mine = String(id === game.me);
}

function renderPlayers(game) {
  const list = $("game-players");
  list.replaceChildren();
  for (const player of game.players) {
    const presence = game.presence[player.id] ?? "connected";
    list.append(element(
      "li",
      { dataset: { playerId: player.id, presence, seat: String(player.seat) } },
      element("span", { className: "avatar" }, player.name.slice(0, 1).toUpperCase()),
      element("span", { className: "player-name" }, player.id === game.me ? `${player.name} (you)` : player.name),
      presence === "connected" ? null : element("span", { className: `pill ${presence}` }, presence),
    ));
  }
  if (game.latest !== null) renderTurn(game, game.latest.s);
}

// Tell the board the match is over (its optional `end`): no action can be
// played from now on, so a board that takes input stops taking it.
function endBoard(game) {
  if (game.board === null || typeof game.board.end !== "function") return;
  try {
    game.board.end();
  } catch (error) {
    console.error(error);
  }
}

function endMatch(game) {
  game.ended = true;
  endBoard(game);
  storeMatch(null);
  app.match = null;
  $("game-leave").hidden = true;
  $("game-turn").textContent = "–";
  say(game, "");
  const panel = $("result-panel");
  panel.hidden = false;
  // In view whatever the board's height or the page's scroll.
  panel.scrollIntoView({ block: "nearest" });
}

function finish(game, result) {
  const winners = Array.isArray(result.winners) ? result.winners : [];
  let text;
  let outcome;
  if (winners.length === 0) {
    text = "It's a draw.";
    outcome = "draw";
  } else if (game.spectator) {
    text = `${winners.map((id) => playerName(game, id)).join(" and ")} won.`;
    outcome = "watched";
  } else if (winners.includes(game.me)) {
    text = winners.length > 1 ? "You share the win!" : "You win!";
    outcome = "win";
  } else {
    text = `You lose. ${winners.map((id) => playerName(game, id)).join(" and ")} won.`;
    outcome = "lose";
  }
  endMatch(game);
  $("result-text").textContent = text;
  $("result-panel").dataset.outcome = outcome;
  const reason = endReasonText(game, result, winners);
  const scores = result.scores && typeof result.scores === "object"
    ? Object.entries(result.scores).map(([id, score]) => `${playerName(game, id)} ${score}`).join(" · ")
    : "";
  $("result-detail").textContent = [reason, scores].filter(Boolean).join(" ");
  setConnection("offline", "offline", "the match is over");
  if (game.ranked && !game.spectator && signedIn()) run(() => afterRanked(game));
}

function abort(game, reason) {
  endMatch(game);
  $("result-text").textContent = "The match was called off.";
  $("result-panel").dataset.outcome = "aborted";
  const known = Object.hasOwn(ABORT_REASONS, reason) ? ABORT_REASONS[reason] : null;
  $("result-detail").textContent = known ?? (reason ? `Why: ${reasonWords(reason)}.` : "");
  setConnection("offline", "offline", "the match is over");
}

function gameClosed(game, event, byUs) {
  if (game !== app.game || byUs) return;
  const text = closeText(event.code, event.reason);
  setConnection("offline", "offline", game.ended ? "the match is over" : text);
  if (game.ended) return;
  if (event.code === 1000 && game.left) {
    endMatch(game);
    $("result-text").textContent = "You left the match.";
    $("result-panel").dataset.outcome = "left";
    $("result-detail").textContent = "";
    // A ranked match counts the leaver's loss: their rating moved too.
    if (game.ranked && signedIn()) run(() => afterRanked(game));
    return;
  }
  // A dropped connection (not a refusal) is worth one more try through the lobby.
  const retry = (event.code === 1006 || event.code === 1011) && (game.retries ?? 0) < 3;
  if (retry && app.match !== null) {
    say(game, `${text} Reconnecting…`);
    const match = app.match;
    const retries = (game.retries ?? 0) + 1;
    setTimeout(() => {
      if (app.game !== game) return;
      run(async () => {
        await resume(match);
        if (app.game !== null) app.game.retries = retries;
      }, showName);
    }, 1000 * retries);
    return;
  }
  endMatch(game);
  $("result-text").textContent = "Disconnected from the match.";
  $("result-panel").dataset.outcome = "closed";
  $("result-detail").textContent = text;
}

function leaveMatch() {
  const game = app.game;
  if (game === null || game.ended) return;
  if (game.spectator) {
    // A spectator just stops watching: back to the lobby, still said hello.
    stopGame();
    show("lobby");
    return;
  }
  game.left = true;
  game.socket.leave();
}

async function playAgain() {
  const name = app.welcome?.name ?? localStorage.getItem(STORE_NAME) ?? "";
  stopGame();
  storeMatch(null);
  app.match = null;
  if (app.lobby !== null && app.welcome?.secret) {
    // Signed in again after a ranked match: the lobby connection is open.
    clearNotice();
    setConnection("online", "online");
    show("lobby");
    await Promise.all([run(refreshRooms), run(refreshPanels)]);
    return;
  }
  await run(() => enterLobby(name), () => show("name"));
}

// ---------- reconnection after a reload ----------

async function resume(match) {
  app.match = match;
  const lobby = await connectLobby();
  app.welcome = {
    player_id: match.player_id, secret: match.secret, name: match.name, games: {}, auth: match.auth,
  };
  renderAccount();
  let reply;
  try {
    reply = await lobby.reconnect(match.player_id, match.secret);
  } catch (error) {
    app.match = null;
    storeMatch(null);
    lobby.close();
    stopGame();
    notify(errorText(error), "info");
    showName();
    return;
  }
  if (reply.type === "match_found") {
    app.match = { ...match, found: reply };
    storeMatch(app.match);
    startGame(app.match, true);
  } else if (reply.type === "queued") {
    // Waiting for a game server, or requeued at the head of the queue: match_found follows.
    app.queued = reply;
    show("lobby");
    renderQueue();
  }
}

// ---------- wiring ----------

async function run(action, onError = null) {
  try {
    await action();
  } catch (error) {
    console.warn(error);
    notify(errorText(error));
    if (onError !== null) onError(error);
  }
}

function showName() {
  $("name-input").value = localStorage.getItem(STORE_NAME) ?? "";
  $("name-device").hidden = app.settings.auth !== "device";
  // A server of tokens without one: the name alone cannot sign in, so say where to.
  const tokenless = tokenSignIn() && keptToken() === null;
  $("name-token").hidden = !tokenless;
  $("name-row").hidden = tokenless;
  show("name");
  $("name-input").focus();
}

function wire() {
  addEventListener("message", tokenMessage);
  $("notice-close").addEventListener("click", clearNotice);
  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("name-input").value.trim();
    if (name !== "") run(() => enterLobby(name));
  });
  $("queue-cancel").addEventListener("click", () => run(cancelQueue));
  $("rooms-refresh").addEventListener("click", () => run(refreshRooms));
  $("replay-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const what = $("replay-input").value.trim();
    if (what !== "") run(() => openReplay(what));
  });
  $("replay-seek").addEventListener("input", () => {
    const game = app.game;
    if (game?.replay) replayShow(game, Number($("replay-seek").value));
  });
  $("replay-pause").addEventListener("click", () => {
    const replay = app.game?.replay;
    if (!replay) return;
    replay.playing = !replay.playing;
    $("replay-pause").textContent = replay.playing ? "Pause" : "Play";
  });
  $("replay-speed").addEventListener("change", () => {
    const replay = app.game?.replay;
    if (replay) replay.speed = Number($("replay-speed").value);
  });
  $("replay-close").addEventListener("click", closeReplay);
  $("watch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const what = $("watch-input").value.trim();
    if (what !== "") run(() => watch(what));
  });
  $("code-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = $("code-input").value.trim().toUpperCase();
    if (code !== "") run(() => joinRoom({ code }));
  });
  $("room-copy").addEventListener("click", () => run(copyCode));
  $("room-add-bot").addEventListener("click", () => run(async () => {
    const reply = await app.lobby.request({ type: "add_bot" });
    if (app.match === null) {
      app.room = reply.room;
      renderRoom();
    }
  }));
  $("room-leave").addEventListener("click", () => run(async () => {
    await app.lobby.request({ type: "leave_room" });
    app.room = null;
    show("lobby");
    await refreshRooms();
  }));
  $("game-leave").addEventListener("click", leaveMatch);
  $("leaderboard-game").addEventListener("change", () => {
    app.board.game = $("leaderboard-game").value;
    run(refreshLeaderboard);
  });
  $("leaderboard-top").addEventListener("click", () => {
    app.board.around = false;
    run(refreshLeaderboard);
  });
  $("leaderboard-around").addEventListener("click", () => {
    app.board.around = true;
    run(refreshLeaderboard);
  });
  $("history-refresh").addEventListener("click", () => run(refreshPanels));
  $("play-again").addEventListener("click", playAgain);
}

// What this server offers (/settings.js, made from its options): the replay
// form only where /replays/ answers (--web-replays), and how players sign in
// (`auth`, the server's --auth). Until it is known, and if it cannot be, the
// form stays hidden and the page is a guest's.
async function offer() {
  try {
    const settings = (await import("./settings.js")).default;
    app.settings = { ...app.settings, ...settings };
  } catch (error) {
    console.warn("the server's settings did not load", error);
  }
  $("replay-form").hidden = app.settings.replays !== true;
}

async function start() {
  // First: out of the address bar before anything else can read or keep the URL.
  takeFragmentToken();
  wire();
  await offer();
  const match = storedMatch();
  if (match !== null && match.player_id && match.secret) {
    show("game");
    await run(() => resume(match), showName);
  } else if (app.settings.auth === "device" && deviceKept()) {
    // A returning browser: signed in at once as its device (its account keeps its name).
    await run(() => enterLobby(localStorage.getItem(STORE_NAME) || "Player"), showName);
  } else if (tokenSignIn() && (keptToken() ?? await askOpener()) !== null) {
    // A token handed over: signed in at once as the name it vouches for; a token
    // naming nobody asks the name of a new account (the name form then signs in).
    const name = tokenName(keptToken());
    if (name === null) showName();
    else await run(() => enterLobby(name), showName);
  } else {
    showName();
  }
}

start();
