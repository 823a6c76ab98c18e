"""`vinom watch MATCH`: watch a running match in the terminal, read-only.

The command says hello to the lobby, asks to `spectate` the match (by its id,
or by the join code of a private room whose owner allows it; docs/lobby.md),
and connects to its game host with the spectator's token, as `vinom play`
connects a player (vinom.client.game). `WatchView` draws what the session
holds, the game's public view in the game's terminal view (as `vinom play`
and `vinom replay` do), the players and the phase, and the result at the end;
`run_watch` puts it on curses until the match ends or q is pressed.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from vinom.client.canvas import BOLD, DIM, REVERSE, Area, Canvas, PlayerContext, format_view
from vinom.client.errors import describe_failure
from vinom.client.game import GameSession, connect_game
from vinom.client.game_views import ui_for
from vinom.client.lobby import Auth, LobbyAddress, connect_lobby
from vinom.client.terminal import KEY_ESCAPE, KeyReader, curses_screen
from vinom.games.interfaces import IGame
from vinom.games.rules import GameRules

FRAME_SECONDS = 0.1
#: The keys that stop watching.
QUIT_KEYS = frozenset((ord("q"), ord("Q"), KEY_ESCAPE))


class WatchView:
    """What a spectator's terminal shows of `session` (a spectator's `GameSession`)."""

    def __init__(self, session: GameSession, find_game: Any) -> None:
        self.session = session
        self.find_game = find_game
        self.done = False
        self._game: IGame | None = None

    @property
    def game(self) -> IGame | None:
        welcome = self.session.welcome
        if self._game is None and welcome is not None:
            with contextlib.suppress(KeyError):
                self._game = self.find_game(str(welcome["game"]))
        return self._game

    def context(self) -> PlayerContext:
        welcome = self.session.welcome or {}
        players = welcome.get("players", ())
        return PlayerContext(None, {str(p["id"]): str(p["name"]) for p in players})

    def result_text(self) -> str:
        session = self.session
        if session.phase == "aborted":
            return "the match was aborted"
        if session.phase != "finished":
            return ""
        result = session.result or {}
        ctx = self.context()
        winners = [ctx.name(w) for w in result.get("winners", ())]
        return f"{' and '.join(winners)} won" if winners else "a draw"

    def draw(self, canvas: Canvas) -> None:
        height, width = canvas.height, canvas.width
        canvas.fill(0, REVERSE)
        session, game = self.session, self.game
        welcome = session.welcome or {}
        title = GameRules.of(game).title if game is not None else str(welcome.get("game", ""))
        header = f" vinom watch  {title}  {welcome.get('match', '')}"
        canvas.put(0, 0, header, REVERSE)
        status = session.phase + (f": {self.result_text()}" if self.result_text() else "")
        canvas.put(0, max(len(header) + 2, width - len(status) - 1), status, REVERSE)
        view = session.view
        if view is None:
            canvas.put(2, 2, "waiting for the match's first state...", BOLD)
        else:
            ctx = self.context()
            try:
                assert game is not None
                ui_for(game).draw(canvas, Area(2, 1, max(0, height - 4), max(0, width - 2)),
                                  view, ctx)  # fmt: skip
            except Exception:
                for i, line in enumerate(format_view(view, ctx)):
                    canvas.put(2 + i, 1, line)
        canvas.put(height - 1, 1, "watching (read-only)  q quits", DIM)

    def handle_key(self, key: int) -> None:
        if key in QUIT_KEYS:
            self.done = True


async def spectate(
    reactor: Any, lobby: LobbyAddress, what: str, auth: Auth | None = None
) -> GameSession:
    """Hello (signed in with `auth` where the server needs it), `spectate` (an id
    `m-...`, else a room code), and the spectator's session."""
    client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
    try:
        await client.hello("spectator", auth=auth)
        if what.startswith("m-"):
            found = await client.spectate(what)
        else:
            found = await client.spectate(code=what)
    finally:
        client.close()
    return await connect_game(reactor, found)


def run_watch(
    reactor: Any, lobby: LobbyAddress, what: str, find_game: Any, auth: Auth | None = None
) -> int:
    """`vinom watch`: the view on curses until the match ends (and a key) or q."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        sys.stderr.write("vinom: 'vinom watch' needs a terminal\n")
        return 1
    outcome: list[int] = []
    with curses_screen() as screen:
        state: dict[str, Any] = {"view": None, "error": ""}

        def frame() -> None:
            view = state["view"]
            if view is not None:
                height, width = screen.size()
                canvas = Canvas(height, width)
                view.draw(canvas)
                screen.show(canvas)

        def stop(code: int) -> None:
            if not outcome:
                outcome.append(code)
            if frames.running:
                frames.stop()
            if reactor.running:
                reactor.stop()

        def watching(session: GameSession) -> None:
            state["view"] = WatchView(session, find_game)

        def failed(failure: Any) -> None:
            state["error"] = describe_failure(failure, lobby)
            stop(1)

        # The terminal's keys come to the reader (and to it only: a key read there is
        # gone from the screen): q or Escape quits, while connecting too.
        def key(pressed: int) -> None:
            view = state["view"]
            if view is None:
                if pressed in QUIT_KEYS:
                    stop(0)
                return
            view.handle_key(pressed)
            if view.done:
                stop(0)

        def start() -> None:
            d = Deferred.fromCoroutine(spectate(reactor, lobby, what, auth))
            d.addCallbacks(watching, failed)
            frames.start(FRAME_SECONDS)
            reactor.addReader(KeyReader(screen.read_keys, key, lambda: stop(0)))

        frames = LoopingCall(frame)
        frames.clock = reactor
        reactor.callWhenRunning(start)
        reactor.run()
    if state["error"]:
        sys.stderr.write(f"vinom: {state['error']}\n")
    elif state["view"] is not None and state["view"].result_text():
        sys.stdout.write(state["view"].result_text() + "\n")
    return outcome[0] if outcome else 1
