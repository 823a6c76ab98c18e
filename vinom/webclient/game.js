// The game session over WebSocket (docs/web.md, "The game session over
// WebSocket"): the first message is the 1200-byte request packet built from
// match_found's token, then every message both ways is one msgpack room
// message (docs/protocol.md, section 14).

import { decode, encode } from "./msgpack.js";

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
  constructor(url, token, { onMessage = () => {}, onClose = () => {} } = {}) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.nextAction = 1;
    this.closedByUs = false;
    this.socket = new WebSocket(url);
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
        this.onMessage(message);
      }
    };
    this.socket.onclose = (event) => this.onClose(event, this.closedByUs);
  }

  send(message) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(encode(message));
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
