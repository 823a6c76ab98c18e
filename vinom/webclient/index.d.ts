// Types of vinom's browser client modules (docs/web.md, "The client package"):
// lobby.js, transport.js, game.js, netcode.js, delta.js and codec.js, one section
// each. The package's root (`import { GameSocket } from "@vinom/client"`, index.js)
// exports them all; each module can be imported by its file name too, as the web
// client itself imports them: `import { GameSocket } from "@vinom/client/game.js"`.

/** What a WebSocket constructor makes: the browser's WebSocket, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
}
/** A WebSocket constructor (`globalThis.WebSocket` by default; Node before 22 has none). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

// ---- lobby.js: the lobby over WebSocket (docs/lobby.md) ----

/** The game protocol this client speaks, said in `hello` and `reconnect`. */
export declare const PROTOCOL: number;
/** What each lobby error code means for a player. */
export declare const LOBBY_ERRORS: Readonly<Record<string, string>>;
export declare function lobbyErrorText(code: string, message?: string): string;
/** An error frame in words: `auth_failed` by its `reason`, `banned` with its `reason` and `until`. */
export declare function errorFrameText(
  frame: { code: string; message?: string; reason?: unknown; until?: number | null },
): string;

/** The `auth` object of `hello` and `reconnect` (docs/lobby.md, "Authentication"). */
export interface Auth {
  kind: string;
  [key: string]: string | number | boolean | null;
}
/** A guest's `auth` (the same as none). */
export declare const GUEST: Readonly<{ kind: "guest" }>;
/** The credentials of a JWT from the studio's identity provider (`--auth jwt`). */
export declare function jwtAuth(token: string): { kind: "jwt"; token: string };
/** The credentials of a token the studio's backend signed (`--auth signed`). */
export declare function signedAuth(token: string): { kind: "signed"; token: string };
/** Where a device identity is kept by default: this key of the page's localStorage. */
export declare const DEVICE_KEY: string;
/** The part of a Web Storage (localStorage, sessionStorage) a device identity is kept in. */
export interface DeviceStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}
export interface DeviceOptions {
  /** Where the identity is kept (default: the page's localStorage). */
  storage?: DeviceStorage;
  /** Its key there (default: DEVICE_KEY). */
  key?: string;
  /** What makes the random bytes (default: the runtime's Web Crypto). */
  crypto?: { getRandomValues<T extends Uint8Array>(array: T): T };
}
/** The device id and secret kept in `storage`, made (and kept) on first use. */
export declare function deviceIdentity(options?: DeviceOptions): { device_id: string; secret: string };
/** The credentials of the kept device identity (`--auth device`). */
export declare function deviceAuth(options?: DeviceOptions): { kind: "device"; device_id: string; secret: string };
/** `Authorization: Vinom <base64url of the auth's JSON>`: a request the web server signs in (a replay of my own match). */
export declare function authorizationHeader(auth: Auth): string;
/** Why a sign-in was refused (an `auth_failed`'s `reason`), in words for the player. */
export declare const AUTH_FAILED_REASONS: Readonly<Record<string, string>>;

/** A frame the client sends (docs/lobby.md, "Client frames"); `request` adds its `id`. */
export interface ClientFrame {
  type: string;
  [key: string]: unknown;
}

/** What every frame from the lobby may carry: the `id` of the request it answers. */
interface LobbyFrameBase {
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

/** The UDP relay in front of the game hosts (docs/gateway.md, "UDP relay"). */
export interface RelayRoute {
  host: string;
  port: number;
  token: string;
}

export interface Welcome extends LobbyFrameBase {
  type: "welcome";
  player_id: string;
  name: string;
  secret: string;
  /** Game name -> players per match. */
  games: Record<string, number>;
  /** Game name -> its display name. */
  titles: Record<string, string>;
  protocol: number;
  withdrawn?: boolean;
  /** The `kind` of credentials that signed the player in; absent for a guest. */
  auth?: string;
}

export interface Queued extends LobbyFrameBase {
  type: "queued";
  game: string;
  queue?: "normal" | "ranked";
  position: number;
  status: "searching" | "waiting_for_server";
  requeued?: true;
  reason?: string;
  party_id?: string;
}

export interface Cancelled extends LobbyFrameBase {
  type: "cancelled";
  game: string;
  party_id?: string;
  reason?: string;
}

export interface Ping extends LobbyFrameBase {
  type: "ping";
}

export interface Pong extends LobbyFrameBase {
  type: "pong";
  /** The server's clock, Unix seconds. */
  time: number;
}

export interface MatchFound extends LobbyFrameBase {
  type: "match_found";
  game: string;
  game_id: string;
  host: string;
  port: number;
  seat: number;
  token: PublicToken;
  expires_at: number | null;
  relay?: RelayRoute;
  game_url?: string;
}

export interface Spectating extends LobbyFrameBase {
  type: "spectating";
  game: string;
  game_id: string;
  host: string;
  port: number;
  players: { id: string; name: string }[];
  token: PublicToken;
  relay?: RelayRoute;
  game_url?: string;
}

/** An open room, as `room`, `room_update` and `room_list` carry it (docs/lobby.md, "Rooms"). */
export interface Room {
  room_id: string;
  game: string;
  seats: number;
  taken: number;
  owner: string;
  private?: boolean;
  code?: string;
  players?: { name: string; bot: boolean; owner: boolean }[];
  [key: string]: unknown;
}

export interface RoomFrame extends LobbyFrameBase {
  type: "room";
  room: Room;
}

export interface RoomUpdate extends LobbyFrameBase {
  type: "room_update";
  room: Room;
}

export interface RoomList extends LobbyFrameBase {
  type: "room_list";
  rooms: Room[];
  offset: number;
  more: boolean;
}

export interface RoomLeft extends LobbyFrameBase {
  type: "room_left";
}

/** A party, as `party` and `party_update` carry it (docs/lobby.md, "Parties"). */
export interface Party {
  party_id: string;
  code: string;
  leader: string;
  members: { player_id: string; name: string }[];
  queued_for: string | null;
  queue?: string | null;
  [key: string]: unknown;
}

export interface PartyFrame extends LobbyFrameBase {
  type: "party";
  party: Party;
}

export interface PartyUpdate extends LobbyFrameBase {
  type: "party_update";
  event: "joined" | "left" | "queued" | "unqueued";
  player_id: string;
  party: Party;
}

export interface PartyLeft extends LobbyFrameBase {
  type: "party_left";
  party_id: string;
  reason?: string;
}

/** An error (docs/lobby.md, "Errors"); `request` rejects with it as a LobbyError. */
export interface ErrorFrame extends LobbyFrameBase {
  type: "error";
  code: string;
  message: string;
  id: number | string | null;
}

/** Why a sign-in was refused (docs/lobby.md, "Authentication"). */
export type AuthFailedReason =
  | "required" | "wrong_kind" | "malformed" | "too_large" | "expired" | "not_yet_valid"
  | "wrong_issuer" | "wrong_audience" | "bad_signature" | "bad_algorithm" | "unknown_kid"
  | "missing_claim" | "too_long_lived" | "bad_secret" | "invalid" | "unavailable" | "rate_limited";

/** A refused sign-in: the connection stays open, `hello` may be sent again. */
export interface AuthFailed extends ErrorFrame {
  code: "auth_failed";
  reason: AuthFailedReason;
}

/** A banned account's sign-in; the lobby closes the connection. */
export interface Banned extends ErrorFrame {
  code: "banned";
  reason: string;
  /** When the ban ends, Unix seconds, or null: for good. */
  until: number | null;
}

/** One place of a leaderboard. */
export interface LeaderboardEntry {
  rank: number;
  player_id: string;
  name: string;
  /** The conservative value the board is ordered by (mu - 3 sigma). */
  rating: number;
  mu: number;
  sigma: number;
  matches: number;
}

/** The reply to `leaderboard`: the top of a game's queue, or the page around the player. */
export interface Leaderboard extends LobbyFrameBase {
  type: "leaderboard";
  game: string;
  queue: string;
  entries: LeaderboardEntry[];
}

/** One of a player's matches, as `history` lists them. */
export interface HistoryMatch {
  /** The match record's id: its replay is `/replays/<match_id>`. */
  match_id: string;
  game: string;
  queue: string;
  /** When it ended, Unix seconds. */
  ended: number;
  result: "win" | "loss" | "draw";
  /** With more than two players: this player's place (1 is first). */
  placement?: number;
  opponents: { player_id: string; name: string }[];
  /** The conservative rating after the match and its change; null for an unrated match. */
  rating: number | null;
  change: number | null;
}

/** The reply to `history`: the signed-in player's last matches, newest first. */
export interface History extends LobbyFrameBase {
  type: "history";
  player_id: string;
  matches: HistoryMatch[];
}

/** Pushed after a ranked match to each signed-in player of it: the new rating and its change. */
export interface RatingChange extends LobbyFrameBase {
  type: "rating";
  match_id: string;
  game: string;
  queue: string;
  rating: number;
  change: number;
}

/** A frame from the lobby (docs/lobby.md): `type` tells which, and narrows it. */
export type LobbyFrame =
  | Welcome
  | Queued
  | Cancelled
  | Ping
  | Pong
  | MatchFound
  | Spectating
  | RoomFrame
  | RoomUpdate
  | RoomList
  | RoomLeft
  | PartyFrame
  | PartyUpdate
  | PartyLeft
  | Leaderboard
  | History
  | RatingChange
  | AuthFailed
  | Banned
  | ErrorFrame;

export declare class LobbyError extends Error {
  constructor(frame: ErrorFrame);
  code: string;
  frame: ErrorFrame;
}

export declare class LobbyConnection {
  constructor(url: string, options?: {
    /** Frames the server sends on its own (match_found, room_update, ...). */
    onPush?: (frame: LobbyFrame) => void;
    onClose?: (event: { code: number; reason: string }, byUs: boolean) => void;
    /** Makes the socket (default: the runtime's WebSocket; under Node 20, pass the `ws` package's). */
    WebSocket?: WebSocketConstructor;
    /** The `auth` of `hello` and `reconnect`, or what gives it (a callback fetching a fresh JWT). */
    auth?: Auth | null | (() => Auth | null | Promise<Auth | null>);
  });
  open(): Promise<LobbyConnection>;
  /** `hello` with the connection's `auth`: the welcome, or a LobbyError (`auth_failed`, `banned`). */
  hello(name: string, options?: { previous?: { player_id: string; secret: string } | null }): Promise<Welcome>;
  /** `reconnect` to a match, signed in as `hello` is. */
  reconnect(playerId: string, secret: string): Promise<LobbyFrame>;
  /** The top `limit` of `game`'s `queue` (default ranked, 10), or with `around` the page around me. */
  leaderboard(game: string, options?: { queue?: string; limit?: number; around?: boolean }): Promise<Leaderboard>;
  /** My last `limit` matches (default 10), newest first. */
  history(options?: { limit?: number }): Promise<History>;
  /** Sends `frame` with a fresh id; the reply with that id, or a LobbyError. */
  request(frame: ClientFrame): Promise<LobbyFrame>;
  send(frame: ClientFrame): void;
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
    /** Why WebTransport was not used (nothing is logged otherwise). */
    onFallback?: (why: string) => void;
    /** Makes the WebSocket (default: the runtime's). */
    WebSocket?: WebSocketConstructor;
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

/** An input's [b, f] (docs/protocol.md 14, `input`): given while fractional tick `seen` was drawn; null: nothing to say. */
export declare function drawnFields(k: number, seen: number): [number, number] | null;
/** A `snap` (docs/protocol.md 14: 0xC1, five LEB128 numbers, d): v, ts, r and ik as sent (relative to d's header), in `relative`, for resolveRelativeSnap; null when it is not one. */
export declare function snapOfPacked(bytes: Uint8Array): {
  t: "snap"; relative: [number, number, number, number]; i: number | null; d: Uint8Array;
} | null;
/** A snap's v, ts, r (s) and ik filled in, given the tick its d rebuilt and the [v, ts, r in ms] of the snap of its baseline tick (null: d was full); returns its own [v, ts, r in ms]. */
export declare function resolveRelativeSnap(
  snap: { relative?: [number, number, number, number]; [key: string]: unknown }, tick: number,
  base: [number, number, number | null] | null,
): [number, number, number | null];

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

/** The options of `GameSocket.interpolate` (those of a SnapshotBuffer). */
export interface InterpolateOptions {
  interpolation?: Interpolation;
  delay?: number | null;
  maxExtrapolation?: number | null;
}

/** The options of `GameSocket.predict` (those of a Predictor). */
export interface PredictOptions {
  smooth?: string[];
  wrap?: Record<string, number>;
  smoothing?: number;
  tolerance?: number;
  /** A correction beyond this is shown at once, not smoothed (a respawn). */
  teleport?: number;
}

/**
 * The game session. For a real-time game, `View` is the type of a snapshot's view
 * (a state's `s`), `Own` the player's own state that `predict` steps and `Input` what
 * `input` sends: `new GameSocket<World, Tank, Controls>(...)`.
 */
export declare class GameSocket<View = unknown, Own = Record<string, unknown>, Input = Record<string, unknown>> {
  constructor(url: string, token: PublicToken, options?: {
    onMessage?: (message: RoomMessage) => void;
    onClose?: (event: { code: number; reason: string }, byUs: boolean) => void;
    /** Which connection carries the session, once known. */
    onKind?: (kind: TransportKind) => void;
    /** Why WebTransport was not used. */
    onFallback?: (why: string) => void;
    /** A message dropped as unreadable (nothing is logged otherwise). */
    onWarning?: (text: string, error: unknown) => void;
    /** Makes the WebSocket (default: the runtime's). */
    WebSocket?: WebSocketConstructor;
    /** Makes the connection (default: a GameConnection). */
    open?: (url: string) => Pick<GameConnection, "send" | "close" | "readyState" | "onopen" | "onmessage" | "onclose">;
  });
  /** The welcome's ticks per second (0: no tick) and states per second. */
  tickRate: number;
  snapshotRate: number;
  /** Seconds, from the acknowledgements of inputs and of snaps; null before any. */
  rtt: number | null;
  /** The clock sync of a game with a tick, from its welcome on; null before. */
  serverClock: ServerClock | null;
  /** The snapshot decoder (its `drops` count what was dropped, by reason). */
  snapshots: SnapshotReceiver<View>;
  /** The server's fractional tick now (`now`: seconds, performance.now() / 1000); null before a snap. */
  serverTick(now?: number): number | null;
  /** The room's time now in seconds (the clock of a state's `ts`); null before a snap. */
  serverTime(now?: number): number | null;
  /** The fractional tick an input given now reaches the host at (what `predicted` shows). */
  predictionTick(now?: number): number | null;
  /** Keep the snaps' views from now on for `rendered` (a game with a tick, after its welcome). */
  interpolate(options?: InterpolateOptions): SnapshotBuffer<View>;
  /** The interpolated view to draw now; null before `interpolate` and a snap. */
  rendered(now?: number): View | null;
  /** Predict the own state: `own(view)` its part of a view (null: none), `step` the game's rules for a tick. */
  predict(
    step: (state: Own, inputs: Input[], dt: number) => Own,
    own: (view: View) => Own | null | undefined,
    options?: PredictOptions,
  ): Predictor<Own, Input>;
  /** The own state to draw now; null before `predict` and a snap. */
  predicted(now?: number): Own | null;
  /** Show the events this player causes before the host's word: `confirms(view)` the
   * ids a view names as happened; each applied snap settles them, told to `onEvents`. */
  predictEvents<E = unknown>(
    confirms: (view: View) => Iterable<unknown>,
    options?: { refuses?: ((view: View) => Iterable<unknown>) | null; waitTicks?: number },
    onEvents?: ((settled: EventsSettled<E>) => void) | null,
  ): PredictedEvents<View, E>;
  /** The predicted events, once `predictEvents` was called; null before. */
  events: PredictedEvents<View> | null;
  /** Sends a game action; its id (echoed in an error and in my state's `i`). */
  act(action: Record<string, unknown>): number;
  /** Sends a real-time input stamped with its tick, repeated until acknowledged; the tick. */
  input(input: Input): number;
  sync(): void;
  leave(): void;
  close(): void;
}

/** The netcode of a board's `game` object, each call passed to `net()` (a live
 * match's GameSocket, or a replay's, where `predict*` give null). */
export declare function boardNetcode(net: () => GameSocket): Pick<
  GameSocket,
  "serverTick" | "serverTime" | "interpolate" | "rendered" | "predict" | "predicted" | "predictEvents"
> & { tickRate(): number; snapshotRate(): number };

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
/** The ticks after its input's tick a predicted event waits to be confirmed. */
export declare const EVENT_WAIT_TICKS: number;

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

/** What one snapshot settled of the predicted events, each [id, event]. */
export interface EventsSettled<E = unknown> {
  confirmed: [unknown, E][];
  retracted: [unknown, E][];
}

/** Events the player caused, shown before the host's word, settled by the snapshots. */
export declare class PredictedEvents<V = unknown, E = unknown> {
  constructor(confirms: (view: V) => Iterable<unknown>, options?: {
    refuses?: ((view: V) => Iterable<unknown>) | null;
    waitTicks?: number;
  });
  confirmed: number;
  retracted: number;
  /** The player caused `event`, named `id`, with its input for `tick`. */
  predict(id: unknown, tick: number, event: E): void;
  /** The events to draw as predicted, oldest first. */
  shown(): [unknown, E][];
  /** A snapshot of `tick` whose view is `view`: what it confirmed and retracted. */
  settle(tick: number, view: V): EventsSettled<E>;
}

// ---- delta.js: delta snapshots (docs/protocol.md, section 16) ----

/** The views a SnapshotReceiver keeps, by tick. */
export declare const RECEIVER_HISTORY: number;
/** The deepest nesting of a view. */
export declare const MAX_DEPTH: number;
/** Why a SnapshotReceiver drops a snapshot (the keys of its `drops`). */
export declare const DROP_REASONS: readonly ["corrupt", "unknown_baseline", "checksum", "stale"];
export type DropReason = (typeof DROP_REASONS)[number];

export declare class DeltaError extends Error {}
export declare class CorruptSnapshot extends DeltaError {}
export declare class UnknownBaseline extends DeltaError {
  constructor(tick: number);
  tick: number;
}
export declare class ChecksumMismatch extends DeltaError {}

/** A game's quantisation rules, as the welcome's `q` carries them: [pattern, step or "f32"] pairs. */
export type QuantisationRules = [string, number | "f32"][] | Record<string, number | "f32">;

export declare class Quantisation {
  constructor(rules?: QuantisationRules | null);
}
export declare const NO_QUANTISATION: Quantisation;

/** CRC-32 of bytes, zlib's. */
export declare function crc32(bytes: Uint8Array): number;
/** The canonical msgpack encoding of a decoded view (16.4). */
export declare function canonicalEncoding(view: unknown): Uint8Array;
/** CRC-32 of a view's canonical encoding. */
export declare function checksum(view: unknown): number;

/** A decoded snapshot: the view of `tick`, rebuilt against `baselineTick` (null: sent whole). */
export interface Snapshot<V = unknown> {
  tick: number;
  baselineTick: number | null;
  checksum: number | null;
  view: V;
}

/** Decodes a snapshot against the views held by tick; throws only a DeltaError. */
export declare function decodeSnapshot<V = unknown>(
  data: Uint8Array | ArrayBuffer,
  baselines: Map<number, unknown> | Record<number, unknown>,
  quantisation?: Quantisation,
  options?: { verify?: boolean },
): Snapshot<V>;

/** The client's side: the views rebuilt by tick, the newest applied, the drops by reason. */
export declare class SnapshotReceiver<V = unknown> {
  constructor(options?: {
    rules?: QuantisationRules | null;
    quantisation?: Quantisation | null;
    capacity?: number;
    /** The welcome's `vs`, compiled: schema snapshots (16.8) are read too. */
    schema?: ViewSchema | null;
  });
  quantisation: Quantisation;
  capacity: number;
  newest: number | null;
  applied: number;
  drops: Record<DropReason, number>;
  schema: ViewSchema | null;
  /** The wire views of the schema snapshots applied, by tick (as received: waiting rows not carried). */
  wires: Map<number, SchemaWire>;
  /** The rows that waited in those of `wires` that had any, by tick. */
  waited: Map<number, SchemaWaiting>;
  /** Applies a snapshot newer than the newest applied one; null when dropped (never throws on bytes). */
  receive(data: unknown): Snapshot<V> | null;
}

// ---- schema.js: schema snapshots (docs/protocol.md, section 16.8) ----

/** The first byte of a schema snapshot. */
export declare const SCHEMA_FORMAT: number;

/** A field's kind as a game declares it: ["int", lo, hi], ["fixed", lo, hi, step], ["bool"], ["any"], ["rows", [kind, ...]]. */
export type SchemaKind =
  | ["int", number, number]
  | ["fixed", number, number, number]
  | ["bool"]
  | ["any"]
  | ["rows", SchemaKind[]];
/** A game's view schema, as the welcome's `vs` carries it. */
export type SchemaDeclaration = [string, SchemaKind][] | Record<string, SchemaKind>;
/** A view as it travels, one value per field: integers, booleans, msgpack bytes, rows by id. */
export type SchemaWire = unknown[];

/** The rows that wait in a delta (flag 02): a rows field's position -> their ids. */
export type SchemaWaiting = Map<number, number[]>;

/** A schema snapshot's header. */
export interface SchemaFrame {
  tick: number;
  /** 0: a full body; else the baseline is tick - distance. */
  distance: number;
  checksum: number | null;
  body: Uint8Array;
  /** Its rows carry wait bits (flag 02). */
  waits: boolean;
}

/** A decoded schema snapshot: the wire view of `tick`, decoded against `baselineTick` (null: full). */
export interface SchemaSnapshot {
  tick: number;
  baselineTick: number | null;
  checksum: number | null;
  wire: SchemaWire;
  /** The rows that wait (empty: none). */
  waiting: SchemaWaiting;
}

/** A game's declared view; throws a TypeError for a declaration this client cannot read. */
export declare class ViewSchema<V = Record<string, unknown>> {
  constructor(declaration: SchemaDeclaration);
  /** The wire view of a body against the baseline's (null: full); throws CorruptSnapshot.
   *  With `waiting`, the rows carry wait bits: their waiting ids are set in it. */
  decodeBody(base: SchemaWire | null, body: Uint8Array, waiting?: SchemaWaiting | null): SchemaWire;
  /** The view rebuilt from a wire view (rows in ascending id order). */
  rebuild(wire: SchemaWire): V;
  /** CRC-32 of the rebuilt view's canonical encoding (16.4). */
  checksum(wire: SchemaWire): number;
  parseFrame(data: Uint8Array | ArrayBuffer): SchemaFrame;
  decodeFrame(data: Uint8Array | ArrayBuffer, baselines: Map<number, SchemaWire> | Record<number, SchemaWire>): SchemaSnapshot;
  carryWaiting(tick: number, wire: SchemaWire, waiting: SchemaWaiting, kept: Map<number, [SchemaWire, SchemaWaiting]>): SchemaWire;
}

/** A schema snapshot's header; throws CorruptSnapshot. */
export declare function parseSchemaFrame(data: Uint8Array | ArrayBuffer): SchemaFrame;
export declare function unzigzag(z: number): number;
/** Decodes a schema snapshot against the wire views held by tick; throws only UnknownBaseline or CorruptSnapshot. */
export declare function decodeSchemaFrame(
  schema: ViewSchema<unknown>,
  data: Uint8Array | ArrayBuffer,
  baselines: Map<number, SchemaWire> | Record<number, SchemaWire>,
): SchemaSnapshot;
/** How far a waiting row is carried on: at most this many times its newest samples' gap. */
export declare const CARRIED_INTERVALS: number;
/** The wire view shown for a snapshot whose rows `waiting` wait: each carried on from its
 *  newest samples in `kept` (tick -> the wire view and waiting rows of a snapshot applied before). */
export declare function carryWaiting(
  schema: ViewSchema<unknown>,
  tick: number,
  wire: SchemaWire,
  waiting: SchemaWaiting,
  kept: Map<number, [SchemaWire, SchemaWaiting]>,
): SchemaWire;

// ---- codec.js: MessagePack for vinom's messages (docs/web.md, "The MessagePack library") ----

/** Anything that is not one msgpack value (truncated, trailing bytes, bad UTF-8, too deep). */
export declare class DecodeError extends Error {}
/** A msgpack ext value (the timestamp type -1 too). */
export declare class Ext {
  constructor(type: number, data: Uint8Array);
  type: number;
  data: Uint8Array;
}
/** A number to be encoded as float 32; a typed decode's float 32. */
export declare class Float32 {
  constructor(value: number);
  value: number;
}
/** A typed decode's float 64; encoded as float 64. */
export declare class Float64 {
  constructor(value: number);
  value: number;
}
/** One msgpack value; `typed`: floats as Float32/Float64 and only str map keys (delta.js). */
export declare function decode(input: Uint8Array | ArrayBuffer, options?: { typed?: boolean }): unknown;
/** The msgpack encoding of a value (Maps in their order, Float32 as float 32, BigInts as 64-bit integers). */
export declare function encode(value: unknown): Uint8Array;
