"""A client given two lobbies of one cluster carries on through the second when the first dies.

Real processes on a real Redis: two `twistd vinom lobby`, one `twistd vinom
host`, and the `vinom bots` command as a child process given both lobbies. The
first lobby is killed with SIGKILL while the bot is queued, and (another test)
while its match is running: the bot finishes its match through the second
lobby (issue #25, item 6).
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

import json
import os
import random
import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process
from tests.server.test_ops import http_get, metric_value
from tests.server.test_twistd import ROOT
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress, play_bot

QUEUE = "vinom:mm:q:tictactoe:normal"


class Command(ProcessProtocol):
    """A child process's stdout and stderr, kept apart, and its exit status."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, ProcessDone | ProcessTerminated):
            self.ended.callback((value.exitCode, value.signal))
        else:
            self.ended.callback((None, None))


class BotsCommandCase(ClusterTestCase):
    """Runs `vinom bots` as a child process and waits on what it says."""

    timeout = 120

    def vinom_bots(self, lobbies: list[LobbyAddress], *args: str) -> tuple[Command, Any]:
        """`vinom bots --json` given every lobby (and each one's certificate), as a user runs it."""
        command = Command()
        argv = [sys.executable, "-m", "vinom.cli", "bots", "--game", "tictactoe", "--json"]
        for lobby in lobbies:
            argv += ["--lobby", f"{lobby.host}:{lobby.port}", "--trust", str(lobby.trust)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        transport = reactor.spawnProcess(command, sys.executable, [*argv, *args], env=env,
                                         path=where)  # fmt: skip

        def stop() -> Deferred[Any] | None:
            if command.ended.called:
                return None
            transport.signalProcess("KILL")
            return command.ended

        self.addCleanup(stop)
        return command, transport

    async def finished(self, command: Command) -> dict[str, Any]:
        status = await command.ended
        self.assertEqual(status, (0, None), (command.out + command.err).decode())
        summary: dict[str, Any] = json.loads(command.out.decode().strip().splitlines()[-1])
        return summary

    async def bots_until(
        self, what: str, check: Any, command: Command, limit: float = 30.0
    ) -> None:
        """Wait until `check` is true; fail, saying what `command` said, if the
        command ended first or `limit` passed."""

        def said() -> str:
            return (command.out + command.err).decode(errors="replace")

        async def checked() -> bool:
            self.assertFalse(command.ended.called, f"vinom bots ended before {what}:\n{said()}")
            return bool(await check())

        await until(checked, lambda: f"{what}; vinom bots:\n{said()}", limit, every=0.05)

    async def kill(self, process: Process) -> None:
        process.transport.signalProcess("KILL")
        await process.output.ended


class LobbyFailoverTests(BotsCommandCase):
    async def test_a_queued_bot_requeues_through_the_second_lobby_when_the_first_dies(
        self,
    ) -> None:
        await self.start("host", ports=4)
        doomed_process = await self.start("lobby")
        survivor_process = await self.start("lobby")
        doomed, survivor = self.lobby_address(doomed_process), self.lobby_address(survivor_process)
        command, _ = self.vinom_bots([doomed, survivor], "--count", "1", "--seed", "1")

        async def players() -> set[str]:
            # Every player queued now or matched so far.
            seen = {str(m) for m in await self.redis_call("ZRANGE", QUEUE, 0, -1)}
            log = await self.redis_call("XRANGE", "vinom:mm:match-log", "-", "+")
            for _entry, fields in log:
                match = json.loads(dict(zip(fields[::2], fields[1::2], strict=False))["match"])
                seen |= {p["player_id"] for p in match["players"]}
            return seen

        await self.bots_until("the bot to queue", players, command)
        first = await players()
        await self.kill(doomed_process)
        killed = reactor.seconds()

        async def back() -> bool:
            return bool(await players() - first)

        # The bot queues again through the survivor on its own; its partner comes after.
        await self.bots_until("the bot to queue again", back, command, limit=15)
        print(f"\nthe bot queued again {reactor.seconds() - killed:.2f} s after the kill",
              file=sys.stderr)  # fmt: skip
        partner = await play_bot(reactor, survivor, GAME, "partner", rng=random.Random(2))
        summary = await self.finished(command)
        (bot,) = summary["reports"]
        self.assertEqual(bot["outcome"], "finished", bot)
        self.assertEqual(partner.outcome, "finished", partner)
        self.assertEqual(bot["match_id"], partner.match_id)
        self.assertGreaterEqual(bot["lobby_changes"], 1)
        # Its earlier ticket, on the dead lobby, went into no match: no ghost.
        matched = await self.redis_call("XRANGE", "vinom:mm:match-log", "-", "+")
        self.assertEqual(len(matched), 1, matched)

    async def test_a_playing_bot_reconnects_through_the_second_lobby_when_the_first_dies(
        self,
    ) -> None:
        ops = free_tcp_port()
        host = await self.start(
            "host", "--limit", "session-timeout=1", "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
            ports=4,
        )  # fmt: skip
        doomed_process = await self.start("lobby")
        survivor_process = await self.start("lobby")
        doomed, survivor = self.lobby_address(doomed_process), self.lobby_address(survivor_process)

        async def sessions(count: int) -> bool:
            _, text = await http_get(f"http://127.0.0.1:{ops}/metrics")
            return metric_value(text, "vinom_sessions") == count

        # Two bots, one starting at each lobby; a slow pace keeps the match running.
        command, transport = self.vinom_bots(
            [doomed, survivor], "--count", "2", "--seed", "3", "--think", "0.5"
        )
        await self.bots_until("both bots to connect to the game host", lambda: sessions(2), command)
        (match_id,) = self.hosted_matches(host)
        # The bots' machine goes away (SIGSTOP) for longer than the session timeout, and
        # meanwhile the first lobby dies: both game sessions end, and the bots' way back
        # to their match is through a lobby.
        os.kill(transport.pid, signal.SIGSTOP)
        await self.kill(doomed_process)
        await self.bots_until("the host to end both sessions", lambda: sessions(0), command)
        os.kill(transport.pid, signal.SIGCONT)
        resumed = reactor.seconds()
        await self.bots_until("both bots to reconnect", lambda: sessions(2), command)
        print(f"\nboth bots back in their match {reactor.seconds() - resumed:.2f} s after "
              "they resumed", file=sys.stderr)  # fmt: skip
        summary = await self.finished(command)
        for bot in summary["reports"]:
            self.assertEqual(bot["outcome"], "finished", bot)
            self.assertEqual(bot["match_id"], match_id)
            self.assertGreaterEqual(bot["reconnects"], 1, bot)
            # Each came back through the survivor, with a fresh token for its seat.
            self.assertIn(f"player {bot['player_id']} reconnected to match {match_id}",
                          survivor_process.text)  # fmt: skip
        # The bot that started at the dead lobby moved on from it.
        self.assertGreaterEqual(summary["reports"][0]["lobby_changes"], 1)
        self.assertEqual(self.hosted_matches(host), [match_id])


class HostCrashTests(BotsCommandCase):
    async def test_bots_whose_host_dies_take_their_kept_place_and_finish_elsewhere(
        self,
    ) -> None:
        # A host whose worker outlives it for a moment: the worker tells its players
        # `aborted`, `host_crashed` (docs/lobby.md: a place kept at the head of the queue).
        doomed = await self.start("host", "--host-workers", "1", ports=4)
        lobby_process = await self.start("lobby")
        lobby = self.lobby_address(lobby_process)
        # A slow pace keeps the match running until the host is killed.
        command, transport = self.vinom_bots(
            [lobby], "--count", "2", "--seed", "5", "--think", "0.5"
        )

        async def hosted() -> bool:
            return bool(self.hosted_matches(doomed))

        await self.bots_until("the first match to start", hosted, command)
        (first,) = self.hosted_matches(doomed)
        # The bots pause (SIGSTOP) while the second host starts and the first is
        # killed: their match is still running when its host dies, however long a
        # loaded machine takes to start a process (a won match lasts about 2.5 s).
        # A bot may pause before its handshake with the host is done (the match is
        # hosted before its players are told where): it finds the host gone when it
        # resumes, and asks the lobby as the others do, for every player of a match
        # ended host_crashed keeps a place (vinom.client.bots.play_bot).
        os.kill(transport.pid, signal.SIGSTOP)
        try:
            survivor = await self.start("host", ports=4)
            await self.kill(doomed)
        finally:
            os.kill(transport.pid, signal.SIGCONT)
        summary = await self.finished(command)
        for bot in summary["reports"]:
            self.assertEqual(bot["outcome"], "finished", bot)
            self.assertNotEqual(bot["match_id"], first)
            self.assertGreaterEqual(bot["reconnects"], 1, bot)
        (second,) = {bot["match_id"] for bot in summary["reports"]}
        self.assertEqual(self.hosted_matches(survivor), [second])
