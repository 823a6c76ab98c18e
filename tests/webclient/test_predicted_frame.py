"""A predicted event drawn on the first animation frame after its key (issue 73,
item 13), in real headless Chromium, from where the player stands.

A real `twistd -n vinom` child process offers its default games; two pages
quick-match the built-in arena (vinom/games/arena.py) and play it with its board
(vinom/webclient/boards/arena.js), whose direction keys are events the player
causes, predicted with `game.predictEvents` (docs/web.md, "Clock, interpolation
and prediction"): a ring drawn where the own dot was at the key.

Ann presses pairs of direction keys a few milliseconds apart, as real key events
(WebDriver actions). The first key of a pair is sent at once; the second falls
within a tick of it, so its input waits for the next tick to be sent (one input
a tick, as before: what goes on the wire does not change). At each key event a
listener the test put on the window (capturing, before the board's) notes the
rings drawn so far and registers a `requestAnimationFrame` callback, which runs
after the board's drawing of that frame (callbacks run in the order they were
registered, and the board's was registered on the frame before): it counts
frames until one shows a ring that was not there at the key. Every key's count
must be 1, including the keys whose input was not yet sent on that frame (the
test checks there were some, so a board that draws the event only once its
input is sent fails it). Then each ring goes once the host's snapshot confirms
its input (its `ack`), none retracted, and the console has no error.
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from twisted.trial.unittest import TestCase

from tests.server.test_web_arena import two_in_the_arena
from tests.server.test_web_client import WAIT, pause
from tests.support.servers import start_twistd

# Before the page queues: the game sockets kept for reading, and the key listener
# that counts frames from each direction key to the first frame drawing its event.
HOOK = """
const done = arguments[arguments.length - 1];
import('/game.js').then((g) => {
  const seen = { sockets: [], keys: [] };
  window.__predicted = seen;
  const receive = g.GameSocket.prototype.receive;
  g.GameSocket.prototype.receive = function (message) {
    if (!seen.sockets.includes(this)) seen.sockets.push(this);
    return receive.call(this, message);
  };
  const rings = () => [...document.querySelectorAll('[data-board=arena] .vb-arena-ring')]
    .map((r) => r.dataset.event);
  window.addEventListener('keydown', (e) => {
    if (!e.key.startsWith('Arrow') || e.repeat) return;
    const board = document.querySelector('[data-board=arena] .vb-arena');
    const inputs = () => Number(board.dataset.inputs || 0);
    // The board names a key's event by the number of the input that carries it:
    // the next one (its data-inputs, the inputs given so far).
    const key = { key: e.key, inputs: inputs(), frames: null, sentByFirstFrame: null,
                  ring: String(inputs() + 1), drawnBefore: rings().includes(String(inputs() + 1)) };
    seen.keys.push(key);
    let frames = 0;
    const frame = () => {
      frames += 1;
      if (frames === 1) key.sentByFirstFrame = inputs() > key.inputs;
      if (rings().includes(key.ring)) {
        key.frames = frames;
      } else if (frames < 240) {
        requestAnimationFrame(frame);
      } else {
        key.frames = -1; // never drawn
      }
    };
    requestAnimationFrame(frame);
  }, true);
  done(true);
}, (e) => done(String(e)));
"""

READ = """
const seen = window.__predicted;
const events = seen.sockets[0].events;
return { keys: seen.keys, confirmed: events.confirmed, retracted: events.retracted,
         pending: events.pending.size,
         rings: document.querySelectorAll('[data-board=arena] .vb-arena-ring').length };
"""

PAIRS = 4


class PredictedEventFrameTests(TestCase):
    """The arena board's predicted key events, counted in animation frames."""

    timeout = 240

    async def test_key_event_drawn_on_the_next_frame(self) -> None:
        server = await start_twistd(self, {}, web=True)
        pages = await two_in_the_arena(self, server.url, HOOK)
        ann = pages["Ann"]
        # The clock synced and the round trip known, as a player starts.
        await pause(2.0)
        pairs = [(Keys.ARROW_RIGHT, Keys.ARROW_DOWN), (Keys.ARROW_LEFT, Keys.ARROW_UP)]
        for i in range(PAIRS):
            first, second = pairs[i % 2]
            chain = ActionChains(ann.driver)
            chain.key_down(first).key_down(second).key_up(first).key_up(second)
            await ann.run(lambda d, chain=chain: chain.perform())
            # More than a tick apart: the next pair's first key is sent at once.
            await pause(0.6)
        await ann.wait_until(
            lambda d: all(k["frames"] is not None
                          for k in d.execute_script("return window.__predicted.keys")),
            WAIT,
        )  # fmt: skip
        # Every ring settled: its input applied by the host, named by a snapshot's ack.
        await ann.wait_until(lambda d: d.execute_script(READ)["pending"] == 0, WAIT)
        seen = await ann.run(lambda d: d.execute_script(READ))
        keys = seen["keys"]
        self.assertEqual(len(keys), 2 * PAIRS, keys)
        # Frames from each key event to the first frame drawing its event: 1.
        self.assertEqual([k["frames"] for k in keys], [1] * len(keys), keys)
        # Some keys' inputs were not yet sent when their event was drawn: the draw
        # did not wait for the tick that sends them.
        waited = [k for k in keys if k["sentByFirstFrame"] is False]
        self.assertGreater(len(waited), 0, keys)
        # Each key its own event, not drawn before it; the host applied each, and
        # the rings are gone.
        self.assertEqual(len({k["ring"] for k in keys}), len(keys), keys)
        self.assertEqual([k["drawnBefore"] for k in keys], [False] * len(keys), keys)
        self.assertEqual((seen["confirmed"], seen["retracted"]), (len(keys), 0), seen)
        self.assertEqual(seen["rings"], 0, seen)
        for page in pages.values():
            await page.check()  # no console error, nothing refused
