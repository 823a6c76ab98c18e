"""The web client's maze and Owe Drahn boards in a real headless Chromium, fed real game states;
and what the web server does at start with a board a game names in its own package.

Each test opens the page of a real web server (tests/support/servers.py: vinom.server.web,
with its Content-Security-Policy and other headers) and makes it a harness
for one board with tests/support/board_harness.py: the shell's loader loads the
board module and its style sheet, the harness records what the board sends
(`window.acts`). Any policy violation or console error fails the test
(tests/support/browser.py), and `assert_drawn` checks what the board looks like:
walls, coins and tokens of the sizes they should have, hearts and the die.
The states come from the real games
(vinom.games.maze, vinom.games.owedrahn), and every action the board sends
is applied to the real game state: the board's actions must be ones the game
accepts, and the game's answer is what the board sees next.

`GameBoardStartTests` builds the site as the server does at start, with games
whose `board` is missing, of the wrong kind or not a file of a package at all:
each is one line in the log, and the page lists and serves no board for it
(tests/test_scaffold.py draws a package's good board in Chromium).
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import evolve
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.games.test_games_support import ScriptedRandom
from tests.support.board_harness import (
    assert_drawn,
    game_info,
    install,
    maze_state,
    owedrahn_midgame,
    room_state,
    table,
)
from tests.support.browser import Browser, open_browser
from tests.support.http import capture_log
from tests.support.ports import free_tcp_port
from tests.support.servers import start_server
from vinom.games.interfaces import IGame, Seat
from vinom.games.maze import DIRECTIONS, MazeGame, MazeState
from vinom.games.owedrahn import OweDrahnGame, OweDrahnState
from vinom.games.tictactoe import TicTacToeGame
from vinom.server.web import BOARD_FILES, web_site

# The three key layouts the maze board reads, per direction.
ARROWS = {"N": Keys.ARROW_UP, "E": Keys.ARROW_RIGHT, "S": Keys.ARROW_DOWN, "W": Keys.ARROW_LEFT}
WASD = {"N": "w", "E": "d", "S": "s", "W": "a"}
VI = {"N": "k", "E": "l", "S": "j", "W": "h"}
ARROWS_BY_NAME = {"N": "ArrowUp", "E": "ArrowRight", "S": "ArrowDown", "W": "ArrowLeft"}

# DevTools' view of the listeners on `window`: a board's keyboard listener is
# visible here, and must be gone after destroy().
# One wall in the maze board's SVG path: a move, then a horizontal or vertical line.
SEGMENT = r"M(-?[\d.]+) (-?[\d.]+)([HV])(-?[\d.]+)"

_WINDOW = {"expression": "window", "objectGroup": "boards-test"}


class BoardCase(TestCase):
    """A browser on the harness page with one board module loaded."""

    timeout = 90
    board = ""

    async def open_board(self, seats: Sequence[Seat], me: int) -> Browser:
        port = free_tcp_port()
        await start_server(self, "--websocket", f"ssl:{port}:interface=127.0.0.1", ports=1)
        self.browser = await open_browser(self, width=1100, height=850)
        await self.browser.get(f"https://127.0.0.1:{port}/")
        await self.browser.wait_until(
            lambda d: d.execute_script("return document.body.dataset.screen") == "name", 30
        )
        await install(self.browser, self.board)
        self.info = game_info(seats, me)
        await self.create()
        return self.browser

    async def create(self) -> None:
        await self.script("harness.create(arguments[0])", self.info)

    async def script(self, source: str, *args: Any) -> Any:
        return await self.browser.run(lambda d: d.execute_script(source, *args))

    async def update(self, state: dict[str, Any]) -> None:
        await self.script("harness.update(arguments[0])", state)

    async def acts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.script("return window.acts")
        return found

    async def wait_for_acts(self, count: int) -> list[dict[str, Any]]:
        """Wait until the board has sent `count` actions in all; every action sent."""
        await self.browser.wait_until(
            lambda d: d.execute_script("return window.acts.length") >= count, 15
        )
        return await self.acts()

    async def press(self, *keys: str) -> None:
        """Type `keys` on the page, as a player does (no element of the board has focus)."""
        await self.browser.run(lambda d: d.find_element(By.TAG_NAME, "body").send_keys(*keys))

    async def click(self, css: str) -> None:
        await self.browser.run(lambda d: d.find_element(By.CSS_SELECTOR, css).click())

    async def window_listeners(self, kind: str) -> int:
        def count(driver: Any) -> int:
            window = driver.execute_cdp_cmd("Runtime.evaluate", _WINDOW)["result"]["objectId"]
            found = driver.execute_cdp_cmd("DOMDebugger.getEventListeners", {"objectId": window})
            driver.execute_cdp_cmd("Runtime.releaseObjectGroup", {"objectGroup": "boards-test"})
            return sum(1 for listener in found["listeners"] if listener["type"] == kind)

        return await self.browser.run(count)


def path_from(state: MazeState, start: tuple[int, int], steps: int) -> list[str]:
    """The first `steps` moves of the way from `start` to the farthest cell."""
    width = state.width
    came: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    last = start
    while queue:
        last = queue.popleft()
        x, y = last
        for name, (bit, dx, dy, _) in DIRECTIONS.items():
            after = (x + dx, y + dy)
            if not state.cells[y * width + x] & bit and after not in came:
                came[after] = (last, name)
                queue.append(after)
    moves: list[str] = []
    cell = last
    while (step := came[cell]) is not None:
        cell, name = step
        moves.append(name)
    moves.reverse()
    assert len(moves) >= steps, "a maze too small for this test"
    return moves[:steps]


def walled(state: MazeState, position: tuple[int, int]) -> list[str]:
    x, y = position
    cell = state.cells[y * state.width + x]
    return [name for name, (bit, *_) in DIRECTIONS.items() if cell & bit]


class MazeBoardTests(BoardCase):
    board = "maze"

    def setUp(self) -> None:
        self.game = MazeGame()
        self.version = 1

    def view(self, state: MazeState, phase: str = "playing", last: int | None = None) -> Any:
        self.version += 1
        return room_state(self.game.view(state, self.info["me"]), self.version, phase, last)

    def apply(self, state: MazeState, seat: Seat, action: dict[str, Any]) -> MazeState:
        """The real game applies a move the board sent; an illegal one fails the test."""
        outcome = self.game.apply_action(state, seat, action, ScriptedRandom())
        assert isinstance(outcome.state, MazeState)
        return outcome.state

    async def token_at(self, player_id: str) -> list[int]:
        position: list[int] = await self.script(
            "const t = document.querySelector(`.vb-token[data-player='${arguments[0]}']`);"
            "return [Number(t.dataset.x), Number(t.dataset.y)];",
            player_id,
        )
        return position

    async def test_draws_the_walls_rewards_tokens_and_legend_of_the_state(self) -> None:
        seats = table(3)
        state = maze_state(seats, 9, 6, seed=3)
        # A few real moves, so that rewards are gone and scores differ.
        for seat, moves in ((seats[0], path_from(state, (0, 0), 3)),):
            position = state.positions[seat.index]
            for name in moves:
                state = self.apply(state, seat, {"move": name, "from": list(position)})
                position = state.positions[seat.index]
        await self.open_board(seats, me=1)
        await self.update(self.view(state))
        await assert_drawn(self, self.browser, "maze")

        drawn = await self.script(
            "const svg = document.querySelector('svg.vb-grid');"
            "const box = svg.getBoundingClientRect();"
            "return {viewBox: svg.getAttribute('viewBox'), walls: document.querySelector("
            "'.vb-walls').getAttribute('d'), ratio: box.width / box.height,"
            "rewards: [...svg.querySelectorAll('[data-reward]')].map((r) => {"
            "const b = r.getBoundingClientRect(); return [Number(r.dataset.reward), b.width]; })}"
        )
        self.assertLess(abs(drawn["ratio"] - 9 / 6), 0.05, drawn["ratio"])
        left, _, box_width, _ = (float(n) for n in drawn["viewBox"].split())
        unit = (box_width + 2 * left) / 9
        segments = {
            (round(float(x) / unit), round(float(y) / unit), axis, round(float(end) / unit))
            for x, y, axis, end in re.findall(SEGMENT, drawn["walls"])
        }
        expected = set()
        for index, cell in enumerate(state.cells):
            x, y = index % 9, index // 9
            if cell & 1:
                expected.add((x, y, "H", x + 1))
            if cell & 8:
                expected.add((x, y, "V", y + 1))
            if y == 5 and cell & 4:
                expected.add((x, y + 1, "H", x + 1))
            if x == 8 and cell & 2:
                expected.add((x + 1, y, "V", y + 1))
        self.assertEqual(segments, expected)

        rewards = [reward for reward, _ in drawn["rewards"]]
        in_state = [cell >> 4 for cell in state.cells if cell >> 4]
        self.assertEqual(sorted(rewards), sorted(in_state))
        self.assertEqual(len(rewards), state.remaining)
        ones = [width for reward, width in drawn["rewards"] if reward == 1]
        fives = [width for reward, width in drawn["rewards"] if reward == 5]
        self.assertTrue(ones and fives)
        self.assertGreater(min(fives), 2 * max(ones), "a five looks like a one")

        for seat in seats:
            self.assertEqual(
                await self.token_at(seat.player_id), list(state.positions[seat.index])
            )
        mine = await self.script("return [...document.querySelectorAll('.vb-token.vb-me')]"
                                 ".map((t) => t.dataset.player)")
        self.assertEqual(mine, [seats[1].player_id])
        names = await self.script(
            "return [...document.querySelectorAll('.vb-legend .vb-name')].map((s) => s.textContent)"
        )
        self.assertEqual(names, ["ada", "bo (you)", "cy"])
        scores = await self.script(
            "return [...document.querySelectorAll('.vb-legend .vb-score')]"
            ".map((s) => s.textContent)"
        )
        self.assertEqual(scores, [str(score) for score in state.scores])
        self.assertEqual(
            await self.browser.text_of(".vb-remaining"), f"{state.remaining} rewards left"
        )

    async def test_every_key_layout_moves_me_through_open_walls_and_never_into_one(self) -> None:
        seats = table(2)
        state = maze_state(seats, 10, 10, seed=11)
        me = seats[0]
        await self.open_board(seats, me=0)
        await self.update(self.view(state))
        layouts = [ARROWS, WASD, VI]
        walls_tried = 0
        for sent, name in enumerate(path_from(state, (0, 0), 9)):
            keys = layouts[sent % 3]
            position = state.positions[0]
            # A key toward a wall first: the board does not send it (the game
            # would refuse it), so the one action that comes is the open move.
            walls = walled(state, position)
            blocked = [keys[walls[sent % len(walls)]]] if walls else []
            walls_tried += len(blocked)
            await self.press(*blocked, keys[name])
            acts = await self.wait_for_acts(sent + 1)
            self.assertEqual(len(acts), sent + 1, acts)
            action = acts[-1]["a"]
            self.assertEqual(action, {"move": name, "from": list(position)})
            state = self.apply(state, me, action)
            await self.update(self.view(state, last=acts[-1]["i"]))
            self.assertEqual(await self.token_at(me.player_id), list(state.positions[0]))
        self.assertGreater(state.scores[0], 0)
        self.assertEqual(await self.script("return window.acts.length"), 9)
        self.assertGreaterEqual(walls_tried, 6)

    async def test_quick_presses_are_predicted_moves_the_game_accepts_in_turn(self) -> None:
        seats = table(2)
        state = maze_state(seats, 10, 10, seed=5)
        me = seats[1]
        await self.open_board(seats, me=1)
        await self.update(self.view(state))
        moves = path_from(state, state.positions[1], 6)
        # Four presses before any state comes back: each from where the last leads.
        await self.press(*(ARROWS[name] for name in moves[:4]))
        acts = await self.wait_for_acts(4)
        states = [state]
        for act in acts:
            states.append(self.apply(states[-1], me, act["a"]))
        self.assertEqual([act["a"]["move"] for act in acts], moves[:4])
        # A state that shows only the first two applied: the next press still
        # comes from the end of the four.
        await self.update(self.view(states[2], last=acts[1]["i"]))
        await self.press(ARROWS[moves[4]])
        acts = await self.wait_for_acts(5)
        state = self.apply(states[4], me, acts[4]["a"])
        # Once a rejection comes, the board trusts the latest state alone.
        await self.update(self.view(state, last=acts[4]["i"]))
        await self.script("harness.error('stale', 'you are elsewhere')")
        await self.press(ARROWS[moves[5]])
        acts = await self.wait_for_acts(6)
        self.assertEqual(acts[5]["a"], {"move": moves[5], "from": list(state.positions[1])})
        state = self.apply(state, me, acts[5]["a"])
        self.assertEqual(await self.script("return window.said"), [])

    async def test_buttons_move_only_in_play_and_destroy_removes_the_key_listener(self) -> None:
        seats = table(2)
        state = maze_state(seats, 8, 8, seed=2)
        me = seats[0]
        await self.open_board(seats, me=0)
        await self.script("harness.destroy()")
        before = await self.window_listeners("keydown")
        await self.create()
        self.assertEqual(await self.window_listeners("keydown"), before + 1)
        first, second = path_from(state, (0, 0), 2)
        # In the countdown nothing moves: neither keys nor buttons.
        await self.update(self.view(state, phase="countdown"))
        await self.press(ARROWS[first], WASD[first])
        await self.click(f".vb-pad button[data-dir='{first}']")
        disabled = await self.script("return [...document.querySelectorAll('.vb-pad button')]"
                                     ".every((b) => b.disabled)")
        self.assertTrue(disabled)
        await self.update(self.view(state))
        await self.click(f".vb-pad button[data-dir='{first}']")
        acts = await self.wait_for_acts(1)
        self.assertEqual(acts, [{"a": {"move": first, "from": [0, 0]}, "i": 1}])
        state = self.apply(state, me, acts[0]["a"])
        await self.update(self.view(state, last=1))

        await self.script("harness.destroy()")
        self.assertEqual(await self.window_listeners("keydown"), before)
        self.assertEqual(
            await self.script("return document.querySelector('#board .board-holder').innerHTML"), ""
        )
        await self.press(ARROWS[second], VI[second])
        # A new board proves the keys reach the page: only its move arrives.
        await self.create()
        await self.update(self.view(state, last=1))
        await self.press(ARROWS[second])
        acts = await self.wait_for_acts(2)
        self.assertEqual(len(acts), 2, acts)
        self.apply(state, me, acts[1]["a"])

    async def test_a_held_key_moves_at_the_games_action_rate(self) -> None:
        seats = table(2)
        state = maze_state(seats, 10, 10, seed=11)
        await self.open_board(seats, me=0)
        await self.update(self.view(state))
        first = path_from(state, (0, 0), 1)[0]
        # Auto-repeat: five repeats within a few milliseconds are one move,
        # and a repeat after the game's 100 ms per move is the next one.
        await self.script(
            "for (let k = 0; k < 5; k++) window.dispatchEvent(new KeyboardEvent('keydown',"
            "{key: arguments[0], repeat: k > 0, bubbles: true}));",
            ARROWS_BY_NAME[first],
        )
        acts = await self.wait_for_acts(1)
        self.assertEqual([act["a"] for act in acts], [{"move": first, "from": [0, 0]}])
        state = self.apply(state, seats[0], acts[0]["a"])
        await self.update(self.view(state, last=1))
        second = path_from(state, state.positions[0], 1)[0]
        await self.script(
            "setTimeout(() => window.dispatchEvent(new KeyboardEvent('keydown',"
            "{key: arguments[0], repeat: true, bubbles: true})), 150);",
            ARROWS_BY_NAME[second],
        )
        acts = await self.wait_for_acts(2)
        self.apply(state, seats[0], acts[1]["a"])


class OweDrahnBoardTests(BoardCase):
    board = "owedrahn"

    def setUp(self) -> None:
        self.game = OweDrahnGame()
        self.version = 1
        self.seats = table(3)

    def view(self, state: OweDrahnState, phase: str = "playing") -> Any:
        self.version += 1
        return room_state(self.game.view(state, self.info["me"]), self.version, phase)

    def apply(
        self, state: OweDrahnState, who: int, action: dict[str, Any], dice: Sequence[int] = ()
    ) -> OweDrahnState:
        outcome = self.game.apply_action(state, self.seats[who], action, ScriptedRandom(dice))
        assert isinstance(outcome.state, OweDrahnState)
        return outcome.state

    async def hearts(self) -> dict[str, list[int]]:
        """Per player id: [lives the card says, full hearts, empty hearts]."""
        found: dict[str, list[int]] = await self.script(
            "const out = {}; for (const card of document.querySelectorAll('.vb-player')) {"
            "out[card.dataset.player] = [Number(card.dataset.lives),"
            "card.querySelectorAll('.vb-full').length, card.querySelectorAll('.vb-lost').length];"
            "} return out;"
        )
        return found

    async def buttons(self) -> dict[str, bool]:
        enabled: dict[str, bool] = await self.script(
            "return {roll: !document.querySelector('.vb-roll').disabled,"
            "give_up: !document.querySelector('.vb-give-up').disabled}"
        )
        return enabled

    async def test_shows_lives_total_the_last_die_and_whose_turn(self) -> None:
        state = owedrahn_midgame(self.seats)
        await self.open_board(self.seats, me=0)
        await self.update(self.view(state))
        await assert_drawn(self, self.browser, "owedrahn")
        ada, bo, cy = (s.player_id for s in self.seats)
        self.assertEqual(state.lives, (6, 5, 5))
        self.assertEqual(await self.hearts(), {ada: [6, 6, 0], bo: [5, 5, 1], cy: [5, 5, 1]})
        self.assertEqual(await self.browser.text_of(".vb-total"), str(state.total))
        self.assertEqual(await self.browser.text_of(".vb-limit"), " / 15")
        die = await self.script(
            "const d = document.querySelector('.vb-die');"
            "return [d.dataset.value, d.querySelectorAll('circle').length]"
        )
        self.assertEqual(die, [str(state.last_roll), state.last_roll])
        self.assertEqual(await self.browser.text_of(".vb-caption"), "cy rolled a 5")
        self.assertEqual(
            await self.browser.text_of(".vb-status"), "Your turn: roll, or give up a life"
        )
        turn = await self.script(
            "return document.querySelector('.vb-player.vb-turn').dataset.player"
        )
        self.assertEqual(turn, ada)

    async def test_roll_sends_the_action_the_game_accepts_and_only_on_my_turn(self) -> None:
        state = owedrahn_midgame(self.seats)
        await self.open_board(self.seats, me=0)
        await self.update(self.view(state))
        self.assertEqual(await self.buttons(), {"roll": True, "give_up": True})
        await self.click(".vb-roll")
        acts = await self.wait_for_acts(1)
        self.assertEqual(acts[0]["a"], {"roll": True})
        state = self.apply(state, 0, acts[0]["a"], [2])
        await self.update(self.view(state))
        self.assertEqual(await self.browser.text_of(".vb-total"), "13")
        # bo's turn: both buttons are off and a click sends nothing.
        self.assertEqual(await self.buttons(), {"roll": False, "give_up": False})
        self.assertEqual(await self.browser.text_of(".vb-status"), "bo is rolling…")
        await self.click(".vb-roll")
        state = self.apply(state, 1, {"roll": True}, [3])
        state = self.apply(state, 2, {"roll": True}, [1])
        await self.update(self.view(state))
        self.assertEqual(await self.buttons(), {"roll": True, "give_up": True})
        await self.click(".vb-roll")
        acts = await self.wait_for_acts(2)
        self.assertEqual(len(acts), 2, acts)
        # A 6 on 14: over 15, a life lost, the total back to 0.
        state = self.apply(state, 0, acts[1]["a"], [6])
        await self.update(self.view(state))
        ada = self.seats[0].player_id
        self.assertEqual((await self.hearts())[ada], [5, 5, 1])
        self.assertEqual(await self.browser.text_of(".vb-total"), "0")
        self.assertEqual(await self.browser.text_of(".vb-caption"), "You rolled a 6")

    async def test_give_up_a_life_chooses_who_rolls_next(self) -> None:
        state = owedrahn_midgame(self.seats)
        ada, bo, cy = (s.player_id for s in self.seats)
        await self.open_board(self.seats, me=0)
        await self.update(self.view(state))
        await self.click(".vb-give-up")
        choices = await self.script(
            "return [...document.querySelectorAll('.vb-choose button')].map((b) => b.textContent)"
        )
        self.assertEqual(choices, ["bo", "cy", "Me", "Cancel"])
        await self.click(f".vb-choose button[data-next='{cy}']")
        acts = await self.wait_for_acts(1)
        self.assertEqual(acts[0]["a"], {"give_up_life": True, "next": cy})
        state = self.apply(state, 0, acts[0]["a"])
        self.assertEqual((state.lives[0], state.total, state.players[state.turn]), (5, 0, cy))
        await self.update(self.view(state))
        self.assertEqual(await self.browser.text_of(".vb-status"), "cy is rolling…")
        self.assertEqual((await self.hearts())[ada], [5, 5, 1])
        self.assertTrue(
            await self.script("return document.querySelector('.vb-choose').hidden")
        )
        # With one life left only a roll is possible: giving it up is off.
        state = evolve(state, lives=(1, 5, 5), turn=0)
        await self.update(self.view(state))
        self.assertEqual(await self.buttons(), {"roll": True, "give_up": False})
        await self.click(".vb-give-up")
        await self.click(".vb-roll")
        acts = await self.wait_for_acts(2)
        self.assertEqual([act["a"] for act in acts[1:]], [{"roll": True}])
        self.apply(state, 0, acts[1]["a"], [4])
        # A rejection is shown to the player.
        await self.script("harness.error('not_your_turn', arguments[0])", f"it is {bo}'s turn")
        self.assertEqual(await self.script("return window.said"), [f"it is {bo}'s turn"])

    async def test_the_end_names_the_winner_and_takes_the_actions_away(self) -> None:
        state = owedrahn_midgame(self.seats)
        # The real game played to its end: ada and bo on their last life go over.
        state = evolve(state, lives=(1, 1, 2), total=15, turn=0)
        state = self.apply(state, 0, {"roll": True}, [6])  # ada over 15: out
        state = self.apply(state, 1, {"roll": True}, [6])
        state = self.apply(state, 2, {"roll": True}, [5])
        state = self.apply(state, 1, {"roll": True}, [5])  # bo over 15: out, cy wins
        self.assertTrue(state.finished)
        await self.open_board(self.seats, me=2)
        await self.update(self.view(state, phase="finished"))
        self.assertEqual(await self.browser.text_of(".vb-status"), "You win!")
        tags = await self.script(
            "return [...document.querySelectorAll('.vb-player')].map((c) =>"
            "(c.querySelector('.vb-tag') || {}).textContent || '')"
        )
        self.assertEqual(tags, ["out", "out", "★ winner"])
        self.assertFalse(await self.script("return document.querySelector('.vb-roll')"
                                           ".checkVisibility()"))


def game_with(name: str, board: object = None, stylesheet: object = None) -> IGame:
    """A playable game called `name` naming `board` and `stylesheet` as its own."""
    kind = type(f"Game_{name}", (TicTacToeGame,),
                {"name": name, "board": board, "board_stylesheet": stylesheet})  # fmt: skip
    game: IGame = kind()
    return game


class GameBoardStartTests(TestCase):
    """The site the server builds at start, over real HTTP, with the games' boards."""

    def setUp(self) -> None:
        # A game package's directory, as importlib.resources.files() gives it.
        self.package = Path(self.mktemp()).resolve()
        (self.package / "board").mkdir(parents=True)
        for name, text in (("good.js", "export default {};\n"), ("good.css", ".vb-good {}\n"),
                           ("board.txt", "not a module\n")):  # fmt: skip
            (self.package / "board" / name).write_text(text, encoding="utf-8")
        (self.package / "board" / "latin1.js").write_bytes(b"// caf\xe9\n")
        self.log = capture_log(self)

    def serve(self, *games: IGame, auth: str | None = None) -> None:
        site = (web_site(None, None, timeout=10, games=games) if auth is None
                else web_site(None, None, timeout=10, games=games, auth=auth))  # fmt: skip
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"

    async def fetch(
        self, path: str, headers: dict[bytes, list[bytes]] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        response = await Agent(reactor).request(
            b"GET", f"{self.base}{path}".encode(), Headers(headers or {})
        )
        found = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, found, await readBody(response)

    def board_lines(self) -> list[str]:
        return [line for line in self.log if "has no board in the browser" in line]

    async def test_a_board_that_cannot_be_served_is_one_line_and_the_generic_board(self) -> None:
        board = self.package / "board"
        cases = {
            "missing": (game_with("missing", board / "missing.js"),
                        f"board {board / 'missing.js'} is not in the installed package"),
            "text": (game_with("text", board / "board.txt"), "must be a .js file"),
            "named": (game_with("named", "named:board/named.js"),
                      "board must be a .js file of the game's package, as "
                      'importlib.resources.files(__package__) / "board" / "NAME.js", '
                      "not 'named:board/named.js'"),
            "latin": (game_with("latin", board / "latin1.js"), "is not UTF-8 text"),
            "sheetless": (game_with("sheetless", None, board / "good.css"),
                          "board_stylesheet is set but board (the module) is not"),
            "badsheet": (game_with("badsheet", board / "good.js", board / "good.js"),
                         "board_stylesheet " + str(board / "good.js") + " must be a .css file"),
            "dom": (game_with("dom", board / "good.js"),
                    "/boards/dom.js is the web client's helper module"),
        }  # fmt: skip
        self.serve(*(game for game, _ in cases.values()))
        lines = self.board_lines()
        self.assertEqual(len(lines), len(cases), "\n".join(lines))
        for name, (_, says) in cases.items():
            [line] = [line for line in lines if line.startswith(f"vinom: game {name!r} ")]
            self.assertIn(says, line)
            self.assertTrue(line.endswith("its players get the generic board"), line)
        # The page is offered none of them: it draws the generic board, asking for nothing.
        _, _, listed = await self.fetch("/boards.js")
        self.assertEqual(
            listed, b'export default ["arena", "dice", "maze", "owedrahn", "tictactoe"];\n'
        )
        for name in cases:
            code, _, body = await self.fetch(f"/boards/{name}.js")
            if name == "dom":  # still vinom's helper module, which the boards import
                self.assertEqual((code, body), (200, (BOARD_FILES / "dom.js").read_bytes()))
            else:
                self.assertEqual(code, 404, name)

    async def test_settings_say_how_players_sign_in_guest_by_default(self) -> None:
        # The page reads /settings.js before its hello (docs/web.md, "Signing in").
        self.serve()
        code, headers, body = await self.fetch("/settings.js")
        self.assertEqual((code, headers["content-type"]), (200, "text/javascript; charset=utf-8"))
        self.assertEqual(body, b'export default {"replays": false, "auth": "guest"};\n')
        self.serve(auth="device")
        _, _, body = await self.fetch("/settings.js")
        self.assertEqual(body, b'export default {"replays": false, "auth": "device"};\n')

    async def test_a_good_board_is_served_with_the_pages_headers_and_validators(self) -> None:
        board = self.package / "board"
        self.serve(game_with("good", board / "good.js", board / "good.css"))
        self.assertEqual(self.board_lines(), [])
        _, page, _ = await self.fetch("/")
        _, _, listed = await self.fetch("/boards.js")
        self.assertIn(b'"good"', listed)
        for name, kind in (("good.js", "text/javascript"), ("good.css", "text/css")):
            code, headers, body = await self.fetch(f"/boards/{name}")
            self.assertEqual((code, body), (200, (board / name).read_bytes()))
            self.assertEqual(headers["content-type"], f"{kind}; charset=utf-8")
            for header in ("content-security-policy", "x-content-type-options", "cache-control"):
                self.assertEqual(headers[header], page[header], header)
            # Revalidated on each load (no-cache): an unchanged board is a 304, no body.
            code, _, body = await self.fetch(
                f"/boards/{name}", {b"if-none-match": [headers["etag"].encode()]}
            )
            self.assertEqual((code, body), (304, b""))
            for below in (f"/boards/{name}/", f"/boards/{name}/../good.js"):
                code, _, _ = await self.fetch(below)
                self.assertEqual(code, 404, below)
