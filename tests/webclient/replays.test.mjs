// replays.js under Node's test runner (node --test), with fetch and the timer
// stood in for: which 503s the page waits out (Retry-After), how often, and when
// it stops waiting.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { REPLAY_TRIES, REPLAY_WAIT_MAX_S, fetchReplay } from "../../vinom/webclient/replays.js";

const saved = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = saved;
});

// The server's answers, in order (the last repeated): [status, Retry-After or null].
function server(...answers) {
  const asked = [];
  globalThis.fetch = async (url) => {
    asked.push(url);
    const [status, retryAfter] = answers[Math.min(asked.length, answers.length) - 1];
    const headers = retryAfter === null ? {} : { "Retry-After": String(retryAfter) };
    return new Response(status === 200 ? "doc" : "replays are busy", { status, headers });
  };
  return asked;
}

test("the limits are as docs/web.md says", () => {
  assert.deepEqual([REPLAY_TRIES, REPLAY_WAIT_MAX_S], [10, 10]);
});

test("a 503 is waited out for its Retry-After, then asked again, saying so", async () => {
  const asked = server([503, 1], [503, 4], [200, null]);
  const waits = [];
  const said = [];
  const response = await fetchReplay("/replays/m-1", {
    onWait: (seconds) => said.push(seconds),
    pause: async (seconds) => waits.push(seconds),
  });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "doc");
  assert.deepEqual(asked, ["/replays/m-1", "/replays/m-1", "/replays/m-1"]);
  assert.deepEqual(waits, [1, 4]);
  assert.deepEqual(said, [1, 4]);
});

test("the wait ends after REPLAY_TRIES 503s: the last is the answer", async () => {
  const asked = server([503, 1]);
  const waits = [];
  const response = await fetchReplay("/replays/m-1", { pause: async (s) => waits.push(s) });
  assert.equal(response.status, 503);
  assert.equal(asked.length, REPLAY_TRIES + 1);
  assert.equal(waits.length, REPLAY_TRIES);
});

test("a wait longer than REPLAY_WAIT_MAX_S, or none said, is the answer at once", async () => {
  for (const retryAfter of [REPLAY_WAIT_MAX_S + 1, null, 0, "soon", 1.5]) {
    const asked = server([503, retryAfter], [200, null]);
    const waits = [];
    const response = await fetchReplay("/replays/m-1", { pause: async (s) => waits.push(s) });
    assert.equal(response.status, 503, String(retryAfter));
    assert.equal(await response.text(), "replays are busy");
    assert.deepEqual([asked.length, waits], [1, []], String(retryAfter));
  }
  server([503, REPLAY_WAIT_MAX_S], [200, null]);
  const waits = [];
  const response = await fetchReplay("/replays/m-1", { pause: async (s) => waits.push(s) });
  assert.deepEqual([response.status, waits], [200, [REPLAY_WAIT_MAX_S]]);
});

test("other answers are the answer: no wait", async () => {
  for (const status of [200, 404, 422]) {
    const asked = server([status, 1]);
    const response = await fetchReplay("/replays/m-1", { pause: async () => assert.fail("waited") });
    assert.deepEqual([response.status, asked.length], [status, 1]);
  }
});

test("a replay no longer wanted while waiting is dropped: null, nothing more asked", async () => {
  const asked = server([503, 1], [200, null]);
  let wanted = true;
  const response = await fetchReplay("/replays/m-1", {
    wanted: () => wanted,
    pause: async () => {
      wanted = false; // the viewer asked for another replay, or a match began
    },
  });
  assert.equal(response, null);
  assert.equal(asked.length, 1);
});

test("the headers given (a signed-in player's Authorization) go with every try", async () => {
  const sent = [];
  let tries = 0;
  globalThis.fetch = async (url, init) => {
    sent.push(init?.headers);
    tries += 1;
    return new Response("x", { status: tries === 1 ? 503 : 200, headers: { "Retry-After": "1" } });
  };
  const headers = { Authorization: "Vinom e30" };
  const response = await fetchReplay("/replays/m-1", { headers, pause: async () => {} });
  assert.equal(response.status, 200);
  assert.deepEqual(sent, [headers, headers]);
});
