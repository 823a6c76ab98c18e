// The lobby over WebSocket (docs/lobby.md, docs/web.md): one JSON frame per
// text message. `request` sends a frame with a fresh `id` and resolves with
// the reply carrying that id (or rejects with a LobbyError); frames the
// server sends on its own (match_found, room_update, queued while waiting for
// a server, an error with a null id) go to `onPush`.
//
// The socket is made with `options.WebSocket`, a constructor taking the URL
// (the page's own WebSocket by default; under Node before 22, which has none,
// the `ws` package's: `new LobbyConnection(url, { WebSocket })`).
//
// Signing in: `options.auth` is the `auth` object `hello` and `reconnect`
// carry (deviceAuth(), jwtAuth(token), ...) or a function giving it (a page's
// callback that fetches a fresh JWT); `hello(name)` and `reconnect(...)` send it.

// The game protocol this client speaks (docs/lobby.md, "The game protocol"), said
// in every `hello` and `reconnect`: a lobby of another answers `protocol_outdated`
// to any request that would hand out a connect token. It is the version of the
// room messages game.js speaks (4: every `snap` relative and packed, docs/protocol.md
// §14), not of the session packets (the connect token's own version);
// tests/lobby/test_lobby_codec.py holds it equal to the lobby's GAME_PROTOCOL
// (vinom/lobby/request_types.py), so a bump there is a bump here.
export const PROTOCOL = 4;

// What each lobby error code means for the player: one text for every code the lobby
// sends (docs/lobby.md, "Errors"; tests/lobby/test_lobby_codec.py holds the three equal).
export const LOBBY_ERRORS = {
  malformed_json: "The client sent something the lobby could not read.",
  not_an_object: "The client sent something the lobby could not read.",
  unknown_type: "The lobby does not know that request.",
  missing_field: "A request was missing a field.",
  invalid_field: "That is not accepted here (a name must be 1 to 32 visible characters).",
  frame_too_large: "That request was too large.",
  hello_required: "Enter a name first.",
  already_hello: "You already have a name on this connection.",
  unknown_game: "This server does not run that game.",
  unknown_queue: "That queue does not exist here.",
  rating_refused: "You cannot play ranked games right now.",
  bad_secret: "Your previous match is over or could not be found.",
  no_active_match: "You have no match to go back to.",
  match_ended: "That match has ended.",
  rate_limited: "Slow down a little, then try again.",
  already_queued: "You are already waiting for a match.",
  not_queued: "You are not in a queue (the match may already have formed).",
  server_draining: "The server is shutting down; try again in a moment.",
  unknown_room: "No open room has that id or code.",
  room_full: "That room is full.",
  already_in_room: "Leave your room first.",
  not_in_room: "You are not in a room.",
  not_room_owner: "Only the room's owner can do that.",
  unknown_party: "No party has that code.",
  already_in_party: "You are already in a party.",
  not_in_party: "You are not in a party.",
  party_changed: "The party changed while queueing; queue again.",
  not_party_leader: "Only the party leader can queue or cancel.",
  party_too_large: "The party is too large for that game.",
  protocol_outdated: "This game page is out of date: reload it to update the game client.",
  auth_failed: "Signing in failed; sign in again.",
  banned: "This account is banned.",
  bad_request: "The request was not understood.",
  no_accounts: "This server keeps no accounts: leaderboards need sign-in.",
  not_signed_in: "Sign in to see this.",
  too_many_connections: "Too many connections from your address.",
  too_many_errors: "The lobby closed the connection after too many bad requests.",
  timeout: "The lobby connection timed out.",
  session_replaced: "You opened this game in another tab or window.",
  match_failed: "No game server could start the match; queue again.",
  unavailable: "The server is busy for a moment; try again.",
  internal_error: "The server had a problem; try again.",
};

export function lobbyErrorText(code, message) {
  return LOBBY_ERRORS[code] ?? message ?? `Lobby error: ${code}`;
}

// An error frame in words: an `auth_failed` says why by its `reason`; a `banned`
// (at sign-in, or on a live connection) its `reason` and its end (`until`, Unix
// seconds, in UTC; null: for good).
export function errorFrameText(frame) {
  if (frame.code === "auth_failed" && Object.hasOwn(AUTH_FAILED_REASONS, frame.reason)) {
    return AUTH_FAILED_REASONS[frame.reason];
  }
  if (frame.code === "banned") {
    const reason = typeof frame.reason === "string" ? frame.reason.trim() : "";
    const why = reason === "" ? "" : ` Reason: ${reason}${/[.!?]$/.test(reason) ? "" : "."}`;
    const end = new Date(Number(frame.until) * 1000);
    let until = "";
    if (frame.until === null) until = " The ban does not end.";
    else if (typeof frame.until === "number" && !Number.isNaN(end.getTime())) {
      until = ` The ban ends ${end.toISOString().slice(0, 16).replace("T", " ")} UTC.`;
    }
    return `${LOBBY_ERRORS.banned}${why}${until}`;
  }
  return lobbyErrorText(frame.code, frame.message);
}

export class LobbyError extends Error {
  constructor(frame) {
    super(errorFrameText(frame));
    this.code = frame.code;
    this.frame = frame;
  }
}

// ---------- signing in (docs/lobby.md, "Authentication"; docs/web.md) ----------

// Why a sign-in was refused, for the player: an `auth_failed`'s `reason`
// (docs/lobby.md, "Authentication"). A reason not here reads as the code's text.
export const AUTH_FAILED_REASONS = {
  required: "This server needs you to sign in.",
  wrong_kind: "This server signs players in another way: reload the page.",
  malformed: "The sign-in details could not be read.",
  too_large: "The sign-in details were too large.",
  expired: "Your sign-in has expired: sign in again.",
  not_yet_valid: "Your sign-in is not valid yet: check your device's clock.",
  wrong_issuer: "Your sign-in is not for this server.",
  wrong_audience: "Your sign-in is not for this game.",
  bad_signature: "Your sign-in could not be verified.",
  bad_algorithm: "Your sign-in could not be verified.",
  unknown_kid: "Your sign-in could not be verified.",
  missing_claim: "Your sign-in is missing something the server needs.",
  too_long_lived: "Your sign-in is valid for too long.",
  bad_secret: "This device's sign-in does not match its account.",
  invalid: "Your sign-in was refused.",
  unavailable: "Signing in is not possible for a moment; try again.",
  rate_limited: "Too many failed sign-ins: wait a little, then try again.",
};

// The `auth` of a guest: the same as none.
export const GUEST = Object.freeze({ kind: "guest" });

// The credentials of a JWT from the studio's identity provider (`--auth jwt`).
export function jwtAuth(token) {
  return { kind: "jwt", token };
}

// The credentials of a token the studio's backend signed (`--auth signed`).
export function signedAuth(token) {
  return { kind: "signed", token };
}

// Where the device identity is kept, by default in the page's localStorage.
export const DEVICE_KEY = "vinom.device";
// The shape the lobby accepts (docs/accounts.md, "Device authentication").
const DEVICE_ID = /^[\x21-\x7e]{10,128}$/;
const DEVICE_SECRET = /^[\x21-\x7e]{22,128}$/;

function randomBytes(crypto, count) {
  return crypto.getRandomValues(new Uint8Array(count));
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Unpadded URL-safe base64, as the server's secrets are written.
function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The device identity kept under `key` in `storage` (a Web Storage: the page's
// localStorage by default), made on first use (a 128-bit id and a 256-bit
// secret from crypto.getRandomValues) and kept, so the next visit signs in to
// the same account. A stored value that is not one (edited, from elsewhere) is
// replaced by a new identity.
export function deviceIdentity({ storage = globalThis.localStorage, key = DEVICE_KEY, crypto = globalThis.crypto } = {}) {
  if (storage === undefined || storage === null) {
    throw new TypeError("deviceAuth needs a storage to keep the device identity: pass one as { storage }");
  }
  let kept = null;
  try {
    kept = JSON.parse(storage.getItem(key) ?? "null");
  } catch {
    kept = null;
  }
  if (kept !== null && typeof kept === "object" && typeof kept.device_id === "string"
    && typeof kept.secret === "string" && DEVICE_ID.test(kept.device_id) && DEVICE_SECRET.test(kept.secret)) {
    return { device_id: kept.device_id, secret: kept.secret };
  }
  const made = { device_id: `d-${hex(randomBytes(crypto, 16))}`, secret: base64url(randomBytes(crypto, 32)) };
  storage.setItem(key, JSON.stringify(made));
  return made;
}

// The credentials of the device identity `deviceIdentity` keeps (`--auth device`).
export function deviceAuth(options = {}) {
  return { kind: "device", ...deviceIdentity(options) };
}

// The HTTP Authorization of a request the web server signs in as the lobby signs
// a `hello` (docs/web.md, "Replays": a match's own player may always replay it):
// "Vinom " and the URL-safe base64 of the `auth` object's JSON.
export function authorizationHeader(auth) {
  return `Vinom ${base64url(new TextEncoder().encode(JSON.stringify(auth)))}`;
}

// The `auth` a LobbyConnection's `auth` option gives now: the object itself, or
// what a function (perhaps async: a page fetching a fresh JWT) returns; none: null.
async function credentials(auth) {
  const given = typeof auth === "function" ? await auth() : auth;
  return given === undefined ? null : given;
}

// The lobby answers pings only while it is told something; a frame every few
// seconds keeps a queued or seated player alive (docs/lobby.md, "Limits").
const KEEPALIVE_MS = 4000;
// A WebSocket's readyState when open (the same for the browser's and ws's).
const OPEN = 1;

export class LobbyConnection {
  constructor(url, { onPush = () => {}, onClose = () => {}, WebSocket = globalThis.WebSocket, auth = null } = {}) {
    if (typeof WebSocket !== "function") {
      throw new TypeError(
        "LobbyConnection needs a WebSocket: this runtime has none, so pass one as " +
          "{ WebSocket } (under Node before 22: the ws package's)",
      );
    }
    this.url = url;
    this.onPush = onPush;
    this.onClose = onClose;
    this.WebSocket = WebSocket;
    this.auth = auth;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map();
    this.keepalive = null;
    this.closedByUs = false;
  }

  open() {
    return new Promise((resolve, reject) => {
      const socket = new this.WebSocket(this.url);
      this.socket = socket;
      let opened = false;
      socket.onopen = () => {
        opened = true;
        this.keepalive = setInterval(() => this.send({ type: "ping" }), KEEPALIVE_MS);
        resolve(this);
      };
      socket.onmessage = (event) => this.received(event.data);
      socket.onclose = (event) => {
        clearInterval(this.keepalive);
        this.keepalive = null;
        const error = new Error("the lobby connection closed");
        error.code = "closed";
        for (const { reject: fail } of this.pending.values()) fail(error);
        this.pending.clear();
        if (!opened) {
          reject(new Error("could not reach the lobby"));
          return;
        }
        this.onClose(event, this.closedByUs);
      };
    });
  }

  received(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const waiting = frame.id !== undefined && frame.id !== null
      ? this.pending.get(frame.id)
      : undefined;
    if (waiting !== undefined) {
      this.pending.delete(frame.id);
      if (frame.type === "error") waiting.reject(new LobbyError(frame));
      else waiting.resolve(frame);
      return;
    }
    if (frame.type === "ping" || frame.type === "pong") {
      if (frame.type === "ping") this.send({ type: "ping" });
      return;
    }
    this.onPush(frame);
  }

  send(frame) {
    if (this.socket !== null && this.socket.readyState === OPEN) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  request(frame) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.socket === null || this.socket.readyState !== OPEN) {
        reject(new Error("not connected to the lobby"));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.send({ ...frame, id });
    });
  }

  // `hello` with this connection's `auth` (asked for anew each time: a callback
  // may hand a fresh token) and `previous` (an earlier welcome, or its
  // player_id and secret); the welcome, or a LobbyError (`auth_failed` with its
  // `reason`, `banned`).
  async hello(name, { previous = null } = {}) {
    const frame = { type: "hello", name, protocol: PROTOCOL };
    if (previous !== null) frame.previous = { player_id: previous.player_id, secret: previous.secret };
    const auth = await credentials(this.auth);
    if (auth !== null) frame.auth = auth;
    return this.request(frame);
  }

  // `reconnect` to the match of `player_id` with its secret, signed in as in `hello`.
  async reconnect(playerId, secret) {
    const frame = { type: "reconnect", player_id: playerId, secret, protocol: PROTOCOL };
    const auth = await credentials(this.auth);
    if (auth !== null) frame.auth = auth;
    return this.request(frame);
  }

  // The leaderboard of `game`'s `queue`: the top `limit`, or with `around` the
  // page of it around this signed-in player (docs/lobby.md, "leaderboard").
  leaderboard(game, { queue = "ranked", limit = 10, around = false } = {}) {
    return this.request({ type: "leaderboard", game, queue, limit, around });
  }

  // This signed-in player's last `limit` matches, newest first.
  history({ limit = 10 } = {}) {
    return this.request({ type: "history", limit });
  }

  close() {
    this.closedByUs = true;
    clearInterval(this.keepalive);
    if (this.socket !== null) this.socket.close(1000);
  }
}
