// Types of vinom's browser client modules (docs/web.md, "The client package"):
// lobby.js, game.js, transport.js and netcode.js. Every import is by file, as the web
// client itself imports them: `import { GameSocket } from "@vinom/client/game.js"`.

// ---- lobby.js: the lobby over WebSocket (docs/lobby.md) ----

/** The game protocol this client speaks, said in `hello` and `reconnect`. */
export declare const PROTOCOL: number;
/** What each lobby error code means for a player. */
export declare const LOBBY_ERRORS: Readonly<Record<string, string>>;
export declare function lobbyErrorText(code: string, message?: string): string;

/** A lobby frame: JSON, its `type` naming it (docs/lobby.md). */
export interface LobbyFrame {
  type: string;
  id?: number | string | null;
  [key: string]: unknown;
}

/** The public part of a connect token, as `match_found` carries it. */
export interface PublicToken {
  version: number;
  application_id: number | string;
  expires_at: number | string;
  nonce: string;
  token: string;
  [key: string]: unknown;
}

export interface MatchFound extends LobbyFrame {
  type: "match_found";
  game: string;
  game_url?: string;
  token: PublicToken;
}

export declare class LobbyError extends Error {
  constructor(frame: LobbyFrame);
  code: string;
  frame: LobbyFrame;
}

export declare class LobbyConnection {
  constructor(url: string, options?: {
    /** Frames the server sends on its own (match_found, room_update, ...). */
    onPush?: (frame: LobbyFrame) => void;
    onClose?: (event: { code: number; reason: string }, byUs: boolean) => void;
  });
  open(): Promise<LobbyConnection>;
  /** Sends `frame` with a fresh id; the reply with that id, or a LobbyError. */
  request(frame: LobbyFrame): Promise<LobbyFrame>;
  send(frame: LobbyFrame): void;
  close(): void;
}

// ---- transport.js: which connection carries the game session ----

/** How long the WebTransport attempt may take before the WebSocket is used (ms). */
export declare const FALLBACK_MS: number;
/** The largest message sent as one datagram. */
export declare const MAX_DATAGRAM: number;
/** After a failed attempt, how long that game server's sessions use the WebSocket at once (ms). */
export declare const RETRY_AFTER_MS: number;
/** Forget the failed attempts: the next session tries WebTransport again. */
export declare function forgetFailures(): void;
export type TransportKind = "webtransport" | "websocket";

export declare function webUrl(gameUrl: string, path: string): string;
export declare function webTransportOffer(gameUrl: string, options?: { signal?: AbortSignal }):
  Promise<{ url: string; hashes: { algorithm: "sha-256"; value: Uint8Array }[] } | null>;

/** A WebSocket-like connection over WebTransport, else the WebSocket at `gameUrl`. */
export declare class GameConnection {
  constructor(gameUrl: string, options?: {
    /** false: the WebSocket only. */
    webTransport?: boolean;
    fallbackMs?: number;
    onKind?: (kind: TransportKind) => void;
  });
  readonly kind: TransportKind | null;
  readyState: 0 | 1 | 3;
  binaryType: "arraybuffer";
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: ArrayBuffer }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  /** One message, reliable and in order. */
  send(data: Uint8Array): void;
  /** One message that may be lost: a datagram on WebTransport when it fits. */
  sendUnreliable(data: Uint8Array): void;
  close(code?: number): void;
}

// ---- game.js: the game session (docs/protocol.md, section 14) ----

export declare const MAX_PENDING_INPUTS: number;
export declare const ACK_ONLY_INTERVALS: number;
export declare const ACK_ONLY_FLOOR_MS: number;
export declare const CLOSE_REASONS: Readonly<Record<number, string>>;
export declare const TOKEN_REFUSALS: Readonly<Record<string, string>>;
/** What a close of the game session means for a player, in words. */
export declare function closeText(code: number, reason?: string): string;
/** The 1200-byte request packet of docs/protocol.md 5.2, from a match's token. */
export declare function requestPacket(token: PublicToken): Uint8Array;
/** Where to play a match: `match_found`'s game_url, or /game on the page's host. */
export declare function gameUrl(found: { game_url?: string }, location: { protocol: string; host: string }): string;

/** A room message from the game host: `t` names it (welcome, state, event, phase, ...). */
export interface RoomMessage {
  t: string;
  [key: string]: unknown;
}

/** The state a board draws (a `snap` arrives rebuilt as one). */
export interface GameState extends RoomMessage {
  t: "state";
  v: number;
  p: string;
  r: number | null;
  k: number;
  ts: number;
  s: unknown;
  i: number | null;
}

export declare class GameSocket {
  constructor(url: string, token: PublicToken, options?: {
    onMessage?: (message: RoomMessage) => void;
    onClose?: (event: { code: number; reason: string }, byUs: boolean) => void;
    /** Which connection carries the session, once known. */
    onKind?: (kind: TransportKind) => void;
    /** Makes the connection (default: a GameConnection). */
    open?: (url: string) => Pick<GameConnection, "send" | "close" | "readyState" | "onopen" | "onmessage" | "onclose">;
  });
  tickRate: number;
  snapshotRate: number;
  rtt: number | null;
  /** Sends a game action; its id (echoed in an error and in my state's `i`). */
  act(action: Record<string, unknown>): number;
  /** Sends a real-time input stamped with its tick, repeated until acknowledged; the tick. */
  input(input: Record<string, unknown>): number;
  sync(): void;
  leave(): void;
  close(): void;
}

// ---- netcode.js: clock, interpolation and prediction (docs/web.md) ----
// Times are seconds of the caller's clock (performance.now() / 1000 in a page).

export declare const CLOCK_WINDOW: number;
export declare const CLOCK_SLEW: number;
export declare const DELAY_INTERVALS: number;
export declare const EXTRAPOLATION_INTERVALS: number;
export declare const BUFFER_SIZE: number;
export declare const SMOOTHING: number;
export declare const CORRECTION_EPSILON: number;
export declare const MAX_PREDICTED_TICKS: number;

/** Which numeric fields of a view are interpolated (paths such as "players.*.1"),
 * the key that matches a list's items, and the worlds that wrap (field: its size). */
export interface Interpolation {
  fields?: string[];
  keys?: Record<string, string>;
  wrap?: Record<string, number>;
}

/** The server's tick and time, estimated from the snapshots' ticks and `ts`. */
export declare class ServerClock {
  constructor(tickRate: number, options?: { window?: number });
  tickRate: number;
  observed: number;
  reordered: number;
  /** A snapshot of `tick`, built at `serverMs` (its ts, or null), arrived at `now`. */
  observe(tick: number, serverMs: number | null, now: number): void;
  readonly synced: boolean;
  /** The server's fractional tick at `now`; null before any snapshot. */
  tick(now: number, rtt?: number): number | null;
  /** The room's time at `now` in seconds (the clock of ts); null before any ts. */
  time(now: number, rtt?: number): number | null;
}

/** The rules of an `Interpolation`, compiled once. */
export declare function compile(interpolation?: Interpolation): unknown;
/** `a` and `b` blended at `f` (0: a, 1: b) by the interpolation's fields. */
export declare function blend<T>(a: T, b: T, f: number, interpolation?: Interpolation): T;

/** Views by server time, rendered `delay` seconds behind it. */
export declare class SnapshotBuffer<V = unknown> {
  constructor(snapshotRate: number, options?: {
    interpolation?: Interpolation;
    delay?: number | null;
    maxExtrapolation?: number | null;
  });
  delay: number;
  extrapolated: number;
  held: number;
  early: number;
  push(serverTime: number, view: V): void;
  /** The server time of the last render, or null (a lag-compensated action's tick). */
  readonly renderedAt: number | null;
  renderTime(serverNow: number): number;
  sample(at: number): V | null;
  render(serverNow: number): V | null;
}

/** The own state predicted from the newest snapshot through the game's `step`. */
export declare class Predictor<S = Record<string, unknown>, I = Record<string, unknown>> {
  constructor(step: (state: S, inputs: I[], dt: number) => S, tickRate: number, options?: {
    smooth?: string[];
    wrap?: Record<string, number>;
    smoothing?: number;
    tolerance?: number;
    /** A correction beyond this is shown at once, not smoothed (a respawn). */
    teleport?: number;
  });
  corrections: number;
  teleports: number;
  /** Start over: no state, the own entity is gone; a state (at `tick`), predicted from it at once. */
  reset(tick?: number | null, state?: S | null): void;
  add(tick: number, value: I): void;
  stateAt(tick: number): S | null;
  at(tick: number): S | null;
  /** A snapshot: the own state right after `tick`; the size of the correction. */
  reconcile(tick: number, state: S, now: number): number;
  offset(now: number): Record<string, number>;
  render(tick: number, now: number): S | null;
}
