// The page's request for a finished match's replay (`GET /replays/<match id>`,
// docs/web.md "Replays"), with its wait on a busy server: a 503 says when to ask
// again (`Retry-After`: 1 while another replay is being made; the seconds until
// the replays' CPU share is back), and a viewer who arrives at such a moment
// should see the replay follow, not "busy". The page's shell (app.js) draws it.

// At most this many 503s are waited out, each of at most this many seconds: a
// longer wait, or a 503 without a usable Retry-After, is the answer (the server's
// words, "replays are busy: try again in N s").
export const REPLAY_TRIES = 10;
export const REPLAY_WAIT_MAX_S = 10;

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// The answer to GET `url` once it is not a 503 the page waits out, or null when
// `wanted()` turns false while waiting (the viewer asked for something else).
// `onWait(seconds)` is called before each wait. `pause` stands in for the timer in
// tests.
export async function fetchReplay(url, { wanted = () => true, onWait = () => {}, pause = sleep } = {}) {
  let response = await fetch(url);
  for (let tries = 0; response.status === 503 && tries < REPLAY_TRIES; tries += 1) {
    const wait = Number(response.headers.get("Retry-After"));
    if (!(Number.isInteger(wait) && wait > 0 && wait <= REPLAY_WAIT_MAX_S)) break;
    if (!wanted()) return null;
    onWait(wait);
    await pause(wait);
    if (!wanted()) return null;
    response = await fetch(url);
  }
  return wanted() ? response : null;
}
