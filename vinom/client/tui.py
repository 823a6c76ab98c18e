"""The terminal client behind `vinom play`: a curses UI driven by the Twisted reactor.

The reactor owns the process: keys are read when stdin is readable (a reader
on file descriptor 0 calling a non-blocking `getch`) and on a 4 Hz tick (which
also catches terminal resizes and keeps the clock on screen moving), so
nothing ever blocks the network. Drawing goes through a `Canvas`, a plain
grid of characters and styles that tests can read; `CursesScreen` copies it to
the terminal. The terminal is restored on every way out (q, the end of the
match, Ctrl-C, SIGTERM, an exception).

Per game there is a `GameUI` that draws the game's view and turns keys into
actions: the maze (arrow keys or h/j/k/l; each move names the position it is
made from, predicted locally so that quick key presses are not rejected as
stale), tic-tac-toe (a cursor and Enter, or 1-9) and a generic text view for
every other game. In every game `b` lets the game's built-in bot choose your
next action, `B` lets it play for you until pressed again, `:` sends an action
typed as JSON and `q` leaves the match.
"""

from __future__ import annotations

import curses
import json
import random
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from attrs import define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import FileLogObserver, Logger, globalLogBeginner, textFileLogObserver
from twisted.python.failure import Failure

from vinom.client.bots import LobbyAddress
from vinom.client.canvas import (
    BOLD,
    DIM,
    ERROR,
    GOOD,
    KEY_ENTER,
    NORMAL,
    REVERSE,
    Area,
    Canvas,
    GameUI,
    GenericUI,
    PlayerContext,
    format_view,
    value_text,
)
from vinom.client.errors import describe_failure
from vinom.client.game import GameSession, connect_game
from vinom.client.game_views import ui_for
from vinom.client.lobby import Auth, LobbyClient, LobbyError, Queued, Welcome, connect_lobby
from vinom.client.terminal import KEY_ESCAPE, KeyReader, curses_screen
from vinom.games.interfaces import IBot, IGame
from vinom.games.rules import GameRules
from vinom.match import NORMAL_QUEUE

_log = Logger()

# -- the client ---------------------------------------------------------------

KEY_BACKSPACE = (8, 127, curses.KEY_BACKSPACE)
KEY_REDRAW = 12  # Ctrl-L
TICK_SECONDS = 0.25
# A game with a tick redraws this often: its view's interpolation and prediction
# move between snapshots (a frame at the arena's 20 Hz; a terminal draws no faster).
FRAME_SECONDS = 0.05
# How long a quitting client waits for its `leave` to go out before it exits anyway.
QUIT_GRACE = 2.0
RECONNECT_ATTEMPTS = 10
RECONNECT_DELAY = 2.0
# Lobby answers to `reconnect` that no retry will change.
FINAL_RECONNECT_ERRORS = ("bad_secret", "no_active_match")


# -- the application ----------------------------------------------------------


class Screen(Protocol):
    """Where the app draws and what it asks about the terminal (CursesScreen, or a fake)."""

    def size(self) -> tuple[int, int]: ...

    def show(self, canvas: Canvas) -> None: ...

    def clear(self) -> None: ...


def format_time(seconds: float) -> str:
    whole = int(seconds + 0.999)
    return f"{whole // 60}:{whole % 60:02d}"


@define(eq=False)
class TerminalApp:
    """One player's trip: lobby, queue, match over UDP, result; drawn on a `Screen`.

    `start()` fires with the exit status when the user is done (q after the
    match, q to leave it, or an error before it started). `handle_key` takes
    curses key codes; `tick` runs every TICK_SECONDS.
    """

    reactor: Any
    lobby: LobbyAddress
    game: IGame
    name: str
    screen: Screen
    rng: random.Random = field(factory=random.Random)
    # The `auth` of hello and reconnect (None: a guest), and the queue to join.
    auth: Auth | None = None
    queue: str = NORMAL_QUEUE
    ui: GameUI = field(init=False)
    status: str = "starting"
    notice: str = ""
    notice_style: int = NORMAL
    error: str | None = None
    exit_code: int = 0
    welcome: Welcome | None = None
    session: GameSession | None = None
    lobby_client: LobbyClient | None = None
    ended: dict[str, Any] | None = None
    prompt: str | None = None
    autopilot: bool = False
    outstanding: set[int] = field(factory=set)
    remaining: float | None = None
    remaining_at: float = 0.0
    quitting: bool = False
    reconnect_delay: float = RECONNECT_DELAY
    done: Deferred[int] = field(factory=Deferred)
    _bot: IBot | None = None

    def __attrs_post_init__(self) -> None:
        self.ui = ui_for(self.game)

    # -- the flow -------------------------------------------------------------

    def start(self) -> Deferred[int]:
        Deferred.fromCoroutine(self._run()).addErrback(self._failed)
        self.redraw()
        return self.done

    async def _run(self) -> None:
        where = f"{self.lobby.host}:{self.lobby.port}"
        self.set_status(f"connecting to the lobby at {where}")
        client = await connect_lobby(self.reactor, self.lobby.host, self.lobby.port,
                                     trust=self.lobby.trust)
        self.lobby_client = client
        if self.quitting:
            await client.close()
            return
        self.welcome = await client.hello(self.name, auth=self.auth)
        self.set_status(f"queued for {GameRules.of(self.game).title}")
        found = await client.queue(self.game.name, queue=self.queue, on_queued=self._queued)
        self.lobby_client = None
        self.set_status(f"match {found.game_id}: connecting to {found.host}:{found.port}")
        session = self.new_session()
        await connect_game(self.reactor, found, session=session)
        self.session = session
        self._watch(session)
        if self.quitting:
            self._leave()
            return
        self.set_status(f"match {found.game_id}")

    def new_session(self) -> GameSession:
        """A game session whose messages this app shows (not connected yet)."""
        session = GameSession()
        session.on_state = self._on_state
        session.on_phase = self._on_phase
        session.on_event = self._on_event
        session.on_error = self._on_error
        session.on_presence = self._on_presence
        session.on_welcome = lambda message: self._on_welcome(session, message)
        session.finished.addCallback(self._on_finished)
        return session

    def _queued(self, queued: Queued) -> None:
        if queued.status == "waiting_for_server":
            text = "match found, waiting for a free game server"
        elif queued.position is not None:
            shown = GameRules.of(self.game).title
            text = f"queued for {shown} (position {queued.position}), searching"
        else:
            text = f"queued for {GameRules.of(self.game).title}, searching"
        self.set_status(text)

    def _failed(self, failure: Failure) -> None:
        if self.quitting:
            self._finish(self.exit_code)
            return
        self.error = describe_failure(failure, self.lobby)
        _log.failure("vinom play failed", failure)
        self._finish(1)

    def _watch(self, session: GameSession) -> None:
        protocol = session.protocol
        if protocol is not None:
            protocol.closed.addCallback(self._session_closed, session)

    def _session_closed(self, reason: str, session: GameSession) -> None:
        if self.quitting or self.ended is not None or session.finished.called:
            return
        self.set_notice(f"connection lost ({reason}); reconnecting", ERROR)
        Deferred.fromCoroutine(self._reconnect(session))

    async def _reconnect(self, session: GameSession) -> None:
        """Ask the lobby for a fresh token for our seat and resume the same session."""
        assert self.welcome is not None
        last: Exception | None = None
        for attempt in range(RECONNECT_ATTEMPTS):
            if self.quitting:
                return
            try:
                client = await connect_lobby(self.reactor, self.lobby.host, self.lobby.port,
                                             trust=self.lobby.trust)
                found = await client.reconnect(self.welcome.player_id, self.welcome.secret,
                                               auth=self.auth)
                self.outstanding.clear()
                self.ui.settled()
                await connect_game(self.reactor, found, session=session)
            except LobbyError as e:
                if e.code in FINAL_RECONNECT_ERRORS:
                    last = e
                    break
                last = e
            except Exception as e:  # the lobby or host may be back in a moment
                last = e
            else:
                self._watch(session)
                self.set_notice("reconnected", GOOD)
                self.redraw()
                return
            self.set_notice(f"reconnecting (attempt {attempt + 2}): {last}", ERROR)
            self.redraw()
            await _sleep(self.reactor, self.reconnect_delay)
        self.error = f"could not reconnect: {last}"
        self.exit_code = 1
        self.set_notice(self.error + " (q quits)", ERROR)
        self.redraw()

    # -- messages from the game host --------------------------------------------

    def _on_welcome(self, session: GameSession, message: dict[str, Any]) -> None:
        """A welcome of a game with a tick: a view with a `realtime(session)` hook sets
        up its client-side netcode there (interpolation, prediction: docs/client.md),
        for each new session (a reconnection's too)."""
        setup = getattr(self.ui, "realtime", None)
        if session.tick_rate and callable(setup):
            setup(session)

    def _on_state(self, message: dict[str, Any]) -> None:
        self._set_remaining(message.get("r"))
        applied = message.get("i") or 0
        if self.outstanding:
            self.outstanding = {i for i in self.outstanding if i > applied}
            if not self.outstanding:
                self.ui.settled()
        self._autoplay()
        self.redraw()

    def _on_phase(self, message: dict[str, Any]) -> None:
        self._set_remaining(message.get("r"))
        phase = message["p"]
        if phase == "playing":
            self.set_notice("go!", GOOD)
        elif phase == "countdown":
            self.set_notice("get ready", BOLD)
        self._autoplay()
        self.redraw()

    def _on_event(self, message: dict[str, Any]) -> None:
        text = f"{message['e']}: " + ", ".join(
            f"{k}={value_text(k, v, self.context())}" for k, v in message["d"].items())
        if isinstance(self.ui, GenericUI):
            self.ui.events.append(text)
        else:
            self.set_notice(text)
        self.redraw()

    def _on_error(self, message: dict[str, Any]) -> None:
        self.outstanding.discard(message.get("i") or -1)
        self.ui.rejected(message)
        if not self.outstanding:
            self.ui.settled()
        self.set_notice(f"{message['code']}: {message['message']}", ERROR)
        self._autoplay()
        self.redraw()

    def _on_presence(self, message: dict[str, Any]) -> None:
        self.set_notice(f"{self.context().name(message['id'])} {message['status']}")
        self.redraw()

    def _on_finished(self, message: dict[str, Any]) -> dict[str, Any]:
        self.ended = message
        self.autopilot = False
        self.set_notice(self.result_text(message) + "  (q quits)", BOLD)
        self.redraw()
        return message

    def _set_remaining(self, remaining: object) -> None:
        self.remaining = float(remaining) if isinstance(remaining, int | float) else None
        self.remaining_at = self.reactor.seconds()

    # -- what the user does -------------------------------------------------------

    def handle_key(self, key: int) -> None:
        if key == curses.KEY_RESIZE or key == KEY_REDRAW:
            self.screen.clear()
        elif self.prompt is not None:
            self._prompt_key(key)
        elif key in (ord("q"), ord("Q")):
            self.quit()
        elif self.session is None or self.ended is not None:
            pass
        elif key == ord("b"):
            self.bot_move()
        elif key == ord("B"):
            self.autopilot = not self.autopilot
            self.set_notice("autopilot on: the bot plays (B stops it)" if self.autopilot
                            else "autopilot off")
            self._autoplay()
        elif key == ord(":"):
            self.prompt = ""
        elif self.session.view is not None:
            result = self.ui.key(key, self.session.view, self.context())
            if isinstance(result, str):
                self.set_notice(result, ERROR)
            elif result is not None:
                self.send(result)
        self.redraw()

    def _prompt_key(self, key: int) -> None:
        assert self.prompt is not None
        if key == KEY_ESCAPE:
            self.prompt = None
        elif key in KEY_BACKSPACE:
            self.prompt = self.prompt[:-1]
        elif key in KEY_ENTER:
            text, self.prompt = self.prompt, None
            try:
                action = json.loads(text)
            except ValueError as e:
                self.set_notice(f"not JSON: {e}", ERROR)
                return
            if not isinstance(action, dict):
                self.set_notice('an action is a JSON object, e.g. {"roll": true}', ERROR)
                return
            self.send(action)
        elif 32 <= key < 127:
            self.prompt += chr(key)

    def send(self, action: Mapping[str, Any]) -> int | None:
        """Send an action if the match is being played; None (with a notice) if not."""
        session = self.session
        if session is None or session.protocol is None or self.ended is not None:
            return None
        if session.phase != "playing":
            self.set_notice(f"not yet: the match is {session.phase}", ERROR)
            return None
        if session.ticks is not None:
            # A game with a tick: what the player does goes as a real-time input,
            # stamped with its tick, repeated until acknowledged (docs/client.md).
            tick = session.send_input(action)
            self.ui.sent(action)
            return tick
        action_id = session.send_action(action)
        self.outstanding.add(action_id)
        self.ui.sent(action)
        return action_id

    def bot_move(self) -> None:
        """Let the game's bot choose our next action from the newest view."""
        session = self.session
        if session is None or session.view is None or self.welcome is None:
            return
        if self.outstanding:
            self.set_notice("waiting for your last action to be applied")
            return
        if self._bot is None:
            try:
                self._bot = self.game.make_bot(self.welcome.player_id, self.rng)
            except NotImplementedError:  # bots are optional for a `vinom.games.Game`
                self.autopilot = False
                self.set_notice(f"{GameRules.of(self.game).title} has no bot")
                return
        action = self._bot.choose_action(session.view)
        if action is None:
            self.set_notice("the bot has no move to make now")
        else:
            self.send(action)

    def _autoplay(self) -> None:
        session = self.session
        if (self.autopilot and not self.outstanding and session is not None
                and session.phase == "playing" and self.ended is None):
            self.bot_move()

    def quit(self) -> None:
        """Leave the match (or the queue) and finish; a second q does not wait."""
        if self.quitting:
            self._finish(self.exit_code)
            return
        self.quitting = True
        self.set_notice("leaving")
        self._leave().addBoth(lambda _: self._finish(self.exit_code))

    def _leave(self) -> Deferred[None]:
        session, client = self.session, self.lobby_client
        if session is not None and session.protocol is not None:
            try:
                d = session.leave() if self.ended is None else session.disconnect()
            except Exception:  # a session that already ended cannot send its goodbye
                d = succeed(None)
        elif client is not None:
            d = client.close()
        else:
            d = succeed(None)
        d.addTimeout(QUIT_GRACE, self.reactor)
        return d

    def shutdown(self) -> Deferred[None]:
        """Before the reactor stops (q, Ctrl-C, SIGTERM): leave if we have not yet."""
        if self.quitting:
            return succeed(None)
        self.quitting = True
        if not self.done.called:
            self.exit_code = self.exit_code or 130
        return self._leave().addErrback(lambda _: None)

    def _finish(self, code: int) -> None:
        if not self.done.called:
            self.exit_code = code
            self.done.callback(code)

    # -- drawing -------------------------------------------------------------------

    def context(self) -> PlayerContext:
        names: dict[str, str] = {}
        if self.session is not None and self.session.welcome is not None:
            for player in self.session.welcome["players"]:
                names[str(player.get("id"))] = str(player.get("name"))
        player_id = self.welcome.player_id if self.welcome else None
        return PlayerContext(player_id, names)

    def set_status(self, text: str) -> None:
        self.status = text
        self.redraw()

    def set_notice(self, text: str, style: int = NORMAL) -> None:
        self.notice, self.notice_style = text, style

    def remaining_now(self) -> float | None:
        if self.remaining is None:
            return None
        return max(0.0, self.remaining - (self.reactor.seconds() - self.remaining_at))

    def phase_text(self) -> str:
        session = self.session
        if session is None:
            return ""
        if self.ended is not None:
            return self.ended["p"]
        left = self.remaining_now()
        phase = session.phase
        if left is None:
            return phase
        if phase == "waiting":
            return f"waiting for players {format_time(left)}"
        if phase == "countdown":
            return f"starts in {format_time(left)}"
        if phase == "playing":
            return f"{format_time(left)} left"
        return phase

    def result_text(self, message: Mapping[str, Any]) -> str:
        if message["p"] == "aborted":
            return f"the match was aborted ({message.get('reason', 'no reason given')})"
        result = message.get("result") or {}
        winners = list(result.get("winners") or ())
        reason = result.get("reason", "")
        ctx = self.context()
        if not winners:
            outcome = "a draw, no winner"
        elif ctx.player_id in winners:
            outcome = "you won!" if len(winners) == 1 else "you tied for the win"
        else:
            outcome = "winner: " + ", ".join(ctx.name(w) for w in winners)
        return f"game over: {outcome}" + (f" ({reason})" if reason else "")

    def redraw(self) -> None:
        height, width = self.screen.size()
        canvas = Canvas(height, width)
        self.draw(canvas)
        self.screen.show(canvas)

    def draw(self, canvas: Canvas) -> None:
        height, width = canvas.height, canvas.width
        canvas.fill(0, REVERSE)
        header = f" vinom {GameRules.of(self.game).title}"
        if self.welcome is not None:
            header += f"  {self.welcome.name}"
        if self.session is not None and self.session.seat is not None:
            header += f" (seat {self.session.seat + 1})"
        canvas.put(0, 0, header, REVERSE)
        phase = self.phase_text()
        if phase:
            canvas.put(0, max(len(header) + 2, width - len(phase) - 1), phase, REVERSE)
        view = self.session.view if self.session is not None else None
        if view is None:
            canvas.put(2, 2, self.status, BOLD)
            canvas.put(3, 2, "q cancels", DIM)
        else:
            try:
                self.ui.draw(canvas, Area(2, 1, max(0, height - 4), max(0, width - 2)), view,
                             self.context())
            except Exception:  # a view we do not understand must not take the UI down
                _log.failure("drawing the view failed")
                for i, line in enumerate(format_view(view, self.context())):
                    canvas.put(2 + i, 1, line)
        canvas.put(height - 2, 1, self.notice, self.notice_style)
        if self.prompt is not None:
            canvas.put(height - 1, 0, f"action> {self.prompt}_", BOLD)
        elif self.session is not None and self.ended is None:
            help_line = self.ui.help + ("  [autopilot]" if self.autopilot else "")
            canvas.put(height - 1, 1, help_line, DIM)
        else:
            canvas.put(height - 1, 1, "q quit", DIM)

    def tick(self) -> None:
        self.redraw()


def _sleep(clock: Any, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    clock.callLater(seconds, d.callback, None)
    return d


# -- curses -------------------------------------------------------------------


def run_play(
    reactor: Any,
    lobby: LobbyAddress,
    game: IGame,
    name: str,
    *,
    log_file: str | None = None,
    auth: Auth | None = None,
    queue: str = NORMAL_QUEUE,
) -> int:
    """`vinom play`: run the terminal client on `reactor` until the user is done, signed
    in with `auth` (None: a guest) and queued in `queue`."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        sys.stderr.write("vinom: 'vinom play' needs a terminal (try 'vinom bots' for scripts)\n")
        return 1
    log = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115
    observers: list[FileLogObserver] = [textFileLogObserver(log)] if log is not None else []
    # Logged events and warnings must not be printed over the screen.
    globalLogBeginner.beginLoggingTo(observers, discardBuffer=True, redirectStandardIO=False)
    app: TerminalApp | None = None
    try:
        with curses_screen() as screen:
            app = TerminalApp(reactor, lobby, game, name, screen, auth=auth, queue=queue)

            def tick() -> None:
                # Polling here too catches KEY_RESIZE, which curses queues without input.
                for key in screen.read_keys():
                    app.handle_key(key)
                app.tick()

            reader = KeyReader(screen.read_keys, app.handle_key, app.quit)
            ticker = LoopingCall(tick)
            ticker.clock = reactor

            def begin() -> None:
                reactor.addReader(reader)
                ticker.start(FRAME_SECONDS if getattr(game, "tick_rate", 0) else TICK_SECONDS)
                app.start().addBoth(stop)

            def stop(result: object) -> None:
                if ticker.running:
                    ticker.stop()
                reactor.removeReader(reader)
                if reactor.running:
                    reactor.stop()

            reactor.callWhenRunning(begin)
            reactor.addSystemEventTrigger("before", "shutdown", app.shutdown)
            reactor.run()
    finally:
        if log is not None:
            log.close()
    if app is None:
        return 1
    if app.error:
        sys.stderr.write(f"vinom: {app.error}\n")
    elif app.ended is not None:
        sys.stdout.write(app.result_text(app.ended) + "\n")
    elif app.session is not None:
        sys.stdout.write("you left the match\n")
    return app.exit_code
