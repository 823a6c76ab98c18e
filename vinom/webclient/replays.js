// The page's request for a finished match's replay (`GET /replays/<match id>`,
// docs/web.md "Replays"), with its wait on a busy server: a 503 says when to ask
// again (`Retry-After`: 1 while another replay is being made; the seconds until
// the replays' CPU share is back), and a viewer who arrives at such a moment
// should see the replay follow, not "busy". The page's shell (app.js) draws it.

import { blend } from "./netcode.js";

// At most this many 503s are waited out, each of at most this many seconds: a
// longer wait, or a 503 without a usable Retry-After, is the answer (the server's
// words, "replays are busy: try again in N s").
export const REPLAY_TRIES = 10;
export const REPLAY_WAIT_MAX_S = 10;

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// The answer to GET `url` once it is not a 503 the page waits out, or null when
// `wanted()` turns false while waiting (the viewer asked for something else).
// `onWait(seconds)` is called before each wait. `headers` go with every request
// (a signed-in player's Authorization: their own match's replay is theirs to
// open). `pause` stands in for the timer in tests.
export async function fetchReplay(url, { wanted = () => true, onWait = () => {}, pause = sleep, headers = {} } = {}) {
  let response = await fetch(url, { headers });
  for (let tries = 0; response.status === 503 && tries < REPLAY_TRIES; tries += 1) {
    const wait = Number(response.headers.get("Retry-After"));
    if (!(Number.isInteger(wait) && wait > 0 && wait <= REPLAY_WAIT_MAX_S)) break;
    if (!wanted()) return null;
    onWait(wait);
    await pause(wait);
    if (!wanted()) return null;
    response = await fetch(url, { headers });
  }
  return wanted() ? response : null;
}

// What a board's `game` gives a real-time board in a replay (docs/web.md,
// "Replays"), in place of a live match's GameSocket: `rendered()` is the view
// at the replay's time `time()` (ms of match time), the named fields
// interpolated between the two frames around it as `interpolate(options)`
// says (netcode.js `blend`: the same rules as a live match's SnapshotBuffer),
// so a board draws every animation frame between the frames the record keeps
// (at most 10 a second). Nobody plays in a replay: `predicted()` is null.
export class ReplayNetcode {
  constructor(doc, time) {
    this.frames = Array.isArray(doc.frames) ? doc.frames : [];
    this.tickRate = typeof doc.tick_rate === "number" ? doc.tick_rate : 0;
    this.snapshotRate = 0;
    this.time = time;
    this.interpolation = null; // set by interpolate()
  }

  interpolate(options = {}) {
    this.interpolation = options.interpolation ?? {};
    return this;
  }

  // The view to draw now; null before interpolate() or before the first frame.
  rendered() {
    if (this.interpolation === null) return null;
    const frames = this.frames;
    const ms = this.time();
    // The last frame at or before ms (frames are in time order).
    let low = 0;
    let high = frames.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (frames[middle][0] <= ms) low = middle + 1;
      else high = middle;
    }
    const index = low - 1;
    if (index < 0) return null;
    const [t0, phase, view] = frames[index];
    const next = frames[index + 1];
    if (next === undefined || phase !== "playing" || next[1] !== "playing" || next[0] <= t0) return view;
    return blend(view, next[2], (ms - t0) / (next[0] - t0), this.interpolation);
  }

  predict() {
    return null;
  }

  predicted() {
    return null;
  }

  // Nobody plays in a replay: no event is predicted.
  predictEvents() {
    return null;
  }

  serverTick() {
    return this.tickRate > 0 ? (this.time() / 1000) * this.tickRate : null;
  }

  serverTime() {
    return this.time() / 1000;
  }
}
