"""README's real-time game, run as written: the quick start's `twistd -n vinom`, with
no option and nothing on the path, offers the built-in arena that "Play in a
browser" says to quick-match.

The command runs under `sh` in an empty directory (with links to the checkout's
`vinom/` and `twisted/plugins/` when vinom is not installed); its `twistd` is a
stand-in that runs the real one with every port moved to a free one on loopback
(the README's are the defaults, which another server may hold). Two players
then queue for the arena over UDP and steer: the server offers the real-time
game the README names, and plays it. (tests/server/test_web_arena.py plays it
in Chromium.)
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

import vinom
from tests.server.test_twistd import RUN_TWISTD, Collect
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.waiting import until
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import LobbyAddress

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_command() -> str:
    """The quick start's command that starts the server (after its `pip install .`)."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    [block] = [b for b in blocks if "twistd -n vinom" in b]
    return block.split("&&")[-1].strip()


class ReadmeArenaTests(TestCase):
    timeout = 120

    async def test_the_readme_command_serves_the_arena(self) -> None:
        block = readme_command()
        self.assertEqual(block, "twistd -n vinom")
        self.assertIn('quick-match "Arena"', " ".join(README.read_text(encoding="utf-8").split()))
        clone = Path(self.mktemp()).resolve()
        clone.mkdir()
        if Path(vinom.__file__).resolve().parent.parent == ROOT:
            # Not installed: the checkout's package and plugins, as a clone has them.
            (clone / "vinom").symlink_to(ROOT / "vinom")
            (clone / "twisted").symlink_to(ROOT / "twisted")
        # The stand-in `twistd`: the real one, every listener on a free loopback port.
        lobby, web, base = free_tcp_port(), free_tcp_port(), free_udp_range(2)
        moved = [
            "--lobby", f"ssl:{lobby}:interface=127.0.0.1",
            "--websocket", f"ssl:{web}:interface=127.0.0.1",
            "--udp-ports", f"{base}-{base + 1}", "--udp-interface", "127.0.0.1",
            "--public-host", "127.0.0.1",
            "--ops-port", "none", "--limit", "drain-timeout=0", "--data-dir", str(clone / "data"),
        ]  # fmt: skip
        bin_dir = clone / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "twistd"
        pid_file = clone / "server.pid"
        shim.write_text(
            # Its pid (the server's, after exec) for the cleanup: `sh` runs it as a child.
            f"#!/bin/sh\necho $$ > {shlex.quote(str(pid_file))}\n"
            f'exec {shlex.quote(sys.executable)} -c {shlex.quote(RUN_TWISTD)} "$@" '
            + " ".join(shlex.quote(o) for o in moved) + "\n",
            encoding="utf-8",
        )
        shim.chmod(0o755)
        process = Collect()
        env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        transport = reactor.spawnProcess(
            process, "/bin/sh", ["sh", "-e", "-c", block], env=env, path=str(clone)
        )

        async def stop() -> None:
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
            if not process.ended.called:
                transport.signalProcess("KILL")
            await process.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))

        def said() -> str:
            return process.output.decode(errors="replace")

        def started() -> bool:
            self.assertFalse(process.ended.called, said())
            return b"play in a browser" in process.output

        await until(started, said, 60.0, every=0.05)
        # The server offers the arena among the games it offers by default.
        self.assertRegex(said(), r"games: arena, dice, maze, owedrahn, tictactoe\b")
        # Two players queue for it and play: one steers, and both see the dot move.
        address = LobbyAddress("127.0.0.1", lobby, str(clone / "data" / "dev-cert.pem"))
        found = await gatherResults(
            [LobbyPlayer(reactor, address, name).find_match("arena") for name in ("ann", "bob")]
        )
        sessions: list[GameSession] = list(
            await gatherResults([connect_game(reactor, f) for f in found])
        )
        for session in sessions:
            self.addCleanup(session.disconnect)

        def playing(session: GameSession) -> bool:
            return session.state is not None and session.state["p"] == "playing"

        await until(lambda: all(playing(s) for s in sessions), "both playing", 30.0)
        ann, bob = sessions
        me = ann.view["me"]
        start = next(p for p in ann.view["players"] if p[0] == me)
        ann.send_input({"move": [100.0, 0.0], "n": 1})

        def moved(session: GameSession) -> bool:
            seen = [p for p in session.view["players"] if p[0] == me]
            return bool(seen) and seen[0][1] != start[1] and seen[0][3] > 0

        await until(lambda: moved(ann) and moved(bob), "Ann's dot moving, for both", 30.0)
        self.assertNotIn("Traceback", said())
