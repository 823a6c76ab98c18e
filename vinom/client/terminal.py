"""The terminal side of `vinom play`: curses drawing and key reading for the reactor.

`CursesScreen` copies a `Canvas` to the terminal and reads keys without
blocking (arrow keys arrive as escape sequences, `decode_arrows`); `KeyReader`
is the reactor's reader on file descriptor 0 that hands keys to the app and
notices a terminal that hung up. The app itself (vinom.client.tui) draws on a
plain `Canvas` and never touches curses.
"""

from __future__ import annotations

import contextlib
import curses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.client.canvas import (
    BIG_REWARD,
    BOLD,
    DIM,
    ERROR,
    GOOD,
    ME,
    NORMAL,
    OTHER,
    REVERSE,
    REWARD,
    WALL,
    Canvas,
)

KEY_ESCAPE = 27


@contextlib.contextmanager
def curses_screen() -> Iterator[CursesScreen]:
    """The terminal as a `CursesScreen` for a client's view (no echo, keys read at once
    and without blocking, no cursor, a short Escape delay), restored as it was on
    leaving, whatever ends the view: `vinom play`, `vinom watch`, `vinom replay`."""
    window = curses.initscr()
    try:
        curses.noecho()
        curses.cbreak()
        window.keypad(True)
        window.nodelay(True)
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        curses.set_escdelay(25)
        yield CursesScreen(window)
    finally:
        window.keypad(False)
        curses.nocbreak()
        curses.echo()
        curses.endwin()


class CursesScreen:
    """A `Screen` on a curses window; reads keys without blocking."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.attributes = _attributes()

    def size(self) -> tuple[int, int]:
        height, width = self.window.getmaxyx()
        return int(height), int(width)

    def show(self, canvas: Canvas) -> None:
        window = self.window
        window.erase()
        for y in range(canvas.height):
            for x, text, style in canvas.runs(y):
                # The bottom-right cell cannot be written without scrolling: skip it.
                if y == canvas.height - 1 and x + len(text) >= canvas.width:
                    text = text[: max(0, canvas.width - 1 - x)]
                if not text:
                    continue
                with contextlib.suppress(curses.error, UnicodeEncodeError):
                    window.addstr(y, x, text, self.attributes.get(style, 0))
        window.refresh()

    def clear(self) -> None:
        self.window.clear()

    def read_keys(self) -> list[int]:
        keys: list[int] = []
        while True:
            key = self.window.getch()
            if key == -1:
                return decode_arrows(keys)
            keys.append(key)


# Arrow keys as terminals send them outside keypad mode (ESC [ A) or inside it
# (ESC O A); curses decodes only the form terminfo names, and a stray "ESC [ B"
# must not turn into the keys ESC, '[' and 'B' (autopilot).
_ARROWS = {ord("A"): curses.KEY_UP, ord("B"): curses.KEY_DOWN, ord("C"): curses.KEY_RIGHT,
           ord("D"): curses.KEY_LEFT}


def decode_arrows(keys: Sequence[int]) -> list[int]:
    """Replace undecoded arrow-key escape sequences in `keys` with curses key codes."""
    decoded: list[int] = []
    i = 0
    while i < len(keys):
        if (keys[i] == KEY_ESCAPE and i + 2 < len(keys) and keys[i + 1] in (ord("["), ord("O"))
                and keys[i + 2] in _ARROWS):
            decoded.append(_ARROWS[keys[i + 2]])
            i += 3
        else:
            decoded.append(keys[i])
            i += 1
    return decoded


def _attributes() -> dict[int, int]:
    attributes = {
        NORMAL: curses.A_NORMAL,
        BOLD: curses.A_BOLD,
        DIM: curses.A_DIM,
        REVERSE: curses.A_REVERSE,
        ME: curses.A_BOLD,
        OTHER: curses.A_BOLD,
        REWARD: curses.A_NORMAL,
        BIG_REWARD: curses.A_BOLD,
        WALL: curses.A_NORMAL,
        ERROR: curses.A_BOLD,
        GOOD: curses.A_BOLD,
    }
    if not curses.has_colors():
        return attributes
    try:
        curses.start_color()
        curses.use_default_colors()
        background = -1
    except curses.error:
        background = curses.COLOR_BLACK
    colours = {
        ME: (curses.COLOR_YELLOW, curses.A_BOLD),
        OTHER: (curses.COLOR_CYAN, curses.A_BOLD),
        REWARD: (curses.COLOR_GREEN, curses.A_NORMAL),
        BIG_REWARD: (curses.COLOR_MAGENTA, curses.A_BOLD),
        WALL: (curses.COLOR_BLUE, curses.A_NORMAL),
        ERROR: (curses.COLOR_RED, curses.A_BOLD),
        GOOD: (curses.COLOR_GREEN, curses.A_BOLD),
    }
    for pair, (style, (colour, extra)) in enumerate(colours.items(), start=1):
        try:
            curses.init_pair(pair, colour, background)
        except curses.error:
            continue
        attributes[style] = curses.color_pair(pair) | extra
    return attributes


@implementer(IReadDescriptor)
class KeyReader:
    """Calls `on_keys` when the terminal (stdin) has input; ends on hang-up."""

    # A readable stdin that yields no key this many times in a row has hung up.
    HANGUP_AFTER = 50

    def __init__(self, read_keys: Callable[[], Sequence[int]], on_key: Callable[[int], object],
                 on_hangup: Callable[[], object], fd: int = 0) -> None:
        self.read_keys = read_keys
        self.on_key = on_key
        self.on_hangup = on_hangup
        self.fd = fd
        self.empty_reads = 0

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> Failure | None:
        keys = self.read_keys()
        if not keys:
            self.empty_reads += 1
            if self.empty_reads >= self.HANGUP_AFTER:
                return Failure(ConnectionDone("the terminal hung up"))
            return None
        self.empty_reads = 0
        for key in keys:
            self.on_key(key)
        return None

    def connectionLost(self, reason: Failure) -> None:
        self.on_hangup()

    def logPrefix(self) -> str:
        return "vinom-keys"
