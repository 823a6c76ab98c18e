"""Test helper: a page that runs one web-client board by itself, and real game states for it.

The boards of the browser client (vinom/webclient/boards/*.js) are ES modules
with one contract (`create(element, game)` returning `update`, `event`,
`error`, `destroy`; docs/web.md). `harness_site` serves vinom/webclient as it
is (twisted.web static.File, no build step) next to a small page,
/harness.html, that imports a board by URL and plays the client shell's part:
`game.act` records every action in `window.acts` (and numbers it like the
shell does), `game.say` records every status line in `window.said`. A test
drives it with `harness.create(...)`, `harness.update(state)`,
`harness.error(code, message)` and `harness.destroy()` through
`execute_script`.

The states a test feeds the board come from the real games (vinom.games.maze,
vinom.games.owedrahn): `view(state, player)` as the room would send it, made
plain with a JSON round trip. tests/board_screenshots.py uses the same page
and states for docs/images.

(No tests here; trial loads the module and finds none.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data, File

import vinom
from tests.test_games_support import ScriptedRandom
from vinom.games.interfaces import Seat
from vinom.games.maze import MazeBot, MazeGame, MazeState
from vinom.games.owedrahn import OweDrahnGame, OweDrahnState

WEBCLIENT = Path(vinom.__file__).resolve().parent / "webclient"
NAMES = ("ada", "bo", "cy", "di")

HARNESS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>board harness</title>
<style>
  body { margin: 0; padding: 16px; background: #0b1220; }
  #board { max-width: 980px; margin: 0 auto; }
</style>
</head>
<body>
<div id="board"></div>
<script type="module">
const name = new URLSearchParams(location.search).get("board");
window.acts = [];
window.said = [];
let module = null;
let board = null;
let counter = 0;
window.harness = {
  create(info) {
    const game = {
      seat: info.seat, players: info.players, me: info.me,
      act(action) { counter += 1; window.acts.push({ a: action, i: counter }); return counter; },
      say(text) { window.said.push(text); },
    };
    board = module.create(document.getElementById("board"), game);
  },
  update(state) { board.update(state); },
  event(name, data) { if (board.event) board.event(name, data); },
  error(code, message) { if (board.error) board.error(code, message); },
  destroy() { board.destroy(); board = null; },
};
import(`/webclient/boards/${name}.js`).then(
  (loaded) => { module = loaded.default; window.harnessReady = true; },
  (failure) => { window.harnessFailure = String(failure); },
);
</script>
</body>
</html>
"""


def harness_site() -> Site:
    """vinom/webclient under /webclient/ and the harness page at /harness.html."""
    root = Resource()
    root.putChild(b"webclient", File(str(WEBCLIENT)))
    root.putChild(b"harness.html", Data(HARNESS_HTML.encode(), "text/html; charset=utf-8"))
    return Site(root)


def listen(reactor: IReactorTCP) -> IListeningPort:
    """The harness site on a free loopback port."""
    return reactor.listenTCP(0, harness_site(), interface="127.0.0.1")


def harness_url(port: IListeningPort, board: str) -> str:
    return f"http://127.0.0.1:{port.getHost().port}/harness.html?board={board}"  # type: ignore[attr-defined]


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
