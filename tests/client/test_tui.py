"""The terminal client: drawing, keys to actions, the app's match flow, and a real terminal.

Most tests drive `TerminalApp` with a fake screen, a `Clock` and a
`GameSession` whose UDP side is a stand-in that records what is sent, while
the "server" is the real game's rules applied to the actions the app sends.
The last test runs `python -m vinom.cli play maze` in a pseudo-terminal
against a whole server in this process and a bot, presses keys, and checks on
the server's side that the terminal player moved.
"""

# slow: runs the terminal client on a pseudo-terminal

from __future__ import annotations

import curses
import os
import random
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import ProcessDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

import vinom
from tests.support.servers import start_server
from tests.support.terminal import in_a_terminal
from tests.support.waiting import until
from vinom.client import game_views, terminal, tui
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.canvas import BOLD, NORMAL, Canvas, PlayerContext, format_view
from vinom.client.game import GameSession
from vinom.client.lobby import Auth, Welcome, device_auth
from vinom.games.interfaces import IllegalAction, Seat
from vinom.games.maze import DIRECTIONS, MazeGame
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.rooms.messages import (
    encode_error,
    encode_event,
    encode_phase,
    encode_presence,
    encode_state,
    encode_welcome,
)

ME, THEM = "p-me", "p-them"
SEATS = (Seat(ME, "ada", 0), Seat(THEM, "bob", 1))
KEY_OF = {"N": ord("k"), "S": ord("j"), "W": ord("h"), "E": ord("l")}
ARROW_OF = {"N": curses.KEY_UP, "S": curses.KEY_DOWN, "W": curses.KEY_LEFT,
            "E": curses.KEY_RIGHT}
SOURCE_ROOT = str(Path(vinom.__file__).resolve().parent.parent)


class FakeScreen:
    def __init__(self, height: int = 30, width: int = 90) -> None:
        self.height, self.width = height, width
        self.canvas: Canvas | None = None
        self.clears = 0

    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def show(self, canvas: Canvas) -> None:
        self.canvas = canvas

    def clear(self) -> None:
        self.clears += 1

    def text(self) -> str:
        assert self.canvas is not None
        return self.canvas.text()


class FakeUDP:
    """Stands in for GameClientProtocol: records the messages the session sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.disconnected = 0
        self.closed: Deferred[str] = Deferred()

    def send(self, channel: int, data: bytes) -> None:
        assert channel == 1, "client messages go on the reliable channel"
        self.sent.append(msgpack.unpackb(data))

    def disconnect(self) -> Deferred[None]:
        self.disconnected += 1
        return succeed(None)


def my_player(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """This player's entry in a view's `players` list."""
    return next((p for p in view["players"] if p["id"] == ME), None)


class Match:
    """A terminal app in a match whose server side is the real game's rules."""

    def __init__(self, game: Any, options: Mapping[str, Any] | None = None,
                 screen: FakeScreen | None = None, seed: int = 1) -> None:
        self.game = game
        self.rng = random.Random(seed)
        self.state = game.create(SEATS, options or {}, self.rng)
        for seat in SEATS:
            self.state = game.join(self.state, seat).state
        self.version = 0
        self.clock = Clock()
        self.screen = screen or FakeScreen()
        self.app = tui.TerminalApp(self.clock, LobbyAddress("127.0.0.1", 1), game, "ada",
                                   self.screen, rng=random.Random(seed))
        self.app.welcome = Welcome(ME, "ada", "secret")
        self.udp = FakeUDP()
        session = self.app.new_session()
        session.protocol = self.udp  # type: ignore[assignment]
        self.session = session
        self.app.session = session
        session.message_received(1, encode_welcome("m-1", game.name, 0, SEATS, False))

    @property
    def view(self) -> Mapping[str, Any]:
        return self.game.view(self.state, ME)

    def push_state(self, phase: str = "playing", remaining: float | None = 300.0,
                   action_id: int | None = None) -> None:
        self.version += 1
        self.session.message_received(
            0, encode_state(self.version, phase, remaining, self.view, action_id))

    def phase(self, phase: str, remaining: float | None = 300.0, **extra: Any) -> None:
        self.version += 1
        self.session.message_received(1, encode_phase(phase, self.version, remaining, **extra))

    def start(self) -> None:
        self.push_state("countdown", 3.0)
        self.phase("playing")
        self.push_state()

    def press(self, *keys: int | str) -> None:
        for key in keys:
            self.app.handle_key(ord(key) if isinstance(key, str) else key)

    def actions(self) -> list[dict[str, Any]]:
        return [m for m in self.udp.sent if m["t"] == "action"]

    def serve(self) -> None:
        """Apply every action sent so far, in order, answering as a room would."""
        for message in self.actions()[getattr(self, "_served", 0):]:
            try:
                outcome = self.game.apply_action(self.state, SEATS[0], message["a"], self.rng)
            except IllegalAction as e:
                self.session.message_received(1, encode_error(e.code, e.message, message["i"]))
            else:
                self.state = outcome.state
                self.push_state(action_id=message["i"])
        self._served = len(self.actions())


def open_directions(view: Mapping[str, Any], x: int, y: int) -> list[str]:
    cell = view["cells"][y * view["width"] + x]
    return [name for name, (bit, *_) in DIRECTIONS.items() if not cell & bit]


# -- drawing ------------------------------------------------------------------


class CanvasTests(SynchronousTestCase):
    def test_writes_are_clipped(self) -> None:
        canvas = Canvas(2, 5)
        canvas.put(0, 3, "abcdef", BOLD)
        canvas.put(1, -2, "xyz")
        canvas.put(2, 0, "gone")
        canvas.put(-1, 0, "gone")
        self.assertEqual(canvas.lines(), ["   ab", "z"])
        self.assertEqual(list(canvas.runs(0)), [(0, "   ", NORMAL), (3, "ab", BOLD)])

    def test_unprintable_characters_are_replaced(self) -> None:
        canvas = Canvas(1, 10)
        canvas.put(0, 0, "a\x1b[2Jb\n")
        self.assertEqual(canvas.lines(), ["a?[2Jb?"])

    def test_blit_from_an_offset(self) -> None:
        source = Canvas(3, 3)
        for row, text in enumerate(("abc", "def", "ghi")):
            source.put(row, 0, text)
        target = Canvas(3, 4)
        target.blit(source, 1, 2, src_y=1, src_x=1)
        self.assertEqual(target.lines(), ["", "  ef", "  hi"])

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, 40), st.integers(0, 40), st.integers(-50, 50), st.integers(-50, 50),
           st.text(max_size=60))
    def test_any_write_stays_inside(self, h: int, w: int, y: int, x: int, text: str) -> None:
        canvas = Canvas(h, w)
        canvas.put(y, x, text)
        self.assertEqual(len(canvas.lines()), h)
        self.assertTrue(all(len(line) <= w for line in canvas.lines()))
        for row in range(h):
            self.assertEqual(sum(len(run) for _, run, _ in canvas.runs(row)), w)


class MazeDrawingTests(SynchronousTestCase):
    @settings(max_examples=30, deadline=None)
    @given(st.integers(3, 20), st.integers(3, 20), st.integers(0, 2**32))
    def test_drawing_shows_every_wall_and_reward(self, width: int, height: int, seed: int) -> None:
        game = MazeGame()
        state = game.create(SEATS, {"width": width, "height": height}, random.Random(seed))
        view = game.view(state, ME)
        drawing = game_views.MazeUI().render(view, PlayerContext(ME, {THEM: "bob"}))
        for index, cell in enumerate(view["cells"]):
            x, y = index % width, index // width
            top, left = y * game_views.CELL_H, x * game_views.CELL_W
            self.assertEqual(drawing.char(top, left + 2) == "-", bool(cell & 1), (x, y, "N"))
            self.assertEqual(drawing.char(top + 1, left + 4) == "|", bool(cell & 2), (x, y, "E"))
            self.assertEqual(drawing.char(top + 2, left + 2) == "-", bool(cell & 4), (x, y, "S"))
            self.assertEqual(drawing.char(top + 1, left) == "|", bool(cell & 8), (x, y, "W"))
            expected = {0: " ", 1: ".", 5: "$"}[cell >> 4]
            if (x, y) == (0, 0):
                expected = "@"
            elif (x, y) == (width - 1, height - 1):
                expected = "2"
            self.assertEqual(drawing.char(top + 1, left + 2), expected, (x, y))

    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, 19), st.integers(0, 19), st.integers(0, 60), st.integers(0, 120))
    def test_you_stay_in_sight_on_any_screen(self, x: int, y: int, rows: int, cols: int) -> None:
        match = Match(MazeGame(), {"width": 20, "height": 20}, FakeScreen(rows, cols))
        match.state = _with_position(match.state, (x, y))
        match.start()
        text = match.screen.text()
        if rows >= 8 and cols >= 10:
            self.assertIn("@", text.split("\n", 3)[-1])

    def test_a_small_maze_is_centred_with_scores(self) -> None:
        match = Match(MazeGame(), {"width": 3, "height": 3})
        match.start()
        lines = match.screen.text().splitlines()
        self.assertIn("@ you 0", lines[2])
        self.assertIn("2 bob 0", lines[2])
        maze = [line for line in lines if line.strip().startswith("+")]
        self.assertEqual(len(maze), 4)
        self.assertGreater(len(maze[0]) - len(maze[0].lstrip()), 30)


def _with_position(state: Any, position: tuple[int, int]) -> Any:
    return evolve(state, positions=(position, *state.positions[1:]))


# -- the maze in the app --------------------------------------------------------


class MazeAppTests(SynchronousTestCase):
    def test_keys_move_from_the_current_position(self) -> None:
        match = Match(MazeGame(), {"width": 6, "height": 6})
        match.start()
        [first] = open_directions(match.view, 0, 0)[:1]
        match.press(KEY_OF[first])
        self.assertEqual(match.actions(), [{"t": "action", "a": {"move": first, "from": [0, 0]},
                                            "i": 1}])
        match.serve()
        me = my_player(match.view)
        assert me is not None
        self.assertNotEqual(me["pos"], [0, 0])
        x, y = me["pos"]
        second = open_directions(match.view, x, y)[0]
        match.press(ARROW_OF[second])
        self.assertEqual(match.actions()[-1]["a"], {"move": second, "from": [x, y]})
        self.assertIn("@ you", match.screen.text())

    def test_quick_presses_build_on_each_other(self) -> None:
        """A second key before the first move is applied moves on from where the first leads."""
        match = Match(MazeGame(), {"width": 8, "height": 8}, seed=3)
        match.start()
        path = _walk(match.view, (0, 0), 4)
        for direction in path:
            match.press(KEY_OF[direction])
        self.assertEqual(len(match.actions()), 4)
        match.serve()
        self.assertEqual(match.app.notice, "go!")  # nothing was rejected
        me = my_player(match.view)
        assert me is not None
        self.assertEqual(me["pos"], list(_follow((0, 0), path)))
        self.assertIsNone(match.app.ui.predicted)  # type: ignore[attr-defined]

    def test_walls_are_not_sent(self) -> None:
        match = Match(MazeGame(), {"width": 5, "height": 5})
        match.start()
        match.press("k", "h")  # north and west of the north-west corner: the outer wall
        self.assertEqual(match.actions(), [])
        self.assertEqual(match.app.notice, "a wall is in the way")
        self.assertIn("a wall is in the way", match.screen.text())

    def test_nothing_is_sent_before_play(self) -> None:
        match = Match(MazeGame(), {"width": 5, "height": 5})
        match.push_state("countdown", 3.0)
        match.press(KEY_OF[open_directions(match.view, 0, 0)[0]])
        self.assertEqual(match.actions(), [])
        self.assertIn("not yet: the match is countdown", match.screen.text())
        self.assertIn("starts in 0:03", match.screen.text())

    def test_a_rejected_move_shows_and_resets_the_prediction(self) -> None:
        match = Match(MazeGame(), {"width": 6, "height": 6})
        match.start()
        direction = open_directions(match.view, 0, 0)[0]
        match.press(KEY_OF[direction])
        # The server saw us elsewhere (say an older move of ours was applied first).
        match.state = _with_position(match.state, (1, 1))
        match.serve()
        self.assertIn("stale: you are at [1, 1]", match.screen.text())
        self.assertIsNone(match.app.ui.predicted)  # type: ignore[attr-defined]
        match.push_state()
        follow = open_directions(match.view, 1, 1)[0]
        match.press(KEY_OF[follow])
        self.assertEqual(match.actions()[-1]["a"]["from"], [1, 1])

    def test_clock_and_result(self) -> None:
        match = Match(MazeGame(), {"width": 3, "height": 3})
        match.start()
        self.assertIn("5:00 left", match.screen.text())
        match.clock.advance(61)
        match.app.tick()
        self.assertIn("3:59 left", match.screen.text())
        match.phase("finished", None, result={"winners": [ME], "reason": "all_collected"})
        text = match.screen.text()
        self.assertIn("game over: you won! (all_collected)", text)
        self.assertIn("finished", text.splitlines()[0])
        match.press("l", "b", ":")
        self.assertEqual(match.actions(), [])
        self.assertIsNone(match.app.prompt)
        match.press("q")
        self.assertEqual(match.udp.disconnected, 1)
        self.assertNotIn({"t": "leave"}, match.udp.sent)  # the match is over: nothing to leave
        self.assertEqual(match.app.done.result, 0)

    def test_quit_during_play_leaves(self) -> None:
        match = Match(MazeGame(), {"width": 3, "height": 3})
        match.start()
        match.press("q")
        self.assertEqual(match.udp.sent[-1], {"t": "leave"})
        self.assertEqual(match.udp.disconnected, 1)
        self.assertEqual(match.app.done.result, 0)

    def test_shutdown_by_signal_leaves_too(self) -> None:
        match = Match(MazeGame(), {"width": 3, "height": 3})
        match.start()
        match.app.shutdown()
        self.assertEqual(match.udp.sent[-1], {"t": "leave"})
        self.assertEqual(match.app.exit_code, 130)

    def test_aborted_and_presence(self) -> None:
        match = Match(MazeGame(), {"width": 3, "height": 3})
        match.push_state("waiting", 30.0)
        self.assertIn("waiting for players 0:30", match.screen.text())
        match.session.message_received(1, encode_presence(THEM, "disconnected"))
        self.assertIn("bob disconnected", match.screen.text())
        match.phase("aborted", None, reason="players_missing")
        self.assertIn("the match was aborted (players_missing)", match.screen.text())

    def test_resize_redraws_at_the_new_size(self) -> None:
        match = Match(MazeGame(), {"width": 10, "height": 10})
        match.start()
        match.screen.height, match.screen.width = 12, 30
        match.press(curses.KEY_RESIZE)
        self.assertEqual(match.screen.clears, 1)
        assert match.screen.canvas is not None
        self.assertEqual((match.screen.canvas.height, match.screen.canvas.width), (12, 30))
        self.assertIn("@", match.screen.text())


def _follow(start: tuple[int, int], path: list[str]) -> tuple[int, int]:
    x, y = start
    for direction in path:
        _, dx, dy, _ = DIRECTIONS[direction]
        x, y = x + dx, y + dy
    return x, y


def _walk(view: Mapping[str, Any], start: tuple[int, int], steps: int) -> list[str]:
    """A path of `steps` moves through open passages without stepping back."""
    path: list[str] = []
    x, y = start
    came = None
    for _ in range(steps):
        options = [d for d in open_directions(view, x, y) if d != came]
        if not options:
            break
        step = options[0]
        path.append(step)
        _, dx, dy, _ = DIRECTIONS[step]
        x, y = x + dx, y + dy
        came = {"N": "S", "S": "N", "E": "W", "W": "E"}[step]
    return path


# -- tic-tac-toe, the generic view, bots and typed actions ---------------------------


class TicTacToeTests(SynchronousTestCase):
    def match_on_my_turn(self) -> Match:
        for seed in range(20):
            match = Match(TicTacToeGame(), seed=seed)
            if match.view["turn"] == ME:
                match.start()
                return match
        raise AssertionError("no seed gives the first move to us")

    def test_digits_and_cursor_place_marks(self) -> None:
        match = self.match_on_my_turn()
        self.assertIn("your turn", match.screen.text())
        match.press("1")
        self.assertEqual(match.actions()[-1]["a"], {"cell": 0})
        match.serve()
        self.assertIn("waiting for bob", match.screen.text())
        match.press("5")
        self.assertEqual(match.app.notice, "it is not your turn")
        self.assertEqual(len(match.actions()), 1)
        # bob plays 5; we move the cursor from 5 (where the digit left it) down and right.
        match.state = match.game.apply_action(match.state, SEATS[1], {"cell": 4}, match.rng).state
        match.push_state()
        match.press(curses.KEY_DOWN, "l", "l", 10)
        self.assertEqual(match.actions()[-1]["a"], {"cell": 8})
        match.serve()
        match.press("1")
        self.assertEqual(match.app.notice, "it is not your turn")

    def test_taken_cells_and_rematch_keys(self) -> None:
        match = self.match_on_my_turn()
        for mine, theirs in ((0, 3), (1, 4)):
            match.press(str(mine + 1))
            match.serve()
            match.state = match.game.apply_action(match.state, SEATS[1], {"cell": theirs},
                                                  match.rng).state
            match.push_state()
        match.press("4")
        self.assertEqual(match.app.notice, "cell 4 is taken")
        match.press("3")
        match.serve()
        text = match.screen.text()
        self.assertIn("you won the round", text)
        self.assertIn("y = rematch, n = end the match", text)
        match.press("5")
        self.assertIn("the round is over", match.app.notice)
        match.press("y")
        self.assertEqual(match.actions()[-1]["a"], {"rematch": True})
        match.serve()
        self.assertIn("waiting for the rematch answer", match.screen.text())

    def test_y_and_n_mean_nothing_during_a_round(self) -> None:
        match = self.match_on_my_turn()
        match.press("y", "n")
        self.assertEqual(match.actions(), [])
        self.assertEqual(match.app.notice, "the round is still being played")


class GenericViewTests(SynchronousTestCase):
    def dice(self) -> Match:
        match = Match(GameRegistry.from_plugins().get("dice"))
        match.start()
        return match

    def test_view_as_text_with_names(self) -> None:
        ctx = PlayerContext(ME, {ME: "ada", THEM: "bob"})
        lines = format_view({"players": [{"id": ME, "score": 5}, {"id": THEM, "score": 0}],
                                 "turn": THEM, "dice": [1, 5]}, ctx)
        self.assertEqual(lines, ["players:", "  id=you  score=5", "  id=bob  score=0",
                                 "turn: bob", "dice: [1,5]"])

    def test_players_by_name_never_by_id(self) -> None:
        """Ids anywhere in a view (map keys, lists, nested) read as names."""
        ctx = PlayerContext(ME, {ME: "ada", THEM: "bob"})
        lines = format_view({"seq": {ME: 3, THEM: 4}, "thrown": [THEM], "turn": None,
                                 "last": {"player": THEM, "value": 2}}, ctx)
        self.assertEqual(lines, ['seq: {"you":3,"bob":4}', 'thrown: ["bob"]', "turn: null",
                                 'last: {"player":"bob","value":2}'])
        self.assertNotIn(THEM, "\n".join(lines))
        self.assertEqual((ctx.name(None), ctx.name("p-stranger")), ("nobody", "a player"))

    def test_the_game_shows_by_its_display_name(self) -> None:
        match = Match(GameRegistry.from_plugins().get("owedrahn"))
        match.start()
        header = match.screen.text().splitlines()[0]
        self.assertIn("vinom Owe Drahn", header)
        self.assertNotIn(ME, match.screen.text())
        self.assertNotIn(THEM, match.screen.text())

    def test_typed_action(self) -> None:
        match = self.dice()
        self.assertIn("b bot move", match.screen.text())
        match.press(":", *'{"roll": tru', curses.KEY_BACKSPACE, *"ue}")
        self.assertIn('action> {"roll": true}_', match.screen.text())
        match.press(10)
        self.assertIsNone(match.app.prompt)
        expected = {"roll": True} if match.view["turn"] == ME else None
        if expected is not None:
            self.assertEqual(match.actions()[-1]["a"], expected)

    def test_bad_typed_actions_are_not_sent(self) -> None:
        match = self.dice()
        match.press(":", *"roll", 10)
        self.assertIn("not JSON", match.app.notice)
        match.press(":", *"[1]", 13)
        self.assertIn("an action is a JSON object", match.app.notice)
        match.press(":", *"{}", tui.KEY_ESCAPE)
        self.assertIsNone(match.app.prompt)
        self.assertEqual(match.actions(), [])

    def test_bot_move_and_autopilot(self) -> None:
        game = GameRegistry.from_plugins().get("dice")
        for seed in range(20):
            match = Match(game, seed=seed)
            if match.view["turn"] == ME:
                break
        match.start()
        match.press("b", "b")
        self.assertEqual(len(match.actions()), 1, "one action in flight")
        self.assertEqual(match.app.notice, "waiting for your last action to be applied")
        match.serve()
        match.press("B")
        self.assertTrue(match.app.autopilot)
        # Each applied action brings the next from the bot until the turn passes.
        for _ in range(30):
            before = len(match.actions())
            match.serve()
            if len(match.actions()) == before:
                break
        self.assertGreater(len(match.actions()), 2)
        self.assertIn("[autopilot]", match.screen.text())

    def test_events_are_listed(self) -> None:
        match = self.dice()
        match.session.message_received(1, encode_event(3, "banked", {"player": THEM, "points": 50}))
        self.assertIn("banked: player=bob, points=50", match.screen.text())


class ArrowDecodingTests(SynchronousTestCase):
    def test_escape_sequences_become_arrow_keys(self) -> None:
        keys = [ord("x"), 27, ord("["), ord("A"), 27, ord("O"), ord("D"), 27, ord("["), ord("B")]
        self.assertEqual(terminal.decode_arrows(keys),
                         [ord("x"), curses.KEY_UP, curses.KEY_LEFT, curses.KEY_DOWN])

    def test_other_keys_pass_through(self) -> None:
        keys = [27, ord("B"), 27, ord("["), ord("Z"), ord("B"), 27, ord("[")]
        self.assertEqual(terminal.decode_arrows(keys), keys)


class KeyReaderTests(SynchronousTestCase):
    def test_keys_then_hangup(self) -> None:
        queue: list[list[int]] = [[1, 2], []]
        got: list[int] = []
        hung: list[bool] = []
        reader = terminal.KeyReader(lambda: queue.pop(0) if queue else [], got.append,
                               lambda: hung.append(True))
        self.assertIsNone(reader.doRead())
        self.assertEqual(got, [1, 2])
        results = [reader.doRead() for _ in range(terminal.KeyReader.HANGUP_AFTER)]
        self.assertTrue(all(r is None for r in results[:-1]))
        self.assertIsInstance(results[-1], Failure)
        reader.connectionLost(results[-1])  # type: ignore[arg-type]
        self.assertEqual(hung, [True])


# -- a real terminal ---------------------------------------------------------------------


class PseudoTerminalTests(TestCase):
    timeout = 60

    async def test_terminal_player_moves_in_a_maze(self) -> None:
        server = await start_server(self, ports=2)
        directory = self.mktemp()
        os.makedirs(directory)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": SOURCE_ROOT,
            "TERM": "xterm",
            "LINES": "30",
            "COLUMNS": "100",
            "HOME": directory,
        }
        terminal, process = in_a_terminal(
            self,
            [sys.executable, "-m", "vinom.cli", "play", "maze", "--lobby",
             f"127.0.0.1:{server.lobby.port}", "--trust", os.path.abspath(str(server.lobby.trust)),
             "--name", "tui"],
            env, path=directory,
        )
        # A bot makes the match; it thinks long, so the terminal player has the maze.
        sessions: list[GameSession] = []
        bot = Deferred.fromCoroutine(play_bot(
            reactor, server.lobby, GameRegistry.from_plugins().get("maze"), "bot",
            rng=random.Random(1), think_time=30.0, on_session=sessions.append))
        await until(lambda: (bool(sessions) and sessions[0].view is not None)
                    or terminal.ended.called, "the match", timeout=20.0)
        self.assertFalse(terminal.ended.called, _tail(terminal.output))
        bot_view = sessions[0]

        def tui_position() -> list[int]:
            view = bot_view.view
            assert view is not None
            other = next(p for p in view["players"] if p["id"] != bot_view.player_id)
            return list(other["pos"])

        start = tui_position()
        # "@" (you) is on no screen before the maze's; curses sends only what changed,
        # so longer texts may arrive in pieces, but this one arrives whole.
        await until(lambda: b"@" in terminal.output, "the maze to be drawn", timeout=20.0)
        await until(lambda: bot_view.phase == "playing", "play to start", timeout=20.0)
        # Arrow keys (as xterm sends them in keypad mode, which curses asks for) and hjkl,
        # in every direction: from any position one of them is open.
        keys = [b"\x1bOC", b"j", b"\x1bOD", b"k", b"l", b"\x1bOB", b"h", b"\x1bOA"]
        pressed: list[bytes] = []

        def press_next() -> None:
            key = keys[len(pressed) % len(keys)]
            pressed.append(key)
            process.write(key)

        def moved() -> bool:
            if tui_position() != start:
                return True
            press_next()
            return False

        await until(moved, "the terminal player to move", timeout=20.0, every=0.2)
        # Moved by our keys, not by anything else: no farther than one step per key.
        x, y = tui_position()
        self.assertLessEqual(abs(x - start[0]) + abs(y - start[1]), len(pressed))

        process.write(b"q")
        reason = await terminal.ended
        self.assertIsInstance(reason, ProcessDone, _tail(terminal.output))
        report = await bot
        self.assertEqual(report.outcome, "finished")
        self.assertEqual(report.result and report.result["reason"], "opponents_left")
        # curses left the alternate screen (the terminal is restored) before the last words.
        output = terminal.output
        self.assertIn(b"\x1b[?1049h", output)
        self.assertGreater(output.rfind(b"\x1b[?1049l"), output.rfind(b"\x1b[?1049h"))
        self.assertIn(b"you left the match", output[output.rfind(b"\x1b[?1049l"):])


def _tail(output: bytes) -> str:
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b" ", output[-2000:])
    return text.decode("utf-8", "replace")



class InProcessAppTests(TestCase):
    """The whole app (lobby, queue, UDP match) in this process against a real server."""

    timeout = 60

    async def test_queue_play_lose_the_socket_reconnect_and_finish(self) -> None:
        await self.queue_play_lose_the_socket_reconnect_and_finish()

    async def test_signed_in_with_a_device_and_ranked_too(self) -> None:
        # The reconnect signs in as the hello did: a server with authentication needs it.
        await self.queue_play_lose_the_socket_reconnect_and_finish(
            "--auth", "device", auth=device_auth(os.urandom(32), "127.0.0.1"),
            bot_auth=device_auth(os.urandom(32), "127.0.0.1"), queue="ranked")

    async def queue_play_lose_the_socket_reconnect_and_finish(
        self, *server: str, auth: Auth | None = None, bot_auth: Auth | None = None,
        queue: str = "normal",
    ) -> None:  # fmt: skip
        running = await start_server(self, "--limit", "session-timeout=1", *server, ports=2)
        game = GameRegistry.from_plugins().get("tictactoe")
        screen = FakeScreen()
        app = tui.TerminalApp(reactor, running.lobby, game, "ada", screen, reconnect_delay=0.3,
                              auth=auth, queue=queue)  # fmt: skip
        done = app.start()
        await until(lambda: "queued for Tic-tac-toe" in screen.text(), "the queue", timeout=20.0)
        bot = Deferred.fromCoroutine(play_bot(
            reactor, running.lobby, game, "bob", rng=random.Random(1), think_time=0.05,
            auth=bot_auth, queue=queue))
        await until(lambda: app.session is not None and app.session.phase == "playing",
                    "the match", timeout=20.0)
        session = app.session
        assert session is not None and session.protocol is not None
        self.assertIn("you play", screen.text())
        first = session.protocol

        # The socket goes away without a word to the host: the app comes back by itself.
        assert first.transport is not None
        await maybeDeferred(first.transport.stopListening)
        await until(lambda: session.protocol is not first and session.welcome is not None
                    and session.welcome["reconnected"], "the reconnection", timeout=20.0)
        self.assertEqual(app.notice, "reconnected")

        # The bot plays for us to the end of the match.
        app.handle_key(ord("B"))
        final = await session.finished
        self.assertEqual(final["p"], "finished")
        self.assertIn("game over", screen.text())
        report = await bot
        self.assertEqual(report.outcome, "finished")
        app.handle_key(ord("q"))
        self.assertEqual(await done, 0)
        # An account's id when signed in, else a guest's.
        assert app.welcome is not None
        self.assertEqual(app.welcome.player_id[:2], "p-" if auth is None else "a-")
