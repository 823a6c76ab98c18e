"""The built-in arena (vinom/games/arena.py) played in real headless Chromium with its
board (vinom/webclient/boards/arena.js), on a real `twistd -n vinom` child process
offering its default games, through a link of 100 ms each way losing 5% of the
snapshots.

Two pages quick-match "Arena" from the lobby, as README.md says. The link is
simulated in each page, under GameSocket: every message both ways waits 100 ms,
and 5% of the snaps are dropped before they are decoded, as are 5% of the input
messages (seeded). What the players see is read from the page every animation
frame (the dots' drawn centres) and measured:

- Ann presses a key: her own dot moves on the first frame after the key event
  (prediction: no round trip), in the key's direction, and where the server
  put her once she lets go (reconciliation);
- Bob sees Ann's dot, interpolated: while she moves its drawn position changes
  every animation frame, and never jumps further than a snapshot interval's
  travel at the arena's top speed (a frame drawn late covers its time, as does
  one whose rendered time the clock stepped ahead, and one after a frame drawn
  past the newest view covers the time since that view: the extrapolation
  misses a start or a stop until the next snap; a frame where the buffer held
  at its extrapolation bound, after two snaps lost in a row or a starved page,
  is the one excuse for standing still);
- the clock sync's estimate of the server's tick in each page is within one
  tick of the tick the server is at (its schedule, read from the snaps' ticks
  and when they came over loopback) at every snap, from a second after the
  page first knew the round trip;
- no console error, nothing refused by the page's policy (tests/support/browser.py).
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import contextlib
import math
from itertools import pairwise
from typing import Any

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import WAIT, click, pause, wait_for_screen
from tests.server.test_web_client import enter as sign_in
from tests.support.browser import Browser, open_browser
from tests.support.clock_truth import schedule_errors
from tests.support.servers import start_twistd
from tests.support.waiting import until

SIZE = 600.0 * math.sqrt(2 / 8)  # the built-in ArenaGame(2)'s side
DELAY_MS = 100
LOSS = 0.05
# The farthest a dot may travel in one snapshot interval (20 a second): the arena's
# top speed, 120 a second.
TOP_SPEED = 120.0
INTERVAL_TRAVEL = TOP_SPEED / 20

# Installed before the page queues: the simulated link under GameSocket, and
# the page's sockets kept for reading.
LINK = f"""
const done = arguments[arguments.length - 1];
import('/game.js').then((g) => {{
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const seen = {{ sockets: [], dropped: 0, snaps: 0, frames: [], keys: [], ups: [], clock: [],
                 lostInputs: 0, lost: [] }};
  window.__arena = seen;
  const receive = g.GameSocket.prototype.receive;
  g.GameSocket.prototype.receive = function (message) {{
    if (!seen.sockets.includes(this)) seen.sockets.push(this);
    if (message.t === 'snap') {{
      seen.snaps += 1;
      if (random() < {LOSS}) {{ seen.dropped += 1; seen.lost.push(performance.now()); return; }}
    }}
    const came = performance.now();
    setTimeout(() => {{
      const held = this.snapTick;
      receive.call(this, message);
      // A snap applied just now: the clock's estimate, with the snap's tick and when
      // it came over loopback (the test reads the server's schedule from them).
      if (message.t === 'snap' && this.snapTick !== held && this.rtt !== null) {{
        seen.clock.push([performance.now(), this.serverTick(), this.snapTick, came]);
      }}
    }}, {DELAY_MS});
  }};
  const send = g.GameSocket.prototype.send;
  g.GameSocket.prototype.send = function (message) {{
    // Inputs are unreliable (each repeats the unacknowledged ones): some are lost.
    if (message.t === 'input' && random() < {LOSS}) {{ seen.lostInputs += 1; return; }}
    setTimeout(() => send.call(this, message), {DELAY_MS});
  }};
  window.addEventListener('keydown', () => seen.keys.push(performance.now()), true);
  window.addEventListener('keyup', () => seen.ups.push(performance.now()), true);
  done(true);
}}, (e) => done(String(e)));
"""

# From now on, every animation frame: the page's time, the own dot and the others.
WATCH = """
const seen = window.__arena;
const frame = () => {
  const dots = {};
  let me = null;
  for (const c of document.querySelectorAll('.vb-arena-dot')) {
    const at = [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))];
    if (c.classList.contains('vb-me')) me = at; else dots[c.dataset.seat] = at;
  }
  const socket = seen.sockets[0];
  const buffer = socket ? socket.snapshotBuffer : null;
  const held = buffer ? buffer.held : 0;
  const views = buffer ? buffer.views : [];
  // And the newest snap's tick, the tick of the newest input stamped, the time
  // (s, on the ticks' timeline) the others were rendered at, and that of the
  // newest view the buffer held then (a render past it extrapolated or held).
  seen.frames.push([performance.now(), me, dots, held,
                    socket ? socket.snapTick : null, socket ? socket.lastTick : null,
                    buffer ? buffer.renderedAt : null,
                    views.length > 0 ? views[views.length - 1][0] : null]);
  requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
"""

# Every dot drawn at the same place in the last 30 frames (half a second at 60 a
# second: a buffer's hold, two snaps lost, shows a moving dot still for far fewer).
AT_REST = """
const frames = window.__arena.frames;
if (frames.length < 30) return false;
const last = frames.slice(-30).map((f) => JSON.stringify([f[1], f[2]]));
return last.every((f) => f === last[0]);
"""

READ = """
const seen = window.__arena;
const socket = seen.sockets[0];
return { frames: seen.frames, keys: seen.keys, ups: seen.ups,
         dropped: seen.dropped, lost: seen.lost, snaps: seen.snaps, clock: seen.clock,
         corrections: socket.prediction ? socket.prediction.corrections : null,
         rtt: socket.rtt, tick: socket.serverTick(),
         held: socket.snapshotBuffer.held, extrapolated: socket.snapshotBuffer.extrapolated,
         newest: socket.snapshots.newest,
         drops: socket.snapshots.drops };
"""


def torus(a: list[float], b: list[float]) -> float:
    dx, dy = abs(a[0] - b[0]) % SIZE, abs(a[1] - b[1]) % SIZE
    return math.hypot(min(dx, SIZE - dx), min(dy, SIZE - dy))


async def enter(case: TestCase, browser: Browser, url: str, name: str, script: str) -> None:
    """`name` signs in on the page at `url` (test_web_client's `enter`); then `script`
    (asynchronous, answering true) hooks the page for the test."""
    await sign_in(browser, url, name)
    hooked = await browser.run(lambda d: d.execute_async_script(script))
    case.assertIs(hooked, True, hooked)


async def two_in_the_arena(case: TestCase, url: str, script: str) -> dict[str, Browser]:
    """Ann's and Bob's pages, each signed in at `url` and hooked by `script` (`enter`),
    quick-matched into one arena match on the real page: by name, once both boards draw
    both dots."""
    pages = {"Ann": await open_browser(case), "Bob": await open_browser(case)}
    for name, page in pages.items():
        await enter(case, page, url, name, script)
    button = '[data-action="queue"][data-game="arena"]'
    for page in pages.values():
        await page.wait_until(lambda d: d.find_elements(By.CSS_SELECTOR, button), WAIT)
        await click(page, button)
    for page in pages.values():
        await wait_for_screen(page, "game")
        await page.wait_until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-board=arena] .vb-arena-dot"))
            == 2, WAIT,
        )  # fmt: skip
    return pages


class ArenaBoardTests(TestCase):
    """The arena's board, played by two pages over a slow, lossy link."""

    timeout = 240

    async def test_predicted_own_dot_interpolated_others_over_a_lossy_link(self) -> None:
        # The default games: nothing installed, no --games.
        server = await start_twistd(self, {}, "--snapshot-checksums", web=True)
        pages = await two_in_the_arena(self, server.url, LINK)
        ann, bob = pages["Ann"], pages["Bob"]
        # Two seconds of play: the clock has synced and the round trip is known.
        await pause(2.0)
        for page in pages.values():
            await page.run(lambda d: d.execute_script(WATCH))
        # Some frames drawn at rest before the key (a busy machine draws fewer a second).
        for page in pages.values():
            await page.wait_until(
                lambda d: d.execute_script("return window.__arena.frames.length") > 15, WAIT
            )
        drawn = "return window.__arena.frames.length"
        bob_before = await bob.run(lambda d: d.execute_script(drawn))
        keys = ActionChains(ann.driver)
        await ann.run(lambda d: keys.key_down(Keys.ARROW_RIGHT).perform())
        await pause(1.5)
        # ...and longer on a busy machine, which draws fewer frames a second: until Bob
        # has drawn 45 since the key, but at most 2.4 s in all (at top speed, less than
        # once round the arena).
        with contextlib.suppress(AssertionError):  # held 2.4 s: enough frames or not, let go
            await until(lambda: bob.run(lambda d: d.execute_script(drawn) >= bob_before + 45),
                        "Bob's 45 frames", timeout=0.9)  # fmt: skip
        await ann.run(lambda d: ActionChains(d).key_up(Keys.ARROW_RIGHT).perform())
        # The snapshots caught up: every dot at rest on both pages, 30 frames running.
        for page in pages.values():
            await page.wait_until(lambda d: d.execute_script(AT_REST), WAIT)
        seen = {name: await page.run(lambda d: d.execute_script(READ))
                for name, page in pages.items()}  # fmt: skip

        # Ann's own dot moves on the first frame after the key, rightwards.
        ann_seen = seen["Ann"]
        [pressed] = ann_seen["keys"]
        frames = [f for f in ann_seen["frames"] if f[1] is not None]
        before = [f for f in frames if f[0] < pressed]
        after = [f for f in frames if f[0] > pressed]
        self.assertGreater(len(before), 10, "frames drawn before the key")
        self.assertEqual(before[-1][1], before[-10][1], "at rest before the key")
        first = after[0]
        self.assertNotEqual(first[1], before[-1][1], (before[-1], first))
        # ...before the server could have answered: drawn from snaps of ticks before
        # the one the move was stamped for (the host applies it at that tick), so
        # the move shown is the page's prediction. (Not a bound on the frame's time:
        # a busy machine may draw it late, not from the server's answer.)
        snap_tick, input_tick = first[4], first[5]
        self.assertIsNotNone(input_tick)
        self.assertLess(snap_tick, input_tick, "the first frame after the key")
        self.assertLess((first[1][0] - before[-1][1][0]) % SIZE, SIZE / 2, (before[-1], first))
        self.assertEqual(first[1][1], before[-1][1][1])
        # The link's round trip is 200 ms and more (the page's estimate takes off half
        # a snapshot interval for the host's wait): without prediction the dot would
        # wait for it.
        self.assertGreater(ann_seen["rtt"], 0.17)
        # Once she let go and the snapshots caught up, her dot is where the server
        # put her, as Bob (who sees the server's views of her) draws it.
        bob_seen = seen["Bob"]
        ann_seat = next(iter(bob_seen["frames"][-1][2]))
        self.assertLess(torus(frames[-1][1], bob_seen["frames"][-1][2][ann_seat]), 0.05)

        # Bob sees Ann's dot interpolated: moving every frame while she moves, and
        # never further in a frame than a snapshot interval's travel. A frame drawn
        # late by a busy machine (more than a snapshot interval after the last) may
        # cover more, at her speed. The one excuse for a frame standing still is the
        # documented bound: the buffer held (`held` grew: no snapshot for two
        # intervals and more), and then the frame after it may catch up the time
        # held. That takes two snaps lost in a row, the page's timers (which make
        # the link) starved for a snapshot interval, or the host's snaps coming late
        # over loopback (a gap of one and a half intervals, before the link's 100 ms):
        # a hold with none of these before it fails the test.
        track = [(f[0], f[2][ann_seat], f[3], f[6], f[7]) for f in bob_seen["frames"]
                 if ann_seat in f[2]]  # fmt: skip
        moves = [(torus(a, b), t1 - t0, h1 > h0, t1)
                 for (t0, a, h0, _, _), (t1, b, h1, _, _) in pairwise(track)]  # fmt: skip
        rendered = {t: (r, newest) for t, _, _, r, newest in track}
        moving = [i for i, move in enumerate(moves) if move[0] > 0]
        self.assertGreater(len(moving), 30, "Bob saw Ann move")
        during = moves[moving[0] : moving[-1] + 1]
        lost = bob_seen["lost"]
        # When each snap came over loopback, applied or lost by the link.
        arrivals = sorted([c[3] for c in bob_seen["clock"]] + list(lost))
        for _, _, held, t in during:
            if held:
                recent = [gap for _, gap, _, at in moves if t - 300 <= at <= t]
                starved = any(gap > 50 for gap in recent)
                twice = any(b - a < 60 for a, b in pairwise(x for x in lost if t - 300 <= x <= t))
                late = any(b - a > 75
                           for a, b in pairwise(x for x in arrivals if t - 400 <= x <= t))
                self.assertTrue(starved or twice or late,
                                ("a hold with no loss, starving or late snap", t))
        # The last frame drawn without a hold: the one before her first drawn move is
        # taken as one (a hold there, of her at rest, shows nothing; the bound below
        # covers it from that frame's newest view).
        since = track[moving[0]][0]
        for d, ms, held, t in during:
            if held:
                continue
            self.assertGreater(d, 0.0, ("a frame where Ann's dot stood still", t))
            # The rendered timeline runs on the page's clock, which takes a faster trip
            # than any in its window at once (docs/client.md, `ServerClock`): a frame
            # may also cover what that timeline advanced, at the arena's top speed
            # (CI saw steps of 0.5 and 21 ms on loaded machines). And that timeline
            # from the newest view the last frame had, when it was drawn past it: a
            # render past the newest view extrapolates her last velocity (for at most
            # a snapshot interval, then holds: docs/client.md, `SnapshotBuffer`),
            # which is where she is unless she changed it meanwhile; when she started
            # moving (or stopped), the next snap shows the buffer where she was at
            # the time rendered, and the frame covers her move since the newest view
            # (CI run 73: 12.01, 120 ms of her travel at 100 a second, in a frame whose
            # timeline advanced 69.5 ms: the frame before, the last to draw her at
            # rest, was drawn some 50 ms past its newest view).
            bound = INTERVAL_TRAVEL * max(1.0, (t - since) / 50)
            (r0, newest), (r1, _) = rendered[since], rendered[t]
            if r0 is not None and r1 is not None:
                known = r0 if newest is None else min(r0, newest)
                bound = max(bound, TOP_SPEED * (r1 - known) + 0.05)
            self.assertLessEqual(d, bound, (d, ms, t, r0, r1, newest))
            since = t
        # Her whole way, as the server moved her (her own dot, at rest before the
        # key and after), drawn in full.
        travelled = sum(d for d, _, _, _ in during)
        self.assertGreater(travelled, 100.0)  # the key was held 1.5 s and more, at 100 a second
        rightwards = (frames[-1][1][0] - before[-1][1][0]) % SIZE  # less than once round
        # Frames' moves add up to more than her way by what Bob's page drew past it
        # and back: when she stopped, a render past the newest view extrapolated her
        # velocity, for at most a snapshot interval (docs/client.md, `SnapshotBuffer`),
        # and the next snap put her back (CI run 94: 165 against 155, her speed 100).
        self.assertLess(abs(travelled - rightwards), 2 * INTERVAL_TRAVEL,
                        (travelled, rightwards))  # fmt: skip

        for name, page in pages.items():
            with self.subTest(page=name):
                data: Any = seen[name]
                # The link lost snaps, and the decoder rebuilt the rest.
                self.assertGreater(data["dropped"], 0)
                self.assertEqual(data["drops"]["checksum"], 0, data["drops"])
                self.assertEqual(data["drops"]["corrupt"], 0, data["drops"])
                # The clock: the estimate of the server's tick as each snap is applied,
                # from a second after the round trip is first known (the board's first
                # input; every input message measures one after it), against the
                # server's schedule (tests/support/clock_truth.py): within one tick at
                # every snap, as tests/test_netcode_play.py holds the Python client.
                # The link here is the page's own timers, which a loaded machine runs
                # late in bursts: a round trip read long at the start is outrun by
                # the next second's shortest.
                clock = data["clock"]
                settled = [c for c in clock if c[0] >= clock[0][0] + 1000.0]
                signed, stalled = schedule_errors(settled, 20.0, second=1000.0)
                self.assertGreater(len(signed), 20, (stalled, signed))
                self.assertLess(max(map(abs, signed)), 1.0, signed)
                await page.check()
