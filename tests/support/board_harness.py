"""Test helper: one web-client board on the real page, fed real game states; what it draws.

The boards of the browser client (vinom/webclient/boards/*.js) are ES modules
with one contract (`create(element, game)` returning `update`, `event`,
`error`, `destroy`; docs/web.md). There is no page of its own for them: a
test opens the real web server's page (`https://127.0.0.1:PORT/`, served by
vinom.server.web with its real headers, Content-Security-Policy included) and
`install` turns it into a harness: the game screen is shown and the board is
loaded by the shell's own loader (loader.js: the module and its style sheet),
so a board that breaks the page's policy or draws wrongly fails here as it
would for a player. `harness.create(...)`, `harness.update(state)`,
`harness.error(code, message)` and `harness.destroy()` drive it; `game.act`
records every action in `window.acts` (numbered as the shell does),
`game.say` every status line in `window.said`.

The states a test feeds the board come from the real games (vinom.games.maze,
vinom.games.owedrahn): `view(state, player)` as the room would send it, made
plain with a JSON round trip.

`MAZE_DRAWN`, `OWEDRAHN_DRAWN`, `TICTACTOE_DRAWN` and `DICE_DRAWN` measure a
board as drawn (element sizes from getBoundingClientRect, computed colours),
for `assert_drawn`: here and in the tests that play whole matches.

(No tests here; trial loads the module and finds none.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.trial.unittest import TestCase

from tests.games.test_games_support import ScriptedRandom
from tests.support.browser import Browser
from vinom.games.interfaces import Seat
from vinom.games.maze import MazeBot, MazeGame, MazeState
from vinom.games.owedrahn import OweDrahnGame, OweDrahnState

NAMES = ("ada", "bo", "cy", "di")

# Installed into the real page (the shell is left alone: it shows its name form).
_INSTALL = """
const [name, done] = arguments;
import('/loader.js').then(async (loader) => {
  const board = await loader.loadBoard(name);
  if (board === null) throw new Error(`no board for ${name}`);
  for (const screen of document.querySelectorAll('main > .screen')) {
    screen.hidden = screen.id !== 'screen-game';
  }
  document.body.dataset.screen = 'game';
  if (document.activeElement) document.activeElement.blur();
  window.acts = [];
  window.said = [];
  let made = null;
  let counter = 0;
  const holder = document.createElement('div');
  holder.className = 'board-holder';
  document.getElementById('board').replaceChildren(holder);
  window.harness = {
    create(info) {
      const game = {
        seat: info.seat, players: info.players, me: info.me,
        act(action) { counter += 1; window.acts.push({ a: action, i: counter }); return counter; },
        say(text) { window.said.push(text); },
      };
      made = board.create(holder, game);
    },
    update(state) { made.update(state); },
    event(name, data) { if (made.event) made.event(name, data); },
    error(code, message) { if (made.error) made.error(code, message); },
    destroy() { made.destroy(); made = null; },
  };
  done(true);
}).catch((failure) => done(String(failure)));
"""


async def install(browser: Browser, board: str) -> None:
    """Make the real page (already open) a harness for `board` (module docstring)."""
    loaded = await browser.run(lambda d: d.execute_async_script(_INSTALL, board))
    if loaded is not True:
        raise AssertionError(f"the {board} board did not load: {loaded}")


# Each script returns a dict of measurements; `assert_drawn` says what they must be.
MAZE_DRAWN = """
const svg = document.querySelector('svg.vb-grid');
if (svg === null || !svg.dataset.width) return null;
const box = svg.getBoundingClientRect();
const cells = Number(svg.dataset.width);
const walls = document.querySelector('.vb-walls');
const token = document.querySelector('.vb-token .vb-body');
const coin = document.querySelector('.vb-coin[data-reward]');
return {
  width: box.width, height: box.height, bottom: box.bottom, viewport: innerHeight,
  cell: box.width / (cells + 0.2),
  walls: (walls.getAttribute('d') || '').split('M').length - 1,
  wallStroke: getComputedStyle(walls).stroke, wallWidth: walls.getBoundingClientRect().width,
  token: token ? token.getBoundingClientRect().width : 0,
  rewards: document.querySelectorAll('.vb-rewards [data-reward]').length,
  coinFill: coin ? getComputedStyle(coin).fill : null,
  coin: coin ? coin.getBoundingClientRect().width : 0,
  legend: document.querySelectorAll('.vb-legend li').length,
  side: document.querySelector('.vb-side').getBoundingClientRect().left - box.right,
};
"""

OWEDRAHN_DRAWN = """
const root = document.querySelector('.vb-owedrahn');
if (root === null || document.querySelector('.vb-player') === null) return null;
// Sizes as laid out (computed), not as a roll's spin transforms them for a moment.
const size = (css) => {
  const style = getComputedStyle(document.querySelector(css));
  return [parseFloat(style.width), parseFloat(style.height)];
};
const total = getComputedStyle(document.querySelector('.vb-total'));
return {
  heart: size('.vb-hearts svg'), die: size('.vb-die'),
  total: parseFloat(total.fontSize), background: getComputedStyle(root).backgroundImage,
  width: root.getBoundingClientRect().width, viewport: innerWidth,
  players: document.querySelectorAll('.vb-player').length,
};
"""

TICTACTOE_DRAWN = """
const cells = [...document.querySelectorAll('.ttt-cell')];
if (cells.length !== 9) return null;
const sizes = cells.map((c) => c.getBoundingClientRect());
return {cells: sizes.map((r) => [r.width, r.height]),
        bottom: Math.max(...sizes.map((r) => r.bottom)), viewport: innerHeight};
"""

DICE_DRAWN = """
const die = document.querySelector('[data-testid=dice-tray] .die, [data-testid=dice-kept] .die');
const roll = document.querySelector('[data-testid=dice-roll]');
if (roll === null) return null;
return {die: die ? [die.getBoundingClientRect().width, die.getBoundingClientRect().height] : null,
        pips: die ? die.querySelectorAll('.pip.on').length : null,
        roll: roll.getBoundingClientRect().height};
"""

DRAWN = {"maze": MAZE_DRAWN, "owedrahn": OWEDRAHN_DRAWN, "tictactoe": TICTACTOE_DRAWN,
         "dice": DICE_DRAWN}  # fmt: skip


async def assert_drawn(case: TestCase, browser: Browser, board: str) -> dict[str, Any]:
    """Check that `board` is drawn as a player should see it; its measurements."""
    seen: dict[str, Any] | None = await browser.wait_until(
        lambda d: d.execute_script(DRAWN[board]), 30
    )
    assert seen is not None
    if board == "maze":
        # Walls drawn in the wall colour, rewards in theirs, every token in its cell
        # (a circle of 0.66 cell), the field fits the window, the legend beside it.
        case.assertGreater(seen["walls"], 4, seen)
        case.assertEqual(seen["wallStroke"], "rgb(232, 236, 244)", seen)
        case.assertGreater(seen["rewards"], 0, seen)
        case.assertEqual(seen["coinFill"], "rgb(246, 201, 69)", seen)
        case.assertLess(seen["coin"], seen["cell"] * 0.5, seen)
        case.assertGreater(seen["token"], seen["cell"] * 0.5, seen)
        case.assertLess(seen["token"], seen["cell"] * 0.8, seen)
        case.assertLessEqual(seen["bottom"], seen["viewport"] + 1, seen)
        case.assertGreaterEqual(seen["side"], 0, seen)
        case.assertGreater(seen["legend"], 0, seen)
    elif board == "owedrahn":
        # Hearts of 20 px (not the screen-sized heart of an unstyled SVG), a 112 px
        # die, the big total, the felt table, all inside the window.
        case.assertEqual(seen["heart"], [20, 20], seen)
        case.assertEqual(seen["die"], [112, 112], seen)
        case.assertEqual(seen["total"], 92, seen)
        case.assertIn("radial-gradient", seen["background"], seen)
        case.assertLessEqual(seen["width"], seen["viewport"], seen)
    elif board == "tictactoe":
        for width, height in seen["cells"]:
            case.assertTrue(60 < width < 140 and abs(width - height) < 2, seen)
    elif board == "dice":
        case.assertGreater(seen["roll"], 20, seen)
        if seen["die"] is not None:
            case.assertTrue(all(30 < side < 80 for side in seen["die"]), seen)
    return seen


def table(count: int) -> list[Seat]:
    """`count` seats with lobby-style ids and short names."""
    return [Seat(f"p-{index:016x}", NAMES[index], index) for index in range(count)]


def game_info(seats: Sequence[Seat], me: int) -> dict[str, Any]:
    """The `game` a client shell gives a board: my seat and id, everyone from the welcome."""
    return {
        "seat": me,
        "me": seats[me].player_id,
        "players": [{"id": s.player_id, "name": s.name, "seat": s.index} for s in seats],
    }


def plain(value: Any) -> Any:
    """A view as the browser gets it: plain objects, arrays, numbers and strings."""
    return json.loads(json.dumps(value))


def room_state(
    view: Mapping[str, Any], version: int, phase: str = "playing", last_action: int | None = None
) -> dict[str, Any]:
    """A room `state` message's fields (docs/protocol.md section 14) around a game view."""
    return {"v": version, "p": phase, "r": 120.0, "s": plain(view), "i": last_action}


def maze_state(seats: Sequence[Seat], width: int, height: int, seed: int) -> MazeState:
    """A new real maze game for `seats`."""
    game = MazeGame()
    state = game.create(seats, {"width": width, "height": height}, random.Random(seed))
    for seat in seats:
        state = game.join(state, seat).state
    assert isinstance(state, MazeState)
    return state


def maze_midgame(
    seats: Sequence[Seat], width: int, height: int, seed: int, moves: int
) -> MazeState:
    """A real maze game after `moves` rounds of the game's own bots moving every player."""
    game = MazeGame()
    state = maze_state(seats, width, height, seed)
    bots = [MazeBot(seat.player_id, random.Random(seed + seat.index)) for seat in seats]
    for _ in range(moves):
        for seat, bot in zip(seats, bots, strict=True):
            action = bot.choose_action(game.view(state, seat.player_id))
            if action is not None and not game.is_finished(state):
                state = game.apply_action(state, seat, action, random.Random(0)).state
    return state


def owedrahn_midgame(seats: Sequence[Seat]) -> OweDrahnState:
    """A real Owe Drahn game, three or four players, after a bust and a life given up.

    Scripted dice: seat 0 rolls 5, seat 1 a 6, seat 2 a 6 (over 15: a life
    lost), and so on; it ends with seat 0 to roll, the total at 11, lives
    6, 5, 5 (and 6 for a fourth player, whose 3 was the last roll).
    """
    game = OweDrahnGame()
    count = len(seats)
    state = OweDrahnState(
        players=tuple(s.player_id for s in seats), lives=(6,) * count, left=(False,) * count
    )
    script: list[tuple[int, dict[str, Any], list[int]]] = [
        (0, {"roll": True}, [5]),
        (1, {"roll": True}, [6]),
        (2, {"roll": True}, [6]),
    ]
    if count == 4:
        script.append((3, {"roll": True}, [1]))
    script += [
        (0, {"roll": True}, [4]),
        (1, {"give_up_life": True, "next": seats[0].player_id}, []),
        (0, {"roll": True}, [6]),
        (1, {"roll": True}, [3]),
    ]
    script.append((2, {"roll": True}, [5]))
    if count == 4:
        script.append((3, {"roll": True}, [3]))
    for who, action, dice in script:
        state = game.apply_action(state, seats[who], action, ScriptedRandom(dice)).state
    assert isinstance(state, OweDrahnState)
    return state
