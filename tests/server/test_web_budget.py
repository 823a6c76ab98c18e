"""A game with a view schema, interest and a byte budget together, played in real
headless Chromium on a real `twistd -n vinom` child process, two pages a match.

The game (a plugin and a package with its own board, written with the public
API only): 48 walkers circle a 1,000-square field, each player is one of them,
and a player's view holds the walkers within `RADIUS` of their own (interest,
`vinom.games.interest.Grid`) as rows ``[id, x, y]`` of its view schema. `orbits`
holds each snapshot to `BUDGET` bytes, rating the walkers within `NEAR`
`math.inf` and the others by nearness; `orbits_whole` is the same game without a
budget. The board draws each walker interpolated (`game.interpolate`), and the
test reads every animation frame: the walkers' drawn centres and the time on the
ticks' timeline they were rendered at. From where the player stands:

- the budgeted game's snaps weigh no more, per client, than the schema alone;
- under the budget (the snaps say that walkers wait), no walker drawn moves
  faster than twice its true speed between two frames: a walker that waits is
  carried on from the page's newest samples (docs/protocol.md §16.8, "Rows that
  wait"), not stepped back to the baseline and then jumped;
- no console error (tests/support/browser.py).
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import math
import random
import textwrap
from itertools import pairwise
from typing import Any

from selenium.webdriver.common.by import By
from twisted.trial.unittest import TestCase

from tests.server.test_web_arena import enter
from tests.server.test_web_client import WAIT, click, pause, wait_for_screen
from tests.support.browser import Browser, open_browser
from tests.support.servers import start_twistd

WALKERS, RATE, RADIUS, NEAR, BUDGET, SEED = 48, 20, 450.0, 100.0, 64, 7

GAME = textwrap.dedent(
    f'''
    """48 walkers circling; each player is one of them and sees those near."""

    import math
    import random
    from importlib.resources import files

    from attrs import evolve, frozen

    from vinom.games import Game, Outcome, SnapshotBudget
    from vinom.games.interest import Grid

    rng = random.Random({SEED})
    ORBITS = [(rng.uniform(100, 900), rng.uniform(100, 900), rng.uniform(20, 80),
               rng.choice((-1, 1)) * rng.uniform(0.5, 1.5), rng.uniform(0, 6.3))
              for _ in range({WALKERS})]


    def place(orbit, tick):
        cx, cy, r, w, phase = orbit
        angle = phase + w * tick / {RATE}
        return cx + r * math.cos(angle), cy + r * math.sin(angle)


    @frozen
    class Field:
        players: tuple
        ticks: int = 0
        over: bool = False


    def nearest(view, key):
        rows = {{row[0]: row[1:] for row in view["walkers"]}}
        d = math.dist(rows[view["me"]], rows[key])
        return math.inf if d <= {NEAR} else 1 / (1 + d)


    class Orbits(Game):
        name = "orbits_whole"
        min_players = max_players = match_size = 2
        tick_rate = {RATE}
        time_limit = 60.0
        idle_timeout = 0.0
        board = files(__package__) / "board" / "orbits.js"
        view_schema = [
            ["me", ["int", 0, {WALKERS - 1}]],
            ["walkers", ["rows", [["int", 0, {WALKERS - 1}], ["fixed", 0, 1000, 0.01],
                                  ["fixed", 0, 1000, 0.01]]]],
        ]

        def create(self, seats, options, rng):
            return Field(tuple(s.player_id for s in seats))

        def tick(self, state, dt, rng):
            return Outcome(evolve(state, ticks=state.ticks + 1))

        def time_up(self, state):
            return Outcome(evolve(state, over=True))

        def is_finished(self, state):
            return state.over

        def result(self, state):
            return {{"winners": [], "reason": "time"}}

        def view(self, state, player_id):
            places = [place(o, state.ticks) for o in ORBITS]
            grid = Grid.build(tuple(p[0] for p in places), tuple(p[1] for p in places),
                              cell={RADIUS})
            me = state.players.index(player_id)
            seen = grid.near(places[me][0], places[me][1], {RADIUS})
            return {{"me": me, "walkers": [[n, *places[n]] for n in seen]}}


    class Budgeted(Orbits):
        name = "orbits"
        snapshot_budget = SnapshotBudget({BUDGET}, "walkers", nearest)
    '''
)

PLUGIN = "from orbits_game import Budgeted, Orbits\n\norbits = Budgeted()\nwhole = Orbits()\n"

BOARD = textwrap.dedent(
    """
    // The walkers, each a dot drawn interpolated every animation frame.
    const NS = "http://www.w3.org/2000/svg";

    export default {
      create(element, game) {
        const field = document.createElementNS(NS, "svg");
        field.setAttribute("viewBox", "0 0 1000 1000");
        element.append(field);
        game.interpolate({ interpolation: { fields: ["walkers.*.1", "walkers.*.2"],
                                            keys: { walkers: "0" } } });
        const dots = new Map();
        const draw = () => {
          frame = requestAnimationFrame(draw);
          const view = game.rendered();
          if (view === null) return;
          const seen = new Set();
          for (const [n, x, y] of view.walkers) {
            seen.add(n);
            let dot = dots.get(n);
            if (dot === undefined) {
              dot = document.createElementNS(NS, "circle");
              dot.setAttribute("r", "6");
              dot.setAttribute("class", "vb-orbits-dot");
              dot.dataset.walker = String(n);
              field.append(dot);
              dots.set(n, dot);
            }
            dot.setAttribute("cx", x.toFixed(2));
            dot.setAttribute("cy", y.toFixed(2));
          }
          for (const [n, dot] of dots) if (!seen.has(n)) { dot.remove(); dots.delete(n); }
        };
        let frame = requestAnimationFrame(draw);
        return { update() {}, destroy() { cancelAnimationFrame(frame); } };
      },
    };
    """
)

# Installed before the page queues: the page's game sockets and the bytes of their
# snaps (each snap's snapshot, `d`), and whether a snap said that walkers wait.
HOOK = """
const done = arguments[arguments.length - 1];
import('/game.js').then((g) => {
  const seen = { sockets: [], snaps: 0, bytes: 0, waits: 0, frames: [] };
  window.__orbits = seen;
  const receive = g.GameSocket.prototype.receive;
  g.GameSocket.prototype.receive = function (message) {
    if (!seen.sockets.includes(this)) seen.sockets.push(this);
    if (message.t === 'snap') {
      seen.snaps += 1;
      seen.bytes += message.d.length;
      // A schema frame's flags byte follows its two LEB128 numbers (section 16.8).
      let at = 1;
      for (let n = 0; n < 2; n++) while (message.d[at++] >= 0x80);
      if (message.d[at] & 2) seen.waits += 1;
    }
    return receive.call(this, message);
  };
  done(true);
}, (e) => done(String(e)));
"""

# From now on, every animation frame (after the board's): the time on the ticks'
# timeline the walkers were rendered at, the newest view the buffer held, and where
# each walker was drawn.
WATCH = """
const seen = window.__orbits;
const frame = () => {
  const buffer = seen.sockets[0].snapshotBuffer;
  const dots = {};
  for (const c of document.querySelectorAll('.vb-orbits-dot')) {
    dots[c.dataset.walker] = [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))];
  }
  const views = buffer.views;
  seen.frames.push([buffer.renderedAt, views.length ? views[views.length - 1][0] : null, dots]);
  requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
"""

READ = """
const seen = window.__orbits;
return { snaps: seen.snaps, bytes: seen.bytes, waits: seen.waits, frames: seen.frames,
         drops: seen.sockets[0].snapshots.drops };
"""


def speeds() -> list[float]:
    """Each walker's true speed (units a second), as the game's ORBITS make them."""
    rng = random.Random(SEED)
    orbits = [(rng.uniform(100, 900), rng.uniform(100, 900), rng.uniform(20, 80),
               rng.choice((-1, 1)) * rng.uniform(0.5, 1.5), rng.uniform(0, 6.3))
              for _ in range(WALKERS)]  # fmt: skip
    return [r * abs(w) for _, _, r, w, _ in orbits]


class BudgetInTheBrowserTests(TestCase):
    timeout = 240

    async def match(self, url: str, game: str) -> list[dict[str, Any]]:
        """Two pages play `game` for 4 s of drawn frames: what each read."""
        pages: list[Browser] = []
        for name in ("Ann", "Bob"):
            page = await open_browser(self)
            await enter(self, page, url, f"{name}{game[-1]}", HOOK)
            pages.append(page)
        button = f'[data-action="queue"][data-game="{game}"]'
        for page in pages:
            await page.wait_until(lambda d: d.find_elements(By.CSS_SELECTOR, button), WAIT)
            await click(page, button)
        for page in pages:
            await wait_for_screen(page, "game")
            await page.wait_until(
                lambda d: d.find_elements(By.CSS_SELECTOR, ".vb-orbits-dot"), WAIT
            )
        # A second for the clock to sync, then 4 s of frames.
        await pause(1.0)
        for page in pages:
            await page.run(lambda d: d.execute_script(WATCH))
        await pause(4.0)
        return [await page.run(lambda d: d.execute_script(READ)) for page in pages]

    async def test_schema_interest_and_budget_composed_in_two_pages(self) -> None:
        # (tictactoe too: the page signs in once it lists it, test_web_client.enter.)
        server = await start_twistd(self, {
            "orbits_game/__init__.py": GAME, "orbits_game/board/orbits.js": BOARD,
            "twisted/plugins/orbits_games.py": PLUGIN,
        }, "--games", "orbits,orbits_whole,tictactoe", web=True)  # fmt: skip
        whole = await self.match(server.url, "orbits_whole")
        budgeted = await self.match(server.url, "orbits")
        true_speed = speeds()
        for alone, cut in zip(whole, budgeted, strict=True):
            # No more bytes a snap per client than the schema alone, and the budget bit.
            self.assertEqual(alone["waits"], 0, alone["waits"])
            self.assertGreater(cut["waits"], cut["snaps"] // 4, (cut["waits"], cut["snaps"]))
            self.assertLessEqual(cut["bytes"] / cut["snaps"], alone["bytes"] / alone["snaps"])
            self.assertEqual(cut["drops"].get("corrupt", 0) + cut["drops"].get("checksum", 0), 0)
            # Drawn speed: between two frames, at most twice the walker's true speed over
            # the time rendered between them. A frame rendered past the newest view the
            # buffer held extrapolates (docs/web.md): its pair is left out.
            checked = 0
            frames = [f for f in cut["frames"] if f[0] is not None]
            self.assertGreater(len(frames), 60)
            for (t0, newest0, dots0), (t1, _, dots1) in pairwise(frames):
                if newest0 is None or t1 > newest0:
                    continue
                for walker, at in dots1.items():
                    before = dots0.get(walker)
                    if before is None:
                        continue
                    moved = math.dist(at, before)
                    allowed = 2 * true_speed[int(walker)] * (t1 - t0) + 0.03
                    self.assertLessEqual(moved, allowed, (walker, t0, t1, before, at))
                    checked += 1
            # (Hundreds of walkers' steps a page, thousands on an idle machine: a loaded
            # one draws fewer frames, and more of them past the newest view.)
            self.assertGreater(checked, 300)
