"""`vinom replay FILE`: watch a match record in the terminal, or check it.

`ReplayViewer` plays a record (vinom.rooms.replay) at the match's pace, in
the game's terminal view (vinom.client.game_views) of its public view
``view(state, None)``, the spectator's: space pauses, + and - change the
speed (1/4 to 16 times), the arrow keys seek 10 seconds (a turn-based game:
10 moves) back or forward, Home and End go to the start and the end, q quits.
It is driven by `advance(seconds)` and `handle_key(key)`, so a test drives it
without a terminal; `run_replay` puts it on curses. A hash that differs stops
the replay where it differs and says so in the status line.

`check_record` is the non-interactive form (`vinom replay --check FILE`):
it replays the whole record as fast as it can and prints one line; a record
that is damaged, of a game not installed, or that does not replay exactly is
one line on stderr and exit status 1.

A record file a host writes holds many matches (docs/operations.md, "Match
records"): `--match ID` picks one. Without it, a file of one match is that
match; of more, the viewer lists them (`list_matches`: one line each, to pick
from) and `--check` checks every one, a line each.
"""

from __future__ import annotations

import curses
import io
import os
import stat
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from vinom.client.canvas import BOLD, DIM, REVERSE, Area, Canvas, PlayerContext, format_view
from vinom.client.game_views import ui_for
from vinom.client.terminal import KEY_ESCAPE, KeyReader, curses_screen
from vinom.games.interfaces import IGame
from vinom.games.rules import GameRules
from vinom.rooms.record import ACT, HOOK, TICK
from vinom.rooms.replay import (
    Record,
    RecordError,
    RecordFile,
    Replay,
    ReplayMismatch,
    read_record,
    read_record_file,
)

#: `--check` of a file of many matches says this many failures, then how many more.
ERROR_LINES = 10
#: Seconds a turn-based game's move is shown at speed 1.
MOVE_SECONDS = 0.5
#: What the arrow keys seek: seconds of a real-time game, moves of a turn-based one.
SEEK_SECONDS = 10.0
SEEK_MOVES = 10
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
FRAME_SECONDS = 0.05
# The calls that make a move of a turn-based game (hooks count: a player leaving).
_MOVES = (ACT, HOOK)


class ReplayError(Exception):
    """A record that cannot be replayed here (one line for the user)."""


def error_line(error: BaseException) -> str:
    """`error` as one line for the user. vinom's own errors are written as
    sentences for the user; any other (a fault, a library's error) is named by its
    kind too, so that a `KeyError('x')` does not print as a bare `'x'`."""
    text = str(error)
    if text and type(error).__module__.split(".")[0] == "vinom":
        return text
    kind = type(error).__name__
    return f"{kind}: {text}" if text else kind


def shown(text: object) -> str:
    """`text` from a record (a match id, a player's name, an end's reason) to print:
    its non-printable characters escaped (a record file may come from elsewhere, and
    an escape sequence in it must not drive the terminal it is listed on)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def read_file(path: str) -> RecordFile:
    """The matches of the record file `path`; raises `ReplayError`."""
    try:
        # A device or a pipe may never end (/dev/zero), or never open (a FIFO with no
        # writer, without O_NONBLOCK): only a regular file is read, whole.
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ReplayError(f"cannot read {path}: not a regular file")
            data = f.read()
    except OSError as e:
        raise ReplayError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return read_record_file(data)
    except RecordError as e:
        raise ReplayError(f"{path}: {e}") from None


def pick_match(path: str, file: RecordFile, match_id: str | None) -> bytes | None:
    """The record of `match_id` in `file` (or of its only match); None when no match
    is named and the file holds more than one. Raises `ReplayError`."""
    records = file.records
    if match_id is not None:
        data = records.get(match_id)
        if data is None:
            held = ", ".join(shown(m) for m in list(records)[:5]) + (
                ", ..." if len(records) > 5 else ""
            )
            raise ReplayError(
                f"{path} holds no match {match_id!r} (it holds {len(records)}"
                + (f": {held}" if held else "") + f"; 'vinom replay {path}' lists them)"
            )
        return data
    if not records:
        raise ReplayError(f"{path}: no match in this record file yet")
    if len(records) == 1:
        return next(iter(records.values()))
    return None


def list_matches(path: str, file: RecordFile, out: TextIO) -> None:
    """One line per match of `file`: its id, game, start (UTC), players, and how it
    ended (or that it has no end: still recording, or its host died)."""
    out.write(f"{path}: {len(file.records)} matches (pick one with --match ID)\n")
    for match_id, data in file.records.items():
        try:
            record = read_record(data)
        except RecordError as e:
            out.write(f"  {shown(match_id)}  {e}\n")
            continue
        header = record.header
        try:
            started = time.strftime(
                "%Y-%m-%d %H:%M:%S", time.gmtime(float(header.get("started", 0.0)))
            )
            players = ", ".join(shown(seat[1]) for seat in header.get("seats", ()))
            end = record.end
            how = shown(end[1]) if end is not None and len(end) > 1 else "no end"
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, OSError) as e:
            # A header that decodes but not as a header (its start not a time, a
            # seat not a list): that match's line says so, the others are listed.
            out.write(f"  {shown(match_id)}  the record's header is damaged ({e})\n")
            continue
        out.write(
            f"  {shown(match_id)}  {shown(record.game)}  {started}  {players}  {how}\n"
        )


def parse_record(
    label: str, data: bytes, find_game: Callable[[str], IGame]
) -> tuple[Record, IGame]:
    """The record in `data` (from `label`: a file, a match in Redis) and its game;
    raises `ReplayError`."""
    try:
        record = read_record(data)
    except RecordError as e:
        raise ReplayError(f"{label}: {e}") from None
    try:
        game = find_game(record.game)
    except KeyError:
        raise ReplayError(
            f"{label}: a match of {record.game!r}, a game this installation does not have "
            "(see 'vinom games')"
        ) from None
    return record, game


class ReplayViewer:
    """A record played at the match's pace (see the module docstring)."""

    def __init__(self, record: Record, game: IGame) -> None:
        self.record = record
        self.game = game
        self.replay = Replay(record, game)
        self.ui = ui_for(game)
        self.speed = 1.0
        self.paused = False
        self.done = False
        #: Why the replay stopped early (a differing hash, a damaged record), or "".
        self.error = ""
        self._tick_rate = float(game.tick_rate or 0.0)
        # Match time owed to the replay and not yet played (seconds at speed 1).
        self._owed = 0.0
        seats = record.header["seats"]
        self.context = PlayerContext(None, {str(p): str(n) for p, n, _bot in seats})
        self.moves = 0

    # -- driving ------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """`seconds` of wall time passed: play what the match did in them (at `speed`)."""
        if self.paused or self.error or self.at_end:
            return
        self._owed += seconds * self.speed
        if self._tick_rate:
            target = self.replay.tick + int(self._owed * self._tick_rate)
            self._owed -= (target - self.replay.tick) / self._tick_rate
            self._play(lambda: self.replay.tick >= target and self._next_kind() == TICK)
        else:
            while self._owed >= MOVE_SECONDS and not self.at_end and not self.error:
                self._owed -= MOVE_SECONDS
                self._play_moves(1)

    def handle_key(self, key: int) -> None:
        if key in (ord("q"), ord("Q"), KEY_ESCAPE):
            self.done = True
        elif key == ord(" "):
            self.paused = not self.paused
        elif key in (ord("+"), ord("=")):
            self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])
        elif key in (ord("-"), ord("_")):
            self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])
        elif key in (curses.KEY_RIGHT, ord("l")):
            self.seek_by(1)
        elif key in (curses.KEY_LEFT, ord("h")):
            self.seek_by(-1)
        elif key == curses.KEY_HOME:
            self._guard(lambda: self.replay.seek(0))
            self.error = ""
        elif key == curses.KEY_END:
            self._play(lambda: False)

    def seek_by(self, direction: int) -> None:
        """10 seconds (or moves) forward (1) or back (-1)."""
        self._owed = 0.0
        if direction > 0:
            if self._tick_rate:
                target = self.replay.tick + int(SEEK_SECONDS * self._tick_rate)
                self._play(lambda: self.replay.tick >= target and self._next_kind() == TICK)
            else:
                self._play_moves(SEEK_MOVES)
            return
        self.error = ""
        replay = self.replay
        if self._tick_rate:
            goal = max(0, replay.tick - int(SEEK_SECONDS * self._tick_rate))
            # Where playing forward stops too: just before the next tick's call.
            entries = self.record.entries
            positions = [i for i, e in enumerate(entries) if e[0] == TICK and e[1] == goal + 1]
            position = positions[0] if positions and goal > 0 else 0
        else:
            done = self.record.entries[: replay.position]
            moves = [i for i, e in enumerate(done) if e[0] in _MOVES]
            position = moves[-SEEK_MOVES] if len(moves) >= SEEK_MOVES else 0
        self._guard(lambda: replay.seek(position))

    @property
    def at_end(self) -> bool:
        return self.replay.position >= self.replay.length

    # -- drawing -------------------------------------------------------------------

    def status(self) -> str:
        replay = self.replay
        where = (
            f"tick {replay.tick}" if self._tick_rate
            else f"move {self._moves_done()}"
        )  # fmt: skip
        text = f"{where}  {replay.position}/{replay.length}  x{self.speed:g}"
        if self.paused:
            text += "  paused"
        if self.at_end:
            end = self.record.end
            text += "  end: " + (str(end[1]) if end is not None else "the record stops here")
        return text

    def draw(self, canvas: Canvas) -> None:
        height, width = canvas.height, canvas.width
        canvas.fill(0, REVERSE)
        match_id = self.record.header.get("match_id", "")
        header = f" vinom replay  {GameRules.of(self.game).title}  {shown(match_id)}"
        canvas.put(0, 0, header, REVERSE)
        status = self.status()
        canvas.put(0, max(len(header) + 2, width - len(status) - 1), status, REVERSE)
        view = self.replay.view(None)
        try:
            self.ui.draw(canvas, Area(2, 1, max(0, height - 4), max(0, width - 2)), view,
                         self.context)  # fmt: skip
        except Exception:
            for i, line in enumerate(format_view(view, self.context)):
                canvas.put(2 + i, 1, line)
        if self.error:
            canvas.put(height - 2, 1, self.error, BOLD)
        canvas.put(height - 1, 1, "space pause  +/- speed  arrows seek  home/end  q quit", DIM)

    # -- internals ------------------------------------------------------------------

    def _moves_done(self) -> int:
        return sum(1 for e in self.record.entries[: self.replay.position] if e[0] in _MOVES)

    def _next_kind(self) -> int | None:
        replay = self.replay
        if replay.position >= replay.length:
            return None
        return int(self.record.entries[replay.position][0])

    def _play(self, until: Callable[[], bool]) -> None:
        def run() -> None:
            while not self.at_end and not until():
                self.replay.step()

        self._guard(run)

    def _play_moves(self, count: int) -> None:
        def run() -> None:
            left = count
            while not self.at_end and left > 0:
                step = self.replay.step()
                if step is not None and step.kind in _MOVES:
                    left -= 1

        self._guard(run)

    def _guard(self, run: Callable[[], object]) -> None:
        try:
            run()
        except (ReplayMismatch, RecordError) as e:
            self.error = str(e)
            self.paused = True


def check_record(
    path: str, find_game: Callable[[str], IGame], out: TextIO, err: TextIO,
    match_id: str | None = None,
) -> int:  # fmt: skip
    """`vinom replay --check FILE [--match ID]`: replay it all, one line on `out` (or
    `err`: status 1); every match of a file of many when none is named."""
    try:
        file = read_file(path)
        data = pick_match(path, file, match_id)
    except ReplayError as e:
        err.write(f"vinom: {e}\n")
        return 1
    # A file of many checked whole: each line names its match (the record's own
    # header may be what is damaged).
    chosen = (
        [(path, data)] if data is not None
        else [(f"{path}: match {shown(m)}", one) for m, one in file.records.items()]
    )  # fmt: skip
    status = 0
    hidden = 0
    for label, one in chosen:
        line = io.StringIO()
        try:
            record, game = parse_record(label, one, find_game)
        except ReplayError as e:
            line.write(f"vinom: {e}\n")
            failed = 1
        else:
            failed = check_loaded(path, record, game, out, line, where=label)
        if failed:
            # The first few failures, then how many more: a file of a million
            # damaged matches is not a million lines.
            if status < ERROR_LINES:
                err.write(line.getvalue())
            else:
                hidden += 1
            status += 1
    if hidden:
        err.write(f"vinom: {path}: {hidden} more matches do not replay (check one with "
                  "--match ID)\n")  # fmt: skip
    return min(status, 1)


def check_loaded(
    path: str, record: Record, game: IGame, out: TextIO, err: TextIO, where: str = "",
) -> int:  # fmt: skip
    """`check_record` of a record already read (`path`: where it came from; `where`,
    if given, what its error line names instead: the match of a file of many)."""
    where = where or path
    started = time.process_time()
    try:
        replay = Replay(record, game)
        replay.run()
    except (ReplayMismatch, RecordError) as e:
        err.write(f"vinom: {where}: {e}\n")
        return 1
    except Exception as e:
        # A fault outside the game's calls (which the replay catches, as the
        # room does): still one line and status 1, never a silent exit.
        err.write(f"vinom: {where}: the replay failed: {error_line(e)}\n")
        return 1
    cpu = time.process_time() - started
    header = record.header
    version = str(header.get("game_version", ""))
    end = record.end
    how = (
        shown(end[1]) + (f" ({shown(end[2].get('reason'))})" if isinstance(end[2], dict) else "")
        if end is not None else "no end: the record stops at its last flush"
    )  # fmt: skip
    note = (
        "" if version == str(game.version)
        else f" (recorded with rules {version}, replayed with {game.version})"
    )  # fmt: skip
    match_id = shown(header.get("match_id", "?"))
    out.write(
        f"{path}: {record.game} match {match_id}, {len(record.entries)} entries, "
        f"{replay.tick} ticks, {replay.hashes_checked} hashes checked: replays exactly; "
        f"{how}; {cpu:.2f} s CPU{note}\n"
    )
    return 0


def run_replay(
    reactor: Any,
    path: str,
    find_game: Callable[[str], IGame],
    fetch: Callable[[], Deferred[bytes]] | None = None,
    match_id: str | None = None,
) -> int:
    """`vinom replay FILE [--match ID]` on a terminal: the viewer on curses until q
    (a file of many matches and none named: their list, status 0).

    With `fetch`, the record's bytes come from it (`path` names where: a match in
    Redis), once the reactor runs; a failure to fetch or read them is one line."""
    loaded: tuple[Record, IGame] | None = None
    if fetch is None:
        try:
            file = read_file(path)
            data = pick_match(path, file, match_id)
            if data is None:
                list_matches(path, file, sys.stdout)
                return 0
            loaded = parse_record(path, data, find_game)
        except ReplayError as e:
            sys.stderr.write(f"vinom: {e}\n")
            return 1
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        sys.stderr.write("vinom: 'vinom replay' needs a terminal (or --check to verify a record)\n")
        return 1
    viewers: list[ReplayViewer] = []
    failures: list[str] = []
    with curses_screen() as screen:
        last = [reactor.seconds()]

        def frame() -> None:
            viewer = viewers[0]
            for key in screen.read_keys():
                viewer.handle_key(key)
            now = reactor.seconds()
            viewer.advance(now - last[0])
            last[0] = now
            if viewer.done:
                stop()
                return
            height, width = screen.size()
            canvas = Canvas(height, width)
            viewer.draw(canvas)
            screen.show(canvas)

        def key(k: int) -> None:
            if viewers:
                viewers[0].handle_key(k)

        def quit_now() -> None:
            if viewers:
                viewers[0].done = True
            else:
                stop()

        def stop() -> None:
            # The keys' reader first: the reactor's shutdown would hang it up, and
            # its hang-up would stop the stopped reactor again.
            if frames.running:
                frames.stop()
            reactor.removeReader(reader)
            if reactor.running:
                reactor.stop()

        def start(record_and_game: tuple[Record, IGame]) -> None:
            viewers.append(ReplayViewer(*record_and_game))
            last[0] = reactor.seconds()
            # A frame that raises stops the frames: said as `--check` says it, and
            # the viewer exits (else it waits on a frozen screen, q included).
            frames.start(FRAME_SECONDS).addErrback(faulted)

        def faulted(failure: Failure) -> None:
            error = cast(BaseException, failure.value)
            failures.append(f"{path}: the replay failed: {error_line(error)}")
            stop()

        def failed(failure: Failure) -> None:
            error = cast(BaseException, failure.value)
            # The record's own faults name where it came from, as `--check` does.
            named = isinstance(error, (RecordError, ReplayMismatch))
            failures.append(f"{path}: {error_line(error)}" if named else error_line(error))
            stop()

        def begin() -> None:
            reactor.addReader(reader)
            if loaded is not None:
                d = succeed(loaded)
            else:
                assert fetch is not None
                d = fetch().addCallback(lambda data: parse_record(path, data, find_game))
            # `failed` hears the viewer's own start failing too, not only the fetch.
            d.addCallback(start)
            d.addErrback(failed)

        frames = LoopingCall(frame)
        frames.clock = reactor
        reader = KeyReader(screen.read_keys, key, quit_now)
        reactor.callWhenRunning(begin)
        reactor.run()
    if failures:
        sys.stderr.write(f"vinom: {failures[0]}\n")
        return 1
    if viewers and viewers[0].error:
        sys.stderr.write(f"vinom: {path}: {viewers[0].error}\n")
        return 1
    return 0
