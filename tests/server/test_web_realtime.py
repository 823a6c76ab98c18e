"""A ticking game played in real headless Chromium: delta snapshots drawn, real-time
inputs sent from a board (docs/web.md, "Snapshots and inputs").

A real `twistd -n vinom --snapshot-checksums` child process offers a plugin game
installed as a user installs one, written only with the public API
(`vinom.games.base.Game`): it ticks at 20 Hz, moves a float position every tick
(quantised to 0.01), and records every input its action handler takes in the view.
Its package ships a tiny board ("A board in your own package") that draws the view
as text and, once the match plays, sends inputs through `game.input` (the page's
`GameSocket.input`, over the WebSocket game session). Two pages quick-match it from
the lobby. What each player sees is checked: the drawn text keeps changing at about
the snapshot rate, every input the page sent comes back in the view exactly once
and in order, the page's `GameSocket` applied full and delta snaps, every one
checksummed and none dropped, and the console shows no error and no policy violation
(tests/support/browser.py).
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import re
import textwrap

from selenium.webdriver.common.by import By
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import WAIT, click, pause, wait_for_screen
from tests.support.browser import Browser, open_browser
from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import start_twistd

TICK_RATE = 20
INPUTS = 16  # the board sends 1..INPUTS, one every INPUT_MS
INPUT_MS = 150

TICKER_GAME = textwrap.dedent(
    f'''
    from importlib.resources import files

    from attrs import evolve, frozen

    from vinom.games.base import Game
    from vinom.games.interfaces import IllegalAction, Outcome

    STEP = 0.01


    @frozen
    class World:
        players: tuple
        left: tuple
        scores: tuple
        n: int = 0
        x: float = 0.0
        got: tuple = ()
        finished: bool = False
        reason: str = ""
        winners: tuple = ()


    class TickerGame(Game):
        name = "ticker"
        description = "test: a dot that moves every tick, and every input recorded"
        min_players = max_players = match_size = 2
        time_limit = 300.0
        idle_timeout = 0.0
        offered_by_default = False
        tick_rate = {TICK_RATE}
        quantisation = {{"x": STEP}}
        board = files(__package__) / "board" / "ticker.js"
        board_stylesheet = files(__package__) / "board" / "ticker.css"

        def create(self, seats, options, rng):
            count = len(seats)
            return World(tuple(s.player_id for s in seats), (False,) * count, (0,) * count,
                         got=((),) * count)

        def tick(self, state, dt, rng):
            return Outcome(evolve(state, n=state.n + 1, x=(state.x + 0.37) % 50.0))

        def on_push(self, state, seat, action, rng):
            value = action["push"]
            if not isinstance(value, int) or isinstance(value, bool):
                raise IllegalAction("bad_push", "push an integer")
            got = list(state.got)
            got[seat.index] = (*got[seat.index], value)
            return Outcome(evolve(state, got=tuple(got)))

        def leave(self, state, seat):
            if state.finished:
                return Outcome(state)
            left = tuple(gone or i == seat.index for i, gone in enumerate(state.left))
            state = evolve(state, left=left)
            return Outcome(self._last_standing(state, left, "opponents_left") or state)

        def view(self, state, player_id):
            mine = state.players.index(player_id) if player_id in state.players else None
            return {{
                "n": state.n,
                "x": round(state.x / STEP) * STEP,
                "got": [] if mine is None else list(state.got[mine]),
            }}


    ticker = TickerGame()
    '''
)

# The game's own board: the view as text; once playing, inputs 1..INPUTS.
TICKER_BOARD = textwrap.dedent(
    f"""
    export default {{
      stylesheet: "ticker.css",
      create(element, game) {{
        const out = document.createElement("output");
        out.className = "vt-ticker";
        out.dataset.testid = "ticker";
        element.append(out);
        let sent = 0;
        let timer = null;
        const stop = () => {{ if (timer !== null) clearInterval(timer); timer = null; }};
        const push = () => {{
          if (sent >= {INPUTS}) {{ stop(); return; }}
          sent += 1;
          game.input({{ push: sent }});
          element.dataset.sent = String(sent);
        }};
        return {{
          update(state) {{
            const s = state.s;
            out.textContent = `tick ${{s.n}} x ${{s.x.toFixed(2)}} got ${{s.got.join(",")}}`;
            if (state.p === "playing" && timer === null && sent < {INPUTS}) {{
              timer = setInterval(push, {INPUT_MS});
            }}
          }},
          end: stop,
          destroy: stop,
        }};
      }},
    }};
    """
)

TICKER_CSS = ".vt-ticker { font-family: monospace; }\n"

PLUGIN = "from ticker_game import ticker  # noqa: F401 (found by getPlugins)\n"

# Installed in the page before it queues: what its GameSocket and decoder did
# (snaps applied full or delta, and with a checksum; input messages sent),
# through the very modules app.js imports (one module instance per URL).
WATCH_SOCKET = """
const done = arguments[arguments.length - 1];
Promise.all([import('/game.js'), import('/delta.js')]).then(([g, d]) => {
  const seen = { full: 0, delta: 0, checked: 0, sockets: [], sent: [], draws: [] };
  window.__ticker = seen;
  const receive = d.SnapshotReceiver.prototype.receive;
  d.SnapshotReceiver.prototype.receive = function (data) {
    const snapshot = receive.call(this, data);
    if (snapshot !== null) {
      if (snapshot.baselineTick === null) seen.full += 1; else seen.delta += 1;
      if (typeof snapshot.checksum === 'number') seen.checked += 1;
    }
    return snapshot;
  };
  const snap = g.GameSocket.prototype.snap;
  g.GameSocket.prototype.snap = function (message) {
    if (!seen.sockets.includes(this)) seen.sockets.push(this);
    return snap.call(this, message);
  };
  const send = g.GameSocket.prototype.send;
  g.GameSocket.prototype.send = function (message, ...rest) {
    if (message.t === 'input') seen.sent.push(JSON.parse(JSON.stringify(message)));
    return send.call(this, message, ...rest);
  };
  done(true);
}, (e) => done(String(e)));
"""

# Every change of the drawn text, with the page's time (ms).
WATCH_DRAWS = """
const out = document.querySelector('[data-testid=ticker]');
const draws = window.__ticker.draws;
new MutationObserver(() => draws.push([performance.now(), out.textContent]))
  .observe(out, { childList: true, characterData: true, subtree: true });
return performance.now();
"""

READ = """
const seen = window.__ticker;
const board = document.querySelector('[data-board=ticker]');
return { full: seen.full, delta: seen.delta, checked: seen.checked,
         sockets: seen.sockets.length,
         drops: seen.sockets.length ? seen.sockets[0].snapshots.drops : null,
         sent: seen.sent, draws: seen.draws,
         pushed: board === null ? null : board.dataset.sent ?? null,
         text: document.querySelector('[data-testid=ticker]')?.textContent ?? null,
         phase: document.getElementById('game-phase').dataset.phase };
"""

DRAWN = re.compile(r"^tick (\d+) x (-?\d+\.\d\d) got ([\d,]*)$")


class TickingGameTests(TestCase):
    """A 20 Hz plugin game with its own board, played by two pages."""

    timeout = 240

    # The page's Link once the match is on (the WebSocket: no --webtransport).
    link = "websocket"

    def transport_options(self) -> tuple[str, ...]:
        return ()

    async def enter(self, browser: Browser, url: str, name: str) -> None:
        await browser.get(url)
        await wait_for_screen(browser, "name")
        await browser.run(lambda d: d.find_element(By.ID, "name-input").send_keys(name))
        await click(browser, "#name-submit")
        await wait_for_screen(browser, "lobby")
        watching = await browser.run(lambda d: d.execute_async_script(WATCH_SOCKET))
        self.assertIs(watching, True, watching)

    async def test_the_board_draws_delta_snapshots_and_its_inputs_come_back(self) -> None:
        server = await start_twistd(
            self,
            {
                "ticker_game/__init__.py": TICKER_GAME,
                "ticker_game/board/ticker.js": TICKER_BOARD,
                "ticker_game/board/ticker.css": TICKER_CSS,
                "twisted/plugins/ticker_games.py": PLUGIN,
            },
            "--games", "ticker", "--snapshot-checksums", *self.transport_options(), web=True,
        )  # fmt: skip
        url = server.url
        ann, bob = await open_browser(self), await open_browser(self)
        pages = {"Ann": ann, "Bob": bob}
        for name, page in pages.items():
            await self.enter(page, url, name)
        button = '[data-action="queue"][data-game="ticker"]'
        for page in pages.values():
            await page.wait_until(lambda d: d.find_elements(By.CSS_SELECTOR, button), WAIT)
            await click(page, button)
        for page in pages.values():
            await wait_for_screen(page, "game")
            await page.wait_until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=ticker]"), WAIT
            )
            await page.wait_until(lambda d: d.execute_script(
                "return document.getElementById('game-phase').dataset.phase;") == "playing",
                WAIT)  # fmt: skip
            self.assertEqual(await page.run(lambda d: d.execute_script(
                "return document.getElementById('game-transport').dataset.kind;")), self.link)
        starts = {name: await page.run(lambda d: d.execute_script(WATCH_DRAWS))
                  for name, page in pages.items()}  # fmt: skip
        window = 3.0
        await pause(window + 0.5)
        # Every input the board sent comes back in the view, once each, in order.
        everything = ",".join(str(n) for n in range(1, INPUTS + 1))
        for page in pages.values():
            await page.wait_until(lambda d: (d.execute_script(READ)["text"] or "").endswith(
                f"got {everything}"), WAIT)  # fmt: skip
        for name, page in pages.items():
            with self.subTest(page=name):
                seen = await page.run(lambda d: d.execute_script(READ))
                self.assertEqual(seen["phase"], "playing", seen["text"])
                # The drawn text keeps changing at about the snapshot rate (20 a
                # second): generous bounds for a busy machine, and never faster.
                start = starts[name]
                end = start + window * 1000
                draws = [(t, text) for t, text in seen["draws"] if start <= t <= end]
                self.assertGreaterEqual(len(draws), TICK_RATE * window / 4, draws)
                self.assertLessEqual(len(draws), TICK_RATE * window * 1.5, draws)
                drawn = [DRAWN.match(text) for _, text in seen["draws"]]
                self.assertTrue(all(drawn), seen["draws"])
                ticks = [int(m[1]) for m in drawn if m is not None]
                positions = {m[2] for m in drawn if m is not None}
                self.assertEqual(ticks, sorted(set(ticks)), "each drawn state newer")
                self.assertGreater(len(positions), len(draws) / 2, "the dot moves")
                # Snaps applied, whole and as deltas, every one checksummed, none dropped.
                self.assertEqual(seen["sockets"], 1)
                self.assertGreaterEqual(seen["full"], 1, seen)
                self.assertGreater(seen["delta"], seen["full"], seen)
                self.assertEqual(seen["checked"], seen["full"] + seen["delta"])
                self.assertEqual(set(seen["drops"].values()), {0}, seen["drops"])
                # The inputs went as `input` messages: ticks increasing, each repeated
                # only until acknowledged, acknowledging the newest applied snap.
                self.assertEqual(seen["pushed"], str(INPUTS))
                sent = seen["sent"]
                pairs: dict[int, dict[str, int]] = {}
                for message in sent:
                    self.assertEqual(set(message), {"t", "a", "x"}, message)
                    self.assertLessEqual(len(message["x"]), 8, message)
                    for k, value in message["x"]:
                        self.assertEqual(pairs.setdefault(k, value), value, message)
                self.assertEqual(
                    [pairs[k]["push"] for k in sorted(pairs)], list(range(1, INPUTS + 1))
                )
                self.assertTrue(all(isinstance(m["a"], int) for m in sent), sent[:3])
                await page.check()


class TickingGameOverWebTransportTests(TickingGameTests):
    """The same, the pages on WebTransport: snaps and inputs as datagrams."""

    link = "webtransport"

    def transport_options(self) -> tuple[str, ...]:
        self.ops = free_tcp_port()
        return ("--webtransport", str(free_udp_range(1)),
                "--ops-port", f"tcp:{self.ops}:interface=127.0.0.1")  # fmt: skip

    async def test_the_board_draws_delta_snapshots_and_its_inputs_come_back(self) -> None:
        await super().test_the_board_draws_delta_snapshots_and_its_inputs_come_back()
        # The snaps came as datagrams, and so did the inputs.
        text = await fetch_metrics(self.ops)
        counts = samples(text, "vinom_webtransport_messages_total", "direction", "way")
        self.assertGreater(counts.get(("out", "datagram"), 0), 20, counts)
        self.assertGreater(counts.get(("in", "datagram"), 0), INPUTS / 2, counts)
