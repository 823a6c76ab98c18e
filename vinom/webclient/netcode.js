// Client-side netcode for real-time games (docs/web.md, "Clock, interpolation
// and prediction"): the JavaScript twin of vinom/client/netcode.py, with the
// same rules, defaults and names in camelCase. Times are seconds (the caller's
// clock: performance.now() / 1000 in a page), ticks are the room's `k`.
//
// ServerClock: each snapshot of tick k received at local time t is a sample
// k / tickRate - t of the offset between the clocks, short by its trip here;
// jitter only lengthens a trip, so the largest offset of the last `window`
// seconds (the fastest trip) plus half the round trip is the estimate; one that
// must come down slews at CLOCK_SLEW rather than stepping back.
//
// SnapshotBuffer: views by server time, rendered at server time minus a delay
// (two snapshot intervals by default): the numeric fields the game names are
// interpolated (the shorter way round on a wrapping world), the rest is the
// newer view's; list items are matched by a key the game names; past the
// newest view, extrapolation for at most one snapshot interval, then a hold.
//
// Predictor: the own state replayed from the newest snapshot through the
// game's step(state, inputs, dt), one fixed step a tick, with the inputs
// stamped after it; each snapshot rewinds and replays, and what that changed
// fades out as an offset (time constant `smoothing`), counted in `corrections`;
// a change beyond `teleport` (a respawn) is shown at once, counted in
// `teleports`. reset() forgets it while the own entity is gone (GameSocket calls
// it for a view with no own state); reset(tick, state) starts over from a state.
//
// PredictedEvents: an event the player caused (a shot), shown at the key press;
// a snapshot whose view names its id confirms it, one that refuses it or comes
// more than EVENT_WAIT_TICKS after its input's tick retracts it.

export const CLOCK_WINDOW = 2.0;
export const CLOCK_SLEW = 0.05; // s/s: how fast the estimate comes down, never a step back
export const DELAY_INTERVALS = 2.0;
export const EXTRAPOLATION_INTERVALS = 1.0;
export const BUFFER_SIZE = 32;
export const SMOOTHING = 0.1;
export const CORRECTION_EPSILON = 1e-6;
export const MAX_PREDICTED_TICKS = 64;
export const EVENT_WAIT_TICKS = 8; // the host applies or drops an input by then

// A decoded view's numbers are plain numbers (delta.js unwraps its floats).
const isNumber = (v) => typeof v === "number";

export class ServerClock {
  constructor(tickRate, { window = CLOCK_WINDOW } = {}) {
    this.tickRate = tickRate;
    this.window = window;
    this.samples = []; // [at, k / tickRate - at, ts - at | null], oldest first
    this.observed = 0;
    this.reordered = 0;
    this.newestTick = -1;
    this.tickOffset = null; // the offsets in use, and when they were last updated
    this.timeOffset = null;
    this.updatedAt = null;
  }

  // A snapshot of tick `tick`, built at `serverMs` (its ts, or null), arrived at `now`.
  observe(tick, serverMs, now) {
    this.observed += 1;
    if (tick < this.newestTick) this.reordered += 1;
    this.newestTick = Math.max(this.newestTick, tick);
    const timeOffset = serverMs === null || serverMs === undefined ? null : serverMs / 1000 - now;
    this.samples.push([now, tick / this.tickRate - now, timeOffset]);
    while (this.samples.length > 1 && this.samples[0][0] < now - this.window) this.samples.shift();
    let best = -Infinity;
    let bestTime = null;
    for (const [, offset, time] of this.samples) {
      best = Math.max(best, offset);
      if (time !== null && (bestTime === null || time > bestTime)) bestTime = time;
    }
    const elapsed = this.updatedAt === null ? 0 : Math.max(0, now - this.updatedAt);
    this.tickOffset = slewed(this.tickOffset, best, elapsed);
    this.timeOffset = slewed(this.timeOffset, bestTime, elapsed);
    this.updatedAt = now;
  }

  get synced() {
    return this.samples.length > 0;
  }

  // The server's fractional tick at `now`, over a round trip of `rtt` s; null before any.
  tick(now, rtt = 0) {
    if (this.tickOffset === null) return null;
    return (this.tickOffset + now + Math.max(0, rtt) / 2) * this.tickRate;
  }

  // The room's time at `now` in seconds (the clock of ts); null before any ts.
  time(now, rtt = 0) {
    return this.timeOffset === null ? null : this.timeOffset + now + Math.max(0, rtt) / 2;
  }
}

// The window's best at once when ahead, else down towards it at CLOCK_SLEW.
function slewed(current, best, elapsed) {
  if (best === null || current === null || best >= current) return best;
  return Math.max(best, current - CLOCK_SLEW * elapsed);
}

function pattern(path) {
  return path === "" ? [] : path.split(".");
}

function matches(pat, path) {
  return pat.length === path.length && pat.every((p, i) => p === "*" || p === path[i]);
}

// { fields: ["players.*.1"], keys: { players: "0" }, wrap: { "players.*.1": 600 } }
export function compile({ fields = [], keys = {}, wrap = {} } = {}) {
  return {
    fields: fields.map(pattern),
    keys: Object.entries(keys).map(([p, k]) => [pattern(p), String(k)]),
    wrap: Object.entries(wrap).map(([p, v]) => [pattern(p), Number(v)]),
  };
}

function lerp(a, b, f, period) {
  if (period === null) return a + (b - a) * f;
  let d = (((b - a) % period) + period) % period;
  if (d > period / 2) d -= period;
  return (((a + d * f) % period) + period) % period;
}

function itemKey(item, key) {
  if (Array.isArray(item)) {
    const i = Number(key);
    return Number.isInteger(i) && i < item.length ? item[i] : undefined;
  }
  if (item !== null && typeof item === "object") return item[key];
  return undefined;
}

function isMap(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && v.constructor === Object;
}

function blendAt(a, b, f, rules, path) {
  if (isMap(b)) {
    if (!isMap(a)) return b;
    const out = {};
    for (const [k, v] of Object.entries(b)) out[k] = blendAt(a[k], v, f, rules, [...path, k]);
    return out;
  }
  if (Array.isArray(b)) {
    if (!Array.isArray(a)) return b;
    const key = rules.keys.find(([p]) => matches(p, path))?.[1] ?? null;
    if (key === null) return b.map((v, i) => blendAt(a[i], v, f, rules, [...path, String(i)]));
    const byKey = new Map();
    for (const item of a) {
      const k = itemKey(item, key);
      if (k !== undefined) byKey.set(k, item);
    }
    return b.map((v, i) => blendAt(byKey.get(itemKey(v, key)), v, f, rules, [...path, String(i)]));
  }
  if (isNumber(a) && isNumber(b) && rules.fields.some((p) => matches(p, path))) {
    const period = rules.wrap.find(([p]) => matches(p, path))?.[1] ?? null;
    return lerp(a, b, f, period);
  }
  return b;
}

// The view `f` of the way from `a` to `b` (above 1 extrapolates): b's structure
// and values, the named numeric fields moved from their value in a.
export function blend(a, b, f, interpolation = {}) {
  return blendAt(a, b, f, compile(interpolation), []);
}

export class SnapshotBuffer {
  constructor(snapshotRate, { interpolation = {}, delay = null, maxExtrapolation = null } = {}) {
    const interval = snapshotRate > 0 ? 1 / snapshotRate : 0.1;
    this.snapshotRate = snapshotRate;
    this.delay = delay ?? DELAY_INTERVALS * interval;
    this.maxExtrapolation = maxExtrapolation ?? EXTRAPOLATION_INTERVALS * interval;
    this.rules = compile(interpolation);
    this.views = []; // [serverTime, view], oldest first
    this.extrapolated = 0;
    this.held = 0;
    this.early = 0;
    this.lastRender = -Infinity;
  }

  push(serverTime, view) {
    const views = this.views;
    if (views.some(([t]) => t === serverTime)) return;
    let i = views.length;
    while (i > 0 && views[i - 1][0] > serverTime) i -= 1;
    views.splice(i, 0, [serverTime, view]);
    if (views.length > BUFFER_SIZE) views.shift();
  }

  // The server time (s) of the last render, or null: what the player saw, for a
  // lag-compensated action (Math.floor(renderedAt * tickRate) is its tick).
  get renderedAt() {
    return this.lastRender === -Infinity ? null : this.lastRender;
  }

  renderTime(serverNow) {
    const at = Math.max(serverNow - this.delay, this.lastRender);
    this.lastRender = at;
    return at;
  }

  sample(at) {
    const views = this.views;
    if (views.length === 0) return null;
    if (at <= views[0][0]) {
      if (at < views[0][0]) this.early += 1;
      return views[0][1];
    }
    for (let i = 1; i < views.length; i++) {
      const [t0, a] = views[i - 1];
      const [t1, b] = views[i];
      if (at <= t1) return blendAt(a, b, (at - t0) / (t1 - t0), this.rules, []);
    }
    const [t1, newest] = views[views.length - 1];
    if (views.length < 2) return newest;
    const [t0, before] = views[views.length - 2];
    let over = at - t1;
    if (over > this.maxExtrapolation) {
      this.held += 1;
      over = this.maxExtrapolation;
    } else {
      this.extrapolated += 1;
    }
    return blendAt(before, newest, 1 + over / (t1 - t0), this.rules, []);
  }

  render(serverNow) {
    return this.sample(this.renderTime(serverNow));
  }
}

export class Predictor {
  // step(state, inputs, dt) -> state: the game's rules for one tick.
  constructor(step, tickRate, {
    smooth = [], wrap = {}, smoothing = SMOOTHING, tolerance = CORRECTION_EPSILON, teleport = Infinity,
  } = {}) {
    this.step = step;
    this.tickRate = tickRate;
    this.smooth = smooth;
    this.wrap = wrap;
    this.smoothing = smoothing;
    this.tolerance = tolerance; // a correction up to this is smoothed, not counted
    this.teleport = teleport; // a correction beyond this is shown at once (a respawn)
    this.teleports = 0;
    this.base = null;
    this.baseTick = -1;
    this.inputs = new Map(); // tick -> [input, ...], ticks after baseTick
    this.corrections = 0;
    this.errorTotal = 0;
    this.lastError = 0;
    this.offsets = {};
    this.offsetAt = 0;
    this.shown = null; // the tick last rendered: where a correction is measured
  }

  // Start over: with no state, the own entity is gone (nothing predicted, the
  // inputs held forgotten, until a snapshot has it again, shown where it is);
  // with `state` (right after `tick`), predicted from it at once, nothing to smooth.
  reset(tick = null, state = null) {
    this.offsets = {};
    this.shown = null;
    if (tick === null || state === null) {
      this.base = null;
      this.baseTick = -1;
      this.inputs.clear();
      return;
    }
    this.base = state;
    this.baseTick = tick;
    for (const k of [...this.inputs.keys()]) if (k <= tick) this.inputs.delete(k);
  }

  add(tick, value) {
    if (tick <= this.baseTick) return;
    if (!this.inputs.has(tick)) this.inputs.set(tick, []);
    this.inputs.get(tick).push(value);
  }

  // The predicted state right after `tick` (null before the first snapshot).
  stateAt(tick) {
    let state = this.base;
    if (state === null) return null;
    const dt = 1 / this.tickRate;
    const last = Math.min(tick, this.baseTick + MAX_PREDICTED_TICKS);
    for (let k = this.baseTick + 1; k <= last; k++) state = this.step(state, this.inputs.get(k) ?? [], dt);
    return state;
  }

  // The prediction at fractional `tick`, the smooth fields blended; no correction.
  at(tick) {
    const whole = Math.floor(tick);
    const a = this.stateAt(whole);
    const b = this.stateAt(whole + 1);
    if (a === null || b === null) return null;
    const f = tick - whole;
    const shown = { ...b };
    for (const name of this.smooth) {
      if (typeof a[name] === "number" && typeof b[name] === "number") {
        shown[name] = lerp(a[name], b[name], f, this.wrap[name] ?? null);
      }
    }
    return shown;
  }

  // A snapshot: the own state right after `tick`. Rewinds, replays, and keeps what
  // that changed at the tick last shown as a fading offset; returns its size.
  reconcile(tick, state, now) {
    if (tick <= this.baseTick) return 0;
    const shownAt = this.shown === null ? tick : Math.max(this.shown, tick);
    const before = this.at(shownAt);
    this.base = state;
    this.baseTick = tick;
    for (const k of [...this.inputs.keys()]) if (k <= tick) this.inputs.delete(k);
    const after = this.at(shownAt);
    if (before === null || after === null) return 0;
    const offsets = this.offset(now);
    let error = 0;
    for (const name of this.smooth) {
      const a = before[name];
      const b = after[name];
      if (typeof a !== "number" || typeof b !== "number") continue;
      let d = a - b;
      const period = this.wrap[name];
      if (period !== undefined) d = ((((d + period / 2) % period) + period) % period) - period / 2;
      error = Math.max(error, Math.abs(d));
      offsets[name] = (offsets[name] ?? 0) + d;
    }
    if (error > this.teleport) {
      // A jump in the game: shown where it is, nothing slides there.
      this.offsets = {};
      this.offsetAt = now;
      this.teleports += 1;
      return error;
    }
    this.offsets = offsets;
    this.offsetAt = now;
    if (error <= Math.max(this.tolerance, CORRECTION_EPSILON)) return 0;
    this.corrections += 1;
    this.errorTotal += error;
    this.lastError = error;
    return error;
  }

  // The correction still shown at `now`, by field.
  offset(now) {
    const fade = this.smoothing > 0 ? Math.exp(-Math.max(0, now - this.offsetAt) / this.smoothing) : 0;
    const out = {};
    for (const [k, v] of Object.entries(this.offsets)) {
      if (Math.abs(v * fade) > CORRECTION_EPSILON) out[k] = v * fade;
    }
    return out;
  }

  // The own state to draw at fractional `tick`, with the fading correction.
  render(tick, now) {
    const shown = this.at(tick);
    if (shown === null) return null;
    this.shown = tick;
    for (const [name, d] of Object.entries(this.offset(now))) {
      if (typeof shown[name] !== "number") continue;
      const period = this.wrap[name] ?? null;
      const value = shown[name] + d;
      shown[name] = period === null ? value : ((value % period) + period) % period;
    }
    return shown;
  }
}

export class PredictedEvents {
  // confirms(view) -> the event ids the view names as happened; refuses(view) ->
  // those the host refused (retracted at once), if given.
  constructor(confirms, { refuses = null, waitTicks = EVENT_WAIT_TICKS } = {}) {
    this.confirms = confirms;
    this.refuses = refuses;
    this.waitTicks = waitTicks;
    this.pending = new Map(); // id -> [the tick of the input that causes it, the event]
    this.confirmed = 0;
    this.retracted = 0;
  }

  // The player caused `event`, named `id`, with the input for `tick` (the tick
  // GameSocket.input returned), which carries the id for the host's game.
  predict(id, tick, event) {
    this.pending.set(id, [tick, event]);
  }

  // The events to draw as predicted, [id, event], oldest first.
  shown() {
    return [...this.pending].map(([id, [, event]]) => [id, event]);
  }

  // A snapshot of `tick` whose view is `view`: {confirmed, retracted}, each a
  // list of [id, event] in the order they were predicted.
  settle(tick, view) {
    const confirmed = [];
    const retracted = [];
    if (this.pending.size === 0) return { confirmed, retracted };
    const named = new Set(this.confirms(view));
    const refused = new Set(this.refuses === null ? [] : this.refuses(view));
    for (const [id, [k, event]] of [...this.pending]) {
      if (named.has(id)) confirmed.push([id, event]);
      else if (refused.has(id) || tick > k + this.waitTicks) retracted.push([id, event]);
      else continue;
      this.pending.delete(id);
    }
    this.confirmed += confirmed.length;
    this.retracted += retracted.length;
    return { confirmed, retracted };
  }
}
