"""The terminal clients sign in as a user does, on a real `twistd -n vinom --auth device`:
`vinom bots --auth device --queue ranked` (the command docs/getting-started.md gives) as
a child process plays rated matches whose ratings show on the server's leaderboard (JSON
over HTTPS), the bots keeping their accounts from run to run through the device key made
0600 in the user's configuration directory; `vinom play` in a pseudo-terminal, as the
server's start-up line gives it (`--auth device`), reaches a ranked match against such a
bot, and its account is rated for it (without `--auth`, one line says to give it); the
load generator signs in and queues ranked alike; and a device file the command cannot use
is one line and status 2, before any connection."""

# slow: starts `twistd -n vinom`, `vinom bots` and `vinom play` as child processes

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.client.test_tui import _tail
from tests.support.doc_examples import fenced
from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port
from tests.support.servers import ROOT, RunningTwistd, start_twistd
from tests.support.terminal import in_a_terminal
from tests.support.waiting import until
from tests.test_integration_accounts import https_get
from vinom.client.bots import play_bot
from vinom.client.game import GameSession
from vinom.client.lobby import device_auth
from vinom.games.registry import GameRegistry

RUN_CLI = "import sys; from vinom.cli import main; sys.exit(main())"


class DeviceSignInTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        # The user's home: where the device key is kept (~/.config/vinom/device.json).
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": ROOT,
            "HOME": self.home,
            "TERM": "xterm",
            "LINES": "30",
            "COLUMNS": "100",
        }

    async def server(self, *options: str) -> RunningTwistd:
        return await start_twistd(self, {}, "--auth", "device", *options, web=True)

    async def vinom(self, server: RunningTwistd | None, *argv: str) -> tuple[str, str, int]:
        """`vinom ARGV` in a child process, as the user runs it (at `server`'s lobby)."""
        where = () if server is None else ("--lobby", f"127.0.0.1:{server.lobby_port}",
                                           "--trust", server.cert)  # fmt: skip
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_CLI, *argv, *where], env=self.env, path=self.home
        )
        return out.decode(), err.decode(), code

    async def leaderboard(self, server: RunningTwistd, game: str) -> list[dict[str, Any]]:
        code, body = await https_get(
            f"https://localhost:{server.web_port}/leaderboard/{game}/ranked?limit=10", server.cert
        )
        self.assertEqual(code, 200, body)
        entries: list[dict[str, Any]] = json.loads(body)["entries"]
        return entries

    async def rated(self, server: RunningTwistd, game: str, matches: dict[str, int]) -> None:
        """Wait until the board shows these names with these many rated matches (a match is
        rated as it ends, after its players heard the end)."""
        seen: list[object] = []

        async def shown() -> bool:
            seen[:] = [{e["name"]: e["matches"] for e in await self.leaderboard(server, game)}]
            return seen[0] == matches

        await until(shown, lambda: f"{matches} on the {game} board, not {seen}", timeout=30.0,
                    every=0.5)  # fmt: skip

    async def test_bots_play_ranked_with_devices_and_keep_their_accounts(self) -> None:
        server = await self.server()
        # The command of docs/getting-started.md's ranked ladder, its summary as JSON.
        ladder = fenced("getting-started.md", "console", "--queue ranked")
        command = next(line for line in ladder.splitlines() if line.startswith("$ vinom bots"))
        argv = (*command.split()[2:], "--seed", "4", "--json")
        out, err, code = await self.vinom(server, *argv)
        self.assertEqual((code, err), (0, ""), out)
        first = json.loads(out)
        self.assertEqual((first["finished"], first["matches"]), (2, 1), first)
        ids = {r["name"]: r["player_id"] for r in first["reports"]}
        self.assertTrue(all(i.startswith("a-") for i in ids.values()), ids)
        # The key, made on first use where the user's configuration lives, theirs alone.
        key = os.path.join(self.home, ".config", "vinom", "device.json")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        await self.rated(server, "tictactoe", {"bot0": 1, "bot1": 1})
        board = await self.leaderboard(server, "tictactoe")
        self.assertEqual({e["name"]: e["player_id"] for e in board}, ids)

        # Run again: the same bots, the same accounts, a second rated match each.
        out, err, code = await self.vinom(server, *argv)
        self.assertEqual((code, err), (0, ""), out)
        self.assertEqual({r["name"]: r["player_id"] for r in json.loads(out)["reports"]}, ids)
        await self.rated(server, "tictactoe", {"bot0": 2, "bot1": 2})

    async def test_the_load_generator_signs_in_and_queues_ranked_alike(self) -> None:
        server = await self.server()
        # `python -m benchmarks.load` on these sources (benchmarks/__init__.py).
        out, err, code = await getProcessOutputAndValue(sys.executable, [
            "-m", "benchmarks.load", "--lobby", f"127.0.0.1:{server.lobby_port}",
            "--trust", server.cert, "--game", "tictactoe", "--bots", "2", "--duration", "3",
            "--think", "0.05", "--queue", "ranked", "--auth", "device", "--json", "--quiet",
        ], env={**self.env, "VINOM_BENCH_SOURCES": "1"}, path=self.home)  # fmt: skip
        self.assertEqual(code, 0, (err + out).decode(errors="replace"))  # the summary says why
        summary = json.loads(out.decode().splitlines()[-1])
        self.assertGreaterEqual(summary["matches_finished"], 1, summary)
        # Rated: each bot's account (its device, as `vinom bots --name load` has) on the board.
        board: list[dict[str, Any]] = []

        async def both_rated() -> bool:
            board[:] = await self.leaderboard(server, "tictactoe")
            return sorted(e["name"] for e in board if e["matches"] >= 1) == ["load0", "load1"]

        await until(both_rated, lambda: f"load0 and load1 rated in {board}", timeout=30.0,
                    every=0.5)  # fmt: skip

    async def test_a_terminal_player_signs_in_with_its_device_and_plays_ranked(self) -> None:
        ops = free_tcp_port()
        server = await self.server("--ops-port", f"tcp:{ops}:interface=127.0.0.1")
        # A bot to play against, thinking long: the terminal player leaves first.
        rival = getProcessOutputAndValue(sys.executable, [
            "-c", RUN_CLI, "bots", "--game", "maze", "--count", "1", "--name", "rival",
            "--think", "30", "--auth", "device", "--queue", "ranked", "--json",
            "--lobby", f"127.0.0.1:{server.lobby_port}", "--trust", server.cert,
        ], env=self.env, path=self.home)  # fmt: skip
        # The command the server's start-up names for terminal clients, as a user copies it.
        said = server.output.decode().split("vinom: terminal clients: ")[1].splitlines()[0]
        self.assertTrue(said.endswith(" --auth device"), said)
        play = said.replace("GAME", "maze").split()[1:]
        # Without its --auth: refused, in one line that says what to give.
        guest, _ = in_a_terminal(self, [sys.executable, "-c", RUN_CLI, *play[:-2]], self.env,
                                 path=self.home)  # fmt: skip
        ended = await guest.ended
        self.assertIsInstance(ended, ProcessTerminated, _tail(guest.output))
        self.assertEqual(ended.exitCode, 1)  # type: ignore[attr-defined]
        self.assertIn(b"refused: auth_failed: this server needs an 'auth' object in hello (and "
                      b"reconnect): sign in (--auth says how to sign in: see --help)\r\n",
                      guest.output)  # fmt: skip
        terminal, process = in_a_terminal(self, [
            sys.executable, "-c", RUN_CLI, *play, "--name", "tui", "--queue", "ranked"
        ], self.env, path=self.home)  # fmt: skip
        # "@" (you) is on no screen before the maze's: signed in, matched, playing.
        await until(lambda: b"@" in terminal.output or terminal.ended.called,
                    lambda: _tail(terminal.output), timeout=30.0)  # fmt: skip
        self.assertFalse(terminal.ended.called, _tail(terminal.output))
        # The rival's process, slower to start on a loaded machine, connected too (a
        # match one player left before the other came is not the rival's win).
        sessions: list[dict[Any, float]] = []

        async def both_connected() -> bool:
            sessions[:] = [samples(await fetch_metrics(ops), "vinom_sessions")]
            return sum(sessions[0].values()) >= 2

        await until(both_connected, lambda: f"two game sessions, not {sessions}", timeout=30.0,
                    every=0.2)  # fmt: skip
        process.write(b"q")  # leave the match: a forfeit
        self.assertIsInstance(await terminal.ended, ProcessDone, _tail(terminal.output))
        self.assertIn(b"you left the match", terminal.output)
        out, err, code = await rival
        report = json.loads(out)["reports"][0]
        self.assertEqual((code, err, report["outcome"], report["won"]), (0, b"", "finished", True),
                         out)  # fmt: skip
        # Both accounts rated for the match: the terminal player's is its device's.
        await self.rated(server, "maze", {"rival0": 1, "tui": 1})

    async def test_a_spectator_signs_in_with_its_device_and_watches(self) -> None:
        server = await self.server()
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        sessions: list[GameSession] = []
        # Two signed-in bots that think long: the match outlives the watch.
        for n in range(2):
            auth = device_auth(os.urandom(32), "127.0.0.1", f"bot{n}")
            playing = Deferred.fromCoroutine(play_bot(
                reactor, server.lobby, tictactoe, f"bot{n}", rng=random.Random(n),
                think_time=30.0, on_session=sessions.append, auth=auth,
            ))  # fmt: skip
            playing.addErrback(lambda failure: failure.trap(CancelledError))
            self.addCleanup(playing.cancel)
        await until(lambda: any(s.welcome is not None for s in sessions), "the match")
        match_id = next(s.welcome for s in sessions if s.welcome is not None)["match"]
        watch = [sys.executable, "-c", RUN_CLI, "watch", match_id,
                 "--lobby", f"127.0.0.1:{server.lobby_port}", "--trust", server.cert]  # fmt: skip
        # Without --auth: refused, in one line that says what to give.
        guest, _ = in_a_terminal(self, watch, self.env, path=self.home)
        ended = await guest.ended
        self.assertIsInstance(ended, ProcessTerminated, _tail(guest.output))
        self.assertEqual(ended.exitCode, 1)  # type: ignore[attr-defined]
        self.assertIn(b"refused: auth_failed: this server needs an 'auth' object in hello",
                      guest.output)  # fmt: skip
        # With its device: the board drawn, q quits.
        terminal, process = in_a_terminal(self, [*watch, "--auth", "device"], self.env,
                                          path=self.home)  # fmt: skip
        await until(lambda: b"q quits" in terminal.output or terminal.ended.called,
                    lambda: _tail(terminal.output), timeout=30.0)  # fmt: skip
        self.assertFalse(terminal.ended.called, _tail(terminal.output))
        process.write(b"q")
        self.assertIsInstance(await terminal.ended, ProcessDone, _tail(terminal.output))
        key = os.path.join(self.home, ".config", "vinom", "device.json")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)

    async def test_a_device_file_it_cannot_use_is_one_line_and_status_2(self) -> None:
        broken = os.path.join(self.home, "device.json")
        with open(broken, "w") as f:
            f.write("{not json\n")
        os.chmod(broken, 0o600)
        out, err, code = await self.vinom(None, "play", "maze", "--auth", "device",
                                          "--device-file", broken)  # fmt: skip
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(err.splitlines(), [
            f"vinom: --device-file {broken}: not a vinom device file (a JSON object whose "
            "'key' is 43 or more URL-safe base64 characters): move it away to make a new one "
            "(vinom play --help lists the options)"])  # fmt: skip
        with open(broken) as f:
            self.assertEqual(f.read(), "{not json\n")
