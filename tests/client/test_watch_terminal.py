"""`vinom watch` run as a person runs it: a child process in a pseudo-terminal,
against a real server. q quits it; a watch that cannot reach the match's game
server ends with one line saying so, never a traceback or an exception's name.
"""

# slow: runs `vinom watch` as a child process in a pseudo-terminal

from __future__ import annotations

import os
import random
import re
import sys

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.trial.unittest import TestCase

from tests.support.servers import RunningServer, start_server
from tests.support.terminal import TerminalProcess, in_a_terminal
from tests.support.waiting import until
from vinom.client.bots import play_bot
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession
from vinom.games.registry import GameRegistry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def screen_text(output: bytes) -> str:
    """What the terminal was sent, its escape sequences blanked."""
    return re.sub(rb"\x1b(\[[0-9;?]*[A-Za-z]|[()][0-9A-B]|[=>])", b" ", output).decode(
        "utf-8", "replace"
    )


class WatchInATerminalTests(TestCase):
    timeout = 90

    def watch(self, server: RunningServer, what: str) -> tuple[TerminalProcess, object]:
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": ROOT,
            "VINOM_NO_EXTENSIONS": os.environ.get("VINOM_NO_EXTENSIONS", ""),
            "TERM": "xterm",
            "LINES": "30",
            "COLUMNS": "100",
            "HOME": home,
        }
        argv = [sys.executable, "-m", "vinom.cli", "watch", what,
                "--lobby", f"127.0.0.1:{server.lobby.port}",
                "--trust", os.path.abspath(str(server.lobby.trust))]  # fmt: skip
        return in_a_terminal(self, argv, env, path=home)

    async def test_q_quits_the_watch(self) -> None:
        server = await start_server(self, ports=2)
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        sessions: list[GameSession] = []
        # Bots that think long: the match outlives the test.
        for n in range(2):
            playing = Deferred.fromCoroutine(play_bot(
                reactor, server.lobby, tictactoe, f"bot{n}", rng=random.Random(n),
                think_time=30.0, on_session=sessions.append,
            ))  # fmt: skip
            playing.addErrback(lambda failure: failure.trap(CancelledError))
            self.addCleanup(playing.cancel)
        await until(lambda: any(s.welcome is not None for s in sessions), "the match")
        match_id = next(s.welcome for s in sessions if s.welcome is not None)["match"]
        terminal, process = self.watch(server, match_id)
        await until(lambda: "q quits" in screen_text(terminal.output) or terminal.ended.called,
                    "the watch drawn", timeout=30.0)  # fmt: skip
        self.assertFalse(terminal.ended.called, screen_text(terminal.output)[-2000:])
        process.write(b"q")  # type: ignore[attr-defined]
        await until(lambda: terminal.ended.called, "q to quit", timeout=10.0)
        reason = await terminal.ended
        self.assertIsInstance(reason, ProcessDone, screen_text(terminal.output)[-2000:])

    async def test_a_game_server_that_does_not_answer_is_one_line(self) -> None:
        # The game server says it is at an address where nobody answers (its UDP
        # listens on 127.0.0.1 only): the handshake times out.
        server = await start_server(self, "--public-host", "127.0.0.2", ports=2)
        players = [LobbyPlayer(reactor, server.lobby, name) for name in ("ann", "bob")]
        finding = [player.find_match("tictactoe") for player in players]
        matches = [await d for d in finding]
        terminal, _process = self.watch(server, matches[0].game_id)
        await until(lambda: terminal.ended.called, "the watch to give up", timeout=60.0)
        reason = await terminal.ended
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertEqual(reason.exitCode, 1)  # type: ignore[attr-defined]
        text = screen_text(terminal.output)
        last = [line.strip() for line in text.splitlines() if line.strip()][-1]
        self.assertEqual(
            last, "vinom: the match's game server did not answer in time (is UDP to it blocked?)"
        )
        self.assertNotIn("Error", text)
        self.assertNotIn("Traceback", text)
